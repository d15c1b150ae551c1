-- 07_users_online_last_3_hours.sql
--
-- Who runs it: on-call / product, to see how many users are in an app and how that moved.
-- What it answers: per app and 5-minute bucket over the last 3 hours: the most, the fewest and the
--   average number of users online in the minutes of the bucket (a session counts in every
--   minute from its login minute to its logout minute included). Newest bucket first.
-- Source: function users_online(appid, from, to) (minute rollups plus the rows not compacted yet,
--   so the figures are exact up to the last commit).
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   lookback  interval '3 hours'    time window, ending now; e.g. interval '24 hours'.
--   bucket    interval '5 minutes'  bucket width; interval '1 minute' for the raw minutes,
--                                   interval '1 hour' for a long window. Aligned on the midnights of
--                                   the reporting time zone (zegolog_bucket_start).
--   app       NULL                  NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--
-- Notes: a session is known when its logout arrives, so the last minutes count only the users who
--   already left; users still online are in 09_open_sessions.sql. For one room use
--   room_users_online(appid, room_id, from, to) the same way. The first and last buckets may be
--   partial. Run with: psql -f sql/07_users_online_last_3_hours.sql
WITH params AS (
    SELECT
        interval '3 hours' AS lookback,   -- PARAMETER: time window, ending now
        interval '5 minutes' AS bucket,   -- PARAMETER: bucket width
        NULL::bigint AS app               -- PARAMETER: NULL = all apps, or an appid
)
SELECT
    zegolog_bucket_start(u.minute, p.bucket, zegolog_time_zone()) AS bucket_start,
    a.appid,
    max(u.users_online) AS peak_users,
    min(u.users_online) AS low_users,
    round(avg(u.users_online), 1)::double precision AS avg_users
FROM params AS p
CROSS JOIN LATERAL unnest(CASE WHEN p.app IS NULL THEN zegolog_appids() ELSE ARRAY[p.app] END) AS a(appid)
CROSS JOIN LATERAL users_online(a.appid, now() - p.lookback, now()) AS u
GROUP BY 1, 2
ORDER BY bucket_start DESC, a.appid;
