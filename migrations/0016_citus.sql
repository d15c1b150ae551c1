-- Run on Citus (issue 12): keys that hold a distribution column, a pairing Citus can plan, and
-- the function that distributes every table, which zegolog calls after its migrations and
-- which does nothing on a PostgreSQL without the citus extension.
--
-- 1. callback_events is distributed by digest, its natural key. Citus refuses a unique
--    constraint without the distribution column ("cannot create constraint on
--    callback_events"), so the primary key on id goes; id stays what it was (an identity,
--    unique by construction, indexed for `quarantine release <id>`). Nothing is rewritten: the
--    rows and their ids are kept, the unique key on digest was there already.
--    signature_ledger is distributed by signature, which its key (signed_at, nonce, signature)
--    already holds: no key change.
-- 2. zegolog_pair_recent_logouts (0009), without what Citus refuses across shards: a LATERAL
--    subquery on a distributed table becomes a join grouped per logout (on the raw tables'
--    shared key, room_id among it: a colocated join), and FOR UPDATE (single-shard only on
--    Citus) becomes a guard in the UPDATE itself: a logout is moved to its new login only if
--    its pairing is still the one read (`IS NOT DISTINCT FROM old_login`, rechecked on the
--    latest row version once its lock is held), so that its rollup contribution is taken back
--    exactly once. A logout a concurrent statement paired first is left to the next pass.
--    PL/pgSQL rather than SQL: Citus cannot plan a SQL function's parameters.
-- 3. zegolog_distribute(): the layout, in one place (see docs/citus.md):
--    - the raw tables by room_id, colocated, so that a room's logins, logouts and lifecycle
--      are on one shard and every join between them is local to it;
--    - callback_events by digest and signature_ledger by signature: spread evenly, looked up
--      by their key only;
--    - zegolog_settings (one row: the reporting zone) as a reference table, a copy on every
--      node, since the daily views read it through zegolog_time_zone() on the shards;
--    - the per-app rollups and the pending tables stay on the coordinator: they
--      are small (rows per app and day or minute, not per callback), and each batch's pending
--      rows are then one local insert, not a two-phase commit on every node (as a reference
--      table's would be). Those the write path and the views use with distributed tables are
--      Citus local tables (in Citus's metadata, so that it plans them with distributed ones);
--      logout_rollup, logout_duration_day and logout_reason_day stay plain tables, because
--      logout_rollup's statement triggers with transition tables (0005, 0006) maintain the other
--      two, which Citus refuses on reference and distributed tables ("cannot distribute
--      relation because it has triggers") and cannot plan on Citus local tables ("unrecognized
--      RTE kind"); only compaction, retention and the daily views touch them;
--    - the per-room concurrency rollups (room_concurrency_minute, room_concurrency_day) on the
--      coordinator too, for now: compaction refreshes their days with a LATERAL window and a
--      correlated subquery per room, which Citus cannot plan across shards. They are written
--      by compaction only, never by the write path.

ALTER TABLE callback_events DROP CONSTRAINT callback_events_pkey;
CREATE INDEX callback_events_id_idx ON callback_events (id);

CREATE OR REPLACE FUNCTION zegolog_pair_recent_logouts(p_since interval DEFAULT '10 minutes')
RETURNS bigint
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
        GROUP BY o.appid, o.session_id, o.logout_time, o.room_id, o.user_account,
                 o.paired_login_time
        HAVING o.paired_login_time IS NULL OR max(i.login_time) > o.paired_login_time
    ), paired AS (
        UPDATE room_logouts AS o SET paired_login_time = k.new_login
        FROM candidates AS k
        WHERE o.appid = k.appid AND o.session_id = k.session_id AND o.logout_time = k.logout_time
          AND o.room_id = k.room_id AND o.user_account = k.user_account
          AND o.login_time IS NULL
          AND o.paired_login_time IS NOT DISTINCT FROM k.old_login
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
    SELECT count(*) INTO n FROM paired;
    RETURN n;
END
$$;

CREATE FUNCTION zegolog_distribute() RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    f record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    IF NOT citus_is_coordinator() THEN
        RAISE EXCEPTION 'this database is on a Citus worker, not the coordinator'
            USING HINT = 'Point zegolog (DATABASE_URL) at the Citus coordinator.';
    END IF;
    -- Two instances starting at once: one distributes, the other then finds it done.
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_distribute'));
    -- One connection per node for the whole transaction: Citus refuses function DDL (below)
    -- after a parallel operation on a distributed table in the same transaction.
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    FOR t IN
        SELECT l.name, l.how, l.col, l.colocate
        FROM (VALUES
            (1, 'room_logouts', 'distributed', 'room_id', 'none'),
            (2, 'room_logins', 'distributed', 'room_id', 'room_logouts'),
            (3, 'room_lifecycle_events', 'distributed', 'room_id', 'room_logouts'),
            (4, 'room_concurrency_minute', 'local', NULL, NULL),
            (5, 'room_concurrency_day', 'local', NULL, NULL),
            (6, 'callback_events', 'distributed', 'digest', 'none'),
            (7, 'signature_ledger', 'distributed', 'signature', 'none'),
            (8, 'zegolog_settings', 'reference', NULL, NULL),
            (9, 'logout_rollup_pending', 'local', NULL, NULL),
            (13, 'concurrency_pending', 'local', NULL, NULL),
            (14, 'app_concurrency_minute', 'local', NULL, NULL),
            (15, 'app_concurrency_day', 'local', NULL, NULL)
        ) AS l(ord, name, how, col, colocate)
        WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition AS p
                          WHERE p.logicalrelid = l.name::regclass)
        ORDER BY l.ord
    LOOP
        IF t.how = 'distributed' THEN
            PERFORM create_distributed_table(t.name::regclass, t.col, colocate_with => t.colocate);
        ELSIF t.how = 'reference' THEN
            PERFORM create_reference_table(t.name::regclass);
            -- The daily views call zegolog_time_zone() in the queries Citus runs on the
            -- shards: there it reads the reference table's local copy, a query Citus nests in
            -- the shard's (safe here: a one-row table that a change of zone writes alone).
            ALTER FUNCTION zegolog_time_zone() SET citus.allow_nested_distributed_execution = on;
        ELSE
            PERFORM citus_add_local_table_to_metadata(t.name::regclass);
        END IF;
        RETURN NEXT t.name;
    END LOOP;
    -- Analyst functions over the raw tables that are SQL and SECURITY DEFINER are never
    -- inlined, and Citus cannot plan a SQL function's parameters ("could not create
    -- distributed plan"): these become PL/pgSQL with the same body (RETURN QUERY), whose
    -- parameters Citus plans as values. Same signature, owner, grants and comment; once (they
    -- are PL/pgSQL after). Only those the Citus suite checks equal to one PostgreSQL's: the
    -- *_daily_in functions go through zegolog_buckets_in / zegolog_peaks_in and
    -- zegolog_appids()'s recursive CTE, which Citus refuses (docs/citus.md, limits).
    FOR f IN
        SELECT p.proname::text AS name, pg_get_function_arguments(p.oid) AS args,
               pg_get_function_result(p.oid) AS result, p.provolatile, p.prosrc
        FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang
        WHERE p.pronamespace = 'public'::regnamespace AND l.lanname = 'sql'
          AND p.proname IN ('abnormal_rooms_between', 'abnormal_users_between', 'incident_reasons')
        ORDER BY 1
    LOOP
        EXECUTE format(
            'CREATE OR REPLACE FUNCTION %I(%s) RETURNS %s LANGUAGE plpgsql %s SECURITY DEFINER '
            'SET search_path = pg_catalog, public, pg_temp AS %L',
            f.name, f.args, f.result,
            CASE f.provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END,
            E'#variable_conflict use_column\nBEGIN\nRETURN QUERY '
                || regexp_replace(f.prosrc, ';\s*$', '') || E';\nEND');
        RETURN NEXT f.name || '()';
    END LOOP;
END
$$;

COMMENT ON FUNCTION zegolog_distribute() IS
    'On a Citus coordinator, distributes the tables not distributed yet (raw tables by room_id, colocated; callback_events by digest; signature_ledger by signature; the pending tables, settings and concurrency rollups as Citus local tables on the coordinator) and returns their names; on PostgreSQL without the citus extension, does nothing. Idempotent.';
