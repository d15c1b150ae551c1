-- 10_room_lifecycles_last_24_hours.sql
--
-- Who runs it: product / support, for "how did each room session go?" (a class, a live show, a call).
-- What it answers: the room lifecycles (room_seq) created, closed or with a logout in the last
--   24 hours: when the room was created and closed and why, how long it lived, how many sessions and
--   distinct users it had, the total user-minutes and the most users online at once. Biggest
--   (most user-minutes) first.
-- Source: function room_lifecycle_between(appid, from, to) (the view room_lifecycle over a window).
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   lookback  interval '24 hours'  time window, ending now; e.g. interval '7 days' (slower: every
--                                  lifecycle of the window is computed before sorting).
--   app       NULL                 NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--   LIMIT     200                  at most this many lifecycles (last line).
--
-- Notes: the statistics cover all sessions of a lifecycle, also those outside the window. created_at,
--   closed_at and close_reason are NULL when the room_create / room_close callback was not received
--   (or not configured). Logouts without room_seq are in no lifecycle. room_seq is shown as text (u64).
--   Run with: psql -f sql/10_room_lifecycles_last_24_hours.sql
WITH params AS (
    SELECT
        interval '24 hours' AS lookback,  -- PARAMETER: time window, ending now
        NULL::bigint AS app               -- PARAMETER: NULL = all apps, or an appid
)
SELECT
    r.appid,
    r.room_id,
    r.room_seq::text AS room_seq,
    r.created_at,
    r.closed_at,
    r.close_reason,
    date_trunc('second', r.lifetime) AS lifetime,
    r.sessions,
    r.users,
    round(r.user_minutes::numeric, 1)::double precision AS user_minutes,
    r.peak_users,
    r.first_login_at,
    r.last_logout_at
FROM params AS p
CROSS JOIN LATERAL room_lifecycle_between(p.app, now() - p.lookback, now()) AS r
ORDER BY r.user_minutes DESC, r.sessions DESC, r.appid, r.room_id, r.room_seq
-- PARAMETER: maximum number of lifecycles listed
LIMIT 200;
