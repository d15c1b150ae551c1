-- 08_peak_concurrency_by_day_last_30_days.sql
--
-- Who runs it: product / capacity planning, for "how many users at most, and where?".
-- What it answers: per day (in the reporting time zone, zegolog_time_zone()) and app over the last 30 days: the most users online in any
--   minute of the day, and the room that had the most users online at once that day, with its
--   peak. Newest day first.
-- Source: views peak_concurrency_daily and room_peak_concurrency_daily (rollups).
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   lookback  interval '30 days'  how many days (of the reporting time zone) before today to cover (today so far included);
--                                 e.g. interval '7 days'.
--   app       NULL                NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--
-- Notes: a session counts in every minute from its login minute to its logout minute included;
--   users of two rooms count twice per app. The rollups are current up to the last compaction
--   (`zegolog serve` compacts every few seconds). Days without any session are absent.
--   Run with: psql -f sql/citus/08_peak_concurrency_by_day_last_30_days.sql
--   The Citus form of sql/08_peak_concurrency_by_day_last_30_days.sql, same rows: on Citus,
--   room_peak_concurrency_daily is distributed by room, and Citus refuses sql/08's LATERAL
--   top-1 per day against it. Here each day's rooms are read once (rooms, on the coordinator)
--   and the busiest one picked from them; on one PostgreSQL that reads every room-day of the
--   window (95-120 ms on 60 days of 2M logouts, against 2-3 ms for sql/08's index top-1).
WITH params AS (
    SELECT
        interval '30 days' AS lookback,  -- PARAMETER: days before today to cover
        NULL::bigint AS app              -- PARAMETER: NULL = all apps, or an appid
), rooms AS MATERIALIZED (
    SELECT r.day, r.appid, r.room_id, r.peak_users
    FROM room_peak_concurrency_daily AS r
    CROSS JOIN params AS p
    WHERE r.day >= ((now() AT TIME ZONE zegolog_time_zone()) - p.lookback)::date
        AND (p.app IS NULL OR r.appid = p.app)
), busiest AS (
    -- The room with the highest peak that day (ties: the first room id).
    SELECT DISTINCT ON (r.day, r.appid) r.day, r.appid, r.room_id, r.peak_users
    FROM rooms AS r
    ORDER BY r.day, r.appid, r.peak_users DESC, r.room_id
)
SELECT
    d.day,
    d.appid,
    d.peak_users,
    b.room_id AS busiest_room,
    b.peak_users AS busiest_room_peak_users
FROM peak_concurrency_daily AS d
CROSS JOIN params AS p
LEFT JOIN busiest AS b ON b.appid = d.appid AND b.day = d.day
WHERE d.day >= ((now() AT TIME ZONE zegolog_time_zone()) - p.lookback)::date
    AND (p.app IS NULL OR d.appid = p.app)
ORDER BY d.day DESC, d.appid;
