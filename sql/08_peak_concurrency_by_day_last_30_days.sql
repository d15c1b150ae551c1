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
--   Run with: psql -f sql/08_peak_concurrency_by_day_last_30_days.sql
WITH params AS (
    SELECT
        interval '30 days' AS lookback,  -- PARAMETER: days before today to cover
        NULL::bigint AS app              -- PARAMETER: NULL = all apps, or an appid
)
SELECT
    d.day,
    d.appid,
    d.peak_users,
    b.room_id AS busiest_room,
    b.peak_users AS busiest_room_peak_users
FROM peak_concurrency_daily AS d
CROSS JOIN params AS p
LEFT JOIN LATERAL (
    -- The room with the highest peak that day (ties: the first room id).
    SELECT r.room_id, r.peak_users
    FROM room_peak_concurrency_daily AS r
    WHERE r.appid = d.appid AND r.day = d.day
    ORDER BY r.peak_users DESC, r.room_id
    LIMIT 1
) AS b ON true
WHERE d.day >= ((now() AT TIME ZONE zegolog_time_zone()) - p.lookback)::date
    AND (p.app IS NULL OR d.appid = p.app)
ORDER BY d.day DESC, d.appid;
