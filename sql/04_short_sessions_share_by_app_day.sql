-- 04_short_sessions_share_by_app_day.sql
--
-- Who runs it: product / quality, to watch for users who join and leave almost at once (failed
--   joins, crashes, bad first experience).
-- What it answers: per day (in the reporting time zone, zegolog_time_zone()) and app: number of sessions, how many lasted less than 10 seconds,
--   and their share, for the last 30 days (today so far included).
-- Source: view session_durations.
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   lookback   interval '30 days'    how many days (of the reporting time zone) before today to cover; e.g. interval '7 days'.
--   threshold  interval '10 seconds' a session shorter than this is "short"; e.g. interval '3 seconds'.
--   app        NULL                  NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--   as_of      now()                 the window ends at this moment, its last day is this moment's day; e.g.
--                                    timestamptz '2026-03-09 12:00 America/New_York' for the window as it was then.
--
-- Notes: day is the day of the logout in the reporting time zone (as in the daily views). A negative duration (sender
--   clock skew) counts as short. Days without any session are absent. The window starts at midnight of its first
--   day in the reporting time zone, also across a DST change (23- and 25-hour days are one day each), and ends
--   at as_of (a logout dated later, from a sender's clock ahead, is not in it).
--   Run with: psql -f sql/04_short_sessions_share_by_app_day.sql
WITH params AS (
    SELECT
        interval '30 days' AS lookback,       -- PARAMETER: days before today to cover
        interval '10 seconds' AS threshold,   -- PARAMETER: sessions shorter than this are short
        NULL::bigint AS app,                  -- PARAMETER: NULL = all apps, or an appid
        now() AS as_of                        -- PARAMETER: end of the window (now: today so far)
)
SELECT
    zegolog_local_day(s.logout_at) AS day,
    s.appid,
    count(*) AS sessions,
    count(*) FILTER (WHERE s.duration < p.threshold) AS short_sessions,
    round(
        count(*) FILTER (WHERE s.duration < p.threshold)::numeric / count(*),
        4
    )::double precision AS short_share
FROM session_durations AS s
CROSS JOIN params AS p
-- The window starts at midnight of its first day in the reporting time zone: a local date first,
-- then its start there (never day arithmetic on a timestamptz, which follows the session's TimeZone).
WHERE s.logout_at >= ((zegolog_local_day(p.as_of) - p.lookback)::date)::timestamp AT TIME ZONE zegolog_time_zone()
    AND s.logout_at < p.as_of + interval '1 second'
    AND (p.app IS NULL OR s.appid = p.app)
GROUP BY zegolog_local_day(s.logout_at), s.appid, p.threshold
ORDER BY day DESC, s.appid;
