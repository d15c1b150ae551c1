-- 03_repeated_heartbeat_timeouts_last_24_hours.sql
--
-- Who runs it: support, when users complain about being dropped; client teams looking for bad
--   devices or networks.
-- What it answers: which users (per app) were disconnected by a heartbeat timeout or a lost
--   connection at least 3 times in the last 24 hours, with how many of each, in how many rooms,
--   out of how many sessions, and when the first and last such disconnects happened.
-- Source: view session_durations.
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   lookback      interval '24 hours'  time window, ending now; e.g. interval '7 days'.
--   min_timeouts  3                    report users with at least this many such disconnects.
--   reasons       heartbeat_timeout, connection_lost
--                                      the decoded reasons that count; add e.g. 'kicked_out'.
--   app           NULL                 NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--
-- Notes: nickname is the one from the user's latest session in the window (it can change).
--   Run with: psql -f sql/03_repeated_heartbeat_timeouts_last_24_hours.sql
WITH params AS (
    SELECT
        interval '24 hours' AS lookback,                            -- PARAMETER: time window, ending now
        3 AS min_timeouts,                                          -- PARAMETER: threshold
        ARRAY['heartbeat_timeout', 'connection_lost'] AS reasons,   -- PARAMETER: reasons that count
        NULL::bigint AS app                                         -- PARAMETER: NULL = all apps, or an appid
)
SELECT
    s.appid,
    s.user_account,
    (array_agg(s.user_nickname ORDER BY s.logout_at DESC))[1] AS last_nickname,
    count(*) FILTER (WHERE s.reason = ANY (p.reasons)) AS timeouts,
    count(*) FILTER (WHERE s.reason = 'heartbeat_timeout') AS heartbeat_timeouts,
    count(*) FILTER (WHERE s.reason = 'connection_lost') AS connection_losts,
    count(*) AS sessions,
    count(DISTINCT s.room_id) FILTER (WHERE s.reason = ANY (p.reasons)) AS rooms,
    min(s.logout_at) FILTER (WHERE s.reason = ANY (p.reasons)) AS first_timeout_at,
    max(s.logout_at) FILTER (WHERE s.reason = ANY (p.reasons)) AS last_timeout_at
FROM session_durations AS s
CROSS JOIN params AS p
WHERE s.logout_at >= now() - p.lookback
    AND (p.app IS NULL OR s.appid = p.app)
GROUP BY s.appid, s.user_account, p.reasons, p.min_timeouts
HAVING count(*) FILTER (WHERE s.reason = ANY (p.reasons)) >= p.min_timeouts
ORDER BY timeouts DESC, last_timeout_at DESC, s.appid, s.user_account;
