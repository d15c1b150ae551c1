-- Run on Citus, the read side that Citus refused after 0016 (docs/citus.md): room_lifecycle,
-- room_lifecycle_between and the *_daily_in functions. Only on a database with the citus
-- extension, by zegolog_distribute() (which zegolog calls after its migrations); plain
-- PostgreSQL keeps every definition it had.
--
-- What Citus cannot do, and so what changes there:
-- 1. The app list. zegolog_appids() is a recursive CTE (a loose index scan), which Citus refuses
--    on distributed tables. On Citus it becomes the same loose index scan as a loop, one
--    `min(appid) ... WHERE appid > previous` per app and table: each a distributed query that
--    every shard answers from its index.
-- 2. The app list inside a query on the shards. A function called in a query Citus sends to the
--    shards runs there, where a query on a distributed table is refused ("cannot execute a
--    distributed query from a query on a shard"). So every PL/pgSQL function that calls
--    zegolog_appids() in a query computes the list once, before it, into a variable (a
--    parameter of the query for Citus): the same text otherwise (rewritten from pg_proc, so the
--    bodies are not copied here, and again whenever a later migration replaces one).
-- 3. A distributed table behind an inlined SQL function. When a query reaches a distributed
--    table only through a SQL function that PostgreSQL inlines after Citus has planned (the
--    *_daily_in functions over zegolog_buckets_in, in a subquery), Citus does not see the
--    table and the plan reads the coordinator's empty shell of it: zero rows, no error. This is
--    why turning logout_reasons_daily_in into PL/pgSQL, as 0016 did for the abnormal-rooms
--    functions, answered nothing. zegolog_buckets_in becomes PL/pgSQL on Citus: a function
--    PostgreSQL cannot inline, whose query Citus plans on its own (the daily shares and
--    percentiles over its few rows stay where they are, on the coordinator). Its subquery loses
--    its OFFSET 0, which Citus would answer by fetching every raw row to the coordinator.
-- 4. LATERAL subqueries over a UNION ("cannot push down this subquery"). room_lifecycle and
--    room_lifecycle_between become joins of the lifecycle keys with per-lifecycle aggregates
--    grouped by (appid, room_id, room_seq): grouped by the distribution column, so each shard
--    computes its rooms' lifecycles whole; a lifecycle without logouts gets the zeros the
--    LATERAL's aggregate over no rows gave. The peak over a lifecycle's sessions is the same
--    expression, as a function of its two arrays (zegolog_lifecycle_peak).
--
-- 5. The analyst (grant-analyst). Citus runs the queries it makes of a view on the shards as
--    the querying role, not as the view's owner, so a view is refused to an analyst who may
--    read none of its tables. In schema zegolog_analyst, each view of public gets a
--    SECURITY DEFINER function that returns its rows as the owner, and a view of the same name
--    over it; grant-analyst grants those and puts zegolog_analyst first in the analyst's
--    search_path, so that the analyst's `SELECT ... FROM session_durations` reads it. The raw
--    tables stay closed. A wrapper whose view changed columns is made again (run grant-analyst
--    again after an upgrade, as on one PostgreSQL). The owner's own queries (report, the
--    dashboard) keep reading public's views, whose filters Citus pushes to the shards; the
--    analyst's are applied to the whole view's rows (docs/citus.md).
--
-- 6. zegolog seed's zegolog_add_to_rollups, a SQL function with parameters over room_logouts
--    ("could not create distributed plan"), becomes PL/pgSQL, with the zone read once and
--    passed to zegolog_logout_rollup_in rather than read per row on the shards.
--
-- zegolog_distribute() of 0016 keeps its work (the tables) as zegolog_distribute_tables(), and
-- zegolog_distribute() is now that, then zegolog_citus_read_side().

ALTER FUNCTION zegolog_distribute() RENAME TO zegolog_distribute_tables;

COMMENT ON FUNCTION zegolog_distribute_tables() IS
    'zegolog_distribute()''s first step (0016): on a Citus coordinator, distributes the tables not distributed yet (raw tables by room_id, colocated; callback_events by digest; signature_ledger by signature; the pending tables, settings and concurrency rollups as Citus local tables on the coordinator) and returns their names; on PostgreSQL without the citus extension, does nothing. Idempotent.';

CREATE FUNCTION zegolog_citus_read_side() RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    case_list CONSTANT text := 'CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END';
    f record;
    v record;
    body text;
    declared text;
    made text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    -- 1, 3 and 4: once (zegolog_appids() is PL/pgSQL after).
    IF (SELECT l.lanname FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang
        WHERE p.oid = 'zegolog_appids()'::regprocedure) = 'sql' THEN
        CREATE OR REPLACE FUNCTION zegolog_appids() RETURNS bigint[]
        LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
        SET search_path = pg_catalog, public, pg_temp AS $f$
        DECLARE
            apps bigint[] := '{}';
            a bigint;
        BEGIN
            a := (SELECT min(appid) FROM room_logouts);
            WHILE a IS NOT NULL LOOP
                apps := apps || a;
                a := (SELECT min(appid) FROM room_logouts WHERE appid > a);
            END LOOP;
            a := (SELECT min(appid) FROM room_logins);
            WHILE a IS NOT NULL LOOP
                apps := apps || a;
                a := (SELECT min(appid) FROM room_logins WHERE appid > a);
            END LOOP;
            a := (SELECT min(appid) FROM room_lifecycle_events);
            WHILE a IS NOT NULL LOOP
                apps := apps || a;
                a := (SELECT min(appid) FROM room_lifecycle_events WHERE appid > a);
            END LOOP;
            RETURN (SELECT coalesce(array_agg(DISTINCT x ORDER BY x), '{}') FROM unnest(apps) AS x);
        END
        $f$;
        RETURN NEXT 'zegolog_appids()';

        CREATE OR REPLACE FUNCTION zegolog_buckets_in(p_zone text, p_from date, p_to date, p_appid bigint)
        RETURNS TABLE(day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint)
        LANGUAGE plpgsql STABLE AS $f$
        #variable_conflict use_column
        DECLARE
            -- zegolog_citus_read_side: the apps, before the queries
            lo timestamptz;
            hi timestamptz;
            apps bigint[] := CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END;
        BEGIN
            SELECT w.lo, w.hi INTO lo, hi FROM zegolog_zone_window(p_zone, p_from, p_to) AS w;
            RETURN QUERY
            WITH coded AS (
                SELECT zegolog_local_day(d.logout_time, p_zone) AS day, d.appid, d.reason,
                       CASE WHEN d.ms IS NULL THEN zegolog_no_duration_bucket() ELSE zegolog_duration_bucket(d.ms) END AS bucket,
                       count(*) AS sessions, sum(coalesce(d.ms, 0)) AS total_ms,
                       coalesce(max(d.ms), -9223372036854775808) AS max_ms
                FROM (
                    SELECT r.logout_time, r.appid, r.reason,
                           (extract(EPOCH FROM r.logout_time - coalesce(r.login_time, r.paired_login_time)) * 1000)::bigint AS ms
                    FROM room_logouts AS r
                    WHERE r.appid = ANY (apps) AND r.logout_time >= lo AND r.logout_time < hi
                ) AS d
                GROUP BY 1, 2, 3, 4
            )
            SELECT c.day, c.appid, zegolog_reason_name(c.reason), c.bucket,
                   sum(c.sessions)::bigint, sum(c.total_ms), max(c.max_ms)
            FROM coded AS c
            GROUP BY 1, 2, 3, 4;
        END
        $f$;
        RETURN NEXT 'zegolog_buckets_in(text, date, date, bigint)';

        CREATE FUNCTION zegolog_lifecycle_peak(ins timestamptz[], outs timestamptz[]) RETURNS bigint
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
            SELECT coalesce((
                SELECT max(w.running)
                FROM (
                    SELECT sum(sum(d.delta)) OVER (ORDER BY d.minute) AS running
                    FROM (SELECT unnest(ins) AS minute, 1 AS delta
                          UNION ALL
                          SELECT unnest(outs), -1) AS d
                    GROUP BY d.minute
                ) AS w
            ), 0)::bigint;
        $f$;
        COMMENT ON FUNCTION zegolog_lifecycle_peak(timestamptz[], timestamptz[]) IS
            'On Citus: the most sessions online in any minute, from the login minutes (+1) and the minutes after the logout minutes (-1) of a room lifecycle''s sessions (room_lifecycle.peak_users).';

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
            SELECT o.appid, o.room_id, o.room_seq,
                   count(*) AS sessions,
                   count(DISTINCT o.user_account) AS users,
                   coalesce(sum(greatest(extract(EPOCH FROM o.logout_time - o.login_at), 0)) / 60, 0)::double precision
                       AS user_minutes,
                   min(o.login_at) AS first_login_at,
                   max(o.logout_time) AS last_logout_at,
                   array_agg(date_trunc('minute', o.login_at, 'UTC'))
                       FILTER (WHERE o.logout_time >= o.login_at) AS ins,
                   array_agg(date_trunc('minute', o.logout_time, 'UTC') + interval '1 minute')
                       FILTER (WHERE o.logout_time >= o.login_at) AS outs
            FROM (SELECT r.appid, r.room_id, r.room_seq, r.user_account, r.logout_time,
                         coalesce(r.login_time, r.paired_login_time) AS login_at
                  FROM room_logouts AS r WHERE r.room_seq IS NOT NULL) AS o
            GROUP BY o.appid, o.room_id, o.room_seq
        ) AS s ON s.appid = k.appid AND s.room_id = k.room_id AND s.room_seq = k.room_seq;
        RETURN NEXT 'room_lifecycle';

        CREATE OR REPLACE FUNCTION room_lifecycle_between(p_appid bigint, p_from timestamptz, p_to timestamptz)
        RETURNS SETOF room_lifecycle
        LANGUAGE plpgsql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, public, pg_temp AS $f$
        DECLARE
            -- zegolog_citus_read_side: the apps, before the queries
            apps bigint[] := CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END;
        BEGIN
            -- The lifecycles of the window (k), each joined with its aggregates over all its
            -- rows; each key list is the same subquery, inlined, so that Citus pushes it down.
            RETURN QUERY
            WITH k AS NOT MATERIALIZED (
                SELECT e.appid, e.room_id, e.room_session_id AS room_seq
                FROM room_lifecycle_events AS e
                WHERE e.appid = ANY (apps) AND e.at >= p_from AND e.at < p_to
                UNION
                SELECT l.appid, l.room_id, l.room_seq
                FROM room_logouts AS l
                WHERE l.appid = ANY (apps) AND l.logout_time >= p_from AND l.logout_time < p_to
                  AND l.room_seq IS NOT NULL
            )
            SELECT k.appid, k.room_id, k.room_seq,
                   e.created_at, e.creator, e.closed_at, e.close_reason AS close_reason_code,
                   CASE WHEN e.closed_at IS NOT NULL THEN zegolog_close_reason_name(e.close_reason) END AS close_reason,
                   e.closed_at - e.created_at AS lifetime,
                   coalesce(s.sessions, 0) AS sessions,
                   coalesce(s.users, 0) AS users,
                   coalesce(s.user_minutes, 0) AS user_minutes,
                   zegolog_lifecycle_peak(s.ins, s.outs) AS peak_users,
                   s.first_login_at, s.last_logout_at
            FROM k
            LEFT JOIN (
                SELECT v.appid, v.room_id, v.room_session_id AS room_seq,
                       max(v.at) FILTER (WHERE v.event = 'room_create') AS created_at,
                       max(v.creator) FILTER (WHERE v.event = 'room_create') AS creator,
                       max(v.at) FILTER (WHERE v.event = 'room_close') AS closed_at,
                       max(v.close_reason) FILTER (WHERE v.event = 'room_close') AS close_reason
                FROM room_lifecycle_events AS v
                WHERE (v.appid, v.room_id, v.room_session_id) IN (SELECT k.appid, k.room_id, k.room_seq FROM k)
                GROUP BY v.appid, v.room_id, v.room_session_id
            ) AS e ON e.appid = k.appid AND e.room_id = k.room_id AND e.room_seq = k.room_seq
            LEFT JOIN (
                SELECT r.appid, r.room_id, r.room_seq,
                       count(*) AS sessions,
                       count(DISTINCT r.user_account) AS users,
                       coalesce(sum(greatest(extract(EPOCH FROM r.logout_time - coalesce(r.login_time, r.paired_login_time)), 0)) / 60, 0)::double precision
                           AS user_minutes,
                       min(coalesce(r.login_time, r.paired_login_time)) AS first_login_at,
                       max(r.logout_time) AS last_logout_at,
                       array_agg(date_trunc('minute', coalesce(r.login_time, r.paired_login_time), 'UTC'))
                           FILTER (WHERE r.logout_time >= coalesce(r.login_time, r.paired_login_time)) AS ins,
                       array_agg(date_trunc('minute', r.logout_time, 'UTC') + interval '1 minute')
                           FILTER (WHERE r.logout_time >= coalesce(r.login_time, r.paired_login_time)) AS outs
                FROM room_logouts AS r
                WHERE (r.appid, r.room_id, r.room_seq) IN (SELECT k.appid, k.room_id, k.room_seq FROM k)
                GROUP BY r.appid, r.room_id, r.room_seq
            ) AS s ON s.appid = k.appid AND s.room_id = k.room_id AND s.room_seq = k.room_seq;
        END
        $f$;
        RETURN NEXT 'room_lifecycle_between(bigint, timestamptz, timestamptz)';
    END IF;
    -- 2: every PL/pgSQL function that lists the apps in a query, each time one is (re)defined.
    FOR f IN
        SELECT p.oid::regprocedure::text AS name, pg_get_functiondef(p.oid) AS def
        FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang
        WHERE p.pronamespace = 'public'::regnamespace AND l.lanname = 'plpgsql'
          AND p.proname NOT IN ('zegolog_appids', 'zegolog_distribute_tables', 'zegolog_citus_read_side')
          AND p.prosrc LIKE '%zegolog_appids()%'
          AND p.prosrc NOT LIKE '%-- zegolog_citus_read_side: the apps, before the queries%'
        ORDER BY 1
    LOOP
        body := f.def;
        declared := E'\n    -- zegolog_citus_read_side: the apps, before the queries (migration 0017)';
        IF position(case_list IN body) > 0 THEN
            body := replace(body, case_list, 'zegolog_apps_or_one');
            declared := declared || E'\n    zegolog_apps_or_one bigint[] := ' || case_list || ';';
        END IF;
        IF position('zegolog_appids()' IN body) > 0 THEN
            body := replace(body, 'zegolog_appids()', 'zegolog_apps');
            declared := declared || E'\n    zegolog_apps bigint[] := zegolog_appids();';
        END IF;
        IF body ~ '\mDECLARE\M' THEN
            body := regexp_replace(body, '\mDECLARE\M', 'DECLARE' || declared);
        ELSE
            body := regexp_replace(body, '\mBEGIN\M', 'DECLARE' || declared || E'\nBEGIN');
        END IF;
        EXECUTE body;
        RETURN NEXT f.name;
    END LOOP;
    -- 6: the seed's rollups (zegolog seed), once: Citus cannot plan its SQL function's
    -- parameters, and the rollup rule it called per row read the zone on the shards; the zone
    -- is read first and passed in (zegolog_logout_rollup_in, as the write path does).
    IF (SELECT l.lanname FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang
        WHERE p.oid = 'zegolog_add_to_rollups(bigint, bigint)'::regprocedure) = 'sql' THEN
        CREATE OR REPLACE FUNCTION zegolog_add_to_rollups(from_id bigint, to_id bigint) RETURNS void
        LANGUAGE plpgsql AS $f$
        DECLARE
            zone text := zegolog_time_zone();
        BEGIN
            INSERT INTO logout_rollup_pending (day, appid, reason, bucket, sessions, total_ms, max_ms)
            SELECT r.day, r.appid, r.reason, r.bucket, sum(r.sessions), sum(r.total_ms), max(r.max_ms)
            FROM room_logouts AS l,
                 zegolog_logout_rollup_in(l.appid, l.reason, coalesce(l.login_time, l.paired_login_time),
                                          l.logout_time, zone) AS r
            WHERE l.id BETWEEN from_id AND to_id
            GROUP BY 1, 2, 3, 4;
            INSERT INTO concurrency_pending (appid, room_id, minute, delta)
            SELECT c.appid, c.room_id, c.minute, sum(c.delta)
            FROM room_logouts AS l,
                 zegolog_logout_concurrency(l.appid, l.room_id, coalesce(l.login_time, l.paired_login_time),
                                            l.logout_time) AS c
            WHERE l.id BETWEEN from_id AND to_id
            GROUP BY 1, 2, 3;
        END
        $f$;
        RETURN NEXT 'zegolog_add_to_rollups(bigint, bigint)';
    END IF;
    -- 5: the analyst's views, each time a view of public is new or has other columns.
    IF to_regnamespace('zegolog_analyst') IS NULL THEN
        CREATE SCHEMA zegolog_analyst;
        COMMENT ON SCHEMA zegolog_analyst IS
            'On Citus: the views of public as the analyst reads them (grant-analyst puts this schema first in its search_path), each over a SECURITY DEFINER function that returns the view''s rows as their owner.';
        RETURN NEXT 'zegolog_analyst';
    END IF;
    FOR v IN
        SELECT c.relname::text AS name,
               string_agg(format('%I %s', a.attname, format_type(a.atttypid, NULL)), ', '
                          ORDER BY a.attnum) AS columns
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
        RETURN NEXT 'zegolog_analyst.' || v.name;
    END LOOP;
END
$$;

COMMENT ON FUNCTION zegolog_citus_read_side() IS
    'zegolog_distribute()''s second step (0017): on a Citus coordinator, redefines the read side Citus cannot plan as written (the app list, the *_daily_in functions'' raw buckets, room_lifecycle and room_lifecycle_between), makes the analyst''s views in schema zegolog_analyst, and returns what it changed; on PostgreSQL without the citus extension, does nothing. Idempotent.';

CREATE FUNCTION zegolog_distribute() RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT zegolog_distribute_tables();
    RETURN QUERY SELECT zegolog_citus_read_side();
END
$$;

COMMENT ON FUNCTION zegolog_distribute() IS
    'On a Citus coordinator, distributes the tables not distributed yet (zegolog_distribute_tables) and redefines the read side for Citus (zegolog_citus_read_side), and returns what it changed; on PostgreSQL without the citus extension, does nothing. Idempotent.';
