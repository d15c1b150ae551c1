-- Analytics on sessions, logins and room lifecycles: concurrency over time, open sessions, room
-- lifecycles, per-user days, disconnect reasons per time bucket, data quality.
--
-- Views (all time; documented in the README, "Analytics"; each has a query in sql/):
--   open_sessions          logins with no logout yet, their age, a stale flag;
--   room_lifecycle         per room lifecycle (room_seq): created / closed, close reason,
--                          sessions, users, user-minutes, peak concurrency;
--   user_daily             per UTC day, app and user: sessions, time, count of each logout reason;
--   logout_reasons_hourly  logouts per UTC hour, app and reason, with the reason's share of the
--                          hour and its lift over its usual share;
--   data_quality_daily     per UTC day of receipt and app: negative and zero durations, clock
--                          skew, logouts without a login, quarantined callbacks.
-- Functions (a time window as parameters):
--   users_online(appid, from, to)                 users online per UTC minute in one app;
--   room_users_online(appid, room_id, from, to)   the same in one room;
--   room_lifecycle_between(appid, from, to)       room_lifecycle, for the lifecycles of a window;
--   user_daily_between(appid, from, to)           user_daily, for the sessions of a window;
--   logout_reasons_between(appid, from, to, bucket)  logout_reasons_hourly, any bucket width;
--   data_quality_daily_between(appid, from, to)   data_quality_daily, for a window.
--
-- Why both: a view that groups rows (per day, per hour, per lifecycle) cannot turn a filter on
-- its day or hour back into a range on logout_time, so a time filter on it reads every logout
-- of the app. The *_between functions take the window as parameters and read only its
-- partitions through the (appid, logout_time) index; the views stay for BI tools and for
-- filters on appid, room_id, room_seq or user_account, which do reach the indexes. A function
-- and its view share their columns; a test checks they agree.
--
-- Rights: the views read their tables with their owner's rights (so an analyst role needs
-- SELECT on the views only, see `zegolog grant-analyst`), hence they call no function that reads
-- a table. The functions that read tables are SECURITY DEFINER for the same reason, with a fixed
-- search_path; EXECUTE on them is revoked from PUBLIC and is granted like SELECT on a view.
--
-- Conventions (those of 0002 and 0003):
--   * Windows are half-open, [p_from, p_to). p_appid NULL means every app.
--   * Days are UTC calendar days; minutes are UTC minutes (date_trunc('minute', t, 'UTC')).
--   * Concurrency is that of 0003: a session counts as online in every UTC minute from its
--     login minute to its logout minute, both included; a session whose logout_time precedes
--     its login_time (a bad sender clock) is left out of concurrency and user-minutes, and
--     counted everywhere else. Concurrency counts sessions: a user in two rooms counts twice
--     per app. It is known when the logout arrives: sessions still open (see open_sessions) are
--     not in it yet.
--   * Logins and logouts arrive in any order and some never arrive: a logout alone is a whole
--     session (it carries its login_time); a login alone is an open session. A login is closed
--     (open_sessions) by a logout of the same appid, room_id, user_account and session_id at or
--     after it (logout_time >= login_time); a logout has its login event (data quality) when such
--     a login has a login_time within a minute of the logout's login_time.

-- ---------------------------------------------------------------------------------------------
-- Indexes the views and functions below need.
-- ---------------------------------------------------------------------------------------------

-- Room lifecycle statistics read the sessions of one room_seq.
CREATE INDEX room_logouts_room_seq_idx ON room_logouts (appid, room_id, room_seq);

-- Data quality finds the logouts whose logout_time is more than a day away from their arrival.
-- They are rare, so this partial index is small and costs the write path almost nothing.
CREATE INDEX room_logouts_clock_skew_idx ON room_logouts (received_at)
    WHERE logout_time - received_at > interval '1 day' OR received_at - logout_time > interval '1 day';

-- Room lifecycles created or closed in a time window.
CREATE INDEX room_lifecycle_events_appid_at_idx ON room_lifecycle_events (appid, at);

-- The busiest rooms of an app and day (sql/08): the top of room_concurrency_day per app-day.
CREATE INDEX room_concurrency_day_top_idx ON room_concurrency_day (appid, day, peak DESC, room_id);

-- ---------------------------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------------------------

-- Every appid with data, read from the leading column of the (appid, ...) indexes by a loose
-- index scan (one index descent per app and partition, not a scan of the rows). The functions
-- below filter on appid = ANY (this) when p_appid is NULL, so that an all-apps window still
-- goes through the (appid, logout_time) and (appid, login_time) indexes.
CREATE FUNCTION zegolog_appids() RETURNS bigint[]
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH RECURSIVE logouts(appid) AS (
        (SELECT appid FROM room_logouts ORDER BY appid LIMIT 1)
        UNION ALL
        SELECT (SELECT l.appid FROM room_logouts AS l WHERE l.appid > p.appid ORDER BY l.appid LIMIT 1)
        FROM logouts AS p WHERE p.appid IS NOT NULL
    ), logins(appid) AS (
        (SELECT appid FROM room_logins ORDER BY appid LIMIT 1)
        UNION ALL
        SELECT (SELECT l.appid FROM room_logins AS l WHERE l.appid > p.appid ORDER BY l.appid LIMIT 1)
        FROM logins AS p WHERE p.appid IS NOT NULL
    ), rooms(appid) AS (
        (SELECT appid FROM room_lifecycle_events ORDER BY appid LIMIT 1)
        UNION ALL
        SELECT (SELECT e.appid FROM room_lifecycle_events AS e WHERE e.appid > p.appid ORDER BY e.appid LIMIT 1)
        FROM rooms AS p WHERE p.appid IS NOT NULL
    )
    SELECT coalesce(array_agg(DISTINCT a.appid ORDER BY a.appid), '{}')
    FROM (SELECT appid FROM logouts UNION ALL SELECT appid FROM logins UNION ALL SELECT appid FROM rooms) AS a
    WHERE a.appid IS NOT NULL;
$$;

COMMENT ON FUNCTION zegolog_appids() IS
    'Every appid that has logouts, logins or room lifecycle events, in order (loose index scan: fast).';

CREATE FUNCTION zegolog_close_reason_name(close_reason integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE close_reason
        WHEN 0 THEN 'normal'
        WHEN 1 THEN 'last_user_heartbeat_timeout'
        WHEN 2 THEN 'last_user_offline'
        WHEN 3 THEN 'last_user_kicked_out'
        ELSE 'unknown'
    END;
$$;

COMMENT ON FUNCTION zegolog_close_reason_name(integer) IS
    'Decoded room_close close_reason: 0 normal, 1 last_user_heartbeat_timeout, 2 last_user_offline, 3 last_user_kicked_out, else unknown.';

-- ---------------------------------------------------------------------------------------------
-- Concurrency over time
-- ---------------------------------------------------------------------------------------------

-- Users online in minute m = (net of the whole days before the window's first day,
-- app_concurrency_day) + (compacted deltas from that day's start, app_concurrency_minute)
-- + (deltas not compacted yet, concurrency_pending), summed up to m. Reads at most one day of
-- minutes before the window, the window's minutes, and the pending rows (a few seconds' worth
-- while `zegolog serve` compacts). Exact up to the last commit. Infinite bounds give no rows.
CREATE FUNCTION users_online(p_appid bigint, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (minute timestamptz, users_online bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH bounds AS (
        SELECT date_trunc('minute', p_from, 'UTC') AS first_minute,
               (p_from AT TIME ZONE 'UTC')::date AS first_day,
               (p_from AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC' AS first_day_start
        WHERE isfinite(p_from) AND isfinite(p_to)
    ), deltas AS (
        SELECT m.minute, m.delta
        FROM app_concurrency_minute AS m, bounds AS b
        WHERE m.appid = p_appid AND m.minute >= b.first_day_start AND m.minute < p_to
        UNION ALL
        SELECT c.minute, c.delta
        FROM concurrency_pending AS c
        WHERE c.appid = p_appid AND c.minute < p_to
    ), base AS MATERIALIZED (
        SELECT coalesce((SELECT sum(d.net) FROM app_concurrency_day AS d
                         WHERE d.appid = p_appid AND d.day < b.first_day), 0)
             + coalesce((SELECT sum(x.delta) FROM deltas AS x WHERE x.minute <= b.first_minute), 0) AS users
        FROM bounds AS b
    ), changes AS (
        SELECT x.minute, sum(x.delta) AS delta
        FROM deltas AS x, bounds AS b
        WHERE x.minute > b.first_minute
        GROUP BY x.minute
    )
    SELECT g.minute,
           (base.users + coalesce(sum(ch.delta) OVER (ORDER BY g.minute), 0))::bigint
    FROM bounds AS b
    CROSS JOIN base
    CROSS JOIN LATERAL generate_series(b.first_minute, p_to, interval '1 minute') AS g(minute)
    LEFT JOIN changes AS ch ON ch.minute = g.minute
    WHERE g.minute < p_to
    ORDER BY g.minute;
$$;

COMMENT ON FUNCTION users_online(bigint, timestamptz, timestamptz) IS
    'Sessions online in app p_appid in every UTC minute of [p_from, p_to), from the minute holding p_from: a session counts from its login minute to its logout minute included. Compacted rollups plus pending rows: exact up to the last commit.';

CREATE FUNCTION room_users_online(p_appid bigint, p_room_id text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (minute timestamptz, users_online bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH bounds AS (
        SELECT date_trunc('minute', p_from, 'UTC') AS first_minute,
               (p_from AT TIME ZONE 'UTC')::date AS first_day,
               (p_from AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC' AS first_day_start
        WHERE isfinite(p_from) AND isfinite(p_to)
    ), deltas AS (
        SELECT m.minute, m.delta
        FROM room_concurrency_minute AS m, bounds AS b
        WHERE m.appid = p_appid AND m.room_id = p_room_id
          AND m.minute >= b.first_day_start AND m.minute < p_to
        UNION ALL
        SELECT c.minute, c.delta
        FROM concurrency_pending AS c
        WHERE c.appid = p_appid AND c.room_id = p_room_id AND c.minute < p_to
    ), base AS MATERIALIZED (
        SELECT coalesce((SELECT sum(d.net) FROM room_concurrency_day AS d
                         WHERE d.appid = p_appid AND d.room_id = p_room_id AND d.day < b.first_day), 0)
             + coalesce((SELECT sum(x.delta) FROM deltas AS x WHERE x.minute <= b.first_minute), 0) AS users
        FROM bounds AS b
    ), changes AS (
        SELECT x.minute, sum(x.delta) AS delta
        FROM deltas AS x, bounds AS b
        WHERE x.minute > b.first_minute
        GROUP BY x.minute
    )
    SELECT g.minute,
           (base.users + coalesce(sum(ch.delta) OVER (ORDER BY g.minute), 0))::bigint
    FROM bounds AS b
    CROSS JOIN base
    CROSS JOIN LATERAL generate_series(b.first_minute, p_to, interval '1 minute') AS g(minute)
    LEFT JOIN changes AS ch ON ch.minute = g.minute
    WHERE g.minute < p_to
    ORDER BY g.minute;
$$;

COMMENT ON FUNCTION room_users_online(bigint, text, timestamptz, timestamptz) IS
    'Sessions online in room p_room_id of app p_appid in every UTC minute of [p_from, p_to), as users_online.';

-- ---------------------------------------------------------------------------------------------
-- Open sessions
-- ---------------------------------------------------------------------------------------------

CREATE VIEW open_sessions AS
SELECT
    i.appid,
    i.room_id,
    i.room_name,
    i.room_seq,
    i.user_account,
    i.user_nickname,
    i.session_id,
    i.user_role,
    zegolog_role_name(i.user_role) AS role,
    i.relogin,
    i.login_time AS login_at,
    now() - i.login_time AS age,
    extract(EPOCH FROM now() - i.login_time)::double precision AS age_s,
    now() - i.login_time > interval '24 hours' AS stale,
    EXISTS (
        SELECT 1 FROM room_lifecycle_events AS e
        WHERE e.appid = i.appid AND e.room_id = i.room_id
          AND e.room_session_id = i.room_seq AND e.event = 'room_close'
    ) AS room_closed
FROM room_logins AS i
WHERE NOT EXISTS (
    SELECT 1 FROM room_logouts AS o
    WHERE o.appid = i.appid
      AND o.session_id = i.session_id
      AND o.room_id = i.room_id
      AND o.user_account = i.user_account
      AND o.logout_time >= i.login_time
);

COMMENT ON VIEW open_sessions IS
    'Logins with no logout yet (no logout of the same appid, room_id, user_account, session_id at or after the login), with their age. For who is probably online now: WHERE NOT stale AND NOT room_closed, and filter login_at >= now() - interval ''24 hours'' to use the indexes.';
COMMENT ON COLUMN open_sessions.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN open_sessions.room_id IS 'Room id, as sent.';
COMMENT ON COLUMN open_sessions.room_name IS 'Room name sent with the login; NULL when not sent.';
COMMENT ON COLUMN open_sessions.room_seq IS 'Room lifecycle id (u64); NULL when not sent.';
COMMENT ON COLUMN open_sessions.user_account IS 'User id used at login.';
COMMENT ON COLUMN open_sessions.user_nickname IS 'User name used at login; NULL when not sent.';
COMMENT ON COLUMN open_sessions.session_id IS 'User session id (u64).';
COMMENT ON COLUMN open_sessions.user_role IS 'Raw role code as sent: 1 host, 2 audience, 4 admin; NULL when not sent.';
COMMENT ON COLUMN open_sessions.role IS 'Decoded user_role: host, audience, admin or unknown.';
COMMENT ON COLUMN open_sessions.relogin IS 'Re-login flag as sent (1: the user logged in again, e.g. after a reconnect); NULL when not sent.';
COMMENT ON COLUMN open_sessions.login_at IS 'When the user logged in (login_time).';
COMMENT ON COLUMN open_sessions.age IS 'now() - login_at: how long the session has been open (negative if login_at is in the future).';
COMMENT ON COLUMN open_sessions.age_s IS 'age in seconds.';
COMMENT ON COLUMN open_sessions.stale IS 'True when the login is more than 24 hours old: its logout was most likely lost, the user is most likely gone.';
COMMENT ON COLUMN open_sessions.room_closed IS 'True when a room_close of this room lifecycle (room_seq) was received: the user is gone, the logout was lost or is late.';

-- ---------------------------------------------------------------------------------------------
-- Room lifecycle
-- ---------------------------------------------------------------------------------------------

-- The lifecycles (appid, room_id, room_seq) seen in a room_create, a room_close or a logout;
-- for each: its two lifecycle events (unique key) and its sessions (room_logouts_room_seq_idx),
-- read once; the peak is computed from the login / logout minutes gathered in arrays.
CREATE VIEW room_lifecycle AS
SELECT
    k.appid,
    k.room_id,
    k.room_seq,
    e.created_at,
    e.creator,
    e.closed_at,
    e.close_reason AS close_reason_code,
    CASE WHEN e.closed_at IS NOT NULL THEN zegolog_close_reason_name(e.close_reason) END AS close_reason,
    e.closed_at - e.created_at AS lifetime,
    s.sessions,
    s.users,
    s.user_minutes,
    coalesce((
        SELECT max(w.running)
        FROM (
            SELECT sum(sum(d.delta)) OVER (ORDER BY d.minute) AS running
            FROM (SELECT unnest(s.ins) AS minute, 1 AS delta
                  UNION ALL
                  SELECT unnest(s.outs), -1) AS d
            GROUP BY d.minute
        ) AS w
    ), 0)::bigint AS peak_users,
    s.first_login_at,
    s.last_logout_at
FROM (
    SELECT e.appid, e.room_id, e.room_session_id AS room_seq
    FROM room_lifecycle_events AS e
    UNION
    SELECT l.appid, l.room_id, l.room_seq
    FROM room_logouts AS l
    WHERE l.room_seq IS NOT NULL
) AS k
CROSS JOIN LATERAL (
    SELECT max(v.at) FILTER (WHERE v.event = 'room_create') AS created_at,
           max(v.creator) FILTER (WHERE v.event = 'room_create') AS creator,
           max(v.at) FILTER (WHERE v.event = 'room_close') AS closed_at,
           max(v.close_reason) FILTER (WHERE v.event = 'room_close') AS close_reason
    FROM room_lifecycle_events AS v
    WHERE v.appid = k.appid AND v.room_id = k.room_id AND v.room_session_id = k.room_seq
) AS e
CROSS JOIN LATERAL (
    -- Concurrency as in 0003, over this lifecycle's sessions: +1 at the login minute, -1 the
    -- minute after the logout minute; negative durations left out.
    SELECT count(*) AS sessions,
           count(DISTINCT o.user_account) AS users,
           coalesce(sum(greatest(extract(EPOCH FROM o.logout_time - o.login_time), 0)) / 60, 0)::double precision
               AS user_minutes,
           min(o.login_time) AS first_login_at,
           max(o.logout_time) AS last_logout_at,
           array_agg(date_trunc('minute', o.login_time, 'UTC'))
               FILTER (WHERE o.logout_time >= o.login_time) AS ins,
           array_agg(date_trunc('minute', o.logout_time, 'UTC') + interval '1 minute')
               FILTER (WHERE o.logout_time >= o.login_time) AS outs
    FROM room_logouts AS o
    WHERE o.appid = k.appid AND o.room_id = k.room_id AND o.room_seq = k.room_seq
) AS s;

COMMENT ON VIEW room_lifecycle IS
    'One row per room lifecycle (room_seq = room_session_id) seen in a room_create, a room_close or a logout: created / closed times, close reason, and its sessions, users, user-minutes and peak concurrency. Filter on appid, room_id or room_seq; for a time window use room_lifecycle_between(appid, from, to).';
COMMENT ON COLUMN room_lifecycle.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN room_lifecycle.room_id IS 'Room id, as sent.';
COMMENT ON COLUMN room_lifecycle.room_seq IS 'Room lifecycle id (u64): room_session_id of room_create / room_close, room_seq of the logins and logouts. Logouts without room_seq are in no lifecycle.';
COMMENT ON COLUMN room_lifecycle.created_at IS 'room_create_time; NULL when no room_create was received.';
COMMENT ON COLUMN room_lifecycle.creator IS 'User id that created the room (id_name of room_create); NULL when not sent.';
COMMENT ON COLUMN room_lifecycle.closed_at IS 'room_close_time; NULL while open or when no room_close was received.';
COMMENT ON COLUMN room_lifecycle.close_reason_code IS 'Raw close_reason of room_close: 0 normal, 1 last user''s heartbeat timed out, 2 last user went offline, 3 last user was kicked out.';
COMMENT ON COLUMN room_lifecycle.close_reason IS 'Decoded close_reason_code: normal, last_user_heartbeat_timeout, last_user_offline, last_user_kicked_out, unknown; NULL when no room_close was received.';
COMMENT ON COLUMN room_lifecycle.lifetime IS 'closed_at - created_at; NULL unless both were received.';
COMMENT ON COLUMN room_lifecycle.sessions IS 'Logouts with this room_seq (0 if none yet).';
COMMENT ON COLUMN room_lifecycle.users IS 'Distinct user_account among those logouts.';
COMMENT ON COLUMN room_lifecycle.user_minutes IS 'Sum of the session durations in minutes; negative durations (bad sender clock) count as 0.';
COMMENT ON COLUMN room_lifecycle.peak_users IS 'Most sessions online in any UTC minute, over this lifecycle''s sessions (a session counts from its login minute to its logout minute included; negative durations left out).';
COMMENT ON COLUMN room_lifecycle.first_login_at IS 'Earliest login_time among those logouts; NULL if none.';
COMMENT ON COLUMN room_lifecycle.last_logout_at IS 'Latest logout_time among those logouts; NULL if none.';

-- The same, for the lifecycles created, closed or with a logout in the window.
CREATE FUNCTION room_lifecycle_between(p_appid bigint, p_from timestamptz, p_to timestamptz)
RETURNS SETOF room_lifecycle
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT
        k.appid,
        k.room_id,
        k.room_seq,
        e.created_at,
        e.creator,
        e.closed_at,
        e.close_reason AS close_reason_code,
        CASE WHEN e.closed_at IS NOT NULL THEN zegolog_close_reason_name(e.close_reason) END AS close_reason,
        e.closed_at - e.created_at AS lifetime,
        s.sessions,
        s.users,
        s.user_minutes,
        coalesce((
            SELECT max(w.running)
            FROM (
                SELECT sum(sum(d.delta)) OVER (ORDER BY d.minute) AS running
                FROM (SELECT unnest(s.ins) AS minute, 1 AS delta
                      UNION ALL
                      SELECT unnest(s.outs), -1) AS d
                GROUP BY d.minute
            ) AS w
        ), 0)::bigint AS peak_users,
        s.first_login_at,
        s.last_logout_at
    FROM (
        SELECT e.appid, e.room_id, e.room_session_id AS room_seq
        FROM room_lifecycle_events AS e
        WHERE e.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
          AND e.at >= p_from AND e.at < p_to
        UNION
        SELECT l.appid, l.room_id, l.room_seq
        FROM room_logouts AS l
        WHERE l.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
          AND l.logout_time >= p_from AND l.logout_time < p_to
          AND l.room_seq IS NOT NULL
    ) AS k
    CROSS JOIN LATERAL (
        SELECT max(v.at) FILTER (WHERE v.event = 'room_create') AS created_at,
               max(v.creator) FILTER (WHERE v.event = 'room_create') AS creator,
               max(v.at) FILTER (WHERE v.event = 'room_close') AS closed_at,
               max(v.close_reason) FILTER (WHERE v.event = 'room_close') AS close_reason
        FROM room_lifecycle_events AS v
        WHERE v.appid = k.appid AND v.room_id = k.room_id AND v.room_session_id = k.room_seq
    ) AS e
    CROSS JOIN LATERAL (
        -- Concurrency as in 0003, over this lifecycle's sessions: +1 at the login minute, -1 the
        -- minute after the logout minute; negative durations left out.
        SELECT count(*) AS sessions,
               count(DISTINCT o.user_account) AS users,
               coalesce(sum(greatest(extract(EPOCH FROM o.logout_time - o.login_time), 0)) / 60, 0)::double precision
                   AS user_minutes,
               min(o.login_time) AS first_login_at,
               max(o.logout_time) AS last_logout_at,
               array_agg(date_trunc('minute', o.login_time, 'UTC'))
                   FILTER (WHERE o.logout_time >= o.login_time) AS ins,
               array_agg(date_trunc('minute', o.logout_time, 'UTC') + interval '1 minute')
                   FILTER (WHERE o.logout_time >= o.login_time) AS outs
        FROM room_logouts AS o
        WHERE o.appid = k.appid AND o.room_id = k.room_id AND o.room_seq = k.room_seq
    ) AS s;
END
$$;

COMMENT ON FUNCTION room_lifecycle_between(bigint, timestamptz, timestamptz) IS
    'The rows of room_lifecycle for the lifecycles created, closed or with a logout in [p_from, p_to) (p_appid NULL: every app); their statistics cover all their sessions.';

-- ---------------------------------------------------------------------------------------------
-- Per user and day
-- ---------------------------------------------------------------------------------------------

CREATE VIEW user_daily AS
SELECT
    (l.logout_time AT TIME ZONE 'UTC')::date AS day,
    l.appid,
    l.user_account,
    (array_agg(l.user_nickname ORDER BY l.logout_time DESC))[1] AS last_nickname,
    count(*) AS sessions,
    count(DISTINCT l.room_id) AS rooms,
    (sum(extract(EPOCH FROM l.logout_time - l.login_time)) / 60)::double precision AS total_minutes,
    sum(l.logout_time - l.login_time) AS total_time,
    count(*) FILTER (WHERE l.reason = 0) AS normal,
    count(*) FILTER (WHERE l.reason = 1) AS heartbeat_timeout,
    count(*) FILTER (WHERE l.reason = 2) AS connection_lost,
    count(*) FILTER (WHERE l.reason = 3) AS kicked_out,
    count(*) FILTER (WHERE l.reason = 4) AS token_expired,
    count(*) FILTER (WHERE l.reason IS NULL OR l.reason NOT IN (0, 1, 2, 3, 4)) AS unknown,
    min(l.login_time) AS first_login_at,
    max(l.logout_time) AS last_logout_at
FROM room_logouts AS l
GROUP BY (l.logout_time AT TIME ZONE 'UTC')::date, l.appid, l.user_account;

COMMENT ON VIEW user_daily IS
    'Per UTC day (of logout), app and user: sessions, rooms, total time, and how many sessions ended with each logout reason. Filter on appid and user_account; for a time window use user_daily_between(appid, from, to).';
COMMENT ON COLUMN user_daily.day IS 'UTC calendar day of the logout; a session counts on the day it ended.';
COMMENT ON COLUMN user_daily.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN user_daily.user_account IS 'User id used at login.';
COMMENT ON COLUMN user_daily.last_nickname IS 'Nickname of the user''s last session that day (it can change); NULL when not sent.';
COMMENT ON COLUMN user_daily.sessions IS 'Sessions (logouts) of this user that ended this day.';
COMMENT ON COLUMN user_daily.rooms IS 'Distinct rooms of those sessions.';
COMMENT ON COLUMN user_daily.total_minutes IS 'Sum of the session durations in minutes (negative durations counted as they are, as in session_duration_daily).';
COMMENT ON COLUMN user_daily.total_time IS 'Sum of the session durations as an interval.';
COMMENT ON COLUMN user_daily.normal IS 'Sessions that ended with reason 0 (normal logout).';
COMMENT ON COLUMN user_daily.heartbeat_timeout IS 'Sessions that ended with reason 1 (business-layer heartbeat timeout).';
COMMENT ON COLUMN user_daily.connection_lost IS 'Sessions that ended with reason 2 (access-layer connection lost or heartbeat timeout).';
COMMENT ON COLUMN user_daily.kicked_out IS 'Sessions that ended with reason 3 (kicked out by a backend call).';
COMMENT ON COLUMN user_daily.token_expired IS 'Sessions that ended with reason 4 (token expired).';
COMMENT ON COLUMN user_daily.unknown IS 'Sessions whose reason was not sent or is not a known code.';
COMMENT ON COLUMN user_daily.first_login_at IS 'Earliest login_time of those sessions.';
COMMENT ON COLUMN user_daily.last_logout_at IS 'Latest logout_time of those sessions.';

CREATE FUNCTION user_daily_between(p_appid bigint, p_from timestamptz, p_to timestamptz)
RETURNS SETOF user_daily
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT
        (l.logout_time AT TIME ZONE 'UTC')::date AS day,
        l.appid,
        l.user_account,
        (array_agg(l.user_nickname ORDER BY l.logout_time DESC))[1] AS last_nickname,
        count(*) AS sessions,
        count(DISTINCT l.room_id) AS rooms,
        (sum(extract(EPOCH FROM l.logout_time - l.login_time)) / 60)::double precision AS total_minutes,
        sum(l.logout_time - l.login_time) AS total_time,
        count(*) FILTER (WHERE l.reason = 0) AS normal,
        count(*) FILTER (WHERE l.reason = 1) AS heartbeat_timeout,
        count(*) FILTER (WHERE l.reason = 2) AS connection_lost,
        count(*) FILTER (WHERE l.reason = 3) AS kicked_out,
        count(*) FILTER (WHERE l.reason = 4) AS token_expired,
        count(*) FILTER (WHERE l.reason IS NULL OR l.reason NOT IN (0, 1, 2, 3, 4)) AS unknown,
        min(l.login_time) AS first_login_at,
        max(l.logout_time) AS last_logout_at
    FROM room_logouts AS l
    WHERE l.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
      AND l.logout_time >= p_from AND l.logout_time < p_to
    GROUP BY (l.logout_time AT TIME ZONE 'UTC')::date, l.appid, l.user_account;
END
$$;

COMMENT ON FUNCTION user_daily_between(bigint, timestamptz, timestamptz) IS
    'The rows of user_daily for the sessions that ended in [p_from, p_to) (p_appid NULL: every app); days at the edges of the window are partial.';

-- ---------------------------------------------------------------------------------------------
-- Ops: logouts per time bucket and reason
-- ---------------------------------------------------------------------------------------------

CREATE VIEW logout_reasons_hourly AS
SELECT
    c.bucket_start,
    c.bucket_start + c.width AS bucket_end,
    c.appid,
    c.reason,
    c.logouts,
    (sum(c.logouts) OVER (PARTITION BY c.appid, c.bucket_start))::bigint AS bucket_logouts,
    (c.logouts / sum(c.logouts) OVER (PARTITION BY c.appid, c.bucket_start))::double precision AS share,
    (sum(c.logouts) OVER (PARTITION BY c.appid, c.reason)
        / sum(c.logouts) OVER (PARTITION BY c.appid))::double precision AS window_share,
    ((c.logouts / sum(c.logouts) OVER (PARTITION BY c.appid, c.bucket_start))
        / (sum(c.logouts) OVER (PARTITION BY c.appid, c.reason)
           / sum(c.logouts) OVER (PARTITION BY c.appid)))::double precision AS lift
FROM (
    SELECT date_trunc('hour', l.logout_time, 'UTC') AS bucket_start,
           interval '1 hour' AS width,
           l.appid,
           zegolog_reason_name(l.reason) AS reason,
           count(*) AS logouts
    FROM room_logouts AS l
    GROUP BY 1, 2, 3, 4
) AS c;

COMMENT ON VIEW logout_reasons_hourly IS
    'Logouts per UTC hour, app and decoded reason, with share of the hour and lift over all time: an incident (a spike of connection_lost) shows as a high share and lift. Filter on appid; for a time window or a finer bucket use logout_reasons_between(appid, from, to, bucket).';
COMMENT ON COLUMN logout_reasons_hourly.bucket_start IS 'Start of the bucket (UTC hour), inclusive.';
COMMENT ON COLUMN logout_reasons_hourly.bucket_end IS 'End of the bucket, exclusive.';
COMMENT ON COLUMN logout_reasons_hourly.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN logout_reasons_hourly.reason IS 'Decoded logout reason: normal, heartbeat_timeout, connection_lost, kicked_out, token_expired, unknown.';
COMMENT ON COLUMN logout_reasons_hourly.logouts IS 'Logouts of this app with this reason in the bucket (a bucket-reason without logouts has no row).';
COMMENT ON COLUMN logout_reasons_hourly.bucket_logouts IS 'All logouts of this app in the bucket, every reason.';
COMMENT ON COLUMN logout_reasons_hourly.share IS 'logouts / bucket_logouts, between 0 and 1; the shares of one app-bucket sum to 1.';
COMMENT ON COLUMN logout_reasons_hourly.window_share IS 'This reason''s share of the app''s logouts over the whole window (all time for the view): the baseline.';
COMMENT ON COLUMN logout_reasons_hourly.lift IS 'share / window_share: 1 is usual, 3 means this reason is three times as frequent as usual in this bucket.';

CREATE FUNCTION logout_reasons_between(p_appid bigint, p_from timestamptz, p_to timestamptz,
                                       p_bucket interval DEFAULT interval '1 hour')
RETURNS SETOF logout_reasons_hourly
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT
        c.bucket_start,
        c.bucket_start + c.width AS bucket_end,
        c.appid,
        c.reason,
        c.logouts,
        (sum(c.logouts) OVER (PARTITION BY c.appid, c.bucket_start))::bigint AS bucket_logouts,
        (c.logouts / sum(c.logouts) OVER (PARTITION BY c.appid, c.bucket_start))::double precision AS share,
        (sum(c.logouts) OVER (PARTITION BY c.appid, c.reason)
            / sum(c.logouts) OVER (PARTITION BY c.appid))::double precision AS window_share,
        ((c.logouts / sum(c.logouts) OVER (PARTITION BY c.appid, c.bucket_start))
            / (sum(c.logouts) OVER (PARTITION BY c.appid, c.reason)
               / sum(c.logouts) OVER (PARTITION BY c.appid)))::double precision AS lift
    FROM (
        SELECT date_bin(p_bucket, l.logout_time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket_start,
               p_bucket AS width,
               l.appid,
               zegolog_reason_name(l.reason) AS reason,
               count(*) AS logouts
        FROM room_logouts AS l
        WHERE l.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
          AND l.logout_time >= p_from AND l.logout_time < p_to
        GROUP BY 1, 2, 3, 4
    ) AS c;
END
$$;

COMMENT ON FUNCTION logout_reasons_between(bigint, timestamptz, timestamptz, interval) IS
    'The rows of logout_reasons_hourly for the logouts in [p_from, p_to) (p_appid NULL: every app), in buckets of p_bucket (default 1 hour; e.g. 1 minute, 5 minutes, 1 day; aligned on UTC midnight); window_share and lift are over this window.';

-- ---------------------------------------------------------------------------------------------
-- Data quality
-- ---------------------------------------------------------------------------------------------

-- Rows are per UTC day of *receipt* (received_at), not of logout: a logout stamped a year
-- ahead shows on the day it arrived.
CREATE VIEW data_quality_daily AS
SELECT
    f.day,
    f.appid,
    sum(f.logout)::bigint AS logouts,
    sum(f.negative)::bigint AS negative_durations,
    sum(f.zero)::bigint AS zero_durations,
    sum(f.future)::bigint AS logout_far_future,
    sum(f.past)::bigint AS logout_far_past,
    sum(f.without_login)::bigint AS without_login,
    sum(f.quarantined)::bigint AS quarantined
FROM (
    SELECT (l.received_at AT TIME ZONE 'UTC')::date AS day,
           l.appid,
           1 AS logout,
           (l.logout_time < l.login_time)::int AS negative,
           (l.logout_time = l.login_time)::int AS zero,
           (l.logout_time - l.received_at > interval '1 day')::int AS future,
           (l.received_at - l.logout_time > interval '1 day')::int AS past,
           (NOT EXISTS (
               SELECT 1 FROM room_logins AS i
               WHERE i.appid = l.appid AND i.room_id = l.room_id
                 AND i.user_account = l.user_account AND i.session_id = l.session_id
                 AND i.login_time >= l.login_time - interval '1 minute'
                 AND i.login_time <= l.login_time + interval '1 minute'
           ))::int AS without_login,
           0 AS quarantined
    FROM room_logouts AS l
    UNION ALL
    SELECT (e.received_at AT TIME ZONE 'UTC')::date, e.appid, 0, 0, 0, 0, 0, 0, 1
    FROM callback_events AS e
    WHERE e.refused_reason IS NOT NULL
) AS f
GROUP BY f.day, f.appid;

COMMENT ON VIEW data_quality_daily IS
    'Per UTC day of receipt (received_at) and app: logouts received, and how many had a negative or zero duration, a logout_time more than a day ahead of or behind their arrival, no login event, plus the quarantined callbacks (any event). Filter on appid; for a time window use data_quality_daily_between(appid, from, to).';
COMMENT ON COLUMN data_quality_daily.day IS 'UTC calendar day the rows were received (received_at), not the day of logout.';
COMMENT ON COLUMN data_quality_daily.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN data_quality_daily.logouts IS 'Logouts received that day.';
COMMENT ON COLUMN data_quality_daily.negative_durations IS 'Of those, logout_time before login_time (the sender''s clock went backwards).';
COMMENT ON COLUMN data_quality_daily.zero_durations IS 'Of those, logout_time equal to login_time.';
COMMENT ON COLUMN data_quality_daily.logout_far_future IS 'Of those, logout_time more than 1 day after received_at.';
COMMENT ON COLUMN data_quality_daily.logout_far_past IS 'Of those, logout_time more than 1 day before received_at (a late delivery, or a long spool replay).';
COMMENT ON COLUMN data_quality_daily.without_login IS 'Of those, logouts with no room_login of the same appid, room_id, user_account and session_id whose login_time is within a minute of the logout''s login_time (the login was lost, or room_login is not enabled in the console).';
COMMENT ON COLUMN data_quality_daily.quarantined IS 'Authentic callbacks of any event received that day that could not be normalised (callback_events.refused_reason set).';

-- The logouts received in the window are those with a logout_time within a day of the window
-- (through the (appid, logout_time) index) plus the clock-skewed ones (through
-- room_logouts_clock_skew_idx). The logins are read once, for the range of login times of those
-- logouts: one hash anti-join rather than one index probe per logout.
CREATE FUNCTION data_quality_daily_between(p_appid bigint, p_from timestamptz, p_to timestamptz)
RETURNS SETOF data_quality_daily
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RETURN QUERY
    WITH received AS MATERIALIZED (
        SELECT r.appid, r.room_id, r.user_account, r.session_id, r.login_time, r.logout_time, r.received_at
        FROM room_logouts AS r
        WHERE r.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
          AND r.logout_time >= p_from - interval '1 day' AND r.logout_time < p_to + interval '1 day'
          AND r.received_at >= p_from AND r.received_at < p_to
          AND NOT (r.logout_time - r.received_at > interval '1 day' OR r.received_at - r.logout_time > interval '1 day')
        UNION ALL
        SELECT r.appid, r.room_id, r.user_account, r.session_id, r.login_time, r.logout_time, r.received_at
        FROM room_logouts AS r
        WHERE (r.logout_time - r.received_at > interval '1 day' OR r.received_at - r.logout_time > interval '1 day')
          AND r.received_at >= p_from AND r.received_at < p_to
          AND (p_appid IS NULL OR r.appid = p_appid)
    ), logins AS (
        SELECT i.appid, i.room_id, i.user_account, i.session_id, i.login_time
        FROM room_logins AS i
        WHERE i.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
          AND i.login_time >= (SELECT min(login_time) - interval '1 minute' FROM received)
          AND i.login_time <= (SELECT max(login_time) + interval '1 minute' FROM received)
    ), unmatched AS (
        SELECT (l.received_at AT TIME ZONE 'UTC')::date AS day, l.appid, count(*) AS n
        FROM received AS l
        WHERE NOT EXISTS (
            SELECT 1 FROM logins AS i
            WHERE i.appid = l.appid AND i.room_id = l.room_id
              AND i.user_account = l.user_account AND i.session_id = l.session_id
              AND i.login_time >= l.login_time - interval '1 minute'
              AND i.login_time <= l.login_time + interval '1 minute'
        )
        GROUP BY 1, 2
    ), counts AS (
        SELECT (l.received_at AT TIME ZONE 'UTC')::date AS day, l.appid,
               count(*) AS logouts,
               count(*) FILTER (WHERE l.logout_time < l.login_time) AS negative_durations,
               count(*) FILTER (WHERE l.logout_time = l.login_time) AS zero_durations,
               count(*) FILTER (WHERE l.logout_time - l.received_at > interval '1 day') AS logout_far_future,
               count(*) FILTER (WHERE l.received_at - l.logout_time > interval '1 day') AS logout_far_past
        FROM received AS l
        GROUP BY 1, 2
    ), quarantine AS (
        SELECT (e.received_at AT TIME ZONE 'UTC')::date AS day, e.appid, count(*) AS n
        FROM callback_events AS e
        WHERE e.refused_reason IS NOT NULL
          AND e.received_at >= p_from AND e.received_at < p_to
          AND (p_appid IS NULL OR e.appid = p_appid)
        GROUP BY 1, 2
    )
    SELECT coalesce(c.day, q.day), coalesce(c.appid, q.appid),
           coalesce(c.logouts, 0), coalesce(c.negative_durations, 0), coalesce(c.zero_durations, 0),
           coalesce(c.logout_far_future, 0), coalesce(c.logout_far_past, 0), coalesce(u.n, 0),
           coalesce(q.n, 0)
    FROM counts AS c
    LEFT JOIN unmatched AS u ON u.day = c.day AND u.appid = c.appid
    FULL JOIN quarantine AS q ON q.day = c.day AND q.appid = c.appid;
END
$$;

COMMENT ON FUNCTION data_quality_daily_between(bigint, timestamptz, timestamptz) IS
    'The rows of data_quality_daily for what was received in [p_from, p_to) (p_appid NULL: every app).';

-- ---------------------------------------------------------------------------------------------
-- Rights: the functions that read tables run as their owner (SECURITY DEFINER), so nobody gets
-- them by default; `zegolog grant-analyst` grants EXECUTE on them with SELECT on the views.
-- ---------------------------------------------------------------------------------------------

REVOKE EXECUTE ON FUNCTION
    zegolog_appids(),
    users_online(bigint, timestamptz, timestamptz),
    room_users_online(bigint, text, timestamptz, timestamptz),
    room_lifecycle_between(bigint, timestamptz, timestamptz),
    user_daily_between(bigint, timestamptz, timestamptz),
    logout_reasons_between(bigint, timestamptz, timestamptz, interval),
    data_quality_daily_between(bigint, timestamptz, timestamptz)
FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Fix of zegolog_compact_rollups() (0003), found by the peak-concurrency tests of this issue:
--  1. Per app, the days recomputed were the union of the days each room's new sessions touch.
--     A day between two rooms' ranges was skipped, so the base (users online at the start) of
--     the days after it left out that day's net: a session from an earlier compaction spanning
--     the gap was lost from the later day's peak. Now every day from the first to the last is
--     recomputed (days with nobody online still get no row).
--  2. The base before the first recomputed day was a correlated min() over the unindexed
--     temporary table, per room-day: quadratic in the room-days of one compaction (minutes for
--     a bulk load of 200k sessions). It is computed once per app / room now.
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION zegolog_compact_rollups() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_compact_rollups'));

    WITH moved AS (DELETE FROM logout_rollup_pending RETURNING *)
    INSERT INTO logout_rollup AS r (day, appid, reason, bucket, sessions, total_ms, max_ms)
    SELECT day, appid, reason, bucket, sum(sessions), sum(total_ms), max(max_ms)
    FROM moved
    GROUP BY day, appid, reason, bucket
    ORDER BY appid, day, reason, bucket
    ON CONFLICT (appid, day, reason, bucket) DO UPDATE
    SET sessions = r.sessions + excluded.sessions,
        total_ms = r.total_ms + excluded.total_ms,
        max_ms = greatest(r.max_ms, excluded.max_ms);

    CREATE TEMP TABLE zegolog_moved ON COMMIT DROP AS
        SELECT appid, room_id, minute, delta FROM concurrency_pending WHERE false;
    WITH moved AS (DELETE FROM concurrency_pending RETURNING *)
    INSERT INTO zegolog_moved
    SELECT appid, room_id, minute, sum(delta) FROM moved GROUP BY 1, 2, 3;

    INSERT INTO room_concurrency_minute AS r (appid, room_id, minute, delta)
    SELECT appid, room_id, minute, delta FROM zegolog_moved ORDER BY 1, 2, 3
    ON CONFLICT (appid, room_id, minute) DO UPDATE SET delta = r.delta + excluded.delta;
    INSERT INTO app_concurrency_minute AS r (appid, minute, delta)
    SELECT appid, minute, sum(delta) FROM zegolog_moved GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (appid, minute) DO UPDATE SET delta = r.delta + excluded.delta;

    -- The days to recompute: for each app (and room), from the first to the last day a moved
    -- delta falls on. A session's deltas sum to zero, so the days after keep their figures.
    CREATE TEMP TABLE zegolog_days ON COMMIT DROP AS
    SELECT r.appid, r.room_id, d::date AS day
    FROM (
        SELECT appid, room_id, min((minute AT TIME ZONE 'UTC')::date) AS first_day,
               max((minute AT TIME ZONE 'UTC')::date) AS last_day
        FROM zegolog_moved GROUP BY appid, room_id
    ) AS r,
    generate_series(r.first_day, r.last_day, interval '1 day') AS d;

    -- Per app: every day from the first to the last day any of its rooms touched (a day between
    -- two rooms' ranges can carry users online from an earlier compaction).
    WITH days AS (
        SELECT r.appid, d::date AS day
        FROM (SELECT appid, min(day) AS first_day, max(day) AS last_day
              FROM zegolog_days GROUP BY appid) AS r,
        generate_series(r.first_day, r.last_day, interval '1 day') AS d
    ), nets AS (
        SELECT d.appid, d.day, coalesce(sum(m.delta), 0) AS net
        FROM days AS d
        LEFT JOIN app_concurrency_minute AS m
          ON m.appid = d.appid
         AND m.minute >= d.day::timestamp AT TIME ZONE 'UTC'
         AND m.minute < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
        GROUP BY d.appid, d.day
    ), starts AS (
        SELECT f.appid,
               coalesce((SELECT sum(p.net) FROM app_concurrency_day AS p
                         WHERE p.appid = f.appid AND p.day < f.first_day), 0) AS before
        FROM (SELECT appid, min(day) AS first_day FROM days GROUP BY appid) AS f
    ), bases AS (
        SELECT n.*,
               s.before
               + coalesce(sum(n.net) OVER (PARTITION BY n.appid ORDER BY n.day
                                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS base
        FROM nets AS n
        JOIN starts AS s ON s.appid = n.appid
    )
    INSERT INTO app_concurrency_day AS r (appid, day, net, peak)
    SELECT b.appid, b.day, b.net, greatest(b.base, coalesce(max(b.base + w.running), b.base))
    FROM bases AS b
    LEFT JOIN LATERAL (
        SELECT sum(m.delta) OVER (ORDER BY m.minute) AS running
        FROM app_concurrency_minute AS m
        WHERE m.appid = b.appid
          AND m.minute >= b.day::timestamp AT TIME ZONE 'UTC'
          AND m.minute < (b.day + 1)::timestamp AT TIME ZONE 'UTC'
    ) AS w ON true
    GROUP BY b.appid, b.day, b.net, b.base
    -- A day between two rooms' ranges with nobody online gets no row, as before.
    HAVING b.net <> 0 OR greatest(b.base, coalesce(max(b.base + w.running), b.base)) <> 0
    ORDER BY 1, 2
    ON CONFLICT (appid, day) DO UPDATE SET net = excluded.net, peak = excluded.peak;

    -- Per room: the same, keyed on (appid, room_id).
    WITH nets AS (
        SELECT d.appid, d.room_id, d.day, coalesce(sum(m.delta), 0) AS net
        FROM zegolog_days AS d
        LEFT JOIN room_concurrency_minute AS m
          ON m.appid = d.appid AND m.room_id = d.room_id
         AND m.minute >= d.day::timestamp AT TIME ZONE 'UTC'
         AND m.minute < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
        GROUP BY d.appid, d.room_id, d.day
    ), starts AS (
        -- Once per room (a correlated min() per room-day over the unindexed temporary table was
        -- quadratic in the number of room-days of one compaction).
        SELECT f.appid, f.room_id,
               coalesce((SELECT sum(p.net) FROM room_concurrency_day AS p
                         WHERE p.appid = f.appid AND p.room_id = f.room_id AND p.day < f.first_day), 0) AS before
        FROM (SELECT appid, room_id, min(day) AS first_day FROM zegolog_days GROUP BY appid, room_id) AS f
    ), bases AS (
        SELECT n.*,
               s.before
               + coalesce(sum(n.net) OVER (PARTITION BY n.appid, n.room_id ORDER BY n.day
                                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS base
        FROM nets AS n
        JOIN starts AS s ON s.appid = n.appid AND s.room_id = n.room_id
    )
    INSERT INTO room_concurrency_day AS r (appid, room_id, day, net, peak)
    SELECT b.appid, b.room_id, b.day, b.net, greatest(b.base, coalesce(max(b.base + w.running), b.base))
    FROM bases AS b
    LEFT JOIN LATERAL (
        SELECT sum(m.delta) OVER (ORDER BY m.minute) AS running
        FROM room_concurrency_minute AS m
        WHERE m.appid = b.appid AND m.room_id = b.room_id
          AND m.minute >= b.day::timestamp AT TIME ZONE 'UTC'
          AND m.minute < (b.day + 1)::timestamp AT TIME ZONE 'UTC'
    ) AS w ON true
    GROUP BY b.appid, b.room_id, b.day, b.net, b.base
    ORDER BY 1, 2, 3
    ON CONFLICT (appid, room_id, day) DO UPDATE SET net = excluded.net, peak = excluded.peak;

    DROP TABLE zegolog_moved;
    DROP TABLE zegolog_days;
END
$$;
