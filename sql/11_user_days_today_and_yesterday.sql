-- 11_user_days_today_and_yesterday.sql
--
-- Who runs it: support ("this user keeps getting dropped") or product (heaviest users).
-- What it answers: per day (in the reporting time zone, zegolog_time_zone()), app and user, today and yesterday: sessions, rooms, total time,
--   and how many sessions ended normally, by a heartbeat timeout, a lost connection, a kick, an
--   expired token or an unknown reason. Most time first.
-- Source: function user_daily_between(appid, from, to) (the view user_daily over a window).
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   lookback  interval '1 day'  how many days (of the reporting time zone) before today to cover (today so far included);
--                               e.g. interval '7 days' (reads every session of the window).
--   app       NULL              NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--   as_of     now()             the window ends at this moment, its last day is this moment's day; e.g.
--                               timestamptz '2026-03-09 12:00 America/New_York' for the two days as they were then.
--   LIMIT     200               at most this many user-days (last line).
--
-- Notes: a session counts on the day it ended (in the reporting time zone). total_hours includes negative durations as they
--   are (bad sender clocks), as the daily views do. The window starts at midnight of its first day in the reporting
--   time zone, also across a DST change (a 23- or 25-hour day is one day), and ends at as_of. One user's whole history is quicker from the
--   view, which uses the (appid, user_account) index:
--     SELECT * FROM user_daily WHERE appid = 1 AND user_account = '888120154' ORDER BY day DESC;
--   Run with: psql -f sql/11_user_days_today_and_yesterday.sql
WITH params AS (
    SELECT
        interval '1 day' AS lookback,  -- PARAMETER: days before today to cover
        NULL::bigint AS app,           -- PARAMETER: NULL = all apps, or an appid
        now() AS as_of                 -- PARAMETER: end of the window (now: today so far)
)
SELECT
    u.day,
    u.appid,
    u.user_account,
    u.last_nickname,
    u.sessions,
    u.rooms,
    round((u.total_minutes / 60)::numeric, 2)::double precision AS total_hours,
    u.normal,
    u.heartbeat_timeout,
    u.connection_lost,
    u.kicked_out,
    u.token_expired,
    u.unknown
-- The window starts at midnight of its first day in the reporting time zone: a local date first,
-- then its start there (never day arithmetic on a timestamptz, which follows the session's TimeZone).
FROM params AS p
CROSS JOIN LATERAL user_daily_between(
    p.app, ((zegolog_local_day(p.as_of) - p.lookback)::date)::timestamp AT TIME ZONE zegolog_time_zone(), p.as_of + interval '1 second'
) AS u
ORDER BY u.total_minutes DESC, u.day DESC, u.appid, u.user_account
-- PARAMETER: maximum number of user-days listed
LIMIT 200;
