-- What differs on Citus: the layout of the tables across the nodes, and the few functions and
-- views Citus cannot plan as migrations/ writes them. zegolog applies this file after the
-- migrations on a database with the citus extension (src/store/mod.rs, `Store::migrate`), in
-- one transaction, at every start: every statement is idempotent. Plain PostgreSQL never reads
-- it; schema/current.sql is plain PostgreSQL's schema. docs/citus.md says why each choice.
--
-- What Citus cannot do, and what migrations/ does about it once for both:
-- - A function called inside a query runs on the shards, where it may not query a
--   distributed table: the functions that list the apps (zegolog_appids) compute the list into
--   a variable before their query, on both.
-- - Citus cannot plan a SQL function's parameters, nor see a distributed table behind an inlined
--   SQL function: the analyst functions over the raw tables are PL/pgSQL (RETURN QUERY), on both.
-- - A recursive CTE over a distributed table is refused: zegolog_appids is a loop, on both.
-- What stays different, below: the layout; zegolog_time_zone() read on the shards;
-- room_lifecycle without LATERAL; the per-room refresh of compaction on the shards; the
-- analyst's views through SECURITY DEFINER functions.

-- One connection per node for the whole transaction: Citus refuses function DDL after a
-- parallel operation on a distributed table in the same transaction.
SET LOCAL citus.multi_shard_modify_mode = 'sequential';
-- Two instances starting at once: one applies, the other waits and finds it done.
SELECT pg_advisory_xact_lock(hashtext('zegolog_distribute'));

DO $$
BEGIN
    IF NOT citus_is_coordinator() THEN
        RAISE EXCEPTION 'this database is on a Citus worker, not the coordinator'
            USING HINT = 'Point zegolog (DATABASE_URL) at the Citus coordinator.';
    END IF;
END
$$;

-- The room-days compaction's per-room refresh recomputes, distributed with the rollups so that
-- the refresh runs on the shards; empty outside a refresh.
CREATE TABLE IF NOT EXISTS zegolog_room_days (
    appid bigint NOT NULL,
    room_id text NOT NULL,
    day date NOT NULL,
    moved_before bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE zegolog_room_days IS
    'On Citus: the room-days zegolog_refresh_concurrency_days recomputes, distributed with room_concurrency_day so that the refresh runs on the shards; empty outside a refresh.';

-- The layout:
-- - the raw tables and the per-room rollups by room_id, colocated: a room's logins, logouts,
--   lifecycle and concurrency are on one shard, and every join between them is local to it;
-- - callback_events by digest and signature_ledger by signature: spread evenly, looked up by
--   their key only;
-- - zegolog_settings as a reference table: the daily views read it on the shards;
-- - the pending contributions and the per-app rollups as Citus local tables on the coordinator:
--   small (a row per statement; rows per app and minute or day), and each batch's pending row
--   one local insert rather than a two-phase commit on every node. logout_rollup and its two day summaries stay plain
--   tables: its statement triggers (transition tables) are refused on distributed and
--   reference tables and cannot be planned on Citus local tables.
DO $$
DECLARE
    t record;
BEGIN
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
            (10, 'pending_contributions', 'local', NULL, NULL),
            (11, 'app_concurrency_minute', 'local', NULL, NULL),
            (12, 'app_concurrency_day', 'local', NULL, NULL)
        ) AS l(ord, name, how, col, colocate)
        WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition AS p WHERE p.logicalrelid = l.name::regclass)
        ORDER BY l.ord
    LOOP
        IF t.how = 'distributed' THEN
            PERFORM create_distributed_table(t.name::regclass, t.col, colocate_with => t.colocate);
        ELSIF t.how = 'reference' THEN
            PERFORM create_reference_table(t.name::regclass);
        ELSE
            PERFORM citus_add_local_table_to_metadata(t.name::regclass);
        END IF;
        RAISE NOTICE 'distributed %', t.name;
    END LOOP;
END
$$;

-- The daily views call zegolog_time_zone() in the queries Citus runs on the shards: there it
-- reads the reference table's local copy, a query Citus nests in the shard's (safe here: a
-- one-row table that a change of zone writes alone).
ALTER FUNCTION zegolog_time_zone() SET citus.allow_nested_distributed_execution = on;

-- Compaction's per-room refresh (migrations/0102), with every join, window and grouping on
-- room_id through zegolog_room_days: one statement each shard runs for its rooms (PostgreSQL's
-- form reads each room-day's minutes through a LATERAL subquery, which Citus cannot push down).
CREATE OR REPLACE FUNCTION zegolog_refresh_room_concurrency_days(zone text) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    INSERT INTO zegolog_room_days (appid, room_id, day, moved_before)
    SELECT appid, room_id, day, moved_before FROM zegolog_days;
    INSERT INTO room_concurrency_day AS r (appid, room_id, day, start, net, peak)
    SELECT b.appid, b.room_id, b.day, b.base, b.net,
           coalesce(greatest(CASE WHEN bool_or(w.at_midnight) IS NOT TRUE THEN b.base END, max(b.base + w.running)), 0)
    FROM (
        SELECT n.appid, n.room_id, n.day, n.net, coalesce(s.users, 0) + n.moved_before AS base
        FROM (
            SELECT d.appid, d.room_id, d.day, d.moved_before, coalesce(sum(m.delta), 0) AS net
            FROM zegolog_room_days AS d
            LEFT JOIN room_concurrency_minute AS m
              ON m.room_id = d.room_id AND m.appid = d.appid
             AND m.minute >= zegolog_day_start(d.day, zone) AND m.minute < zegolog_day_start(d.day + 1, zone)
            GROUP BY d.room_id, d.appid, d.day, d.moved_before
        ) AS n
        LEFT JOIN (
            -- Online at the start of each room-day: the latest row at or before it.
            SELECT d.appid, d.room_id, d.day,
                   (array_agg(CASE WHEN p.day = d.day THEN p.start ELSE p.start + p.net END
                              ORDER BY p.day DESC))[1] AS users
            FROM zegolog_room_days AS d
            JOIN room_concurrency_day AS p
              ON p.room_id = d.room_id AND p.appid = d.appid AND p.day <= d.day
            GROUP BY d.room_id, d.appid, d.day
        ) AS s ON s.room_id = n.room_id AND s.appid = n.appid AND s.day = n.day
    ) AS b
    LEFT JOIN (
        -- The running sum over each room-day's minutes.
        SELECT d.appid, d.room_id, d.day,
               sum(m.delta) OVER (PARTITION BY d.room_id, d.appid, d.day ORDER BY m.minute) AS running,
               m.minute = zegolog_day_start(d.day, zone) AS at_midnight
        FROM zegolog_room_days AS d
        JOIN room_concurrency_minute AS m
          ON m.room_id = d.room_id AND m.appid = d.appid
         AND m.minute >= zegolog_day_start(d.day, zone) AND m.minute < zegolog_day_start(d.day + 1, zone)
    ) AS w ON w.room_id = b.room_id AND w.appid = b.appid AND w.day = b.day
    GROUP BY b.room_id, b.appid, b.day, b.net, b.base
    ON CONFLICT (appid, room_id, day) DO UPDATE SET start = excluded.start, net = excluded.net, peak = excluded.peak;
    DELETE FROM zegolog_room_days;
END
$$;

-- room_lifecycle without LATERAL over a UNION ("cannot push down this subquery"): the
-- lifecycle keys joined with per-lifecycle aggregates grouped by (appid, room_id, room_seq),
-- grouped by the distribution column, so that each shard computes its rooms' lifecycles whole.
CREATE OR REPLACE VIEW room_lifecycle AS
SELECT k.appid, k.room_id, k.room_seq,
       e.created_at, e.creator, e.closed_at, e.close_reason AS close_reason_code,
       CASE WHEN e.closed_at IS NOT NULL THEN zegolog_close_reason_name(e.close_reason) END AS close_reason,
       e.closed_at - e.created_at AS lifetime,
       coalesce(s.sessions, 0) AS sessions,
       coalesce(s.users, 0) AS users,
       coalesce(s.user_minutes, 0) AS user_minutes,
       zegolog_lifecycle_peak(s.ins, s.outs) AS peak_users,
       s.first_login_at, s.last_logout_at
FROM (
    SELECT e.appid, e.room_id, e.room_session_id AS room_seq FROM room_lifecycle_events AS e
    UNION
    SELECT l.appid, l.room_id, l.room_seq FROM room_logouts AS l WHERE l.room_seq IS NOT NULL
) AS k
LEFT JOIN (
    SELECT v.appid, v.room_id, v.room_session_id AS room_seq,
           max(v.at) FILTER (WHERE v.event = 'room_create') AS created_at,
           max(v.creator) FILTER (WHERE v.event = 'room_create') AS creator,
           max(v.at) FILTER (WHERE v.event = 'room_close') AS closed_at,
           max(v.close_reason) FILTER (WHERE v.event = 'room_close') AS close_reason
    FROM room_lifecycle_events AS v
    GROUP BY v.appid, v.room_id, v.room_session_id
) AS e ON e.appid = k.appid AND e.room_id = k.room_id AND e.room_seq = k.room_seq
LEFT JOIN (
    SELECT r.appid, r.room_id, r.room_seq,
           count(*) AS sessions,
           count(DISTINCT r.user_account) AS users,
           coalesce(sum(greatest(extract(EPOCH FROM r.logout_time - r.login_at), 0)) / 60, 0)::double precision AS user_minutes,
           min(r.login_at) AS first_login_at,
           max(r.logout_time) AS last_logout_at,
           array_agg(date_trunc('minute', r.login_at, 'UTC')) FILTER (WHERE r.logout_time >= r.login_at) AS ins,
           array_agg(date_trunc('minute', r.logout_time, 'UTC') + interval '1 minute') FILTER (WHERE r.logout_time >= r.login_at) AS outs
    FROM room_logouts AS r
    WHERE r.room_seq IS NOT NULL
    GROUP BY r.appid, r.room_id, r.room_seq
) AS s ON s.appid = k.appid AND s.room_id = k.room_id AND s.room_seq = k.room_seq;

-- The analyst (grant-analyst). Citus runs the queries it makes of a view on the shards as the
-- querying role, not as the view's owner, so a view is refused to an analyst who may read none
-- of its tables. In schema zegolog_analyst, each view of public gets a SECURITY DEFINER
-- function that returns its rows as the owner, and a view of the same name over it;
-- grant-analyst grants those and puts zegolog_analyst first in the analyst's search_path. Made
-- from the catalog's list of views and their columns (no body is rewritten), again whenever a
-- view has other columns.
CREATE SCHEMA IF NOT EXISTS zegolog_analyst;
COMMENT ON SCHEMA zegolog_analyst IS
    'On Citus: the views of public as the analyst reads them (grant-analyst puts this schema first in its search_path), each over a SECURITY DEFINER function that returns the view''s rows as their owner.';
DO $$
DECLARE
    v record;
    made text;
BEGIN
    FOR v IN
        SELECT c.relname::text AS name,
               string_agg(format('%I %s', a.attname, format_type(a.atttypid, NULL)), ', ' ORDER BY a.attnum) AS columns
        FROM pg_class AS c
        JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'v'
          -- Not Citus's own views of the cluster (citus_tables, ...).
          AND NOT EXISTS (SELECT 1 FROM pg_depend AS d
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
        GROUP BY c.relname
        ORDER BY 1
    LOOP
        made := (SELECT pg_get_function_result(p.oid) FROM pg_proc AS p
                 WHERE p.pronamespace = 'zegolog_analyst'::regnamespace
                   AND p.proname = v.name || '_rows' AND p.pronargs = 0);
        CONTINUE WHEN made = 'TABLE(' || v.columns || ')';
        EXECUTE format('DROP VIEW IF EXISTS zegolog_analyst.%I', v.name);
        EXECUTE format('DROP FUNCTION IF EXISTS zegolog_analyst.%I()', v.name || '_rows');
        EXECUTE format(
            'CREATE FUNCTION zegolog_analyst.%I() RETURNS TABLE(%s) LANGUAGE plpgsql STABLE SECURITY DEFINER '
            'SET search_path = pg_catalog, public, pg_temp AS %L',
            v.name || '_rows', v.columns, format('BEGIN RETURN QUERY SELECT * FROM public.%I; END', v.name));
        EXECUTE format('REVOKE ALL ON FUNCTION zegolog_analyst.%I() FROM PUBLIC', v.name || '_rows');
        EXECUTE format('COMMENT ON FUNCTION zegolog_analyst.%I() IS %L', v.name || '_rows',
                       format('On Citus: the rows of public.%I, read as their owner.', v.name));
        EXECUTE format('CREATE VIEW zegolog_analyst.%I AS SELECT * FROM zegolog_analyst.%I()',
                       v.name, v.name || '_rows');
        EXECUTE format('COMMENT ON VIEW zegolog_analyst.%I IS %L', v.name,
                       format('On Citus, the analyst''s %I: the rows of public.%I (see its comment), read as their owner; filters apply to all of them.', v.name, v.name));
    END LOOP;
END
$$;
