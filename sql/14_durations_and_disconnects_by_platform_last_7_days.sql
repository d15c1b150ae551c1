-- 14_durations_and_disconnects_by_platform_last_7_days.sql
--
-- Who runs it: product / quality, to see whether one platform (say the mini program, or the
--   web) has shorter sessions or more abnormal disconnects than the others.
-- What it answers: per day (in the reporting time zone, zegolog_time_zone()), app and platform of the session's login (room_login
--   term_type, decoded by zegolog_platform_name): sessions, how many have a known duration,
--   median and 90th percentile duration in seconds (nearest rank, zegolog_nearest_rank: p50_s and p90_s
--   at the 1% bucket resolution of the daily views, p50_exact_s and p90_exact_s exact), and the count and share of
--   abnormal disconnects (heartbeat_timeout, connection_lost), for the last 7 days.
-- Source: view session_durations (platform, duration_ms, reason); the same figures for all
--   time are in view platform_daily.
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   lookback   interval '7 days'   how many days (of the reporting time zone) before today to cover; e.g. interval '30 days'.
--   app        NULL                NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--   as_of      now()               the window ends at this moment, its last day is this moment's day; e.g.
--                                  timestamptz '2026-03-09 12:00 America/New_York' for the window as it was then.
--
-- Notes: platform is 'unknown' for logins before 2026 (no term_type), for term_type 32
--   (TT_UNKNOWN), and for a session whose login zegolog never received. A logout of the
--   2022-2023 docs (no login_time) has no duration until its room_login arrives: it counts in
--   sessions and disconnects, not in the percentiles. The time filter is on logout_at, so it
--   uses the (appid, logout_time) index. Days without sessions are absent. The window starts at midnight of its
--   first day in the reporting time zone, also across a DST change (a 23- or 25-hour day is one day), and ends at
--   as_of (a logout dated later, from a sender's clock ahead, is not in it).
--   Run with: psql -f sql/14_durations_and_disconnects_by_platform_last_7_days.sql
WITH params AS (
    SELECT
        interval '7 days' AS lookback,   -- PARAMETER: days before today to cover
        NULL::bigint AS app,             -- PARAMETER: NULL = all apps, or an appid
        now() AS as_of                   -- PARAMETER: end of the window (now: today so far)
)
SELECT
    zegolog_local_day(s.logout_at) AS day,
    s.appid,
    s.platform,
    count(*) AS sessions,
    count(s.duration_ms) AS sessions_with_duration,
    zegolog_bucket_ms(zegolog_duration_bucket(zegolog_nearest_rank(0.5, array_agg(s.duration_ms)))) / 1000 AS p50_s,
    zegolog_bucket_ms(zegolog_duration_bucket(zegolog_nearest_rank(0.9, array_agg(s.duration_ms)))) / 1000 AS p90_s,
    count(*) FILTER (WHERE s.reason IN ('heartbeat_timeout', 'connection_lost')) AS abnormal,
    round(
        count(*) FILTER (WHERE s.reason IN ('heartbeat_timeout', 'connection_lost'))::numeric / count(*),
        4
    )::double precision AS abnormal_share,
    zegolog_nearest_rank(0.5, array_agg(s.duration_ms))::double precision / 1000 AS p50_exact_s,
    zegolog_nearest_rank(0.9, array_agg(s.duration_ms))::double precision / 1000 AS p90_exact_s
FROM session_durations AS s
CROSS JOIN params AS p
-- The window starts at midnight of its first day in the reporting time zone: a local date first,
-- then its start there (never day arithmetic on a timestamptz, which follows the session's TimeZone).
WHERE s.logout_at >= ((zegolog_local_day(p.as_of) - p.lookback)::date)::timestamp AT TIME ZONE zegolog_time_zone()
    AND s.logout_at < p.as_of + interval '1 second'
    AND (p.app IS NULL OR s.appid = p.app)
GROUP BY 1, 2, 3
ORDER BY day DESC, s.appid, s.platform;
