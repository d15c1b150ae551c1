-- zegolog's schema, 5 of 5: upkeep. Retention (src/upkeep.rs calls zegolog_retain_rollups,
-- then zegolog_prune_batch until nothing is left, then drops whole partitions) and erasure of
-- one user (zegolog_erase_user, `zegolog erase`). Both take the partition lock, then
-- compaction's, in that order.

CREATE FUNCTION zegolog_retain_rollups(cutoff timestamp with time zone) RETURNS TABLE(tbl text, deleted bigint)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
    zone text;
    cutoff_day date;
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_compact_rollups'));
    -- Fold what is pending first: its deltas may fall before the cutoff.
    PERFORM zegolog_compact_rollups();
    zone := zegolog_time_zone();
    cutoff_day := zegolog_local_day(cutoff, zone);

    -- The sessions online at the start of the cutoff day, for each app and room that has any,
    -- kept in a row of that day before every older row goes.
    INSERT INTO app_concurrency_day AS r (appid, day, start, net, peak)
    SELECT p.appid, cutoff_day, p.users, 0, p.users
    FROM (SELECT DISTINCT ON (appid) appid, start + net AS users
          FROM app_concurrency_day WHERE day < cutoff_day
          ORDER BY appid, day DESC) AS p
    WHERE p.users <> 0
    ON CONFLICT (appid, day) DO NOTHING;
    INSERT INTO room_concurrency_day AS r (appid, room_id, day, start, net, peak)
    SELECT p.appid, p.room_id, cutoff_day, p.users, 0, p.users
    FROM (SELECT DISTINCT ON (appid, room_id) appid, room_id, start + net AS users
          FROM room_concurrency_day WHERE day < cutoff_day
          ORDER BY appid, room_id, day DESC) AS p
    WHERE p.users <> 0
    ON CONFLICT (appid, room_id, day) DO NOTHING;

    -- The per-day rollups: a few rows per app and day.
    DELETE FROM logout_rollup WHERE day < cutoff_day;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN QUERY SELECT 'logout_rollup', n;
    DELETE FROM app_concurrency_day WHERE day < cutoff_day;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN QUERY SELECT 'app_concurrency_day', n;
END
$$;
COMMENT ON FUNCTION zegolog_retain_rollups(cutoff timestamp with time zone) IS 'Retention''s first step, in one transaction under compaction''s lock: folds the pending rollups, writes for each app and room the sessions online at the start of the cutoff''s day (in the reporting zone) into that day''s row, then deletes the per-day rollups of earlier days. Every count from the cutoff day on stays what it was. The big tables go after, in batches (zegolog_prune_batch).';

CREATE FUNCTION zegolog_prune_batch(cutoff timestamp with time zone, raw_cutoff timestamp with time zone, batch integer)
 RETURNS TABLE(tbl text, deleted bigint)
 LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    zone text := zegolog_time_zone();
    cutoff_day date := zegolog_local_day(cutoff, zone);
    cutoff_start timestamptz := zegolog_day_start(cutoff_day, zone);
    apps bigint[] := zegolog_appids();
    app bigint;
    dropped_before timestamptz;
    slice_start timestamptz;
    slice_end timestamptz;
    n bigint;
BEGIN
    -- At most `batch` rows of each table, by its key: a short transaction a writer never waits
    -- long behind. The caller repeats until every count is 0.
    DELETE FROM callback_events AS e
    WHERE e.digest IN (SELECT x.digest FROM callback_events AS x WHERE x.received_at < raw_cutoff LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN QUERY SELECT 'callback_events', n;

    -- The logouts' bodies older than raw_cutoff, an hour of logout_time at a time from where
    -- the last batch stopped (a logout delivered after its hour was passed keeps its body until
    -- its row goes).
    -- Only when the bodies are kept shorter than the rows: otherwise they go with their rows.
    n := 0;
    WHILE raw_cutoff > cutoff LOOP
        -- The oldest logout with a body left: one index lookup per app (a loop: on Citus each
        -- is a query of its own, which the shards answer from their index).
        dropped_before := coalesce((SELECT raw_bodies_dropped_before FROM zegolog_settings), '-infinity');
        slice_start := NULL;
        FOREACH app IN ARRAY apps LOOP
            slice_start := least(slice_start, (SELECT min(x.logout_time) FROM room_logouts AS x
                                               WHERE x.appid = app AND x.logout_time >= dropped_before));
        END LOOP;
        EXIT WHEN slice_start IS NULL OR slice_start >= raw_cutoff;
        slice_end := least(slice_start + interval '1 hour', raw_cutoff);
        UPDATE room_logouts AS l SET body = NULL
        WHERE (l.appid, l.room_id, l.logout_time, l.session_id, l.user_account) IN (
            SELECT x.appid, x.room_id, x.logout_time, x.session_id, x.user_account
            FROM room_logouts AS x
            WHERE x.appid = ANY (apps) AND x.logout_time >= slice_start AND x.logout_time < slice_end
              AND x.body IS NOT NULL
            LIMIT batch);
        GET DIAGNOSTICS n = ROW_COUNT;
        EXIT WHEN n = batch;
        UPDATE zegolog_settings SET raw_bodies_dropped_before = slice_end;
        EXIT WHEN n > 0;
    END LOOP;
    RETURN QUERY SELECT 'room_logouts bodies', n;

    DELETE FROM room_logins AS l
    WHERE (l.appid, l.room_id, l.user_account, l.session_id, l.login_time) IN (
        SELECT x.appid, x.room_id, x.user_account, x.session_id, x.login_time
        FROM room_logins AS x WHERE x.login_time < cutoff LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN QUERY SELECT 'room_logins', n;

    -- Logouts older than the cutoff that whole-month drops leave: the default partition's and
    -- those of the month the cutoff falls in.
    DELETE FROM room_logouts AS l
    WHERE (l.appid, l.room_id, l.logout_time, l.session_id, l.user_account) IN (
        SELECT x.appid, x.room_id, x.logout_time, x.session_id, x.user_account
        FROM room_logouts AS x
        WHERE x.appid = ANY (apps) AND x.logout_time < cutoff LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN QUERY SELECT 'room_logouts', n;

    DELETE FROM room_lifecycle_events AS e
    WHERE (e.appid, e.room_id, e.room_session_id, e.event) IN (
        SELECT x.appid, x.room_id, x.room_session_id, x.event
        FROM room_lifecycle_events AS x
        WHERE x.appid = ANY (apps) AND x.at < cutoff LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN QUERY SELECT 'room_lifecycle_events', n;

    -- The minute rollups and the per-room days before the cutoff's day, which
    -- zegolog_retain_rollups left (it wrote the start of the cutoff day first).
    DELETE FROM app_concurrency_minute AS m
    WHERE (m.appid, m.minute) IN (
        SELECT x.appid, x.minute FROM app_concurrency_minute AS x
        WHERE x.appid = ANY (apps) AND x.minute < cutoff_start LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN QUERY SELECT 'app_concurrency_minute', n;

    DELETE FROM room_concurrency_minute AS m
    WHERE (m.appid, m.room_id, m.minute) IN (
        SELECT x.appid, x.room_id, x.minute FROM room_concurrency_minute AS x
        WHERE x.minute < cutoff_start LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN QUERY SELECT 'room_concurrency_minute', n;

    DELETE FROM room_concurrency_day AS d
    WHERE (d.appid, d.room_id, d.day) IN (
        SELECT x.appid, x.room_id, x.day FROM room_concurrency_day AS x
        WHERE x.appid = ANY (apps) AND x.day < cutoff_day LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN QUERY SELECT 'room_concurrency_day', n;
END
$$;
COMMENT ON FUNCTION zegolog_prune_batch(cutoff timestamp with time zone, raw_cutoff timestamp with time zone, batch integer) IS 'Retention''s second step: deletes at most `batch` rows older than the cutoff from each table that grows with traffic and is not dropped by whole partitions (the raw archive older than raw_cutoff, logins, logouts of the default or a partly expired month, room lifecycle events, minute rollups, per-room days), and returns how many per table; repeat until all are 0. Run after zegolog_retain_rollups.';

CREATE FUNCTION zegolog_erase_user(p_appid bigint, p_user_account text) RETURNS TABLE(name text, removed bigint, what text)
    LANGUAGE plpgsql
    SET jit TO 'off'
    SET client_min_messages TO 'warning'
    AS $_$
#variable_conflict use_column
DECLARE
    zone text;
    needle text;
    patterns jsonb[];
    digests bytea[];
    logout_digests bytea[];
    n_bodies bigint;
    n_ledger bigint;
    n_logins bigint;
    n_creators bigint;
    n_logouts bigint;
    n_timed bigint;
    rooms text[];
    minutes timestamptz[];
    first_day date;
    last_day date;
    d record;
    longest interval;
BEGIN
    IF p_appid IS NULL OR p_user_account IS NULL OR p_user_account = '' THEN
        RAISE EXCEPTION 'zegolog_erase_user needs an appid and a non-empty user account'
            USING ERRCODE = '22023';
    END IF;

    -- Retention's first lock, first: retention (which takes it, then compaction's) and
    -- partition creation wait for the erasure rather than wait for a table it holds while
    -- it waits for them.
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_ensure_partition'));

    -- 1. The archive: the bodies in callback_events that name the account in a user field. strpos on the body
    -- as stored (JSON text, the account JSON-escaped as serde_json and PostgreSQL both escape
    -- it) is a cheap first filter; the jsonb containment decides, a JSON number matching a
    -- numeric account too.
    needle := to_json(p_user_account)::text;
    needle := substr(needle, 2, length(needle) - 2);
    patterns := ARRAY(SELECT jsonb_build_object(f, to_jsonb(p_user_account))
                      FROM unnest(zegolog_user_fields()) AS f);
    IF p_user_account ~ '^-?(0|[1-9][0-9]{0,30})$' THEN
        patterns := patterns || ARRAY(SELECT jsonb_build_object(f, to_jsonb(p_user_account::numeric))
                                      FROM unnest(zegolog_user_fields()) AS f);
    END IF;
    SELECT coalesce(array_agg(e.digest), '{}')
    INTO digests
    FROM callback_events AS e
    WHERE e.appid = p_appid
      AND strpos(e.body, needle) > 0
      AND e.body::jsonb @> ANY (patterns);

    -- The logouts' own bodies, which go with their rows (step 4).
    logout_digests := ARRAY(SELECT o.digest FROM room_logouts AS o
                            WHERE o.appid = p_appid AND o.user_account = p_user_account
                              AND o.digest IS NOT NULL);

    -- 2. Their ledger entries, then the bodies (the writers' order: ledger, archive).
    n_ledger := 0;
    n_bodies := 0;
    IF cardinality(digests) + cardinality(logout_digests) > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtext('zegolog_signature_ledger_partitions'));
        DELETE FROM signature_ledger AS l
        WHERE l.appid = p_appid AND l.digest = ANY (digests || logout_digests);
        GET DIAGNOSTICS n_ledger = ROW_COUNT;
        DELETE FROM callback_events AS e WHERE e.digest = ANY (digests);
        GET DIAGNOSTICS n_bodies = ROW_COUNT;
    END IF;

    -- 3. Logins and room creators.
    DELETE FROM room_logins AS i WHERE i.appid = p_appid AND i.user_account = p_user_account;
    GET DIAGNOSTICS n_logins = ROW_COUNT;
    UPDATE room_lifecycle_events AS r SET creator = NULL
    WHERE r.appid = p_appid AND r.creator = p_user_account;
    GET DIAGNOSTICS n_creators = ROW_COUNT;

    -- 4. Logouts and the rollups, under compaction's lock too (retention's second).
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_compact_rollups'));
    zone := zegolog_time_zone();
    longest := (SELECT max_session FROM zegolog_settings);

    DROP TABLE IF EXISTS zegolog_erased;
    CREATE TEMP TABLE zegolog_erased (appid bigint, room_id text, reason integer,
                                      login_at timestamptz, logout_time timestamptz) ON COMMIT DROP;
    WITH gone AS (
        DELETE FROM room_logouts AS o
        WHERE o.appid = p_appid AND o.user_account = p_user_account
        RETURNING o.appid, o.room_id, o.reason,
                  zegolog_session_start(o.login_at, o.logout_time,
                                        o.received_at, longest) AS login_at,
                  o.logout_time
    )
    INSERT INTO zegolog_erased SELECT * FROM gone;
    GET DIAGNOSTICS n_logouts = ROW_COUNT;
    n_timed := 0;

    IF n_logouts > 0 THEN
        -- What the erased logouts contributed, in the one place that says it.
        DROP TABLE IF EXISTS zegolog_erased_rollup;
        CREATE TEMP TABLE zegolog_erased_rollup ON COMMIT DROP AS
        SELECT r.day, r.appid, r.reason, r.bucket, sum(r.sessions) AS sessions,
               sum(r.total_ms) AS total_ms, max(r.max_ms) AS max_ms
        FROM zegolog_erased AS e,
             zegolog_logout_rollup_in(e.appid, e.reason, e.login_at, e.logout_time, zone) AS r
        GROUP BY 1, 2, 3, 4;
        DROP TABLE IF EXISTS zegolog_erased_deltas;
        CREATE TEMP TABLE zegolog_erased_deltas ON COMMIT DROP AS
        SELECT c.appid, c.room_id, c.minute, sum(c.delta) AS delta
        FROM zegolog_erased AS e,
             zegolog_logout_concurrency(e.appid, e.room_id, e.login_at, e.logout_time) AS c
        GROUP BY 1, 2, 3;
        SELECT count(*) INTO n_timed
        FROM zegolog_erased AS e
        WHERE EXISTS (SELECT FROM zegolog_logout_concurrency(e.appid, e.room_id, e.login_at, e.logout_time));

        SELECT array_agg(DISTINCT x.room_id), array_agg(DISTINCT x.minute),
               min(zegolog_local_day(x.minute, zone)), max(zegolog_local_day(x.minute, zone))
        INTO rooms, minutes, first_day, last_day
        FROM zegolog_erased_deltas AS x;
        INSERT INTO pending_contributions (durations, deltas)
        SELECT coalesce((SELECT array_agg(ROW(day, appid, reason, bucket, -sessions, -total_ms,
                                              -9223372036854775808)::zegolog_rollup_row)
                         FROM zegolog_erased_rollup), '{}'),
               coalesce((SELECT array_agg(ROW(appid, room_id, minute, -delta)::zegolog_concurrency_delta)
                         FROM zegolog_erased_deltas), '{}');
        PERFORM zegolog_compact_rollups();

        -- Rows a recomputation would not have. Of the rollup, any row without a session in
        -- the erased sessions' days and reasons: a pairing leaves one in the no-duration
        -- bucket (+1 then -1), which the reason's row would show once its other rows are gone.
        DELETE FROM logout_rollup AS r
        USING (SELECT DISTINCT day, appid, reason FROM zegolog_erased_rollup) AS k
        WHERE r.appid = k.appid AND r.day = k.day AND r.reason = k.reason AND r.sessions = 0;
        DELETE FROM app_concurrency_minute AS m
        WHERE m.appid = p_appid AND m.minute = ANY (minutes) AND m.delta = 0;
        -- (Any zero row of these rooms and minutes goes: a zero row contributes nothing.)
        DELETE FROM room_concurrency_minute AS m
        WHERE m.appid = p_appid AND m.room_id = ANY (rooms) AND m.minute = ANY (minutes)
          AND m.delta = 0;
        DELETE FROM room_concurrency_day AS m
        WHERE m.appid = p_appid AND m.room_id = ANY (rooms) AND m.day BETWEEN first_day AND last_day
          AND m.start = 0 AND m.net = 0 AND m.peak = 0;

        -- The maxima an erased session may have been: recomputed from the day's raw logouts
        -- of those reasons (their arrays aggregated on the shards on Citus, as
        -- zegolog_rebuild_rollups_day does), then set in one statement.
        DROP TABLE IF EXISTS zegolog_erased_max;
        CREATE TEMP TABLE zegolog_erased_max (day date, appid bigint, reason text, bucket integer,
                                              max_ms bigint) ON COMMIT DROP;
        FOR d IN
            SELECT k.day, array_agg(DISTINCT k.reason) AS reasons
            FROM zegolog_erased_rollup AS k
            JOIN logout_rollup AS r
              ON r.appid = k.appid AND r.day = k.day AND r.reason = k.reason AND r.bucket = k.bucket
            WHERE r.max_ms <= k.max_ms AND k.bucket <> zegolog_no_duration_bucket()
            GROUP BY k.day
            ORDER BY 1
        LOOP
            INSERT INTO zegolog_erased_max (day, appid, reason, bucket, max_ms)
            SELECT c.day, c.appid, c.reason, c.bucket, max(c.max_ms)
            FROM (SELECT array_agg(o.appid) AS appid, array_agg(o.reason) AS reason,
                         array_agg(zegolog_session_start(o.login_at,
                                                         o.logout_time, o.received_at, longest)) AS login_time,
                         array_agg(o.logout_time) AS logout_time
                  FROM room_logouts AS o
                  WHERE o.appid = p_appid
                    AND o.logout_time >= zegolog_day_start(d.day, zone)
                    AND o.logout_time < zegolog_day_start(d.day + 1, zone)
                    AND zegolog_reason_name(o.reason) = ANY (d.reasons)) AS a,
                 unnest(a.appid, a.reason, a.login_time, a.logout_time)
                     AS u(appid, reason, login_at, logout_time),
                 zegolog_logout_rollup_in(u.appid, u.reason, u.login_at, u.logout_time, zone) AS c
            WHERE c.day = d.day
            GROUP BY 1, 2, 3, 4;
        END LOOP;
        UPDATE logout_rollup AS r SET max_ms = m.max_ms
        FROM zegolog_erased_max AS m
        WHERE r.appid = m.appid AND r.day = m.day AND r.reason = m.reason AND r.bucket = m.bucket
          AND r.max_ms <> m.max_ms;
        DROP TABLE zegolog_erased_max;
        DROP TABLE zegolog_erased_rollup;
        DROP TABLE zegolog_erased_deltas;
    END IF;
    DROP TABLE zegolog_erased;

    RETURN QUERY VALUES
        ('callback_events', n_bodies, 'raw bodies deleted'),
        ('signature_ledger', n_ledger, 'entries deleted'),
        ('room_logins', n_logins, 'rows deleted'),
        ('room_logouts', n_logouts, 'rows deleted'),
        ('room_lifecycle_events', n_creators, 'creators cleared (the rooms are kept)'),
        ('logout_rollup', n_logouts, 'sessions subtracted (durations and reasons, every day view)'),
        ('concurrency', n_timed, 'sessions subtracted (users online and the peaks)');
END
$_$;
COMMENT ON FUNCTION zegolog_erase_user(p_appid bigint, p_user_account text) IS 'Erases user p_user_account of app p_appid (zegolog erase): their logins, logouts, every archived body naming them (zegolog_user_fields()) and its signature ledger entries; clears them as room creator; takes their sessions out of every rollup. One transaction, idempotent; returns what it removed per table.';
