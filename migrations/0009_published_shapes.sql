-- Every published shape (issue 9): logouts without login_time paired with their login, the
-- terminal type of a login, and the views and rollups that follow.
--
-- 1. room_logouts.login_time becomes nullable: the room_logout of the 2022-2023 docs has none.
--    Its login comes from room_logins (same appid, room_id, user_account, session_id; the
--    latest login_time at or before the logout), whichever arrives first, and is kept in
--    room_logouts.paired_login_time: the row itself says whether, and with which login, the
--    logout was paired, so that its rollup contribution is made once. login_time stays what
--    the sender sent (NULL), paired_login_time is what zegolog resolved.
-- 2. room_logins.term_type (the user's terminal type, since 2026) and callback_data.
-- 3. The rollup contribution of one logout is written once, in zegolog_logout_rollup() and
--    zegolog_logout_concurrency(); the write statement, the pairing and bulk loads all use
--    them. A logout whose login is not known yet counts in logout_rollup under the bucket
--    zegolog_no_duration_bucket(): its reason at once, no duration, no concurrency. When its
--    login becomes known, the pairing appends the difference between its new and its old
--    contribution (-1 in the no-duration bucket, +1 in its duration bucket, its concurrency
--    deltas), so the reason count does not move and nothing is counted twice.
-- 4. The daily views and their summary tables leave the no-duration bucket out of every
--    duration statistic, and count it in sessions / logouts.
-- 5. session_durations: login_at from the pairing, login_source, platform; platform_daily;
--    data_quality_daily counts the logouts without login_time and those still unpaired.

-- ---------------------------------------------------------------------------------------------
-- 1, 2. Columns
-- ---------------------------------------------------------------------------------------------

-- The natural key (appid, session_id, logout_time, room_id, user_account) does not hold
-- login_time: a logout without one is stored once as any other.
ALTER TABLE room_logouts ALTER COLUMN login_time DROP NOT NULL;
ALTER TABLE room_logouts ADD COLUMN paired_login_time timestamptz;

COMMENT ON COLUMN room_logouts.login_time IS 'login_time as sent; NULL when the callback had none (room_logout of the 2022-2023 docs).';
COMMENT ON COLUMN room_logouts.paired_login_time IS 'For a logout without login_time: login_time of its room_login (same appid, room_id, user_account, session_id; the latest at or before logout_time); NULL while none is known. Always NULL when login_time was sent.';

-- The pairing of a new login finds the logouts without login_time of its key; the sweep of
-- zegolog_pair_recent_logouts() those received lately. Both small: only logouts without
-- login_time are in them.
CREATE INDEX room_logouts_without_login_idx ON room_logouts (appid, room_id, user_account, session_id, logout_time)
    WHERE login_time IS NULL;
CREATE INDEX room_logouts_without_login_received_idx ON room_logouts (received_at)
    WHERE login_time IS NULL;

ALTER TABLE room_logins ADD COLUMN term_type integer;
ALTER TABLE room_logins ADD COLUMN callback_data text;

COMMENT ON COLUMN room_logins.term_type IS 'The user''s terminal type as sent (since 2026): see zegolog_platform_name(); NULL when not sent.';
COMMENT ON COLUMN room_logins.callback_data IS 'callback_data as sent (free text the client passed at login); NULL when not sent.';

-- ---------------------------------------------------------------------------------------------
-- Decoders
-- ---------------------------------------------------------------------------------------------

-- ZEGOCLOUD's terminal types (room_login term_type): 0 TT_NONE ... 7 TT_MINI_PROGRAM, 32
-- TT_UNKNOWN. NULL (not sent, logins before 2026) and unlisted codes decode to 'unknown'.
CREATE FUNCTION zegolog_platform_name(term_type integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE term_type
        WHEN 0 THEN 'none'
        WHEN 1 THEN 'windows'
        WHEN 2 THEN 'ios'
        WHEN 3 THEN 'android'
        WHEN 4 THEN 'macos'
        WHEN 5 THEN 'linux'
        WHEN 6 THEN 'web'
        WHEN 7 THEN 'mini_program'
        WHEN 32 THEN 'unknown'
        ELSE 'unknown'
    END;
$$;

COMMENT ON FUNCTION zegolog_platform_name(integer) IS
    'Decoded room_login term_type: 0 none (TT_NONE), 1 windows, 2 ios, 3 android, 4 macos, 5 linux, 6 web, 7 mini_program (TT_MINI_PROGRAM), 32 unknown (TT_UNKNOWN); NULL and other codes unknown.';

-- ---------------------------------------------------------------------------------------------
-- 3. The rollup contribution of one logout: the one place that says what a logout adds.
-- ---------------------------------------------------------------------------------------------

-- The bucket of a logout whose duration is not known (no login yet): outside every duration
-- bucket (those are within +-3000 for any bigint of milliseconds).
CREATE FUNCTION zegolog_no_duration_bucket() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT -2147483648 $$;

-- What one logout adds to logout_rollup: its day, app and reason, and its duration bucket, or
-- zegolog_no_duration_bucket() while p_login_at is NULL. max_ms of the latter is the least
-- bigint, which no max() keeps.
CREATE FUNCTION zegolog_logout_rollup(p_appid bigint, p_reason integer, p_login_at timestamptz, p_logout_at timestamptz)
RETURNS TABLE (day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (p_logout_at AT TIME ZONE 'UTC')::date, p_appid, zegolog_reason_name(p_reason),
           CASE WHEN d.ms IS NULL THEN zegolog_no_duration_bucket() ELSE zegolog_duration_bucket(d.ms) END,
           1::bigint, coalesce(d.ms, 0)::numeric, coalesce(d.ms, -9223372036854775808)
    FROM (SELECT (extract(EPOCH FROM p_logout_at - p_login_at) * 1000)::bigint AS ms) AS d;
$$;

-- What one logout adds to concurrency_pending: +1 at its login minute, -1 the minute after
-- its logout minute; nothing while its login is unknown or when it ends before it starts.
CREATE FUNCTION zegolog_logout_concurrency(p_appid bigint, p_room_id text, p_login_at timestamptz, p_logout_at timestamptz)
RETURNS TABLE (appid bigint, room_id text, minute timestamptz, delta bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT p_appid, p_room_id, date_trunc('minute', p_login_at, 'UTC'), 1::bigint
    WHERE p_logout_at >= p_login_at
    UNION ALL
    SELECT p_appid, p_room_id, date_trunc('minute', p_logout_at, 'UTC') + interval '1 minute', -1::bigint
    WHERE p_logout_at >= p_login_at;
$$;

COMMENT ON FUNCTION zegolog_logout_rollup(bigint, integer, timestamptz, timestamptz) IS
    'The logout_rollup row one logout contributes (its duration bucket, or zegolog_no_duration_bucket() while its login is unknown).';
COMMENT ON FUNCTION zegolog_logout_concurrency(bigint, text, timestamptz, timestamptz) IS
    'The concurrency deltas one logout contributes (none while its login is unknown).';

-- Bulk loads (`zegolog seed`): the same contributions, for a range of ids.
CREATE OR REPLACE FUNCTION zegolog_add_to_rollups(from_id bigint, to_id bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO logout_rollup_pending (day, appid, reason, bucket, sessions, total_ms, max_ms)
    SELECT r.day, r.appid, r.reason, r.bucket, sum(r.sessions), sum(r.total_ms), max(r.max_ms)
    FROM room_logouts AS l,
         zegolog_logout_rollup(l.appid, l.reason, coalesce(l.login_time, l.paired_login_time), l.logout_time) AS r
    WHERE l.id BETWEEN from_id AND to_id
    GROUP BY 1, 2, 3, 4;
    INSERT INTO concurrency_pending (appid, room_id, minute, delta)
    SELECT c.appid, c.room_id, c.minute, sum(c.delta)
    FROM room_logouts AS l,
         zegolog_logout_concurrency(l.appid, l.room_id, coalesce(l.login_time, l.paired_login_time), l.logout_time) AS c
    WHERE l.id BETWEEN from_id AND to_id
    GROUP BY 1, 2, 3;
$$;

-- The write statement pairs a new logout with the logins it can see, and a new login with the
-- logouts it can see. A logout and its login written at the same moment by two transactions
-- see neither the other: this sweep (run with every rollup compaction by `zegolog serve`)
-- pairs the logouts without login_time received in the last p_since with the latest login at
-- or before them, when it is later than the one they have, and appends the difference of
-- their contributions, as the write statement does. Rows are locked in room_logouts key order.
CREATE FUNCTION zegolog_pair_recent_logouts(p_since interval DEFAULT interval '10 minutes') RETURNS bigint
LANGUAGE sql AS $$
    WITH candidates AS (
        SELECT o.appid, o.session_id, o.logout_time, o.room_id, o.user_account,
               o.paired_login_time AS old_login, x.login_time AS new_login
        FROM room_logouts AS o
        CROSS JOIN LATERAL (
            SELECT max(i.login_time) AS login_time
            FROM room_logins AS i
            WHERE i.appid = o.appid AND i.room_id = o.room_id AND i.user_account = o.user_account
              AND i.session_id = o.session_id AND i.login_time <= o.logout_time
        ) AS x
        WHERE o.login_time IS NULL AND o.received_at >= now() - p_since
          AND x.login_time IS NOT NULL
          AND (o.paired_login_time IS NULL OR x.login_time > o.paired_login_time)
    ), locked AS (
        SELECT o.appid, o.session_id, o.logout_time, o.room_id, o.user_account, o.reason,
               o.paired_login_time AS old_login, c.new_login
        FROM room_logouts AS o
        JOIN candidates AS c USING (appid, session_id, logout_time, room_id, user_account)
        WHERE o.login_time IS NULL
          AND (o.paired_login_time IS NULL OR c.new_login > o.paired_login_time)
        ORDER BY o.appid, o.session_id, o.logout_time, o.room_id, o.user_account
        FOR UPDATE OF o
    ), paired AS (
        UPDATE room_logouts AS o SET paired_login_time = k.new_login
        FROM locked AS k
        WHERE o.appid = k.appid AND o.session_id = k.session_id AND o.logout_time = k.logout_time
          AND o.room_id = k.room_id AND o.user_account = k.user_account
        RETURNING o.appid, o.room_id, o.reason, o.logout_time, k.old_login, k.new_login
    ), changes AS (
        SELECT appid, room_id, reason, logout_time, new_login AS login_at, 1 AS sign FROM paired
        UNION ALL
        SELECT appid, room_id, reason, logout_time, old_login, -1 FROM paired
    ), durations AS (
        INSERT INTO logout_rollup_pending (day, appid, reason, bucket, sessions, total_ms, max_ms)
        SELECT r.day, r.appid, r.reason, r.bucket, sum(c.sign * r.sessions), sum(c.sign * r.total_ms),
               coalesce(max(r.max_ms) FILTER (WHERE c.sign > 0), -9223372036854775808)
        FROM changes AS c, zegolog_logout_rollup(c.appid, c.reason, c.login_at, c.logout_time) AS r
        GROUP BY 1, 2, 3, 4
    ), concurrency AS (
        INSERT INTO concurrency_pending (appid, room_id, minute, delta)
        SELECT d.appid, d.room_id, d.minute, sum(c.sign * d.delta)
        FROM changes AS c, zegolog_logout_concurrency(c.appid, c.room_id, c.login_at, c.logout_time) AS d
        GROUP BY 1, 2, 3
    )
    SELECT count(*) FROM paired;
$$;

COMMENT ON FUNCTION zegolog_pair_recent_logouts(interval) IS
    'Pairs the logouts without login_time received in the last p_since with their login (a login and its logout written concurrently see neither the other); returns how many it paired.';

-- ---------------------------------------------------------------------------------------------
-- 4. Summary tables and daily views without the no-duration bucket in their statistics
-- ---------------------------------------------------------------------------------------------

ALTER TABLE logout_reason_day ALTER COLUMN median_bucket DROP NOT NULL;
ALTER TABLE logout_duration_day ALTER COLUMN total_ms DROP NOT NULL;
ALTER TABLE logout_duration_day ALTER COLUMN max_ms DROP NOT NULL;
ALTER TABLE logout_duration_day ALTER COLUMN p50_bucket DROP NOT NULL;
ALTER TABLE logout_duration_day ALTER COLUMN p90_bucket DROP NOT NULL;
ALTER TABLE logout_duration_day ALTER COLUMN p99_bucket DROP NOT NULL;
ALTER TABLE logout_duration_day ADD COLUMN timed_sessions bigint NOT NULL DEFAULT 0;
UPDATE logout_duration_day SET timed_sessions = sessions;

COMMENT ON COLUMN logout_duration_day.sessions IS 'Logouts of the day, with and without a known duration.';
COMMENT ON COLUMN logout_duration_day.timed_sessions IS 'Of those, the ones whose duration is known (the rest wait for their login).';

-- logouts: every logout; median: over the buckets with a duration and a count.
CREATE OR REPLACE FUNCTION zegolog_refresh_reason_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM logout_reason_day AS s
    USING (SELECT DISTINCT day, appid, reason FROM changed) AS g
    WHERE s.appid = g.appid AND s.day = g.day AND s.reason = g.reason;

    INSERT INTO logout_reason_day (day, appid, reason, logouts, median_bucket)
    SELECT day, appid, reason, sum(sessions),
           min(bucket) FILTER (WHERE timed AND sessions > 0 AND cum >= 0.5 * n)
    FROM (
        SELECT r.day, r.appid, r.reason, r.bucket, r.sessions,
               r.bucket <> zegolog_no_duration_bucket() AS timed,
               sum(r.sessions) FILTER (WHERE r.bucket <> zegolog_no_duration_bucket())
                   OVER (PARTITION BY r.day, r.appid, r.reason ORDER BY r.bucket) AS cum,
               sum(r.sessions) FILTER (WHERE r.bucket <> zegolog_no_duration_bucket())
                   OVER (PARTITION BY r.day, r.appid, r.reason) AS n
        FROM logout_rollup AS r
        JOIN (SELECT DISTINCT day, appid, reason FROM changed) AS g
          ON r.appid = g.appid AND r.day = g.day AND r.reason = g.reason
    ) AS x
    GROUP BY day, appid, reason;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION zegolog_refresh_duration_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM logout_duration_day AS s
    USING (SELECT DISTINCT day, appid FROM changed) AS g
    WHERE s.appid = g.appid AND s.day = g.day;

    INSERT INTO logout_duration_day (day, appid, sessions, timed_sessions, total_ms, max_ms,
                                     p50_bucket, p90_bucket, p99_bucket)
    SELECT day, appid, sum(sessions), coalesce(sum(sessions) FILTER (WHERE timed), 0),
           sum(total_ms) FILTER (WHERE timed),
           max(max_ms) FILTER (WHERE timed AND sessions > 0),
           min(bucket) FILTER (WHERE timed AND sessions > 0 AND cum >= 0.5 * n),
           min(bucket) FILTER (WHERE timed AND sessions > 0 AND cum >= 0.9 * n),
           min(bucket) FILTER (WHERE timed AND sessions > 0 AND cum >= 0.99 * n)
    FROM (
        SELECT b.*,
               sum(sessions) FILTER (WHERE timed) OVER (PARTITION BY day, appid ORDER BY bucket) AS cum,
               sum(sessions) FILTER (WHERE timed) OVER (PARTITION BY day, appid) AS n
        FROM (
            SELECT r.day, r.appid, r.bucket, r.bucket <> zegolog_no_duration_bucket() AS timed,
                   sum(r.sessions) AS sessions, sum(r.total_ms) AS total_ms, max(r.max_ms) AS max_ms
            FROM logout_rollup AS r
            JOIN (SELECT DISTINCT day, appid FROM changed) AS g
              ON r.appid = g.appid AND r.day = g.day
            GROUP BY r.day, r.appid, r.bucket
        ) AS b
    ) AS c
    GROUP BY day, appid;
    RETURN NULL;
END
$$;

CREATE OR REPLACE VIEW logout_reasons_daily AS
WITH dirty AS (
    SELECT DISTINCT day, appid, reason FROM logout_rollup_pending
), settled AS (
    SELECT s.day, s.appid, s.reason, s.logouts,
           zegolog_bucket_ms(s.median_bucket) / 1000 AS median_duration_s
    FROM logout_reason_day AS s
    WHERE NOT EXISTS (SELECT 1 FROM dirty AS d
                      WHERE d.appid = s.appid AND d.day = s.day AND d.reason = s.reason)
), fresh AS (
    SELECT day, appid, reason, sum(sessions)::bigint AS logouts,
           zegolog_bucket_ms(min(bucket) FILTER (WHERE timed AND sessions > 0 AND cum >= 0.5 * n)) / 1000
               AS median_duration_s
    FROM (
        SELECT b.*,
               sum(sessions) FILTER (WHERE timed) OVER (PARTITION BY day, appid, reason ORDER BY bucket) AS cum,
               sum(sessions) FILTER (WHERE timed) OVER (PARTITION BY day, appid, reason) AS n
        FROM (
            SELECT a.day, a.appid, a.reason, a.bucket, a.bucket <> zegolog_no_duration_bucket() AS timed,
                   sum(a.sessions) AS sessions
            FROM logout_rollup_all AS a
            JOIN dirty AS d ON d.appid = a.appid AND d.day = a.day AND d.reason = a.reason
            GROUP BY a.day, a.appid, a.reason, a.bucket
        ) AS b
    ) AS c
    GROUP BY day, appid, reason
), groups AS (
    SELECT * FROM settled
    UNION ALL
    SELECT * FROM fresh
)
SELECT
    day,
    appid,
    reason,
    logouts,
    (logouts::numeric / sum(logouts) OVER (PARTITION BY day, appid))::double precision AS share,
    median_duration_s
FROM groups;

COMMENT ON VIEW logout_reasons_daily IS
    'Per UTC day, app and logout reason: logouts (with or without a known login), their share of the app''s logouts that day, and the median session duration of those whose login is known (nearest rank, within 1%). Backed by the rollups.';

CREATE OR REPLACE VIEW session_duration_daily AS
WITH dirty AS (
    SELECT DISTINCT day, appid FROM logout_rollup_pending
), settled AS (
    SELECT s.day, s.appid, s.sessions, s.timed_sessions, s.total_ms, s.max_ms,
           s.p50_bucket, s.p90_bucket, s.p99_bucket
    FROM logout_duration_day AS s
    WHERE NOT EXISTS (SELECT 1 FROM dirty AS d WHERE d.appid = s.appid AND d.day = s.day)
), fresh AS (
    SELECT day, appid, sum(sessions)::bigint AS sessions,
           coalesce(sum(sessions) FILTER (WHERE timed), 0)::bigint AS timed_sessions,
           sum(total_ms) FILTER (WHERE timed) AS total_ms,
           max(max_ms) FILTER (WHERE timed AND sessions > 0) AS max_ms,
           min(bucket) FILTER (WHERE timed AND sessions > 0 AND cum >= 0.5 * n) AS p50_bucket,
           min(bucket) FILTER (WHERE timed AND sessions > 0 AND cum >= 0.9 * n) AS p90_bucket,
           min(bucket) FILTER (WHERE timed AND sessions > 0 AND cum >= 0.99 * n) AS p99_bucket
    FROM (
        SELECT b.*,
               sum(sessions) FILTER (WHERE timed) OVER (PARTITION BY day, appid ORDER BY bucket) AS cum,
               sum(sessions) FILTER (WHERE timed) OVER (PARTITION BY day, appid) AS n
        FROM (
            SELECT a.day, a.appid, a.bucket, a.bucket <> zegolog_no_duration_bucket() AS timed,
                   sum(a.sessions) AS sessions, sum(a.total_ms) AS total_ms, max(a.max_ms) AS max_ms
            FROM logout_rollup_all AS a
            JOIN dirty AS d ON d.appid = a.appid AND d.day = a.day
            GROUP BY a.day, a.appid, a.bucket
        ) AS b
    ) AS c
    GROUP BY day, appid
), days AS (
    SELECT * FROM settled
    UNION ALL
    SELECT * FROM fresh
)
SELECT
    day,
    appid,
    sessions,
    (total_ms / 60000)::double precision AS total_minutes,
    (total_ms / nullif(timed_sessions, 0) / 1000)::double precision AS avg_s,
    zegolog_bucket_ms(p50_bucket) / 1000 AS p50_s,
    zegolog_bucket_ms(p90_bucket) / 1000 AS p90_s,
    zegolog_bucket_ms(p99_bucket) / 1000 AS p99_s,
    max_ms::double precision / 1000 AS max_s,
    timed_sessions AS sessions_with_duration
FROM days;

COMMENT ON VIEW session_duration_daily IS
    'Per UTC day and app: sessions (logouts, with or without a known login), and over those whose login is known (sessions_with_duration): total minutes, average, percentiles (nearest rank, within 1%) and maximum of durations. Backed by the rollups.';
COMMENT ON COLUMN session_duration_daily.sessions_with_duration IS
    'Of sessions, those whose duration is known: every logout that carried login_time, and the logouts without one once their room_login is known.';

-- ---------------------------------------------------------------------------------------------
-- 5. session_durations, platform_daily, data quality
-- ---------------------------------------------------------------------------------------------

-- Same columns as before (CREATE OR REPLACE keeps the analyst grants), new ones appended.
-- platform_code / platform come from the session's login: the room_login of the same key at
-- login_at, else the latest at or before the logout. Scalar subqueries, so that a query that
-- does not select them does not pay for them.
CREATE OR REPLACE VIEW session_durations AS
SELECT
    l.appid,
    l.room_id,
    l.room_seq,
    l.user_account,
    l.user_nickname,
    l.session_id,
    l.user_role,
    zegolog_role_name(l.user_role) AS role,
    coalesce(l.login_time, l.paired_login_time) AS login_at,
    l.logout_time AS logout_at,
    (extract(EPOCH FROM l.logout_time - coalesce(l.login_time, l.paired_login_time)) * 1000)::bigint AS duration_ms,
    l.logout_time - coalesce(l.login_time, l.paired_login_time) AS duration,
    l.reason AS reason_code,
    zegolog_reason_name(l.reason) AS reason,
    CASE WHEN l.login_time IS NOT NULL THEN 'logout'
         WHEN l.paired_login_time IS NOT NULL THEN 'login' END AS login_source,
    (SELECT i.term_type FROM room_logins AS i
     WHERE i.appid = l.appid AND i.room_id = l.room_id AND i.user_account = l.user_account
       AND i.session_id = l.session_id AND i.login_time <= l.logout_time
     ORDER BY (i.login_time = coalesce(l.login_time, l.paired_login_time)) IS TRUE DESC, i.login_time DESC
     LIMIT 1) AS platform_code,
    zegolog_platform_name(
        (SELECT i.term_type FROM room_logins AS i
         WHERE i.appid = l.appid AND i.room_id = l.room_id AND i.user_account = l.user_account
           AND i.session_id = l.session_id AND i.login_time <= l.logout_time
         ORDER BY (i.login_time = coalesce(l.login_time, l.paired_login_time)) IS TRUE DESC, i.login_time DESC
         LIMIT 1)) AS platform
FROM room_logouts AS l;

COMMENT ON VIEW session_durations IS
    'One row per logout (one user session in one room): decoded role and reason, exact duration (NULL while the login of a logout without login_time is unknown), the platform of its login.';
COMMENT ON COLUMN session_durations.login_at IS
    'When the user logged in: login_time of the logout, or else of its paired room_login; NULL while none is known.';
COMMENT ON COLUMN session_durations.duration_ms IS
    'Session length in milliseconds, exact (logout_at - login_at); NULL while login_at is unknown; negative if the sender''s clock went backwards.';
COMMENT ON COLUMN session_durations.login_source IS
    'Where login_at comes from: logout (login_time of the logout callback), login (its paired room_login), NULL (unknown yet).';
COMMENT ON COLUMN session_durations.platform_code IS
    'term_type of the session''s room_login (the one at login_at, else the latest at or before the logout); NULL when not sent or no login is known.';
COMMENT ON COLUMN session_durations.platform IS
    'Decoded platform_code (zegolog_platform_name): none, windows, ios, android, macos, linux, web, mini_program, unknown.';

CREATE VIEW platform_daily AS
SELECT
    (s.logout_at AT TIME ZONE 'UTC')::date AS day,
    s.appid,
    s.platform,
    count(*) AS sessions,
    count(s.duration_ms) AS sessions_with_duration,
    (avg(s.duration_ms) / 1000)::double precision AS avg_s,
    (percentile_disc(0.5) WITHIN GROUP (ORDER BY s.duration_ms))::double precision / 1000 AS p50_s,
    (percentile_disc(0.9) WITHIN GROUP (ORDER BY s.duration_ms))::double precision / 1000 AS p90_s,
    (percentile_disc(0.99) WITHIN GROUP (ORDER BY s.duration_ms))::double precision / 1000 AS p99_s,
    count(*) FILTER (WHERE s.reason = 'normal') AS normal,
    count(*) FILTER (WHERE s.reason = 'heartbeat_timeout') AS heartbeat_timeout,
    count(*) FILTER (WHERE s.reason = 'connection_lost') AS connection_lost,
    count(*) FILTER (WHERE s.reason = 'kicked_out') AS kicked_out,
    count(*) FILTER (WHERE s.reason = 'token_expired') AS token_expired,
    count(*) FILTER (WHERE s.reason = 'unknown') AS unknown
FROM session_durations AS s
GROUP BY 1, 2, 3;

COMMENT ON VIEW platform_daily IS
    'Per UTC day (of logout), app and platform of the session''s login: sessions, exact duration percentiles (percentile_disc, of those with a known duration) and the count of each logout reason. Reads the raw rows: filter on appid, or query session_durations for a window (sql/14).';
COMMENT ON COLUMN platform_daily.platform IS 'Decoded term_type of the session''s room_login; unknown when not sent (before 2026) or when no login is known.';
COMMENT ON COLUMN platform_daily.sessions IS 'Logouts of this app and platform that day.';
COMMENT ON COLUMN platform_daily.sessions_with_duration IS 'Of those, the ones whose duration is known.';

CREATE OR REPLACE VIEW data_quality_daily AS
SELECT
    f.day,
    f.appid,
    sum(f.logout)::bigint AS logouts,
    sum(f.negative)::bigint AS negative_durations,
    sum(f.zero)::bigint AS zero_durations,
    sum(f.future)::bigint AS logout_far_future,
    sum(f.past)::bigint AS logout_far_past,
    sum(f.without_login)::bigint AS without_login,
    sum(f.quarantined)::bigint AS quarantined,
    sum(f.signature_reuse)::bigint AS signature_reuses,
    sum(f.no_login_time)::bigint AS without_login_time,
    sum(f.unpaired)::bigint AS unpaired
FROM (
    SELECT (l.received_at AT TIME ZONE 'UTC')::date AS day,
           l.appid,
           1 AS logout,
           (l.logout_time < coalesce(l.login_time, l.paired_login_time) IS TRUE)::int AS negative,
           (l.logout_time = coalesce(l.login_time, l.paired_login_time) IS TRUE)::int AS zero,
           (l.logout_time - l.received_at > interval '1 day')::int AS future,
           (l.received_at - l.logout_time > interval '1 day')::int AS past,
           (NOT EXISTS (
               SELECT 1 FROM room_logins AS i
               WHERE i.appid = l.appid AND i.room_id = l.room_id
                 AND i.user_account = l.user_account AND i.session_id = l.session_id
                 AND i.login_time >= coalesce(l.login_time, l.paired_login_time) - interval '1 minute'
                 AND i.login_time <= coalesce(l.login_time, l.paired_login_time) + interval '1 minute'
           ))::int AS without_login,
           0 AS quarantined,
           0 AS signature_reuse,
           (l.login_time IS NULL)::int AS no_login_time,
           (l.login_time IS NULL AND l.paired_login_time IS NULL)::int AS unpaired
    FROM room_logouts AS l
    UNION ALL
    SELECT (e.received_at AT TIME ZONE 'UTC')::date, e.appid, 0, 0, 0, 0, 0, 0, 1,
           (e.refused_reason LIKE 'signature reuse:%')::int, 0, 0
    FROM callback_events AS e
    WHERE e.refused_reason IS NOT NULL
) AS f
GROUP BY f.day, f.appid;

COMMENT ON COLUMN data_quality_daily.without_login_time IS 'Of the logouts, those that came without login_time (room_logout of the 2022-2023 docs); their login comes from room_login.';
COMMENT ON COLUMN data_quality_daily.unpaired IS 'Of those, the ones whose room_login is still unknown: in reason counts, in no duration statistic yet.';

CREATE OR REPLACE FUNCTION data_quality_daily_between(p_appid bigint, p_from timestamptz, p_to timestamptz)
RETURNS SETOF data_quality_daily
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RETURN QUERY
    WITH received AS MATERIALIZED (
        SELECT r.appid, r.room_id, r.user_account, r.session_id, r.login_time,
               coalesce(r.login_time, r.paired_login_time) AS login_at, r.logout_time, r.received_at
        FROM room_logouts AS r
        WHERE r.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
          AND r.logout_time >= p_from - interval '1 day' AND r.logout_time < p_to + interval '1 day'
          AND r.received_at >= p_from AND r.received_at < p_to
          AND NOT (r.logout_time - r.received_at > interval '1 day' OR r.received_at - r.logout_time > interval '1 day')
        UNION ALL
        SELECT r.appid, r.room_id, r.user_account, r.session_id, r.login_time,
               coalesce(r.login_time, r.paired_login_time), r.logout_time, r.received_at
        FROM room_logouts AS r
        WHERE (r.logout_time - r.received_at > interval '1 day' OR r.received_at - r.logout_time > interval '1 day')
          AND r.received_at >= p_from AND r.received_at < p_to
          AND (p_appid IS NULL OR r.appid = p_appid)
    ), logins AS (
        SELECT i.appid, i.room_id, i.user_account, i.session_id, i.login_time
        FROM room_logins AS i
        WHERE i.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
          AND i.login_time >= (SELECT min(login_at) - interval '1 minute' FROM received)
          AND i.login_time <= (SELECT max(login_at) + interval '1 minute' FROM received)
    ), unmatched AS (
        SELECT (l.received_at AT TIME ZONE 'UTC')::date AS day, l.appid, count(*) AS n
        FROM received AS l
        WHERE NOT EXISTS (
            SELECT 1 FROM logins AS i
            WHERE i.appid = l.appid AND i.room_id = l.room_id
              AND i.user_account = l.user_account AND i.session_id = l.session_id
              AND i.login_time >= l.login_at - interval '1 minute'
              AND i.login_time <= l.login_at + interval '1 minute'
        )
        GROUP BY 1, 2
    ), counts AS (
        SELECT (l.received_at AT TIME ZONE 'UTC')::date AS day, l.appid,
               count(*) AS logouts,
               count(*) FILTER (WHERE l.logout_time < l.login_at) AS negative_durations,
               count(*) FILTER (WHERE l.logout_time = l.login_at) AS zero_durations,
               count(*) FILTER (WHERE l.logout_time - l.received_at > interval '1 day') AS logout_far_future,
               count(*) FILTER (WHERE l.received_at - l.logout_time > interval '1 day') AS logout_far_past,
               count(*) FILTER (WHERE l.login_time IS NULL) AS without_login_time,
               count(*) FILTER (WHERE l.login_at IS NULL) AS unpaired
        FROM received AS l
        GROUP BY 1, 2
    ), quarantine AS (
        SELECT (e.received_at AT TIME ZONE 'UTC')::date AS day, e.appid, count(*) AS n,
               count(*) FILTER (WHERE e.refused_reason LIKE 'signature reuse:%') AS reuses
        FROM callback_events AS e
        WHERE e.refused_reason IS NOT NULL
          AND e.received_at >= p_from AND e.received_at < p_to
          AND (p_appid IS NULL OR e.appid = p_appid)
        GROUP BY 1, 2
    )
    SELECT coalesce(c.day, q.day), coalesce(c.appid, q.appid),
           coalesce(c.logouts, 0), coalesce(c.negative_durations, 0), coalesce(c.zero_durations, 0),
           coalesce(c.logout_far_future, 0), coalesce(c.logout_far_past, 0), coalesce(u.n, 0),
           coalesce(q.n, 0), coalesce(q.reuses, 0),
           coalesce(c.without_login_time, 0), coalesce(c.unpaired, 0)
    FROM counts AS c
    LEFT JOIN unmatched AS u ON u.day = c.day AND u.appid = c.appid
    FULL JOIN quarantine AS q ON q.day = c.day AND q.appid = c.appid;
END
$$;

REVOKE EXECUTE ON FUNCTION zegolog_pair_recent_logouts(interval) FROM PUBLIC;
