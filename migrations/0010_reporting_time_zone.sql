-- Days in the analysts' time zone: one reporting time zone per deployment, kept here.
--
-- 1. zegolog_settings holds it (one row, 'UTC' until changed). zegolog_time_zone() reads it,
--    zegolog_local_day(t) cuts a time into a day of it, zegolog_local_day(t, zone) into a day of
--    any zone.
-- 2. The rollup contribution of logouts, day cut included, is computed in one place:
--    zegolog_logout_rollup (0009), redefined here with the zone's day; the write statement,
--    the pairing sweep, zegolog_add_to_rollups (bulk loads) and the rebuild all go through it.
-- 3. Compaction cuts the daily concurrency (app_concurrency_day, room_concurrency_day) at the
--    zone's midnights; its per-day recomputation is zegolog_refresh_concurrency_days(zone), for
--    compaction and rebuild alike. users_online / room_users_online start their base at the
--    zone's day. Retention forgets the rollups of the zone's days before the cutoff.
-- 4. Changing the zone (`zegolog time-zone set NAME`): zegolog_begin_time_zone_change(zone), then
--    zegolog_rebuild_rollups_day(day) for every day it returns, in one transaction.
-- 5. Ad-hoc, any zone, from the raw rows (durations, reasons) or the zone-free minute rollups
--    (concurrency), for at most 93 days: session_duration_daily_in, logout_reasons_daily_in,
--    peak_concurrency_daily_in, room_peak_concurrency_daily_in.
--
-- Why the daily views stay as they are: their day column is the stored day of the rollup rows,
-- already cut in the zone, so they read no setting and keep their plans (index scans on
-- (appid, day)). Only the writers, compaction and the rebuild read the zone.
--
-- Volatility. zegolog_time_zone() and zegolog_local_day(t) are STABLE (they read a table:
-- IMMUTABLE would let the planner fold a stale zone into cached plans, and make them usable in
-- an index that a change of zone would silently corrupt). zegolog_local_day(t, zone) is
-- IMMUTABLE (timezone(text, timestamptz) is) and inlined. zegolog_logout_contributions is
-- VOLATILE on purpose: a volatile function takes a fresh snapshot for its query, so a writer
-- that waited for a change of zone (which holds zegolog_settings in ACCESS EXCLUSIVE mode until
-- it commits) reads the new zone, not the one of its statement's older snapshot.
--
-- Lock order, everywhere: the compaction advisory lock, then zegolog_settings.

-- ---------------------------------------------------------------------------------------------
-- 1. The setting
-- ---------------------------------------------------------------------------------------------

CREATE TABLE zegolog_settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    time_zone text    NOT NULL DEFAULT 'UTC',
    -- False until someone chose the zone: a new, empty database then takes the zone of the
    -- first instance that starts on it.
    chosen    boolean NOT NULL DEFAULT false,
    changed_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO zegolog_settings DEFAULT VALUES;

COMMENT ON TABLE zegolog_settings IS
    'One row: the reporting time zone (IANA name) in which every daily view and rollup cuts its days. Change it with `zegolog time-zone set NAME` (it rebuilds the rollups), never by UPDATE.';

CREATE FUNCTION zegolog_time_zone() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT time_zone FROM zegolog_settings;
$$;

COMMENT ON FUNCTION zegolog_time_zone() IS
    'The reporting time zone of this deployment (IANA name), in which the daily views cut their days.';

CREATE FUNCTION zegolog_local_day(t timestamptz, zone text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (t AT TIME ZONE zone)::date;
$$;

COMMENT ON FUNCTION zegolog_local_day(timestamptz, text) IS
    'The calendar day of t in time zone `zone` (a 23- or 25-hour day around a DST change is one day).';

CREATE FUNCTION zegolog_local_day(t timestamptz) RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (t AT TIME ZONE zegolog_time_zone())::date;
$$;

COMMENT ON FUNCTION zegolog_local_day(timestamptz) IS
    'The calendar day of t in the reporting time zone (zegolog_time_zone()): the day of the daily views.';

-- Whether `zone` is a time zone name PostgreSQL knows (pg_timezone_names), as typed.
CREATE FUNCTION zegolog_is_time_zone(zone text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = zone);
$$;

-- ---------------------------------------------------------------------------------------------
-- 2. The rollup contribution of logouts: the one place that cuts their day
-- ---------------------------------------------------------------------------------------------

-- What one logout adds to the duration rollups (0009's zegolog_logout_rollup: its duration
-- bucket, or the no-duration bucket while its login is unknown), now with its day cut in the
-- reporting zone. Every path that counts a logout calls it: the write statement (new logouts
-- and logouts paired with a late login), the pairing sweep, zegolog_add_to_rollups (bulk loads)
-- and the rebuild. VOLATILE: it reads the zone from a fresh snapshot, so a writer that waited
-- on a zone change cuts its days in the new zone.
CREATE OR REPLACE FUNCTION zegolog_logout_rollup(p_appid bigint, p_reason integer, p_login_at timestamptz, p_logout_at timestamptz)
RETURNS TABLE (day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint)
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT zegolog_local_day(p_logout_at, s.time_zone), p_appid, zegolog_reason_name(p_reason),
           CASE WHEN d.ms IS NULL THEN zegolog_no_duration_bucket() ELSE zegolog_duration_bucket(d.ms) END,
           1::bigint, coalesce(d.ms, 0)::numeric, coalesce(d.ms, -9223372036854775808)
    FROM zegolog_settings AS s,
         (SELECT (extract(EPOCH FROM p_logout_at - p_login_at) * 1000)::bigint AS ms) AS d;
$$;

-- The logout_rollup rows that these logouts (parallel arrays; the login time is the known one,
-- sent or paired) add, summed per day, app, reason and bucket.
CREATE FUNCTION zegolog_logout_contributions(p_appid bigint[], p_reason integer[],
                                             p_login_time timestamptz[], p_logout_time timestamptz[])
RETURNS TABLE (day date, appid bigint, reason text, bucket integer, sessions bigint,
               total_ms numeric, max_ms bigint)
LANGUAGE sql VOLATILE AS $$
    SELECT r.day, r.appid, r.reason, r.bucket, sum(r.sessions)::bigint, sum(r.total_ms), max(r.max_ms)
    FROM unnest(p_appid, p_reason, p_login_time, p_logout_time)
             AS u(appid, reason, login_time, logout_time),
         zegolog_logout_rollup(u.appid, u.reason, u.login_time, u.logout_time) AS r
    GROUP BY 1, 2, 3, 4;
$$;

COMMENT ON FUNCTION zegolog_logout_contributions(bigint[], integer[], timestamptz[], timestamptz[]) IS
    'The logout_rollup rows (day in the reporting time zone, appid, reason, duration bucket, sums) of the logouts given as parallel arrays, each through zegolog_logout_rollup.';

-- ---------------------------------------------------------------------------------------------
-- 3. Compaction, in the zone
-- ---------------------------------------------------------------------------------------------

-- Recomputes app_concurrency_day and room_concurrency_day for the (appid, room_id, day) rows of
-- the temporary table zegolog_days, days cut in `zone`. The body of 0005's compaction, with the
-- zone's midnights for UTC's.
CREATE FUNCTION zegolog_refresh_concurrency_days(zone text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- Per app: every day from the first to the last day any of its rooms touched.
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
         AND m.minute >= d.day::timestamp AT TIME ZONE zone
         AND m.minute < (d.day + 1)::timestamp AT TIME ZONE zone
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
    SELECT b.appid, b.day, b.net, greatest(CASE WHEN bool_or(w.at_midnight) IS NOT TRUE THEN b.base END, max(b.base + w.running))
    FROM bases AS b
    LEFT JOIN LATERAL (
        SELECT sum(m.delta) OVER (ORDER BY m.minute) AS running,
               m.minute = b.day::timestamp AT TIME ZONE zone AS at_midnight
        FROM app_concurrency_minute AS m
        WHERE m.appid = b.appid
          AND m.minute >= b.day::timestamp AT TIME ZONE zone
          AND m.minute < (b.day + 1)::timestamp AT TIME ZONE zone
    ) AS w ON true
    GROUP BY b.appid, b.day, b.net, b.base
    HAVING b.net <> 0 OR greatest(CASE WHEN bool_or(w.at_midnight) IS NOT TRUE THEN b.base END, max(b.base + w.running)) <> 0
    ORDER BY 1, 2
    ON CONFLICT (appid, day) DO UPDATE SET net = excluded.net, peak = excluded.peak;

    -- Per room: the same, keyed on (appid, room_id).
    WITH nets AS (
        SELECT d.appid, d.room_id, d.day, coalesce(sum(m.delta), 0) AS net
        FROM zegolog_days AS d
        LEFT JOIN room_concurrency_minute AS m
          ON m.appid = d.appid AND m.room_id = d.room_id
         AND m.minute >= d.day::timestamp AT TIME ZONE zone
         AND m.minute < (d.day + 1)::timestamp AT TIME ZONE zone
        GROUP BY d.appid, d.room_id, d.day
    ), starts AS (
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
    SELECT b.appid, b.room_id, b.day, b.net, greatest(CASE WHEN bool_or(w.at_midnight) IS NOT TRUE THEN b.base END, max(b.base + w.running))
    FROM bases AS b
    LEFT JOIN LATERAL (
        SELECT sum(m.delta) OVER (ORDER BY m.minute) AS running,
               m.minute = b.day::timestamp AT TIME ZONE zone AS at_midnight
        FROM room_concurrency_minute AS m
        WHERE m.appid = b.appid AND m.room_id = b.room_id
          AND m.minute >= b.day::timestamp AT TIME ZONE zone
          AND m.minute < (b.day + 1)::timestamp AT TIME ZONE zone
    ) AS w ON true
    GROUP BY b.appid, b.room_id, b.day, b.net, b.base
    ORDER BY 1, 2, 3
    ON CONFLICT (appid, room_id, day) DO UPDATE SET net = excluded.net, peak = excluded.peak;
END
$$;

CREATE OR REPLACE FUNCTION zegolog_compact_rollups() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    zone text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_compact_rollups'));
    -- After the lock: a change of zone holds it until it commits.
    zone := zegolog_time_zone();

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

    -- The days to recompute: for each app (and room), from the first to the last day (in the
    -- zone) a moved delta falls on.
    CREATE TEMP TABLE zegolog_days ON COMMIT DROP AS
    SELECT r.appid, r.room_id, d::date AS day
    FROM (
        SELECT appid, room_id, min(zegolog_local_day(minute, zone)) AS first_day,
               max(zegolog_local_day(minute, zone)) AS last_day
        FROM zegolog_moved GROUP BY appid, room_id
    ) AS r,
    generate_series(r.first_day, r.last_day, interval '1 day') AS d;

    PERFORM zegolog_refresh_concurrency_days(zone);

    DROP TABLE zegolog_moved;
    DROP TABLE zegolog_days;
END
$$;

CREATE OR REPLACE FUNCTION zegolog_drop_partitions_before(cutoff timestamptz) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    cutoff_day date;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_ensure_partition'));
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_compact_rollups'));
    cutoff_day := zegolog_local_day(cutoff, zegolog_time_zone());
    FOR part IN
        SELECT c.relname,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'room_logouts'::regclass
          AND c.relname <> 'room_logouts_default'
        ORDER BY 1
    LOOP
        IF part.upper_bound <= cutoff THEN
            EXECUTE format('DROP TABLE IF EXISTS %I', part.relname);
            RETURN NEXT part.relname;
        END IF;
    END LOOP;
    DELETE FROM room_logouts_default WHERE logout_time < cutoff;
    DELETE FROM logout_rollup WHERE day < cutoff_day;
    DELETE FROM app_concurrency_day WHERE day < cutoff_day;
    DELETE FROM room_concurrency_day WHERE day < cutoff_day;
END
$$;

-- users_online / room_users_online (0004): the base is the net of the zone's whole days before
-- the window's first day (app_concurrency_day is cut in the zone now), plus the minutes since.
CREATE OR REPLACE FUNCTION users_online(p_appid bigint, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (minute timestamptz, users_online bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH bounds AS (
        SELECT date_trunc('minute', p_from, 'UTC') AS first_minute,
               zegolog_local_day(p_from, z.zone) AS first_day,
               zegolog_local_day(p_from, z.zone)::timestamp AT TIME ZONE z.zone AS first_day_start
        FROM (SELECT zegolog_time_zone() AS zone) AS z
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

CREATE OR REPLACE FUNCTION room_users_online(p_appid bigint, p_room_id text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (minute timestamptz, users_online bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH bounds AS (
        SELECT date_trunc('minute', p_from, 'UTC') AS first_minute,
               zegolog_local_day(p_from, z.zone) AS first_day,
               zegolog_local_day(p_from, z.zone)::timestamp AT TIME ZONE z.zone AS first_day_start
        FROM (SELECT zegolog_time_zone() AS zone) AS z
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

-- ---------------------------------------------------------------------------------------------
-- 4. Changing the zone: rebuild the rollups from the raw rows
-- ---------------------------------------------------------------------------------------------

-- Starts a change of the reporting zone to p_zone in the current transaction and returns the
-- days (in p_zone) to rebuild with zegolog_rebuild_rollups_day, in order; commit after the last.
-- Holds the compaction lock and zegolog_settings (ACCESS EXCLUSIVE) until commit: compaction,
-- retention and the writers' rollup step wait (the writers' callbacks go to the spool meanwhile),
-- readers of the views keep seeing the old days until the commit shows the new ones at once.
CREATE FUNCTION zegolog_begin_time_zone_change(p_zone text)
RETURNS TABLE (first_day date, last_day date)
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

    UPDATE zegolog_settings SET time_zone = p_zone, chosen = true, changed_at = now();
    DELETE FROM logout_rollup;
    DELETE FROM app_concurrency_day;
    DELETE FROM room_concurrency_day;

    DROP TABLE IF EXISTS zegolog_spans;
    CREATE TEMP TABLE zegolog_spans ON COMMIT DROP AS
    SELECT appid, room_id, min(zegolog_local_day(minute, p_zone)) AS first_day,
           max(zegolog_local_day(minute, p_zone)) AS last_day
    FROM room_concurrency_minute
    GROUP BY appid, room_id;

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

-- Rebuilds one day (in the new zone) of every rollup: the durations from the raw rows of that
-- day (through zegolog_logout_contributions), the daily concurrency from the minute rollups.
-- Days must come in order: a day's concurrency starts from the nets of the days before it.
CREATE FUNCTION zegolog_rebuild_rollups_day(p_day date) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    zone text := zegolog_time_zone();
    lo timestamptz := p_day::timestamp AT TIME ZONE zone;
    hi timestamptz := (p_day + 1)::timestamp AT TIME ZONE zone;
    logouts bigint;
BEGIN
    IF to_regclass('pg_temp.zegolog_spans') IS NULL THEN
        RAISE EXCEPTION 'zegolog_rebuild_rollups_day runs after zegolog_begin_time_zone_change, in its transaction';
    END IF;
    INSERT INTO logout_rollup AS r (day, appid, reason, bucket, sessions, total_ms, max_ms)
    SELECT c.*
    FROM (SELECT array_agg(appid) AS appid, array_agg(reason) AS reason,
                 array_agg(coalesce(login_time, paired_login_time)) AS login_time,
                 array_agg(logout_time) AS logout_time
          FROM room_logouts
          WHERE appid = ANY (zegolog_appids()) AND logout_time >= lo AND logout_time < hi) AS a,
         zegolog_logout_contributions(a.appid, a.reason, a.login_time, a.logout_time) AS c
    ORDER BY c.appid, c.day, c.reason, c.bucket
    ON CONFLICT (appid, day, reason, bucket) DO UPDATE
    SET sessions = r.sessions + excluded.sessions,
        total_ms = r.total_ms + excluded.total_ms,
        max_ms = greatest(r.max_ms, excluded.max_ms);
    SELECT coalesce(sum(sessions), 0) INTO logouts FROM logout_rollup WHERE day = p_day;

    DROP TABLE IF EXISTS zegolog_days;
    CREATE TEMP TABLE zegolog_days ON COMMIT DROP AS
    SELECT appid, room_id, p_day AS day FROM zegolog_spans
    WHERE p_day BETWEEN first_day AND last_day;
    PERFORM zegolog_refresh_concurrency_days(zone);
    DROP TABLE zegolog_days;
    RETURN logouts;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- 5. Ad-hoc daily views in any zone, for a bounded window
-- ---------------------------------------------------------------------------------------------

-- The window [p_from, p_to] (days, both included) as times in p_zone; refuses an unknown zone
-- or a window over 93 days (they read raw rows).
CREATE FUNCTION zegolog_zone_window(p_zone text, p_from date, p_to date,
                                    OUT lo timestamptz, OUT hi timestamptz)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_zone IS NULL OR NOT zegolog_is_time_zone(p_zone) THEN
        RAISE EXCEPTION 'unknown time zone "%"', p_zone
            USING ERRCODE = '22023',
                  HINT = 'Use an IANA name from pg_timezone_names, such as Asia/Shanghai or America/New_York.';
    END IF;
    IF p_from IS NULL OR p_to IS NULL OR p_to < p_from THEN
        RAISE EXCEPTION 'the window % to % is empty or open', p_from, p_to USING ERRCODE = '22023';
    END IF;
    IF p_to - p_from + 1 > 93 THEN
        RAISE EXCEPTION 'a window of % days is too long: these functions read raw rows, at most 93 days at once', p_to - p_from + 1
            USING ERRCODE = '22023',
                  HINT = 'Query several windows, or use the daily views (in the reporting time zone) for longer ranges.';
    END IF;
    lo := p_from::timestamp AT TIME ZONE p_zone;
    hi := (p_to + 1)::timestamp AT TIME ZONE p_zone;
END
$$;

-- The duration buckets of the window's logouts per day in p_zone: what the rollups would hold.
CREATE FUNCTION zegolog_buckets_in(p_zone text, p_from date, p_to date)
RETURNS TABLE (day date, appid bigint, reason text, bucket integer, sessions bigint,
               total_ms numeric, max_ms bigint)
LANGUAGE sql STABLE AS $$
    SELECT zegolog_local_day(l.logout_time, p_zone), l.appid, zegolog_reason_name(l.reason),
           zegolog_duration_bucket(l.ms), count(*), sum(l.ms), max(l.ms)
    FROM zegolog_zone_window(p_zone, p_from, p_to) AS w,
         LATERAL (SELECT r.*, (extract(EPOCH FROM r.logout_time - r.login_time) * 1000)::bigint AS ms
                  FROM room_logouts AS r
                  WHERE r.appid = ANY (zegolog_appids())
                    AND r.logout_time >= w.lo AND r.logout_time < w.hi) AS l
    GROUP BY 1, 2, 3, 4;
$$;

CREATE FUNCTION session_duration_daily_in(p_zone text, p_from date, p_to date)
RETURNS TABLE (day date, appid bigint, sessions bigint, total_minutes double precision,
               avg_s double precision, p50_s double precision, p90_s double precision,
               p99_s double precision, max_s double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH b AS (
        SELECT day, appid, bucket, sum(sessions) AS sessions, sum(total_ms) AS total_ms, max(max_ms) AS max_ms
        FROM zegolog_buckets_in(p_zone, p_from, p_to)
        GROUP BY day, appid, bucket
    ), c AS (
        SELECT b.*,
               sum(sessions) OVER (PARTITION BY day, appid ORDER BY bucket) AS cum,
               sum(sessions) OVER (PARTITION BY day, appid) AS n
        FROM b
    )
    SELECT day, appid, max(n)::bigint,
           (sum(total_ms) / 60000)::double precision,
           (sum(total_ms) / max(n) / 1000)::double precision,
           min(zegolog_bucket_ms(bucket)) FILTER (WHERE cum >= 0.5 * n) / 1000,
           min(zegolog_bucket_ms(bucket)) FILTER (WHERE cum >= 0.9 * n) / 1000,
           min(zegolog_bucket_ms(bucket)) FILTER (WHERE cum >= 0.99 * n) / 1000,
           max(max_ms)::double precision / 1000
    FROM c
    GROUP BY day, appid
    ORDER BY day, appid;
$$;

COMMENT ON FUNCTION session_duration_daily_in(text, date, date) IS
    'session_duration_daily with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93), computed from the raw rows.';

CREATE FUNCTION logout_reasons_daily_in(p_zone text, p_from date, p_to date)
RETURNS TABLE (day date, appid bigint, reason text, logouts bigint, share double precision,
               median_duration_s double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH c AS (
        SELECT b.*,
               sum(sessions) OVER (PARTITION BY day, appid, reason ORDER BY bucket) AS cum,
               sum(sessions) OVER (PARTITION BY day, appid, reason) AS n
        FROM zegolog_buckets_in(p_zone, p_from, p_to) AS b
    ), g AS (
        SELECT day, appid, reason, max(n)::bigint AS logouts,
               zegolog_bucket_ms(min(bucket) FILTER (WHERE cum >= 0.5 * n)) / 1000 AS median_duration_s
        FROM c
        GROUP BY day, appid, reason
    )
    SELECT day, appid, reason, logouts,
           (logouts::numeric / sum(logouts) OVER (PARTITION BY day, appid))::double precision,
           median_duration_s
    FROM g
    ORDER BY day, appid, reason;
$$;

COMMENT ON FUNCTION logout_reasons_daily_in(text, date, date) IS
    'logout_reasons_daily with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93), computed from the raw rows.';

-- Users online per minute are zone-free (app/room_concurrency_minute plus concurrency_pending):
-- a day's peak in any zone is the most users online in any minute of that zone's day. The base
-- at the window's start comes from the daily nets of the reporting zone's days before it, and
-- the minutes since; day starts are put in the stream of changes as zero deltas so that a day
-- without any change still gets the users online since the day before.
CREATE FUNCTION zegolog_peaks_in(p_zone text, p_from date, p_to date, p_rooms boolean)
RETURNS TABLE (day date, appid bigint, room_id text, peak_users bigint, net bigint)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    w record;
    dz text := zegolog_time_zone();
    base_day date;
    base_start timestamptz;
BEGIN
    SELECT * INTO w FROM zegolog_zone_window(p_zone, p_from, p_to);
    base_day := zegolog_local_day(w.lo, dz);
    base_start := base_day::timestamp AT TIME ZONE dz;
    RETURN QUERY
    WITH deltas AS (
        SELECT m.appid, m.room_id, m.minute, m.delta FROM room_concurrency_minute AS m
        WHERE p_rooms AND m.appid = ANY (zegolog_appids()) AND m.minute >= base_start AND m.minute < w.hi
        UNION ALL
        SELECT m.appid, '', m.minute, m.delta FROM app_concurrency_minute AS m
        WHERE NOT p_rooms AND m.appid = ANY (zegolog_appids()) AND m.minute >= base_start AND m.minute < w.hi
        UNION ALL
        SELECT c.appid, CASE WHEN p_rooms THEN c.room_id ELSE '' END, c.minute, c.delta
        FROM concurrency_pending AS c WHERE c.minute < w.hi
    ), bases AS (
        SELECT k.appid, k.room_id, sum(k.users) AS users
        FROM (
            SELECT d.appid, d.room_id, d.net AS users FROM room_concurrency_day AS d
            WHERE p_rooms AND d.day < base_day
            UNION ALL
            SELECT d.appid, '', d.net FROM app_concurrency_day AS d
            WHERE NOT p_rooms AND d.day < base_day
            UNION ALL
            SELECT x.appid, x.room_id, x.delta FROM deltas AS x WHERE x.minute < w.lo
        ) AS k
        GROUP BY k.appid, k.room_id
    ), changes AS (
        SELECT x.appid, x.room_id, x.minute, sum(x.delta) AS delta
        FROM deltas AS x WHERE x.minute >= w.lo
        GROUP BY 1, 2, 3
    ), keys AS (
        SELECT appid, room_id FROM changes
        UNION
        SELECT appid, room_id FROM bases WHERE users <> 0
    ), stream AS (
        SELECT appid, room_id, minute, delta FROM changes
        UNION ALL
        SELECT k.appid, k.room_id, d::timestamp AT TIME ZONE p_zone, 0
        FROM keys AS k, generate_series(p_from, p_to, interval '1 day') AS d
    ), running AS (
        SELECT s.appid, s.room_id, zegolog_local_day(s.minute, p_zone) AS day, s.delta,
               coalesce(b.users, 0) + sum(s.delta) OVER (PARTITION BY s.appid, s.room_id ORDER BY s.minute) AS users
        FROM stream AS s
        LEFT JOIN bases AS b ON b.appid = s.appid AND b.room_id = s.room_id
    )
    SELECT r.day, r.appid, r.room_id, max(r.users)::bigint, sum(r.delta)::bigint
    FROM running AS r
    GROUP BY r.day, r.appid, r.room_id
    HAVING max(r.users) <> 0 OR sum(r.delta) <> 0;
END
$$;

CREATE FUNCTION peak_concurrency_daily_in(p_zone text, p_from date, p_to date)
RETURNS TABLE (day date, appid bigint, peak_users bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT day, appid, peak_users FROM zegolog_peaks_in(p_zone, p_from, p_to, false) ORDER BY day, appid;
$$;

COMMENT ON FUNCTION peak_concurrency_daily_in(text, date, date) IS
    'peak_concurrency_daily with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93), from the zone-free per-minute rollups.';

CREATE FUNCTION room_peak_concurrency_daily_in(p_zone text, p_from date, p_to date)
RETURNS TABLE (day date, appid bigint, room_id text, peak_users bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT day, appid, room_id, peak_users FROM zegolog_peaks_in(p_zone, p_from, p_to, true) ORDER BY day, appid, room_id;
$$;

COMMENT ON FUNCTION room_peak_concurrency_daily_in(text, date, date) IS
    'room_peak_concurrency_daily (days with users online) with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93), from the zone-free per-minute rollups.';

REVOKE EXECUTE ON FUNCTION
    zegolog_time_zone(),
    session_duration_daily_in(text, date, date),
    logout_reasons_daily_in(text, date, date),
    peak_concurrency_daily_in(text, date, date),
    room_peak_concurrency_daily_in(text, date, date)
FROM PUBLIC;

COMMENT ON VIEW session_duration_daily IS
    'Per day (in the reporting time zone, zegolog_time_zone()) and app: sessions, total minutes, average, percentiles (nearest rank, within 1%) and maximum of session durations. Backed by the rollups. Other zones: session_duration_daily_in(zone, from, to).';
COMMENT ON VIEW logout_reasons_daily IS
    'Per day (in the reporting time zone, zegolog_time_zone()), app and logout reason: logouts, share of the app''s logouts that day, median duration. Backed by the rollups. Other zones: logout_reasons_daily_in(zone, from, to).';
COMMENT ON VIEW peak_concurrency_daily IS
    'Per day (in the reporting time zone, zegolog_time_zone()) and app: the most users online in any minute of the day. Other zones: peak_concurrency_daily_in(zone, from, to).';
COMMENT ON VIEW room_peak_concurrency_daily IS
    'Per day (in the reporting time zone, zegolog_time_zone()), app and room: the most users online in the room in any minute of the day. Other zones: room_peak_concurrency_daily_in(zone, from, to).';
