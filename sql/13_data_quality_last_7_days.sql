-- 13_data_quality_last_7_days.sql
--
-- Who runs it: the zegolog maintainer / data engineers, before trusting the numbers, or when a
--   dashboard looks wrong.
-- What it answers: per day of receipt (in the reporting time zone) and app over the last 7 days: logouts received, and how
--   many had a negative or zero duration, a logout_time more than a day ahead of or behind their
--   arrival, no login event, plus the callbacks quarantined (authentic but unusable), with the
--   share of logouts without a login, and how many of the quarantined were signature reuses (a
--   body on a (timestamp, nonce, signature) that came first with another body). Newest day first.
-- Source: function data_quality_daily_between(appid, from, to) (the view data_quality_daily over a window).
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   lookback  interval '7 days'   how many days (of the reporting time zone) before today to cover (today so far included);
--                                 e.g. interval '30 days' (reads every logout of the window).
--   app       NULL                NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--   as_of     now()               the window ends at this moment, its last day is this moment's day; e.g.
--                                 timestamptz '2026-03-09 12:00 America/New_York' for the window as it was then.
--
-- Notes: days are days of arrival (received_at), not of logout. The window starts at midnight of its first day in
--   the reporting time zone, also across a DST change (a 23- or 25-hour day is one day), and ends at as_of. without_login is high when the
--   room_login callback is not enabled in the console, or logins are lost; quarantined bodies are
--   listed by 05_quarantined_callbacks.sql (and `zegolog quarantine list`). Run with: psql -f sql/13_data_quality_last_7_days.sql
WITH params AS (
    SELECT
        interval '7 days' AS lookback,   -- PARAMETER: days before today to cover
        NULL::bigint AS app,             -- PARAMETER: NULL = all apps, or an appid
        now() AS as_of                   -- PARAMETER: end of the window (now: today so far)
)
SELECT
    q.day,
    q.appid,
    q.logouts,
    q.negative_durations,
    q.zero_durations,
    q.logout_far_future,
    q.logout_far_past,
    q.without_login,
    round(q.without_login::numeric / nullif(q.logouts, 0), 4)::double precision AS without_login_share,
    q.quarantined,
    q.signature_reuses
-- The window starts at midnight of its first day in the reporting time zone: a local date first,
-- then its start there (never day arithmetic on a timestamptz, which follows the session's TimeZone).
FROM params AS p
CROSS JOIN LATERAL data_quality_daily_between(
    p.app, ((zegolog_local_day(p.as_of) - p.lookback)::date)::timestamp AT TIME ZONE zegolog_time_zone(), p.as_of + interval '1 second'
) AS q
ORDER BY q.day DESC, q.appid;
