-- 01_durations_by_room_last_7_days.sql
--
-- Who runs it: product / support, when asked "which rooms are busiest and how long do people stay?".
-- What it answers: per app and room, over the lookback window (by logout time): number of sessions,
--   distinct users, median and 90th-percentile session length in seconds (p50_s, p90_s at the 1% bucket
--   resolution of the daily views; p50_exact_s, p90_exact_s exact), total hours spent,
--   and the last logout seen. Busiest rooms (most total hours) first.
-- Source: view session_durations.
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   lookback  interval '7 days'  how far back from now() to look; e.g. interval '24 hours',
--                                interval '30 days'.
--   app       NULL               NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--   LIMIT     100                at most this many rooms (last line).
--
-- Notes: a session counts in the window if it ended in it. Percentiles are the nearest rank
--   (zegolog_nearest_rank, as in every view: a session's own duration, not an interpolation), of the
--   sessions with a known duration. Run with: psql -f sql/01_durations_by_room_last_7_days.sql
WITH params AS (
    SELECT
        interval '7 days' AS lookback,  -- PARAMETER: time window, ending now
        NULL::bigint AS app             -- PARAMETER: NULL = all apps, or an appid
)
SELECT
    s.appid,
    s.room_id,
    count(*) AS sessions,
    count(DISTINCT s.user_account) AS users,
    zegolog_bucket_ms(zegolog_duration_bucket(zegolog_nearest_rank(0.5, array_agg(s.duration_ms)))) / 1000 AS p50_s,
    zegolog_bucket_ms(zegolog_duration_bucket(zegolog_nearest_rank(0.9, array_agg(s.duration_ms)))) / 1000 AS p90_s,
    round(sum(s.duration_ms) / 3600000.0, 2)::double precision AS total_hours,
    max(s.logout_at) AS last_logout_at,
    zegolog_nearest_rank(0.5, array_agg(s.duration_ms))::double precision / 1000 AS p50_exact_s,
    zegolog_nearest_rank(0.9, array_agg(s.duration_ms))::double precision / 1000 AS p90_exact_s
FROM session_durations AS s
CROSS JOIN params AS p
WHERE s.logout_at >= now() - p.lookback
    AND (p.app IS NULL OR s.appid = p.app)
GROUP BY s.appid, s.room_id
ORDER BY total_hours DESC, sessions DESC, s.appid, s.room_id
-- PARAMETER: maximum number of rooms listed
LIMIT 100;
