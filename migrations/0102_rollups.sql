-- zegolog's schema, 3 of 5: the rollups, and compaction that keeps them.
--
-- What one logout adds is said once, in two functions: zegolog_logout_rollup_in (its day,
-- reason and duration bucket) and zegolog_logout_concurrency (+1 at its login minute, -1 the
-- minute after its logout minute). Every writer of the rollups goes through them: the batch
-- write statement for each new logout, the pairing of a logout with its late login (the
-- difference between its new and its old contribution), the seed, the rebuild after a change
-- of zone, erasure (the contribution taken back).
--
-- A statement appends what its logouts add as ONE row of pending_contributions, whatever the
-- number of logouts (arrays of rollup rows and concurrency deltas, already summed per key).
-- zegolog_compact_rollups (serve runs it about once a second, alone under an advisory lock)
-- takes those rows and adds them into the rollups below, so that the rollups equal a
-- recomputation from the raw rows in any arrival order. The views read the rollups plus what
-- is still pending (logout_rollup_all, and pending_contributions' deltas): exact at once.

CREATE TYPE zegolog_rollup_row AS (
    day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint
);
COMMENT ON TYPE zegolog_rollup_row IS 'What logouts add to logout_rollup: sessions, total and maximum duration per day (reporting zone), app, reason and 1% duration bucket.';
CREATE TYPE zegolog_concurrency_delta AS (appid bigint, room_id text, minute timestamptz, delta bigint);
COMMENT ON TYPE zegolog_concurrency_delta IS 'What logouts add to the concurrency rollups: the change in sessions online in one room at one UTC minute.';

CREATE TABLE pending_contributions (
    durations zegolog_rollup_row[] NOT NULL DEFAULT '{}',
    deltas zegolog_concurrency_delta[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE pending_contributions IS 'What the statements since the last compaction added, one row per statement; zegolog_compact_rollups moves them into the rollups.';

-- Durations and reasons: per day of logout (reporting zone), app, reason and 1% duration bucket.
CREATE TABLE logout_rollup (
    day date NOT NULL,
    appid bigint NOT NULL,
    reason text NOT NULL,
    bucket integer NOT NULL,
    sessions bigint NOT NULL,
    total_ms numeric NOT NULL,
    max_ms bigint NOT NULL,
    PRIMARY KEY (appid, day, reason, bucket)
);
-- The duration rollup, compacted and pending: what a recount of the raw rows would give.
CREATE VIEW logout_rollup_all AS
SELECT day, appid, reason, bucket, sessions, total_ms, max_ms FROM logout_rollup
UNION ALL
SELECT d.day, d.appid, d.reason, d.bucket, d.sessions, d.total_ms, d.max_ms
FROM pending_contributions AS p, unnest(p.durations) AS d;

-- Per day and app, and per day, app and reason: what the daily views read for settled days,
-- kept from logout_rollup by its statement triggers (zegolog_refresh_*_days, below).
CREATE TABLE logout_duration_day (
    day date NOT NULL,
    appid bigint NOT NULL,
    sessions bigint NOT NULL,
    total_ms numeric,
    max_ms bigint,
    p50_bucket integer,
    p90_bucket integer,
    p99_bucket integer,
    timed_sessions bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (appid, day)
);
COMMENT ON TABLE logout_duration_day IS 'Per UTC day and app of the compacted rollups: sessions, total and maximum duration, percentile buckets. Kept by triggers on logout_rollup.';
COMMENT ON COLUMN logout_duration_day.sessions IS 'Logouts of the day, with and without a known duration.';
COMMENT ON COLUMN logout_duration_day.timed_sessions IS 'Of those, the ones whose duration is known (the rest wait for their login).';
CREATE TABLE logout_reason_day (
    day date NOT NULL,
    appid bigint NOT NULL,
    reason text NOT NULL,
    logouts bigint NOT NULL,
    median_bucket integer,
    PRIMARY KEY (appid, day, reason)
);
COMMENT ON TABLE logout_reason_day IS 'Per UTC day, app and reason of the compacted rollups: logouts and the median duration bucket. Kept by triggers on logout_rollup.';

-- Concurrency: per UTC minute (zone-free) the change in sessions online, per app and per room;
-- per day (reporting zone) the sessions online at its start, its net change and its peak.
CREATE TABLE app_concurrency_minute (
    appid bigint NOT NULL,
    minute timestamptz NOT NULL,
    delta bigint NOT NULL,
    PRIMARY KEY (appid, minute)
);
CREATE TABLE room_concurrency_minute (
    appid bigint NOT NULL,
    room_id text NOT NULL,
    minute timestamptz NOT NULL,
    delta bigint NOT NULL,
    PRIMARY KEY (appid, room_id, minute)
);
CREATE INDEX room_concurrency_minute_minute_brin ON room_concurrency_minute USING brin (minute);
CREATE TABLE app_concurrency_day (
    appid bigint NOT NULL,
    day date NOT NULL,
    net bigint NOT NULL,
    peak bigint NOT NULL,
    start bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (appid, day)
);
COMMENT ON COLUMN app_concurrency_day.start IS 'Sessions online at the start of the day (in the reporting zone): what the day''s minutes add to. Online at the start of a day without a row: the latest earlier row''s start + net (zegolog_app_online_at).';
CREATE TABLE room_concurrency_day (
    appid bigint NOT NULL,
    room_id text NOT NULL,
    day date NOT NULL,
    net bigint NOT NULL,
    peak bigint NOT NULL,
    start bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (appid, room_id, day)
);
COMMENT ON COLUMN room_concurrency_day.start IS 'Sessions online in the room at the start of the day, as app_concurrency_day.start (zegolog_room_online_at).';
CREATE INDEX room_concurrency_day_top_idx ON room_concurrency_day (appid, day, peak DESC, room_id);

-- ---------------------------------------------------------------------------------------------
-- What one logout adds
-- ---------------------------------------------------------------------------------------------

-- p_login_at is the session's start as zegolog_session_start gives it: NULL (login unknown, or
-- times implausible) puts the logout in its reason's no-duration bucket, with no concurrency.
CREATE FUNCTION zegolog_logout_rollup_in(p_appid bigint, p_reason integer, p_login_at timestamptz, p_logout_at timestamptz, p_zone text)
RETURNS TABLE(day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT zegolog_local_day(p_logout_at, p_zone), p_appid, zegolog_reason_name(p_reason),
           CASE WHEN d.ms IS NULL THEN zegolog_no_duration_bucket() ELSE zegolog_duration_bucket(d.ms) END,
           1::bigint, coalesce(d.ms, 0)::numeric, coalesce(d.ms, -9223372036854775808)
    FROM (SELECT zegolog_duration_ms(p_login_at, p_logout_at) AS ms) AS d;
$$;
COMMENT ON FUNCTION zegolog_logout_rollup_in(bigint, integer, timestamptz, timestamptz, text) IS 'The logout_rollup row one logout contributes, its day cut in the given zone (its duration bucket, or zegolog_no_duration_bucket() while its login is unknown). Inlined where it is called.';

CREATE FUNCTION zegolog_logout_rollup(p_appid bigint, p_reason integer, p_login_at timestamptz, p_logout_at timestamptz)
RETURNS TABLE(day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint)
LANGUAGE sql PARALLEL SAFE AS $$
    SELECT r.*
    FROM zegolog_settings AS s, zegolog_logout_rollup_in(p_appid, p_reason, p_login_at, p_logout_at, s.time_zone) AS r;
$$;
COMMENT ON FUNCTION zegolog_logout_rollup(bigint, integer, timestamptz, timestamptz) IS 'The logout_rollup row one logout contributes (its duration bucket, or zegolog_no_duration_bucket() while its login is unknown).';

CREATE FUNCTION zegolog_logout_contributions(p_appid bigint[], p_reason integer[], p_login_time timestamptz[], p_logout_time timestamptz[])
RETURNS TABLE(day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint)
LANGUAGE sql AS $$
    SELECT r.day, r.appid, r.reason, r.bucket, sum(r.sessions)::bigint, sum(r.total_ms), max(r.max_ms)
    FROM unnest(p_appid, p_reason, p_login_time, p_logout_time) AS u(appid, reason, login_time, logout_time),
         zegolog_logout_rollup(u.appid, u.reason, u.login_time, u.logout_time) AS r
    GROUP BY 1, 2, 3, 4;
$$;
COMMENT ON FUNCTION zegolog_logout_contributions(bigint[], integer[], timestamptz[], timestamptz[]) IS 'The logout_rollup rows (day in the reporting time zone, appid, reason, duration bucket, sums) of the logouts given as parallel arrays, each through zegolog_logout_rollup.';

CREATE FUNCTION zegolog_logout_concurrency(p_appid bigint, p_room_id text, p_login_at timestamptz, p_logout_at timestamptz)
RETURNS TABLE(appid bigint, room_id text, minute timestamptz, delta bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT p_appid, p_room_id, date_trunc('minute', p_login_at, 'UTC'), 1::bigint
    WHERE p_logout_at >= p_login_at
    UNION ALL
    SELECT p_appid, p_room_id, date_trunc('minute', p_logout_at, 'UTC') + interval '1 minute', -1::bigint
    WHERE p_logout_at >= p_login_at;
$$;
COMMENT ON FUNCTION zegolog_logout_concurrency(bigint, text, timestamptz, timestamptz) IS 'The concurrency deltas one logout contributes (none while its login is unknown).';

-- The seed's bulk path: what the logouts of ids from_id to to_id add, as pending rows of at
-- most 100,000 keys each (a seed of millions of logouts would not fit one array).
CREATE FUNCTION zegolog_add_to_rollups(from_id bigint, to_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    zone text := zegolog_time_zone();
    longest interval := (SELECT max_session FROM zegolog_settings);
BEGIN
    -- Summed per key first (on the shards on Citus), then cut into rows here.
    CREATE TEMP TABLE zegolog_seeded_durations ON COMMIT DROP AS
    SELECT r.day, r.appid, r.reason, r.bucket, sum(r.sessions)::bigint AS sessions,
           sum(r.total_ms) AS total_ms, max(r.max_ms) AS max_ms
    FROM room_logouts AS l,
         zegolog_logout_rollup_in(l.appid, l.reason,
                                  zegolog_session_start(l.login_at, l.logout_time, l.received_at, longest),
                                  l.logout_time, zone) AS r
    WHERE l.id BETWEEN from_id AND to_id
    GROUP BY 1, 2, 3, 4;
    CREATE TEMP TABLE zegolog_seeded_deltas ON COMMIT DROP AS
    SELECT c.appid, c.room_id, c.minute, sum(c.delta)::bigint AS delta
    FROM room_logouts AS l,
         zegolog_logout_concurrency(l.appid, l.room_id,
                                    zegolog_session_start(l.login_at, l.logout_time, l.received_at, longest),
                                    l.logout_time) AS c
    WHERE l.id BETWEEN from_id AND to_id
    GROUP BY 1, 2, 3;

    INSERT INTO pending_contributions (durations)
    SELECT array_agg(ROW(d.day, d.appid, d.reason, d.bucket, d.sessions, d.total_ms, d.max_ms)::zegolog_rollup_row)
    FROM (SELECT *, (row_number() OVER () - 1) / 100000 AS chunk FROM zegolog_seeded_durations) AS d
    GROUP BY d.chunk;
    INSERT INTO pending_contributions (deltas)
    SELECT array_agg(ROW(d.appid, d.room_id, d.minute, d.delta)::zegolog_concurrency_delta)
    FROM (SELECT *, (row_number() OVER () - 1) / 100000 AS chunk FROM zegolog_seeded_deltas) AS d
    GROUP BY d.chunk;
    DROP TABLE zegolog_seeded_durations;
    DROP TABLE zegolog_seeded_deltas;
END
$$;

-- A logout without login_time is paired with its login (the latest room_login of the same
-- appid, room_id, user_account and session_id at or before it) by the write statement, which
-- sees the logins stored before it and those of its batch. A login and its logout written
-- concurrently see neither the other: this sweep, run with compaction, pairs them. A logout is
-- moved to its new login only if its pairing is still the one read (rechecked on the latest
-- row version once its lock is held), so that its old contribution is taken back exactly once.
CREATE FUNCTION zegolog_pair_recent_logouts(p_since interval DEFAULT interval '10 minutes') RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    WITH candidates AS (
        SELECT o.appid, o.session_id, o.logout_time, o.room_id, o.user_account,
               o.paired_login_time AS old_login, max(i.login_time) AS new_login
        FROM room_logouts AS o
        JOIN room_logins AS i
          ON i.appid = o.appid AND i.room_id = o.room_id AND i.user_account = o.user_account
         AND i.session_id = o.session_id AND i.login_time <= o.logout_time
        WHERE o.login_time IS NULL AND o.received_at >= now() - p_since
        GROUP BY o.appid, o.session_id, o.logout_time, o.room_id, o.user_account, o.paired_login_time
        HAVING o.paired_login_time IS NULL OR max(i.login_time) > o.paired_login_time
    ), paired AS (
        UPDATE room_logouts AS o SET paired_login_time = k.new_login
        FROM candidates AS k
        WHERE o.appid = k.appid AND o.session_id = k.session_id AND o.logout_time = k.logout_time
          AND o.room_id = k.room_id AND o.user_account = k.user_account
          AND o.login_time IS NULL
          AND o.paired_login_time IS NOT DISTINCT FROM k.old_login
        RETURNING o.appid, o.room_id, o.reason, o.logout_time, o.received_at, k.old_login, k.new_login
    ), changes AS (
        SELECT p.appid, p.room_id, p.reason, p.logout_time,
               zegolog_session_start(p.new_login, p.logout_time, p.received_at, s.max_session) AS login_at, 1 AS sign
        FROM paired AS p, zegolog_settings AS s
        UNION ALL
        SELECT p.appid, p.room_id, p.reason, p.logout_time,
               zegolog_session_start(p.old_login, p.logout_time, p.received_at, s.max_session), -1
        FROM paired AS p, zegolog_settings AS s
    ), durations AS (
        SELECT r.day, r.appid, r.reason, r.bucket, sum(c.sign * r.sessions)::bigint AS sessions,
               sum(c.sign * r.total_ms) AS total_ms,
               coalesce(max(r.max_ms) FILTER (WHERE c.sign > 0), -9223372036854775808) AS max_ms
        FROM changes AS c, zegolog_logout_rollup(c.appid, c.reason, c.login_at, c.logout_time) AS r
        GROUP BY 1, 2, 3, 4
    ), deltas AS (
        SELECT d.appid, d.room_id, d.minute, sum(c.sign * d.delta)::bigint AS delta
        FROM changes AS c, zegolog_logout_concurrency(c.appid, c.room_id, c.login_at, c.logout_time) AS d
        GROUP BY 1, 2, 3
    ), pending AS (
        INSERT INTO pending_contributions (durations, deltas)
        SELECT coalesce((SELECT array_agg(ROW(d.*)::zegolog_rollup_row) FROM durations AS d), '{}'),
               coalesce((SELECT array_agg(ROW(d.*)::zegolog_concurrency_delta) FROM deltas AS d), '{}')
        WHERE EXISTS (SELECT FROM paired)
    )
    SELECT count(*) INTO n FROM paired;
    RETURN n;
END
$$;
COMMENT ON FUNCTION zegolog_pair_recent_logouts(interval) IS 'Pairs the logouts without login_time received in the last p_since with their login (a login and its logout written concurrently see neither the other); returns how many it paired.';
REVOKE ALL ON FUNCTION zegolog_pair_recent_logouts(interval) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Compaction
-- ---------------------------------------------------------------------------------------------

-- The one rule for a starting count: the sessions online at the start of a day are the latest
-- day row at or before it (its start on that day, else its start + net).
CREATE FUNCTION zegolog_app_online_at(p_appid bigint, p_day date) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((
        SELECT CASE WHEN d.day = p_day THEN d.start ELSE d.start + d.net END
        FROM app_concurrency_day AS d
        WHERE d.appid = p_appid AND d.day <= p_day
        ORDER BY d.day DESC
        LIMIT 1), 0);
$$;
COMMENT ON FUNCTION zegolog_app_online_at(bigint, date) IS 'Sessions online in app p_appid at the start of day p_day (reporting zone), compacted: the latest day row at or before it. The one rule for a starting count.';

CREATE FUNCTION zegolog_room_online_at(p_appid bigint, p_room_id text, p_day date) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((
        SELECT CASE WHEN d.day = p_day THEN d.start ELSE d.start + d.net END
        FROM room_concurrency_day AS d
        WHERE d.appid = p_appid AND d.room_id = p_room_id AND d.day <= p_day
        ORDER BY d.day DESC
        LIMIT 1), 0);
$$;
COMMENT ON FUNCTION zegolog_room_online_at(bigint, text, date) IS 'Sessions online in one room at the start of day p_day, as zegolog_app_online_at.';

CREATE FUNCTION zegolog_compact_rollups() RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    zone text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_compact_rollups'));
    -- After the lock: a change of zone holds it until it commits.
    zone := zegolog_time_zone();

    CREATE TEMP TABLE zegolog_moved_rows ON COMMIT DROP AS
    WITH moved AS (DELETE FROM pending_contributions RETURNING durations, deltas)
    SELECT * FROM moved;

    INSERT INTO logout_rollup AS r (day, appid, reason, bucket, sessions, total_ms, max_ms)
    SELECT d.day, d.appid, d.reason, d.bucket, sum(d.sessions), sum(d.total_ms), max(d.max_ms)
    FROM zegolog_moved_rows AS m, unnest(m.durations) AS d
    GROUP BY d.day, d.appid, d.reason, d.bucket
    ORDER BY d.appid, d.day, d.reason, d.bucket
    ON CONFLICT (appid, day, reason, bucket) DO UPDATE
    SET sessions = r.sessions + excluded.sessions,
        total_ms = r.total_ms + excluded.total_ms,
        max_ms = greatest(r.max_ms, excluded.max_ms);

    CREATE TEMP TABLE zegolog_moved ON COMMIT DROP AS
    SELECT d.appid, d.room_id, d.minute, sum(d.delta) AS delta
    FROM zegolog_moved_rows AS m, unnest(m.deltas) AS d
    GROUP BY 1, 2, 3;
    DROP TABLE zegolog_moved_rows;

    INSERT INTO room_concurrency_minute AS r (appid, room_id, minute, delta)
    SELECT appid, room_id, minute, delta FROM zegolog_moved ORDER BY 1, 2, 3
    ON CONFLICT (appid, room_id, minute) DO UPDATE SET delta = r.delta + excluded.delta;
    INSERT INTO app_concurrency_minute AS r (appid, minute, delta)
    SELECT appid, minute, sum(delta) FROM zegolog_moved GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (appid, minute) DO UPDATE SET delta = r.delta + excluded.delta;

    -- The room-days to recompute: those holding a moved delta, and those between two of them
    -- while the deltas moved so far have not come back to zero (the days a session spans). Not
    -- every day from the first to the last: one callback from 2011 must not make compaction
    -- walk fifteen years. moved_before: what the moved deltas add at each day's start.
    CREATE TEMP TABLE zegolog_days ON COMMIT DROP AS
    WITH per_day AS (
        SELECT appid, room_id, zegolog_local_day(minute, zone) AS day, sum(delta) AS delta
        FROM zegolog_moved GROUP BY 1, 2, 3
    ), runs AS (
        SELECT appid, room_id, day,
               sum(delta) OVER w - delta AS before,
               sum(delta) OVER w AS after,
               lead(day) OVER w AS next_day
        FROM per_day
        WINDOW w AS (PARTITION BY appid, room_id ORDER BY day)
    )
    SELECT appid, room_id, day, before AS moved_before FROM runs
    UNION ALL
    SELECT r.appid, r.room_id, g::date, r.after
    FROM runs AS r, generate_series((r.day + 1)::timestamp, (r.next_day - 1)::timestamp, interval '1 day') AS g
    WHERE r.after <> 0 AND r.next_day > r.day + 1;

    PERFORM zegolog_refresh_concurrency_days(zone);

    DROP TABLE zegolog_moved;
    DROP TABLE zegolog_days;
END
$$;
COMMENT ON FUNCTION zegolog_compact_rollups() IS 'Moves the pending contributions into the rollups and recomputes the concurrency days they touch; one at a time (advisory lock), serve runs it about once a second.';

-- The day rows of the (app or room)-days in temp table zegolog_days (appid, room_id, day,
-- moved_before): each day's start is the start the latest earlier row gives plus what the moved
-- deltas add before it; its net and peak come from its minutes.
CREATE FUNCTION zegolog_refresh_concurrency_days(zone text) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    PERFORM zegolog_refresh_app_concurrency_days(zone);
    PERFORM zegolog_refresh_room_concurrency_days(zone);
END
$$;

CREATE FUNCTION zegolog_refresh_app_concurrency_days(zone text) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    -- The days any of an app's rooms touched; a day's change at its start is its rooms'.
    WITH days AS (
        SELECT appid, day, sum(moved_before) AS moved_before
        FROM zegolog_days GROUP BY appid, day
    ), bases AS (
        -- One index range scan per day (a join let the planner, which cannot see how few
        -- days there are, sort the whole table instead).
        SELECT d.appid, d.day, coalesce(n.net, 0) AS net,
               zegolog_app_online_at(d.appid, d.day) + d.moved_before AS base
        FROM days AS d
        CROSS JOIN LATERAL (
            SELECT sum(m.delta) AS net
            FROM app_concurrency_minute AS m
            WHERE m.appid = d.appid
              AND m.minute >= zegolog_day_start(d.day, zone) AND m.minute < zegolog_day_start(d.day + 1, zone)
        ) AS n
    )
    INSERT INTO app_concurrency_day AS r (appid, day, start, net, peak)
    SELECT b.appid, b.day, b.base, b.net,
           coalesce(greatest(CASE WHEN bool_or(w.at_midnight) IS NOT TRUE THEN b.base END, max(b.base + w.running)), 0)
    FROM bases AS b
    LEFT JOIN LATERAL (
        SELECT sum(m.delta) OVER (ORDER BY m.minute) AS running,
               m.minute = zegolog_day_start(b.day, zone) AS at_midnight
        FROM app_concurrency_minute AS m
        WHERE m.appid = b.appid
          AND m.minute >= zegolog_day_start(b.day, zone) AND m.minute < zegolog_day_start(b.day + 1, zone)
    ) AS w ON true
    GROUP BY b.appid, b.day, b.net, b.base
    ORDER BY 1, 2
    ON CONFLICT (appid, day) DO UPDATE SET start = excluded.start, net = excluded.net, peak = excluded.peak;
END
$$;

-- On Citus, schema/citus.sql replaces this one with a form that runs on the shards.
CREATE FUNCTION zegolog_refresh_room_concurrency_days(zone text) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    WITH bases AS (
        SELECT d.appid, d.room_id, d.day,
               zegolog_room_online_at(d.appid, d.room_id, d.day) + d.moved_before AS base,
               coalesce((SELECT sum(m.delta) FROM room_concurrency_minute AS m
                         WHERE m.appid = d.appid AND m.room_id = d.room_id
                           AND m.minute >= zegolog_day_start(d.day, zone)
                           AND m.minute < zegolog_day_start(d.day + 1, zone)), 0) AS net
        FROM zegolog_days AS d
    )
    INSERT INTO room_concurrency_day AS r (appid, room_id, day, start, net, peak)
    SELECT b.appid, b.room_id, b.day, b.base, b.net,
           coalesce(greatest(CASE WHEN bool_or(w.at_midnight) IS NOT TRUE THEN b.base END, max(b.base + w.running)), 0)
    FROM bases AS b
    LEFT JOIN LATERAL (
        SELECT sum(m.delta) OVER (ORDER BY m.minute) AS running,
               m.minute = zegolog_day_start(b.day, zone) AS at_midnight
        FROM room_concurrency_minute AS m
        WHERE m.appid = b.appid AND m.room_id = b.room_id
          AND m.minute >= zegolog_day_start(b.day, zone) AND m.minute < zegolog_day_start(b.day + 1, zone)
    ) AS w ON true
    GROUP BY b.appid, b.room_id, b.day, b.net, b.base
    ORDER BY 1, 2, 3
    ON CONFLICT (appid, room_id, day) DO UPDATE SET start = excluded.start, net = excluded.net, peak = excluded.peak;
END
$$;

-- The two day summaries, from the logout_rollup rows of the days a statement changed.
CREATE FUNCTION zegolog_refresh_reason_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM logout_reason_day AS s
    USING (SELECT DISTINCT day, appid, reason FROM changed) AS g
    WHERE s.appid = g.appid AND s.day = g.day AND s.reason = g.reason;

    INSERT INTO logout_reason_day (day, appid, reason, logouts, median_bucket)
    SELECT r.day, r.appid, r.reason, sum(r.sessions),
           zegolog_nearest_rank(0.5, array_agg(r.bucket) FILTER (WHERE r.bucket <> zegolog_no_duration_bucket()),
                                array_agg(r.sessions) FILTER (WHERE r.bucket <> zegolog_no_duration_bucket()))
    FROM logout_rollup AS r
    JOIN (SELECT DISTINCT day, appid, reason FROM changed) AS g
      ON r.appid = g.appid AND r.day = g.day AND r.reason = g.reason
    GROUP BY r.day, r.appid, r.reason;
    RETURN NULL;
END
$$;

CREATE FUNCTION zegolog_refresh_duration_days() RETURNS trigger
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
           zegolog_nearest_rank(0.5, array_agg(bucket) FILTER (WHERE timed), array_agg(sessions) FILTER (WHERE timed)),
           zegolog_nearest_rank(0.9, array_agg(bucket) FILTER (WHERE timed), array_agg(sessions) FILTER (WHERE timed)),
           zegolog_nearest_rank(0.99, array_agg(bucket) FILTER (WHERE timed), array_agg(sessions) FILTER (WHERE timed))
    FROM (
        SELECT r.day, r.appid, r.bucket, r.bucket <> zegolog_no_duration_bucket() AS timed,
               sum(r.sessions) AS sessions, sum(r.total_ms) AS total_ms, max(r.max_ms) AS max_ms
        FROM logout_rollup AS r
        JOIN (SELECT DISTINCT day, appid FROM changed) AS g
          ON r.appid = g.appid AND r.day = g.day
        GROUP BY r.day, r.appid, r.bucket
    ) AS b
    GROUP BY day, appid;
    RETURN NULL;
END
$$;

CREATE TRIGGER logout_rollup_inserted AFTER INSERT ON logout_rollup REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION zegolog_refresh_reason_days();
CREATE TRIGGER logout_rollup_updated AFTER UPDATE ON logout_rollup REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION zegolog_refresh_reason_days();
CREATE TRIGGER logout_rollup_deleted AFTER DELETE ON logout_rollup REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION zegolog_refresh_reason_days();
CREATE TRIGGER logout_rollup_inserted_days AFTER INSERT ON logout_rollup REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION zegolog_refresh_duration_days();
CREATE TRIGGER logout_rollup_updated_days AFTER UPDATE ON logout_rollup REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION zegolog_refresh_duration_days();
CREATE TRIGGER logout_rollup_deleted_days AFTER DELETE ON logout_rollup REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION zegolog_refresh_duration_days();

-- ---------------------------------------------------------------------------------------------
-- A change of reporting zone (`zegolog time-zone set`): the day rollups cut again
-- ---------------------------------------------------------------------------------------------

-- Step 1, in the caller's transaction: compacts, records each room's span of minutes and what
-- retention carried into its first day, sets the zone and empties the day rollups; returns
-- the days to rebuild. Step 2: zegolog_rebuild_rollups_day for each, in order.
CREATE FUNCTION zegolog_begin_time_zone_change(p_zone text) RETURNS TABLE(first_day date, last_day date)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    IF NOT zegolog_is_time_zone(p_zone) THEN
        RAISE EXCEPTION 'unknown time zone "%"', p_zone
            USING ERRCODE = '22023',
                  HINT = 'Use an IANA name from pg_timezone_names, such as Asia/Shanghai or America/New_York.';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_compact_rollups'));
    LOCK TABLE zegolog_settings IN ACCESS EXCLUSIVE MODE;
    -- Fold what is pending (its days are in the old zone, its minutes in none).
    PERFORM zegolog_compact_rollups();

    DROP TABLE IF EXISTS zegolog_spans;
    -- One statement over the two rollups, joined on the room (Citus runs it on the shards).
    CREATE TEMP TABLE zegolog_spans ON COMMIT DROP AS
    SELECT m.appid, m.room_id, m.first_day, m.last_day, coalesce(c.start, 0) AS carried
    FROM (SELECT appid, room_id, min(zegolog_local_day(minute, p_zone)) AS first_day,
                 max(zegolog_local_day(minute, p_zone)) AS last_day
          FROM room_concurrency_minute
          GROUP BY appid, room_id) AS m
    LEFT JOIN (SELECT DISTINCT ON (room_id, appid) appid, room_id, start
               FROM room_concurrency_day ORDER BY room_id, appid, day) AS c
      ON c.room_id = m.room_id AND c.appid = m.appid;

    UPDATE zegolog_settings SET time_zone = p_zone, chosen = true, changed_at = now();
    DELETE FROM logout_rollup;
    DELETE FROM app_concurrency_day;
    DELETE FROM room_concurrency_day;

    RETURN QUERY
    SELECT min(d), max(d)
    FROM (
        SELECT zegolog_local_day(min(logout_time), p_zone) AS d FROM room_logouts
        UNION ALL SELECT zegolog_local_day(max(logout_time), p_zone) FROM room_logouts
        UNION ALL SELECT min(s.first_day) FROM zegolog_spans AS s
        UNION ALL SELECT max(s.last_day) FROM zegolog_spans AS s
    ) AS x;
END
$$;

CREATE FUNCTION zegolog_rebuild_rollups_day(p_day date) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    apps bigint[] := zegolog_appids();
    zone text := zegolog_time_zone();
    longest interval := (SELECT max_session FROM zegolog_settings);
    logouts bigint;
BEGIN
    IF to_regclass('pg_temp.zegolog_spans') IS NULL THEN
        RAISE EXCEPTION 'zegolog_rebuild_rollups_day runs after zegolog_begin_time_zone_change, in its transaction';
    END IF;
    -- The day's logouts as arrays (aggregated on the shards on Citus), then their contributions.
    INSERT INTO logout_rollup AS r (day, appid, reason, bucket, sessions, total_ms, max_ms)
    SELECT c.*
    FROM (SELECT array_agg(appid) AS appid, array_agg(reason) AS reason,
                 array_agg(zegolog_session_start(login_at, logout_time, received_at, longest)) AS login_time,
                 array_agg(logout_time) AS logout_time
          FROM room_logouts
          WHERE appid = ANY (apps)
            AND logout_time >= zegolog_day_start(p_day, zone) AND logout_time < zegolog_day_start(p_day + 1, zone)) AS a,
         zegolog_logout_contributions(a.appid, a.reason, a.login_time, a.logout_time) AS c
    ORDER BY c.appid, c.day, c.reason, c.bucket
    ON CONFLICT (appid, day, reason, bucket) DO UPDATE
    SET sessions = r.sessions + excluded.sessions,
        total_ms = r.total_ms + excluded.total_ms,
        max_ms = greatest(r.max_ms, excluded.max_ms);
    SELECT coalesce(sum(sessions), 0) INTO logouts FROM logout_rollup WHERE day = p_day;

    -- Each room's first day starts from what retention carried (none: 0); the later days from
    -- the day rows rebuilt before them (the days go in order).
    DROP TABLE IF EXISTS zegolog_days;
    CREATE TEMP TABLE zegolog_days ON COMMIT DROP AS
    SELECT appid, room_id, p_day AS day, CASE WHEN p_day = first_day THEN carried ELSE 0 END AS moved_before
    FROM zegolog_spans
    WHERE p_day BETWEEN first_day AND last_day;
    PERFORM zegolog_refresh_concurrency_days(zone);
    DROP TABLE zegolog_days;
    RETURN logouts;
END
$$;
