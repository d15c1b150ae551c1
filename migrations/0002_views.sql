-- Reporting views over room_logouts: one row per session, then daily aggregates.
--
-- Views (names and columns are a contract for the example queries in sql/ and for dashboards;
-- later migrations may replace them with rollup-backed versions with the same names and
-- columns, so build on these views rather than on room_logouts directly):
--   session_durations       one row per room_logouts row, with decoded role and reason and the
--                           exact session duration;
--   logout_reasons_daily    per UTC day, appid and logout reason: count, share, median duration;
--   session_duration_daily  per UTC day and appid: session count, total time, duration percentiles.
--
-- Conventions:
--   * Days are UTC calendar days of the logout time: (logout_at AT TIME ZONE 'UTC')::date. The
--     result does not depend on the session's TimeZone setting. A session that spans midnight
--     counts on the day it ended.
--   * duration_ms is exact: timestamptz is microsecond-precise, the callback gives milliseconds,
--     and extract(epoch ...) returns numeric since PostgreSQL 14, so no float is involved.
--   * Fractional results (share, seconds, minutes) are double precision: they are statistics, and
--     double precision decodes as a plain f64 in clients (sqlx without its decimal features).
--   * Nothing is filtered out. A row whose logout_time precedes its login_time (bad sender clock)
--     shows a negative duration and is counted as it is.
--   * Unknown codes (a reason or role the vendor adds later, or NULL) decode to 'unknown'; the raw
--     integer stays available in session_durations (reason_code, user_role).

CREATE VIEW session_durations AS
SELECT
    l.appid,
    l.room_id,
    l.room_seq,
    l.user_account,
    l.user_nickname,
    l.session_id,
    l.user_role,
    CASE l.user_role
        WHEN 1 THEN 'host'
        WHEN 2 THEN 'audience'
        WHEN 4 THEN 'admin'
        ELSE 'unknown'
    END::text AS role,
    l.login_time AS login_at,
    l.logout_time AS logout_at,
    (extract(EPOCH FROM l.logout_time - l.login_time) * 1000)::bigint AS duration_ms,
    l.logout_time - l.login_time AS duration,
    l.reason AS reason_code,
    CASE l.reason
        WHEN 0 THEN 'normal'
        WHEN 1 THEN 'heartbeat_timeout'
        WHEN 2 THEN 'connection_lost'
        WHEN 3 THEN 'kicked_out'
        WHEN 4 THEN 'token_expired'
        ELSE 'unknown'
    END::text AS reason
FROM room_logouts AS l;

COMMENT ON VIEW session_durations IS
    'One row per room_logouts row (one user session in one room): decoded role and logout reason, exact duration.';
COMMENT ON COLUMN session_durations.appid IS
    'ZEGOCLOUD application id.';
COMMENT ON COLUMN session_durations.room_id IS
    'Room id, as sent.';
COMMENT ON COLUMN session_durations.room_seq IS
    'Room lifecycle id (u64; equals room_session_id of room_create/room_close); NULL when not sent.';
COMMENT ON COLUMN session_durations.user_account IS
    'User id used at login.';
COMMENT ON COLUMN session_durations.user_nickname IS
    'User name used at login (free text); NULL when not sent.';
COMMENT ON COLUMN session_durations.session_id IS
    'User session id (u64; vendor samples send 0, so it is not unique on its own).';
COMMENT ON COLUMN session_durations.user_role IS
    'Raw role code as sent: 1 host, 2 audience, 4 admin; NULL when not sent.';
COMMENT ON COLUMN session_durations.role IS
    'Decoded user_role: host (1), audience (2), admin (4), unknown (any other value or NULL).';
COMMENT ON COLUMN session_durations.login_at IS
    'When the user logged in (login_time, millisecond precision).';
COMMENT ON COLUMN session_durations.logout_at IS
    'When the user logged out (logout_time, millisecond precision).';
COMMENT ON COLUMN session_durations.duration_ms IS
    'Session length in milliseconds, exact (logout_at - login_at); negative if the sender''s clock went backwards.';
COMMENT ON COLUMN session_durations.duration IS
    'Session length as an interval (logout_at - login_at).';
COMMENT ON COLUMN session_durations.reason_code IS
    'Raw logout reason code as sent: 0 normal, 1 heartbeat timeout, 2 connection lost, 3 kicked out, 4 token expired; NULL when not sent.';
COMMENT ON COLUMN session_durations.reason IS
    'Decoded reason_code: normal, heartbeat_timeout, connection_lost, kicked_out, token_expired, unknown (any other value or NULL).';


CREATE VIEW logout_reasons_daily AS
SELECT
    (s.logout_at AT TIME ZONE 'UTC')::date AS day,
    s.appid,
    s.reason,
    count(*) AS logouts,
    count(*)::double precision
        / sum(count(*)) OVER (PARTITION BY (s.logout_at AT TIME ZONE 'UTC')::date, s.appid)::double precision
        AS share,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY s.duration_ms::double precision / 1000) AS median_duration_s
FROM session_durations AS s
GROUP BY (s.logout_at AT TIME ZONE 'UTC')::date, s.appid, s.reason;

COMMENT ON VIEW logout_reasons_daily IS
    'Logouts per UTC day (of logout_at), appid and decoded reason, with the reason''s share of that app''s logouts that day.';
COMMENT ON COLUMN logout_reasons_daily.day IS
    'UTC calendar day of the logout: (logout_at AT TIME ZONE ''UTC'')::date.';
COMMENT ON COLUMN logout_reasons_daily.appid IS
    'ZEGOCLOUD application id.';
COMMENT ON COLUMN logout_reasons_daily.reason IS
    'Decoded logout reason (see session_durations.reason); unknown covers NULL and unlisted codes.';
COMMENT ON COLUMN logout_reasons_daily.logouts IS
    'Number of logouts with this reason for this app on this day.';
COMMENT ON COLUMN logout_reasons_daily.share IS
    'logouts / all logouts of this app on this day, between 0 and 1; the shares of one app-day sum to 1 (up to float rounding).';
COMMENT ON COLUMN logout_reasons_daily.median_duration_s IS
    'Median session duration in seconds of these logouts (percentile_cont(0.5), interpolated).';


CREATE VIEW session_duration_daily AS
SELECT
    (s.logout_at AT TIME ZONE 'UTC')::date AS day,
    s.appid,
    count(*) AS sessions,
    sum(s.duration_ms)::double precision / 60000 AS total_minutes,
    avg(s.duration_ms)::double precision / 1000 AS avg_s,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY s.duration_ms::double precision / 1000) AS p50_s,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY s.duration_ms::double precision / 1000) AS p90_s,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY s.duration_ms::double precision / 1000) AS p99_s,
    max(s.duration_ms)::double precision / 1000 AS max_s
FROM session_durations AS s
GROUP BY (s.logout_at AT TIME ZONE 'UTC')::date, s.appid;

COMMENT ON VIEW session_duration_daily IS
    'Session counts and durations per UTC day (of logout_at) and appid; a session counts on the day it ended.';
COMMENT ON COLUMN session_duration_daily.day IS
    'UTC calendar day of the logout: (logout_at AT TIME ZONE ''UTC'')::date.';
COMMENT ON COLUMN session_duration_daily.appid IS
    'ZEGOCLOUD application id.';
COMMENT ON COLUMN session_duration_daily.sessions IS
    'Number of sessions (logouts) of this app that ended on this day.';
COMMENT ON COLUMN session_duration_daily.total_minutes IS
    'Sum of the session durations, in minutes.';
COMMENT ON COLUMN session_duration_daily.avg_s IS
    'Mean session duration in seconds.';
COMMENT ON COLUMN session_duration_daily.p50_s IS
    'Median session duration in seconds (percentile_cont(0.5), interpolated).';
COMMENT ON COLUMN session_duration_daily.p90_s IS
    '90th percentile of session duration in seconds (percentile_cont(0.9), interpolated).';
COMMENT ON COLUMN session_duration_daily.p99_s IS
    '99th percentile of session duration in seconds (percentile_cont(0.99), interpolated).';
COMMENT ON COLUMN session_duration_daily.max_s IS
    'Longest session duration in seconds.';
