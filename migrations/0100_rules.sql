-- zegolog's schema, 1 of 5: settings and the rules every other file calls.
--
-- The data model (docs/views.md opens with it on one screen):
--   raw tables (0101)    a callback becomes one typed row (room_logouts, which keeps a logout's
--                        body; room_logins, room_lifecycle_events) or an archive row
--                        (callback_events), written once by the batch write statement
--                        (src/store/write_batch.sql), with its signed triple in signature_ledger;
--   pending (0102)       the same statement appends what its new logouts add, as one row;
--   rollups (0102)       zegolog_compact_rollups folds them, about once a second, into the
--                        per-day and per-minute rollups;
--   views (0103)         what analysts query: from the rollups (daily views, users online) or the
--                        raw rows (sessions, incidents, data quality);
--   upkeep (0104)        retention and erasure.
-- A rule is a function here, called from everywhere it applies: a day in the reporting zone
-- (zegolog_local_day, zegolog_day_start), a plausible session (zegolog_time_fault), its
-- duration (zegolog_duration_ms), a duration bucket, a percentile; a session's login is a
-- generated column (room_logouts.login_at).
--
-- On Citus, schema/citus.sql is applied after these files (`Store::migrate`, src/store/mod.rs):
-- it distributes the tables and replaces the few functions Citus cannot plan as written.

CREATE TABLE zegolog_settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    time_zone text NOT NULL DEFAULT 'UTC',
    chosen boolean NOT NULL DEFAULT false,
    changed_at timestamptz NOT NULL DEFAULT now(),
    max_session interval NOT NULL DEFAULT interval '7 days' CHECK (max_session > interval '0'),
    raw_bodies_dropped_before timestamptz
);
COMMENT ON TABLE zegolog_settings IS 'One row: the reporting time zone (IANA name) in which every daily view and rollup cuts its days. Change it with `zegolog time-zone set NAME` (it rebuilds the rollups), never by UPDATE.';
COMMENT ON COLUMN zegolog_settings.max_session IS 'The longest plausible session: a longer one is stored but has no duration and no concurrency in the rollups (zegolog_time_fault). A change applies to callbacks stored afterwards; `zegolog time-zone set` with the current zone recomputes the stored duration rollups under it (not the concurrency already counted).';
COMMENT ON COLUMN zegolog_settings.raw_bodies_dropped_before IS 'Retention''s progress with --retain-raw-days: the logouts before this logout_time have no body any more (zegolog_prune_batch); NULL until it first runs.';
INSERT INTO zegolog_settings DEFAULT VALUES;

-- ---------------------------------------------------------------------------------------------
-- Time: the reporting zone, local days, buckets
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION zegolog_time_zone() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT time_zone FROM zegolog_settings;
$$;
COMMENT ON FUNCTION zegolog_time_zone() IS 'The reporting time zone of this deployment (IANA name), in which the daily views cut their days.';
REVOKE ALL ON FUNCTION zegolog_time_zone() FROM PUBLIC;

-- VOLATILE: a writer that waited for a change of zone reads the new one.
CREATE FUNCTION zegolog_time_zone_fresh() RETURNS text
LANGUAGE sql AS $$
    SELECT time_zone FROM zegolog_settings;
$$;
COMMENT ON FUNCTION zegolog_time_zone_fresh() IS 'The reporting time zone read from a fresh snapshot, for writers: see zegolog_time_zone() for readers.';

CREATE FUNCTION zegolog_is_time_zone(zone text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = zone);
$$;

CREATE FUNCTION zegolog_local_day(t timestamptz, zone text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (t AT TIME ZONE zone)::date;
$$;
COMMENT ON FUNCTION zegolog_local_day(timestamptz, text) IS 'The calendar day of t in time zone `zone` (a 23- or 25-hour day around a DST change is one day).';

CREATE FUNCTION zegolog_local_day(t timestamptz) RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (t AT TIME ZONE zegolog_time_zone())::date;
$$;
COMMENT ON FUNCTION zegolog_local_day(timestamptz) IS 'The calendar day of t in the reporting time zone (zegolog_time_zone()): the day of the daily views.';

-- The inverse: where a local day starts. Every window of whole local days is
-- [zegolog_day_start(first, zone), zegolog_day_start(last + 1, zone)).
CREATE FUNCTION zegolog_day_start(day date, zone text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT day::timestamp AT TIME ZONE zone;
$$;
COMMENT ON FUNCTION zegolog_day_start(date, text) IS 'The instant local day `day` starts in time zone `zone` (its midnight; on a DST change the day is 23 or 25 hours long).';

CREATE FUNCTION zegolog_zone_window(p_zone text, p_from date, p_to date, OUT lo timestamptz, OUT hi timestamptz)
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
    lo := zegolog_day_start(p_from, p_zone);
    hi := zegolog_day_start(p_to + 1, p_zone);
END
$$;
COMMENT ON FUNCTION zegolog_zone_window(text, date, date) IS 'The instants [lo, hi) of the local days p_from to p_to in zone p_zone, after checking the zone and the window (at most 93 days): the window of every *_in function.';

CREATE FUNCTION zegolog_bucket_start(t timestamptz, width interval, zone text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN width >= interval '1 day' THEN zegolog_day_start(
            (date '2000-01-03'
             + (floor((zegolog_local_day(t, zone) - date '2000-01-03')::numeric
                      / greatest(round(extract(EPOCH FROM width) / 86400), 1))
                * greatest(round(extract(EPOCH FROM width) / 86400), 1))::integer),
            zone)
        ELSE date_bin(width, t, zegolog_day_start(zegolog_local_day(t, zone), zone))
    END;
$$;
COMMENT ON FUNCTION zegolog_bucket_start(timestamptz, interval, text) IS 'Start of the bucket of `width` holding t in time zone `zone`: under a day, aligned on the midnight of t''s local day; whole days, local days counted from Monday 2000-01-03.';

CREATE FUNCTION zegolog_bucket_end(bucket_start timestamptz, width interval, zone text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN width >= interval '1 day' THEN zegolog_day_start(
            zegolog_local_day(bucket_start, zone) + greatest(round(extract(EPOCH FROM width) / 86400), 1)::integer,
            zone)
        ELSE least(bucket_start + width, zegolog_day_start(zegolog_local_day(bucket_start, zone) + 1, zone))
    END;
$$;
COMMENT ON FUNCTION zegolog_bucket_end(timestamptz, interval, text) IS 'End (exclusive) of the bucket starting at bucket_start: width later, or the next local midnight if sooner.';

-- ---------------------------------------------------------------------------------------------
-- Codes as sent, decoded
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION zegolog_reason_name(reason integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE reason
        WHEN 0 THEN 'normal'
        WHEN 1 THEN 'heartbeat_timeout'
        WHEN 2 THEN 'connection_lost'
        WHEN 3 THEN 'kicked_out'
        WHEN 4 THEN 'token_expired'
        ELSE 'unknown'
    END;
$$;
COMMENT ON FUNCTION zegolog_reason_name(integer) IS 'Decoded room_logout reason: 0 normal, 1 heartbeat_timeout, 2 connection_lost, 3 kicked_out, 4 token_expired, else unknown.';

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
COMMENT ON FUNCTION zegolog_close_reason_name(integer) IS 'Decoded room_close close_reason: 0 normal, 1 last_user_heartbeat_timeout, 2 last_user_offline, 3 last_user_kicked_out, else unknown.';

CREATE FUNCTION zegolog_role_name(user_role integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE user_role
        WHEN 1 THEN 'host'
        WHEN 2 THEN 'audience'
        WHEN 4 THEN 'admin'
        ELSE 'unknown'
    END;
$$;
COMMENT ON FUNCTION zegolog_role_name(integer) IS 'Decoded user_role: 1 host, 2 audience, 4 admin, else unknown.';

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
        ELSE 'unknown'
    END;
$$;
COMMENT ON FUNCTION zegolog_platform_name(integer) IS 'Decoded room_login term_type: 0 none (TT_NONE), 1 windows, 2 ios, 3 android, 4 macos, 5 linux, 6 web, 7 mini_program (TT_MINI_PROGRAM), 32 unknown (TT_UNKNOWN); NULL and other codes unknown.';

CREATE FUNCTION zegolog_user_fields() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['user_account', 'id_name', 'operator_account', 'user_id', 'UserId', 'UserID']
$$;
COMMENT ON FUNCTION zegolog_user_fields() IS 'The callback fields whose value is a user''s account: room_login and room_logout user_account, room_create id_name (the creator), in-app chat room_create operator_account, stream events and other products'' user_id. zegolog_erase_user erases every body with one of them equal to the account.';

-- ---------------------------------------------------------------------------------------------
-- Sessions: plausible times, durations, duration buckets, percentiles
-- ---------------------------------------------------------------------------------------------

-- Immutable operators only (timestamptz - timestamptz, not timestamptz + interval, which
-- depends on the session's TimeZone): PostgreSQL then inlines these functions into the
-- statements that call them; a function it cannot inline runs as a query per row.
CREATE FUNCTION zegolog_time_fault(login_at timestamptz, logout_at timestamptz, received_at timestamptz, max_session interval) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN logout_at < timestamptz '2010-01-01 00:00:00+00' THEN 'logout_before_2010'
        WHEN logout_at - received_at > interval '1 day' THEN 'logout_after_receipt'
        WHEN login_at IS NULL THEN NULL
        WHEN login_at < timestamptz '2010-01-01 00:00:00+00' THEN 'login_before_2010'
        WHEN logout_at < login_at THEN 'logout_before_login'
        WHEN logout_at - login_at > max_session THEN 'session_too_long'
    END;
$$;
COMMENT ON FUNCTION zegolog_time_fault(timestamptz, timestamptz, timestamptz, interval) IS 'Why a session''s times are implausible, or NULL when they are plausible (or its login is unknown): logout_before_2010, logout_after_receipt (more than a day after received_at), login_before_2010, logout_before_login, session_too_long (longer than max_session). The one definition of a plausible session.';

CREATE FUNCTION zegolog_session_start(login_at timestamptz, logout_at timestamptz, received_at timestamptz, max_session interval) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN zegolog_time_fault(login_at, logout_at, received_at, max_session) IS NULL THEN login_at END;
$$;
COMMENT ON FUNCTION zegolog_session_start(timestamptz, timestamptz, timestamptz, interval) IS 'The login a session''s duration and concurrency are computed from: login_at when the session is plausible (zegolog_time_fault), NULL otherwise (no duration, no concurrency, as for a logout whose login is unknown).';

CREATE FUNCTION zegolog_duration_ms(login_at timestamptz, logout_at timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (extract(EPOCH FROM logout_at - login_at) * 1000)::bigint;
$$;
COMMENT ON FUNCTION zegolog_duration_ms(timestamptz, timestamptz) IS 'A session''s length in whole milliseconds (NULL when its login is unknown).';

-- Durations in buckets 1% wide: bucket b > 0 holds (g^(b-1), g^b] ms with g = 1.01/0.99, and
-- reports its middle (zegolog_bucket_ms), within 1% of every duration in it; 0 is 0 ms and
-- negative buckets mirror positive ones.
CREATE FUNCTION zegolog_duration_bucket(ms bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN ms = 0 THEN 0
        WHEN ms > 0 THEN 1 + ceil(round((ln(ms::double precision) / ln(1.01 / 0.99))::numeric, 9))::integer
        ELSE -(1 + ceil(round((ln((-ms)::double precision) / ln(1.01 / 0.99))::numeric, 9))::integer)
    END;
$$;
COMMENT ON FUNCTION zegolog_duration_bucket(bigint) IS 'The 1% bucket of a duration in ms (zegolog_bucket_ms is its value).';

-- The bucket of a logout whose duration is unknown (or implausible): counted in its reason,
-- in no duration statistic.
CREATE FUNCTION zegolog_no_duration_bucket() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT -2147483648 $$;

CREATE FUNCTION zegolog_bucket_ms(bucket integer) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN bucket = 0 THEN 0
        ELSE sign(bucket) * 2 * power(1.01 / 0.99, abs(bucket) - 1) / (1.01 / 0.99 + 1)
    END;
$$;
COMMENT ON FUNCTION zegolog_bucket_ms(integer) IS 'The duration in ms a bucket reports: the middle of its range, within 1% of every duration in it.';

CREATE FUNCTION zegolog_nearest_rank(fraction numeric, vals anyarray, counts numeric[] DEFAULT NULL) RETURNS anyelement
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    sorted vals%TYPE;
BEGIN
    IF fraction IS NULL OR fraction < 0 OR fraction > 1 THEN
        RAISE EXCEPTION 'percentile % is not between 0 and 1', fraction USING ERRCODE = '22003';
    END IF;
    IF counts IS NULL THEN
        -- Each value once: the ceil(fraction * n)-th smallest (the first when fraction is 0).
        -- The same as the general case below, with one sort and no running sum: as quick as
        -- percentile_disc over the raw rows (measured on 300,000 logouts).
        sorted := (SELECT array_agg(x.v ORDER BY x.v) FROM unnest(vals) AS x(v) WHERE x.v IS NOT NULL);
        RETURN sorted[greatest(ceil(fraction * cardinality(sorted)), 1)];
    END IF;
    RETURN (
        SELECT r.v
        FROM (
            SELECT u.v, sum(u.c) OVER (ORDER BY u.v) AS cum, sum(u.c) OVER () AS n
            FROM (SELECT x.v, coalesce(x.c, 1) AS c FROM unnest(vals, counts) AS x(v, c)) AS u
            WHERE u.v IS NOT NULL AND u.c > 0
        ) AS r
        WHERE r.cum >= fraction * r.n
        ORDER BY r.v
        LIMIT 1
    );
END
$$;
COMMENT ON FUNCTION zegolog_nearest_rank(numeric, anyarray, numeric[]) IS 'The percentile of every view: nearest rank. The smallest value v of vals such that at least fraction (0 to 1) of the total count is on values <= v; counts[i] is how many times vals[i] occurs (NULL: once each; values NULL or counted <= 0 are left out; NULL when none is left). On exact values it equals percentile_disc(fraction); over the rollups'' duration buckets it is the bucket of the exact nearest-rank duration.';

-- The most sessions online in any minute, from the sessions' login minutes (+1 each) and the
-- minutes after their logout minutes (-1 each): a room lifecycle's peak.
CREATE FUNCTION zegolog_lifecycle_peak(ins timestamptz[], outs timestamptz[]) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
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
$$;
COMMENT ON FUNCTION zegolog_lifecycle_peak(timestamptz[], timestamptz[]) IS 'The most sessions online in any minute, from the login minutes (+1) and the minutes after the logout minutes (-1) of a room lifecycle''s sessions (room_lifecycle.peak_users).';
