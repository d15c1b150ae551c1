-- Run on Citus (issue 12): the per-room concurrency rollups, room_concurrency_minute and
-- room_concurrency_day, distributed by room_id and colocated with room_logouts. They grow like
-- the raw tables (about two minute rows per logout), which 0016 kept on the coordinator as
-- Citus local tables because compaction's per-room day refresh (a LATERAL window and a
-- correlated subquery per room) could not be planned across shards.
--
-- 1. zegolog_distribute_tables() (0016) places them by room_id with room_logouts, and converts
--    them where 0016 made them Citus local tables: undistribute_table() brings the rows back
--    into a plain table, create_distributed_table() copies them to the shards (inside the
--    migration's transaction: all or nothing). It also makes, on Citus only, the staging table
--    zegolog_room_days (appid, room_id, day), distributed by room_id with them: the room-days a
--    refresh recomputes, which a temp table (on the coordinator, unknown to Citus) cannot be
--    joined with on the shards.
-- 2. zegolog_citus_room_rollups(), a third step of zegolog_distribute(), redefines on Citus
--    only (plain PostgreSQL keeps 0018's definitions and speed):
--    - zegolog_refresh_concurrency_days: its per-app part as it is (the per-app rollups stay
--      on the coordinator); its per-room part copies the room-days of zegolog_days (the temp
--      table compaction and the time-zone rebuild fill) into zegolog_room_days, then recomputes
--      them in one INSERT ... SELECT ... ON CONFLICT whose joins, window PARTITION BYs and
--      groupings all hold room_id, and which has no correlated subquery (the day before a
--      room's first day is a join grouped per room, the in-day running sum a window per
--      room-day): Citus pushes it down whole, each shard refreshes its rooms. The rows are
--      deleted again before it returns; compaction's advisory lock (which the time-zone
--      change holds too) lets one refresh at a time use the table. Rewritten from its
--      definition in pg_proc (jit = off of 0018 stays), whenever a migration replaces it.
--    - room_users_online, a SQL function with parameters over room_concurrency_minute, which
--      Citus cannot plan once that table is distributed ("could not create distributed
--      plan"): PL/pgSQL with the same body (RETURN QUERY), as 0016 did for others.
-- Compaction's other statements (from its temp table into room_concurrency_minute), the
-- time-zone change (deletes, its temp table of spans), retention's delete, zegolog_peaks_in and
-- the views are planned by Citus as written: the Citus suite checks them equal to one
-- PostgreSQL's.

CREATE OR REPLACE FUNCTION zegolog_distribute_tables() RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    f record;
    converted text[];
    comments text[];
    rel text;
    stmt text;
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
    -- The refresh's room-days (migration 0020), on Citus only.
    IF to_regclass('zegolog_room_days') IS NULL THEN
        CREATE TABLE zegolog_room_days (
            appid bigint NOT NULL,
            room_id text NOT NULL,
            day date NOT NULL
        );
        COMMENT ON TABLE zegolog_room_days IS
            'On Citus: the room-days zegolog_refresh_concurrency_days recomputes, distributed with room_concurrency_day so that the refresh runs on the shards; empty outside a refresh.';
    END IF;
    -- Citus local tables of 0016 that are now distributed: back to plain tables, rows kept.
    -- undistribute_table() makes the tables (other oids: kept by name here) and the views over
    -- them again, without their comments: those are kept here and set again after.
    converted := ARRAY(
        SELECT p.logicalrelid::regclass::text FROM pg_dist_partition AS p
        WHERE p.logicalrelid IN ('room_concurrency_minute'::regclass, 'room_concurrency_day'::regclass)
          AND p.partmethod = 'n'
        ORDER BY 1);
    comments := ARRAY(
        SELECT CASE WHEN d.objsubid = 0
                    THEN format('COMMENT ON %s %s IS %L', CASE c.relkind WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END,
                                c.oid::regclass, d.description)
                    ELSE format('COMMENT ON COLUMN %s.%I IS %L', c.oid::regclass, a.attname, d.description) END
        FROM pg_description AS d
        JOIN pg_class AS c ON c.oid = d.objoid
        LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = d.objsubid
        WHERE d.classoid = 'pg_class'::regclass
          AND (c.oid = ANY (converted::regclass[])
               OR c.oid IN (SELECT r.ev_class FROM pg_rewrite AS r
                            JOIN pg_depend AS dep ON dep.classid = 'pg_rewrite'::regclass AND dep.objid = r.oid
                            WHERE dep.refobjid = ANY (converted::regclass[]))));
    FOREACH rel IN ARRAY converted LOOP
        PERFORM undistribute_table(rel::regclass);
    END LOOP;
    FOR t IN
        SELECT l.name, l.how, l.col, l.colocate
        FROM (VALUES
            (1, 'room_logouts', 'distributed', 'room_id', 'none'),
            (2, 'room_logins', 'distributed', 'room_id', 'room_logouts'),
            (3, 'room_lifecycle_events', 'distributed', 'room_id', 'room_logouts'),
            (4, 'room_concurrency_minute', 'distributed', 'room_id', 'room_logouts'),
            (5, 'room_concurrency_day', 'distributed', 'room_id', 'room_logouts'),
            (6, 'zegolog_room_days', 'distributed', 'room_id', 'room_logouts'),
            (7, 'callback_events', 'distributed', 'digest', 'none'),
            (8, 'signature_ledger', 'distributed', 'signature', 'none'),
            (9, 'zegolog_settings', 'reference', NULL, NULL),
            (10, 'logout_rollup_pending', 'local', NULL, NULL),
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
    FOREACH rel IN ARRAY converted LOOP
        -- The coordinator's copy of the rows, now on the shards.
        PERFORM truncate_local_data_after_distributing_table(rel::regclass);
    END LOOP;
    FOREACH stmt IN ARRAY comments LOOP
        EXECUTE stmt;
    END LOOP;
    -- Analyst functions over the raw tables that are SQL and SECURITY DEFINER are never
    -- inlined, and Citus cannot plan a SQL function's parameters ("could not create
    -- distributed plan"): these become PL/pgSQL with the same body (RETURN QUERY), whose
    -- parameters Citus plans as values. Same signature, owner, grants and comment; once (they
    -- are PL/pgSQL after). Those the Citus suite checks equal to one PostgreSQL's, and
    -- room_users_online since its rollups are distributed (0020).
    FOR f IN
        SELECT p.proname::text AS name, pg_get_function_arguments(p.oid) AS args,
               pg_get_function_result(p.oid) AS result, p.provolatile, p.prosrc
        FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang
        WHERE p.pronamespace = 'public'::regnamespace AND l.lanname = 'sql'
          AND p.proname IN ('abnormal_rooms_between', 'abnormal_users_between', 'incident_reasons',
                            'room_users_online')
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

COMMENT ON FUNCTION zegolog_distribute_tables() IS
    'zegolog_distribute()''s first step (0016, 0020): on a Citus coordinator, distributes the tables not distributed yet (raw tables and per-room concurrency rollups by room_id, colocated; callback_events by digest; signature_ledger by signature; the pending tables and per-app rollups as Citus local tables on the coordinator; settings as a reference table), converting per-room rollups that were Citus local tables with their rows, and returns their names; on PostgreSQL without the citus extension, does nothing. Idempotent.';

CREATE FUNCTION zegolog_citus_room_rollups() RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    marker CONSTANT text := '-- Per room: the same, keyed on (appid, room_id).';
    made CONSTANT text := '-- zegolog_citus_room_rollups: per room, on the shards (migration 0020)';
    def text;
    at integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    SELECT pg_get_functiondef(p.oid), position(marker IN pg_get_functiondef(p.oid)) INTO def, at
    FROM pg_proc AS p WHERE p.oid = 'zegolog_refresh_concurrency_days(text)'::regprocedure;
    IF position(made IN def) > 0 THEN
        RETURN;
    END IF;
    IF at = 0 THEN
        RAISE EXCEPTION 'zegolog_refresh_concurrency_days has no "%": its Citus form (0020) needs another rewrite', marker;
    END IF;
    -- The per-app part as it is; the per-room part (to the end) replaced.
    EXECUTE left(def, at - 1) || made || $f$
    -- The room-days, where the shards can join them with the rollups.
    INSERT INTO zegolog_room_days (appid, room_id, day)
    SELECT appid, room_id, day FROM zegolog_days;
    -- Every join, window and grouping on room_id: one statement each shard runs for its rooms.
    INSERT INTO room_concurrency_day AS r (appid, room_id, day, net, peak)
    SELECT b.appid, b.room_id, b.day, b.net,
           greatest(CASE WHEN bool_or(w.at_midnight) IS NOT TRUE THEN b.base END, max(b.base + w.running))
    FROM (
        SELECT n.appid, n.room_id, n.day, n.net,
               s.before
               + coalesce(sum(n.net) OVER (PARTITION BY n.room_id, n.appid ORDER BY n.day
                                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS base
        FROM (
            SELECT d.appid, d.room_id, d.day, coalesce(sum(m.delta), 0) AS net
            FROM zegolog_room_days AS d
            LEFT JOIN room_concurrency_minute AS m
              ON m.room_id = d.room_id AND m.appid = d.appid
             AND m.minute >= d.day::timestamp AT TIME ZONE zone
             AND m.minute < (d.day + 1)::timestamp AT TIME ZONE zone
            GROUP BY d.room_id, d.appid, d.day
        ) AS n
        JOIN (
            -- The net of every day before the room's first one.
            SELECT f.appid, f.room_id, coalesce(sum(p.net), 0) AS before
            FROM (SELECT appid, room_id, min(day) AS first_day
                  FROM zegolog_room_days GROUP BY room_id, appid) AS f
            LEFT JOIN room_concurrency_day AS p
              ON p.room_id = f.room_id AND p.appid = f.appid AND p.day < f.first_day
            GROUP BY f.room_id, f.appid
        ) AS s ON s.room_id = n.room_id AND s.appid = n.appid
    ) AS b
    LEFT JOIN (
        -- The running sum over each room-day's minutes.
        SELECT d.appid, d.room_id, d.day,
               sum(m.delta) OVER (PARTITION BY d.room_id, d.appid, d.day ORDER BY m.minute) AS running,
               m.minute = d.day::timestamp AT TIME ZONE zone AS at_midnight
        FROM zegolog_room_days AS d
        JOIN room_concurrency_minute AS m
          ON m.room_id = d.room_id AND m.appid = d.appid
         AND m.minute >= d.day::timestamp AT TIME ZONE zone
         AND m.minute < (d.day + 1)::timestamp AT TIME ZONE zone
    ) AS w ON w.room_id = b.room_id AND w.appid = b.appid AND w.day = b.day
    GROUP BY b.room_id, b.appid, b.day, b.net, b.base
    ON CONFLICT (appid, room_id, day) DO UPDATE SET net = excluded.net, peak = excluded.peak;
    DELETE FROM zegolog_room_days;
END
$function$
$f$;
    RETURN NEXT 'zegolog_refresh_concurrency_days(text)';
END
$$;

COMMENT ON FUNCTION zegolog_citus_room_rollups() IS
    'zegolog_distribute()''s third step (0020): on a Citus coordinator, redefines zegolog_refresh_concurrency_days so that its per-room refresh runs on the shards (through zegolog_room_days), whenever a migration replaced it, and returns what it changed; on PostgreSQL without the citus extension, does nothing. Idempotent.';

CREATE OR REPLACE FUNCTION zegolog_distribute() RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT zegolog_distribute_tables();
    RETURN QUERY SELECT zegolog_citus_read_side();
    RETURN QUERY SELECT zegolog_citus_room_rollups();
END
$$;

COMMENT ON FUNCTION zegolog_distribute() IS
    'On a Citus coordinator, distributes the tables not distributed yet (zegolog_distribute_tables), redefines the read side for Citus (zegolog_citus_read_side) and the per-room rollup refresh (zegolog_citus_room_rollups), and returns what it changed; on PostgreSQL without the citus extension, does nothing. Idempotent.';
