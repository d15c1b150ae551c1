-- The schema, functions and views of a database after every migration in migrations/, on plain
-- PostgreSQL (schema/citus.sql says what differs on Citus), as
--     pg_dump --schema-only --no-owner --no-privileges \
--         --exclude-table='public.room_logouts_[0-9]*' \
--         --exclude-table='public.signature_ledger_[0-9]*' \
--         --exclude-table='public._sqlx_migrations'
-- writes it (pg_dump of PostgreSQL 15), without the comment block pg_dump puts
-- before each object. Read the current schema here; migrations/ says why it is so.
--
-- Generated. Regenerate it after changing a migration, and commit it with the migration:
--     ZEGOLOG_WRITE_SCHEMA=1 cargo test --test it schema::
-- (tests/it/schema.rs fails when this file is not what the migrations build.)
--
-- Left out, because they change from one run to the next: the dated partitions
-- (room_logouts_YYYY_MM, signature_ledger_YYYY_MM_DD; the migrations create them around the
-- day they run, with their parent's columns and indexes), sqlx's table of applied migrations,
-- pg_dump's version lines and its \restrict / \unrestrict lines (a random key per run).

--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

CREATE TYPE public.zegolog_concurrency_delta AS (
	appid bigint,
	room_id text,
	minute timestamp with time zone,
	delta bigint
);
COMMENT ON TYPE public.zegolog_concurrency_delta IS 'What logouts add to the concurrency rollups: the change in sessions online in one room at one UTC minute.';

CREATE TYPE public.zegolog_rollup_row AS (
	day date,
	appid bigint,
	reason text,
	bucket integer,
	sessions bigint,
	total_ms numeric,
	max_ms bigint
);
COMMENT ON TYPE public.zegolog_rollup_row IS 'What logouts add to logout_rollup: sessions, total and maximum duration per day (reporting zone), app, reason and 1% duration bucket.';

CREATE FUNCTION public.abnormal_rooms_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_limit integer DEFAULT 10) RETURNS TABLE(room_id text, abnormal bigint, heartbeat_timeout bigint, connection_lost bigint, kicked_out bigint, token_expired bigint, users bigint, last_abnormal_at timestamp with time zone)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$#variable_conflict use_column
BEGIN
RETURN QUERY 
    SELECT l.room_id, count(*),
           count(*) FILTER (WHERE l.reason = 1), count(*) FILTER (WHERE l.reason = 2),
           count(*) FILTER (WHERE l.reason = 3), count(*) FILTER (WHERE l.reason = 4),
           count(DISTINCT l.user_account), max(l.logout_time)
    FROM room_logouts AS l
    WHERE l.appid = p_appid AND l.logout_time >= p_from AND l.logout_time < p_to
      AND l.reason BETWEEN 1 AND 4
    GROUP BY l.room_id
    ORDER BY 2 DESC, 1
    LIMIT p_limit;
END$$;
COMMENT ON FUNCTION public.abnormal_rooms_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_limit integer) IS 'The p_limit rooms of app p_appid with the most abnormal logouts (reason 1 heartbeat_timeout, 2 connection_lost, 3 kicked_out, 4 token_expired) in [p_from, p_to), with the count of each, the users concerned and the last one.';

CREATE FUNCTION public.abnormal_users_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_limit integer DEFAULT 10) RETURNS TABLE(user_account text, abnormal bigint, heartbeat_timeout bigint, connection_lost bigint, kicked_out bigint, token_expired bigint, rooms bigint, last_abnormal_at timestamp with time zone)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$#variable_conflict use_column
BEGIN
RETURN QUERY 
    SELECT l.user_account, count(*),
           count(*) FILTER (WHERE l.reason = 1), count(*) FILTER (WHERE l.reason = 2),
           count(*) FILTER (WHERE l.reason = 3), count(*) FILTER (WHERE l.reason = 4),
           count(DISTINCT l.room_id), max(l.logout_time)
    FROM room_logouts AS l
    WHERE l.appid = p_appid AND l.logout_time >= p_from AND l.logout_time < p_to
      AND l.reason BETWEEN 1 AND 4
    GROUP BY l.user_account
    ORDER BY 2 DESC, 1
    LIMIT p_limit;
END$$;
COMMENT ON FUNCTION public.abnormal_users_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_limit integer) IS 'The p_limit users of app p_appid with the most abnormal logouts (reasons 1-4) in [p_from, p_to), with the count of each, the rooms concerned and the last one.';

CREATE FUNCTION public.zegolog_local_day(t timestamp with time zone) RETURNS date
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT (t AT TIME ZONE zegolog_time_zone())::date;
$$;
COMMENT ON FUNCTION public.zegolog_local_day(t timestamp with time zone) IS 'The calendar day of t in the reporting time zone (zegolog_time_zone()): the day of the daily views.';

CREATE FUNCTION public.zegolog_time_fault(login_at timestamp with time zone, logout_at timestamp with time zone, received_at timestamp with time zone, max_session interval) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE
        WHEN logout_at < timestamptz '2010-01-01 00:00:00+00' THEN 'logout_before_2010'
        WHEN logout_at - received_at > interval '1 day' THEN 'logout_after_receipt'
        WHEN login_at IS NULL THEN NULL
        WHEN login_at < timestamptz '2010-01-01 00:00:00+00' THEN 'login_before_2010'
        WHEN logout_at < login_at THEN 'logout_before_login'
        WHEN logout_at - login_at > max_session THEN 'session_too_long'
    END;
$$;
COMMENT ON FUNCTION public.zegolog_time_fault(login_at timestamp with time zone, logout_at timestamp with time zone, received_at timestamp with time zone, max_session interval) IS 'Why a session''s times are implausible, or NULL when they are plausible (or its login is unknown): logout_before_2010, logout_after_receipt (more than a day after received_at), login_before_2010, logout_before_login, session_too_long (longer than max_session). The one definition of a plausible session.';

SET default_tablespace = '';

SET default_table_access_method = heap;

CREATE TABLE public.callback_events (
    id bigint NOT NULL,
    digest bytea NOT NULL,
    event text NOT NULL,
    appid bigint NOT NULL,
    body text NOT NULL,
    content_type text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    refused_reason text
);
COMMENT ON TABLE public.callback_events IS 'Every authenticated ZEGOCLOUD callback body but a stored room_logout''s (its room_logouts row keeps it): other events, a logout with the natural key of a stored one and another content, quarantined bodies; once per distinct business content (retries collapse).';
COMMENT ON COLUMN public.callback_events.body IS 'The decoded callback fields as JSON text, as sent (JSON values, or form values URL-decoded); query them with body::jsonb.';
COMMENT ON COLUMN public.callback_events.refused_reason IS 'Why an authentic callback could not be normalised (quarantined); NULL when it was.';

CREATE TABLE public.room_logins (
    id bigint NOT NULL,
    appid bigint NOT NULL,
    room_id text NOT NULL,
    room_name text,
    room_seq numeric(20,0),
    user_account text NOT NULL,
    user_nickname text,
    session_id numeric(20,0) NOT NULL,
    login_time timestamp with time zone NOT NULL,
    user_role integer,
    auth_level integer,
    relogin integer,
    user_update_seq bigint,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    term_type integer,
    callback_data text,
    CONSTRAINT room_logins_room_seq_check CHECK (((room_seq >= (0)::numeric) AND (room_seq <= '18446744073709551615'::numeric))),
    CONSTRAINT room_logins_session_id_check CHECK (((session_id >= (0)::numeric) AND (session_id <= '18446744073709551615'::numeric)))
);
COMMENT ON TABLE public.room_logins IS 'One row per ZEGOCLOUD room_login callback, stored exactly once.';
COMMENT ON COLUMN public.room_logins.relogin IS 'Re-login flag as sent (1: the user logged in again, e.g. after a reconnect).';
COMMENT ON COLUMN public.room_logins.term_type IS 'The user''s terminal type as sent (since 2026): see zegolog_platform_name(); NULL when not sent.';
COMMENT ON COLUMN public.room_logins.callback_data IS 'callback_data as sent (free text the client passed at login); NULL when not sent.';

CREATE TABLE public.room_logouts (
    id bigint NOT NULL,
    appid bigint NOT NULL,
    room_id text NOT NULL,
    room_seq numeric(20,0),
    user_account text NOT NULL,
    user_nickname text,
    session_id numeric(20,0) NOT NULL,
    login_time timestamp with time zone,
    logout_time timestamp with time zone NOT NULL,
    reason integer,
    user_role integer,
    user_update_seq bigint,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    paired_login_time timestamp with time zone,
    login_at timestamp with time zone GENERATED ALWAYS AS (COALESCE(login_time, paired_login_time)) STORED,
    digest bytea,
    body text,
    content_type text,
    CONSTRAINT room_logouts_room_seq_check CHECK (((room_seq >= (0)::numeric) AND (room_seq <= '18446744073709551615'::numeric))),
    CONSTRAINT room_logouts_session_id_check CHECK (((session_id >= (0)::numeric) AND (session_id <= '18446744073709551615'::numeric)))
)
PARTITION BY RANGE (logout_time);
COMMENT ON TABLE public.room_logouts IS 'One row per ZEGOCLOUD room_logout callback, stored exactly once; partitioned by month of logout_time.';
COMMENT ON COLUMN public.room_logouts.login_time IS 'login_time as sent; NULL when the callback had none (room_logout of the 2022-2023 docs).';
COMMENT ON COLUMN public.room_logouts.reason IS '0 normal, 1 heartbeat timeout (business layer), 2 connection lost (access layer), 3 kicked out, 4 token expired.';
COMMENT ON COLUMN public.room_logouts.user_role IS '1 host, 2 audience, 4 admin (bots); meaningful with the LiveRoom SDK only.';
COMMENT ON COLUMN public.room_logouts.paired_login_time IS 'For a logout without login_time: login_time of its room_login (same appid, room_id, user_account, session_id; the latest at or before logout_time); NULL while none is known. Always NULL when login_time was sent.';
COMMENT ON COLUMN public.room_logouts.login_at IS 'When the user logged in: login_time as sent, else paired_login_time; NULL while no login is known.';
COMMENT ON COLUMN public.room_logouts.digest IS 'SHA-256 business digest of the body (as callback_events.digest): a retry has the same, a variant of this logout another.';
COMMENT ON COLUMN public.room_logouts.body IS 'The decoded callback fields as JSON text, as sent (as callback_events.body); NULL once older than --retain-raw-days.';

CREATE TABLE public.zegolog_settings (
    singleton boolean DEFAULT true NOT NULL,
    time_zone text DEFAULT 'UTC'::text NOT NULL,
    chosen boolean DEFAULT false NOT NULL,
    changed_at timestamp with time zone DEFAULT now() NOT NULL,
    max_session interval DEFAULT '7 days'::interval NOT NULL,
    raw_bodies_dropped_before timestamp with time zone,
    CONSTRAINT zegolog_settings_max_session_check CHECK ((max_session > '00:00:00'::interval)),
    CONSTRAINT zegolog_settings_singleton_check CHECK (singleton)
);
COMMENT ON TABLE public.zegolog_settings IS 'One row: the reporting time zone (IANA name) in which every daily view and rollup cuts its days. Change it with `zegolog time-zone set NAME` (it rebuilds the rollups), never by UPDATE.';
COMMENT ON COLUMN public.zegolog_settings.max_session IS 'The longest plausible session: a longer one is stored but has no duration and no concurrency in the rollups (zegolog_time_fault). A change applies to callbacks stored afterwards; `zegolog time-zone set` with the current zone recomputes the stored duration rollups under it (not the concurrency already counted).';
COMMENT ON COLUMN public.zegolog_settings.raw_bodies_dropped_before IS 'Retention''s progress with --retain-raw-days: the logouts before this logout_time have no body any more (zegolog_prune_batch); NULL until it first runs.';

CREATE VIEW public.data_quality_daily AS
 SELECT f.day,
    f.appid,
    sum(f.logout) AS logouts,
    sum(f.negative) AS negative_durations,
    sum(f.zero) AS zero_durations,
    sum(f.future) AS logout_far_future,
    sum(f.past) AS logout_far_past,
    sum(f.without_login) AS without_login,
    sum(f.quarantined) AS quarantined,
    sum(f.signature_reuse) AS signature_reuses,
    sum(f.no_login_time) AS without_login_time,
    sum(f.unpaired) AS unpaired,
    sum(f.implausible) AS implausible_times,
    sum(f.before_2010) AS before_2010,
    sum(f.too_long) AS sessions_too_long
   FROM ( SELECT public.zegolog_local_day(l.received_at) AS day,
            l.appid,
            1 AS logout,
            (((l.logout_time < l.login_at) IS TRUE))::integer AS negative,
            (((l.logout_time = l.login_at) IS TRUE))::integer AS zero,
            (((l.logout_time - l.received_at) > '1 day'::interval))::integer AS future,
            (((l.received_at - l.logout_time) > '1 day'::interval))::integer AS past,
            ((NOT (EXISTS ( SELECT 1
                   FROM public.room_logins i
                  WHERE ((i.appid = l.appid) AND (i.room_id = l.room_id) AND (i.user_account = l.user_account) AND (i.session_id = l.session_id) AND (i.login_time >= (l.login_at - '00:01:00'::interval)) AND (i.login_time <= (l.login_at + '00:01:00'::interval)))))))::integer AS without_login,
            0 AS quarantined,
            0 AS signature_reuse,
            ((l.login_time IS NULL))::integer AS no_login_time,
            (((l.login_time IS NULL) AND (l.paired_login_time IS NULL)))::integer AS unpaired,
            ((t.fault IS NOT NULL))::integer AS implausible,
            (COALESCE((t.fault = ANY (ARRAY['logout_before_2010'::text, 'login_before_2010'::text])), false))::integer AS before_2010,
            (COALESCE((t.fault = 'session_too_long'::text), false))::integer AS too_long
           FROM (public.room_logouts l
             CROSS JOIN LATERAL ( SELECT public.zegolog_time_fault(l.login_at, l.logout_time, l.received_at, s.max_session) AS fault
                   FROM public.zegolog_settings s) t)
        UNION ALL
         SELECT public.zegolog_local_day(e.received_at) AS zegolog_local_day,
            e.appid,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
            ((e.refused_reason ~~ 'signature reuse:%'::text))::integer AS int4,
            0,
            0,
            0,
            0,
            0
           FROM public.callback_events e
          WHERE (e.refused_reason IS NOT NULL)) f
  GROUP BY f.day, f.appid;
COMMENT ON VIEW public.data_quality_daily IS 'Per day of receipt (received_at, in the reporting time zone) and app: logouts received, and how many had a negative or zero duration, a logout_time more than a day ahead of or behind their arrival, no login event, no login_time, no known login yet, plus the quarantined callbacks (any event) and signature reuses. Filter on appid; for a time window use data_quality_daily_between(appid, from, to).';
COMMENT ON COLUMN public.data_quality_daily.day IS 'Calendar day (in the reporting time zone) the rows were received (received_at), not the day of logout.';
COMMENT ON COLUMN public.data_quality_daily.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN public.data_quality_daily.logouts IS 'Logouts received that day.';
COMMENT ON COLUMN public.data_quality_daily.negative_durations IS 'Of those, logout_time before login_time (the sender''s clock went backwards).';
COMMENT ON COLUMN public.data_quality_daily.zero_durations IS 'Of those, logout_time equal to login_time.';
COMMENT ON COLUMN public.data_quality_daily.logout_far_future IS 'Of those, logout_time more than 1 day after received_at.';
COMMENT ON COLUMN public.data_quality_daily.logout_far_past IS 'Of those, logout_time more than 1 day before received_at (a late delivery, or a long spool replay).';
COMMENT ON COLUMN public.data_quality_daily.without_login IS 'Of those, logouts with no room_login of the same appid, room_id, user_account and session_id whose login_time is within a minute of the logout''s login_time (the login was lost, or room_login is not enabled in the console).';
COMMENT ON COLUMN public.data_quality_daily.quarantined IS 'Authentic callbacks of any event received that day that could not be normalised (callback_events.refused_reason set).';
COMMENT ON COLUMN public.data_quality_daily.signature_reuses IS 'Of the quarantined, callbacks whose (timestamp, nonce, signature) came first with another body (refused_reason starts with ''signature reuse:''): a forged body, or two callbacks sharing a nonce by chance.';
COMMENT ON COLUMN public.data_quality_daily.without_login_time IS 'Of the logouts, those that came without login_time (room_logout of the 2022-2023 docs); their login comes from room_login.';
COMMENT ON COLUMN public.data_quality_daily.unpaired IS 'Of those, the ones whose room_login is still unknown: in reason counts, in no duration statistic yet.';
COMMENT ON COLUMN public.data_quality_daily.implausible_times IS 'Of the logouts, those whose times are implausible (zegolog_time_fault: a time before 2010, logout_time more than a day after received_at, logout before login, a session longer than zegolog_settings.max_session): stored, counted in their reason, in no duration and no concurrency.';
COMMENT ON COLUMN public.data_quality_daily.before_2010 IS 'Of the implausible, those with a login_time or logout_time before 2010 (0, or seconds sent for milliseconds).';
COMMENT ON COLUMN public.data_quality_daily.sessions_too_long IS 'Of the implausible, sessions longer than zegolog_settings.max_session.';

CREATE FUNCTION public.data_quality_daily_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) RETURNS SETOF public.data_quality_daily
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    apps bigint[] := CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END;
    zone text := zegolog_time_zone();
    longest interval := (SELECT max_session FROM zegolog_settings);
BEGIN
    RETURN QUERY
    WITH received AS MATERIALIZED (
        SELECT r.appid, r.room_id, r.user_account, r.session_id, r.login_time,
               r.login_at AS login_at, r.logout_time, r.received_at
        FROM room_logouts AS r
        WHERE r.appid = ANY (apps)
          AND r.logout_time >= p_from - interval '1 day' AND r.logout_time < p_to + interval '1 day'
          AND r.received_at >= p_from AND r.received_at < p_to
          AND NOT (r.logout_time - r.received_at > interval '1 day' OR r.received_at - r.logout_time > interval '1 day')
        UNION ALL
        SELECT r.appid, r.room_id, r.user_account, r.session_id, r.login_time,
               r.login_at, r.logout_time, r.received_at
        FROM room_logouts AS r
        WHERE (r.logout_time - r.received_at > interval '1 day' OR r.received_at - r.logout_time > interval '1 day')
          AND r.received_at >= p_from AND r.received_at < p_to
          AND (p_appid IS NULL OR r.appid = p_appid)
    ), logins AS (
        SELECT i.appid, i.room_id, i.user_account, i.session_id, i.login_time
        FROM room_logins AS i
        WHERE i.appid = ANY (apps)
          AND i.login_time >= (SELECT min(login_at) - interval '1 minute' FROM received)
          AND i.login_time <= (SELECT max(login_at) + interval '1 minute' FROM received)
    ), unmatched AS (
        SELECT zegolog_local_day(l.received_at, zone) AS day, l.appid, count(*) AS n
        FROM received AS l
        WHERE NOT EXISTS (
            SELECT 1 FROM logins AS i
            WHERE i.appid = l.appid AND i.room_id = l.room_id
              AND i.user_account = l.user_account AND i.session_id = l.session_id
              AND i.login_time >= l.login_at - interval '1 minute'
              AND i.login_time <= l.login_at + interval '1 minute'
        )
        GROUP BY 1, 2
    ), faults AS (
        SELECT l.*, zegolog_time_fault(l.login_at, l.logout_time, l.received_at, longest) AS fault
        FROM received AS l
    ), counts AS (
        SELECT zegolog_local_day(l.received_at, zone) AS day, l.appid,
               count(*) AS logouts,
               count(*) FILTER (WHERE l.logout_time < l.login_at) AS negative_durations,
               count(*) FILTER (WHERE l.logout_time = l.login_at) AS zero_durations,
               count(*) FILTER (WHERE l.logout_time - l.received_at > interval '1 day') AS logout_far_future,
               count(*) FILTER (WHERE l.received_at - l.logout_time > interval '1 day') AS logout_far_past,
               count(*) FILTER (WHERE l.login_time IS NULL) AS without_login_time,
               count(*) FILTER (WHERE l.login_at IS NULL) AS unpaired,
               count(*) FILTER (WHERE l.fault IS NOT NULL) AS implausible_times,
               count(*) FILTER (WHERE l.fault IN ('logout_before_2010', 'login_before_2010')) AS before_2010,
               count(*) FILTER (WHERE l.fault = 'session_too_long') AS sessions_too_long
        FROM faults AS l
        GROUP BY 1, 2
    ), quarantine AS (
        SELECT zegolog_local_day(e.received_at, zone) AS day, e.appid, count(*) AS n,
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
           coalesce(c.without_login_time, 0), coalesce(c.unpaired, 0),
           coalesce(c.implausible_times, 0), coalesce(c.before_2010, 0), coalesce(c.sessions_too_long, 0)
    FROM counts AS c
    LEFT JOIN unmatched AS u ON u.day = c.day AND u.appid = c.appid
    FULL JOIN quarantine AS q ON q.day = c.day AND q.appid = c.appid;
END
$$;
COMMENT ON FUNCTION public.data_quality_daily_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) IS 'The rows of data_quality_daily for what was received in [p_from, p_to) (p_appid NULL: every app).';

CREATE FUNCTION public.incident_reasons(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval DEFAULT '00:01:00'::interval) RETURNS TABLE(bucket_start timestamp with time zone, reason text, logouts bigint, bucket_logouts bigint, share double precision, usual_share double precision, lift double precision)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$#variable_conflict use_column
BEGIN
RETURN QUERY 
    WITH origin AS MATERIALIZED (
        SELECT zegolog_day_start(zegolog_local_day(p_from), zegolog_time_zone()) AS at
    ), per_bucket AS (
        -- One group per bucket, a count per reason code: a hash of 1,440 groups at most, which
        -- is faster than grouping on (bucket, reason); unpivoted below.
        SELECT date_bin(p_bucket, l.logout_time, o.at) AS bucket_start,
               count(*) FILTER (WHERE l.reason = 0) AS n0,
               count(*) FILTER (WHERE l.reason = 1) AS n1,
               count(*) FILTER (WHERE l.reason = 2) AS n2,
               count(*) FILTER (WHERE l.reason = 3) AS n3,
               count(*) FILTER (WHERE l.reason = 4) AS n4,
               count(*) AS n
        FROM room_logouts AS l, origin AS o
        WHERE l.appid = p_appid AND l.logout_time >= p_from AND l.logout_time < p_to
        GROUP BY 1
    ), decoded AS (
        SELECT b.bucket_start, r.reason, r.logouts
        FROM per_bucket AS b
        CROSS JOIN LATERAL (VALUES
            (zegolog_reason_name(0), b.n0), (zegolog_reason_name(1), b.n1),
            (zegolog_reason_name(2), b.n2), (zegolog_reason_name(3), b.n3),
            (zegolog_reason_name(4), b.n4),
            (zegolog_reason_name(NULL), b.n - b.n0 - b.n1 - b.n2 - b.n3 - b.n4)
        ) AS r(reason, logouts)
        WHERE r.logouts > 0
    ), usual AS (
        SELECT u.reason, u.usual_share FROM reason_usual_shares(p_appid, p_from) AS u
    )
    SELECT d.bucket_start, d.reason, d.logouts::bigint,
           (sum(d.logouts) OVER w)::bigint,
           (d.logouts / sum(d.logouts) OVER w)::double precision,
           u.usual_share,
           (d.logouts / sum(d.logouts) OVER w)::double precision / nullif(u.usual_share, 0)
    FROM decoded AS d
    LEFT JOIN usual AS u ON u.reason = d.reason
    WINDOW w AS (PARTITION BY d.bucket_start)
    ORDER BY d.bucket_start, d.reason;
END$$;
COMMENT ON FUNCTION public.incident_reasons(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval) IS 'Logouts of app p_appid in [p_from, p_to) per bucket of p_bucket (aligned on the reporting time zone''s midnight of p_from''s day) and decoded reason: logouts, all logouts of the bucket, share of the bucket, usual share (reason_usual_shares before p_from) and lift = share / usual share (NULL without a usual share). Buckets and reasons without logouts have no row.';

CREATE FUNCTION public.incident_users_online(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval DEFAULT '00:01:00'::interval) RETURNS TABLE(bucket_start timestamp with time zone, users_online bigint, fewest_online bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    WITH origin AS MATERIALIZED (
        SELECT zegolog_day_start(zegolog_local_day(p_from), zegolog_time_zone()) AS at
    )
    SELECT date_bin(p_bucket, o.minute, origin.at),
           max(o.users_online)::bigint, min(o.users_online)::bigint
    FROM users_online(p_appid, p_from, p_to) AS o, origin
    GROUP BY 1
    ORDER BY 1;
$$;
COMMENT ON FUNCTION public.incident_users_online(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval) IS 'Per bucket of p_bucket in [p_from, p_to) (aligned as incident_reasons): the most (users_online) and the fewest sessions online in app p_appid in any minute of the bucket, as users_online(appid, from, to) counts them.';

CREATE FUNCTION public.zegolog_reason_name(reason integer) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE reason
        WHEN 0 THEN 'normal'
        WHEN 1 THEN 'heartbeat_timeout'
        WHEN 2 THEN 'connection_lost'
        WHEN 3 THEN 'kicked_out'
        WHEN 4 THEN 'token_expired'
        ELSE 'unknown'
    END;
$$;
COMMENT ON FUNCTION public.zegolog_reason_name(reason integer) IS 'Decoded room_logout reason: 0 normal, 1 heartbeat_timeout, 2 connection_lost, 3 kicked_out, 4 token_expired, else unknown.';

CREATE FUNCTION public.zegolog_time_zone() RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    SELECT time_zone FROM zegolog_settings;
$$;
COMMENT ON FUNCTION public.zegolog_time_zone() IS 'The reporting time zone of this deployment (IANA name), in which the daily views cut their days.';

CREATE VIEW public.logout_reasons_hourly AS
 SELECT c.bucket_start,
    (c.bucket_start + c.width) AS bucket_end,
    c.appid,
    c.reason,
    c.logouts,
    (sum(c.logouts) OVER (PARTITION BY c.appid, c.bucket_start))::bigint AS bucket_logouts,
    (((c.logouts)::numeric / sum(c.logouts) OVER (PARTITION BY c.appid, c.bucket_start)))::double precision AS share,
    ((sum(c.logouts) OVER (PARTITION BY c.appid, c.reason) / sum(c.logouts) OVER (PARTITION BY c.appid)))::double precision AS window_share,
    ((((c.logouts)::numeric / sum(c.logouts) OVER (PARTITION BY c.appid, c.bucket_start)) / (sum(c.logouts) OVER (PARTITION BY c.appid, c.reason) / sum(c.logouts) OVER (PARTITION BY c.appid))))::double precision AS lift
   FROM ( SELECT date_trunc('hour'::text, l.logout_time, public.zegolog_time_zone()) AS bucket_start,
            '01:00:00'::interval AS width,
            l.appid,
            public.zegolog_reason_name(l.reason) AS reason,
            count(*) AS logouts
           FROM public.room_logouts l
          GROUP BY (date_trunc('hour'::text, l.logout_time, public.zegolog_time_zone())), '01:00:00'::interval, l.appid, (public.zegolog_reason_name(l.reason))) c;
COMMENT ON VIEW public.logout_reasons_hourly IS 'Logouts per hour (of the reporting time zone), app and decoded reason, with share of the hour and lift over all time: an incident (a spike of connection_lost) shows as a high share and lift. Filter on appid; for a time window or a finer bucket use logout_reasons_between(appid, from, to, bucket).';
COMMENT ON COLUMN public.logout_reasons_hourly.bucket_start IS 'Start of the bucket (an hour of the reporting time zone), inclusive.';
COMMENT ON COLUMN public.logout_reasons_hourly.bucket_end IS 'End of the bucket, exclusive.';
COMMENT ON COLUMN public.logout_reasons_hourly.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN public.logout_reasons_hourly.reason IS 'Decoded logout reason: normal, heartbeat_timeout, connection_lost, kicked_out, token_expired, unknown.';
COMMENT ON COLUMN public.logout_reasons_hourly.logouts IS 'Logouts of this app with this reason in the bucket (a bucket-reason without logouts has no row).';
COMMENT ON COLUMN public.logout_reasons_hourly.bucket_logouts IS 'All logouts of this app in the bucket, every reason.';
COMMENT ON COLUMN public.logout_reasons_hourly.share IS 'logouts / bucket_logouts, between 0 and 1; the shares of one app-bucket sum to 1.';
COMMENT ON COLUMN public.logout_reasons_hourly.window_share IS 'This reason''s share of the app''s logouts over the whole window (all time for the view): the baseline.';
COMMENT ON COLUMN public.logout_reasons_hourly.lift IS 'share / window_share: 1 is usual, 3 means this reason is three times as frequent as usual in this bucket.';

CREATE FUNCTION public.logout_reasons_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval DEFAULT '01:00:00'::interval) RETURNS SETOF public.logout_reasons_hourly
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    apps bigint[] := CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END;
    zone text := zegolog_time_zone();
BEGIN
    IF p_bucket IS NULL OR p_bucket <= interval '0' THEN
        RAISE EXCEPTION 'the bucket must be a positive interval, not %', p_bucket USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    SELECT
        c.bucket_start,
        zegolog_bucket_end(c.bucket_start, p_bucket, zone) AS bucket_end,
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
        SELECT zegolog_bucket_start(l.logout_time, p_bucket, zone) AS bucket_start,
               l.appid,
               zegolog_reason_name(l.reason) AS reason,
               count(*) AS logouts
        FROM room_logouts AS l
        WHERE l.appid = ANY (apps)
          AND l.logout_time >= p_from AND l.logout_time < p_to
        GROUP BY 1, 2, 3
    ) AS c;
END
$$;
COMMENT ON FUNCTION public.logout_reasons_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval) IS 'The rows of logout_reasons_hourly for the logouts in [p_from, p_to) (p_appid NULL: every app), in buckets of p_bucket (default 1 hour; e.g. 1 minute, 5 minutes, 1 day) of the reporting time zone (zegolog_bucket_start: aligned on its midnights; 1 day is a local day, 23 or 25 hours on a DST change); window_share and lift are over this window.';

CREATE FUNCTION public.logout_reasons_daily_in(p_zone text, p_from date, p_to date, p_appid bigint DEFAULT NULL::bigint) RETURNS TABLE(day date, appid bigint, reason text, logouts bigint, share double precision, median_duration_s double precision)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    WITH g AS (
        SELECT b.day, b.appid, b.reason, sum(b.sessions)::bigint AS logouts,
               zegolog_bucket_ms(zegolog_nearest_rank(
                   0.5, array_agg(b.bucket) FILTER (WHERE b.bucket <> zegolog_no_duration_bucket()),
                   array_agg(b.sessions) FILTER (WHERE b.bucket <> zegolog_no_duration_bucket()))) / 1000
                   AS median_duration_s
        FROM zegolog_buckets_in(p_zone, p_from, p_to, p_appid) AS b
        GROUP BY b.day, b.appid, b.reason
    )
    SELECT day, appid, reason, logouts,
           (logouts::numeric / sum(logouts) OVER (PARTITION BY day, appid))::double precision,
           median_duration_s
    FROM g
    ORDER BY day, appid, reason;
$$;
COMMENT ON FUNCTION public.logout_reasons_daily_in(p_zone text, p_from date, p_to date, p_appid bigint) IS 'logout_reasons_daily with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93) and app p_appid (NULL, the default: every app), computed from the raw rows.';

CREATE FUNCTION public.peak_concurrency_daily_in(p_zone text, p_from date, p_to date, p_appid bigint DEFAULT NULL::bigint) RETURNS TABLE(day date, appid bigint, peak_users bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    SELECT day, appid, peak_users FROM zegolog_peaks_in(p_zone, p_from, p_to, false, p_appid) ORDER BY day, appid;
$$;
COMMENT ON FUNCTION public.peak_concurrency_daily_in(p_zone text, p_from date, p_to date, p_appid bigint) IS 'peak_concurrency_daily with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93) and app p_appid (NULL, the default: every app), from the zone-free per-minute rollups.';

CREATE FUNCTION public.reason_usual_shares(p_appid bigint, p_before timestamp with time zone, p_days integer DEFAULT 7) RETURNS TABLE(reason text, logouts bigint, usual_share double precision)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    SELECT d.reason, sum(d.logouts)::bigint,
           (sum(d.logouts) / sum(sum(d.logouts)) OVER ())::double precision
    FROM logout_reasons_daily AS d
    WHERE d.appid = p_appid
      AND d.day >= zegolog_local_day(p_before) - p_days
      AND d.day < zegolog_local_day(p_before)
    GROUP BY d.reason
    ORDER BY d.reason;
$$;
COMMENT ON FUNCTION public.reason_usual_shares(p_appid bigint, p_before timestamp with time zone, p_days integer) IS 'Each reason''s logouts and share of app p_appid''s logouts over the p_days (default 7) whole days (of the reporting time zone) before the day of p_before: the usual share the incident view measures lift against.';

CREATE FUNCTION public.zegolog_close_reason_name(close_reason integer) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE close_reason
        WHEN 0 THEN 'normal'
        WHEN 1 THEN 'last_user_heartbeat_timeout'
        WHEN 2 THEN 'last_user_offline'
        WHEN 3 THEN 'last_user_kicked_out'
        ELSE 'unknown'
    END;
$$;
COMMENT ON FUNCTION public.zegolog_close_reason_name(close_reason integer) IS 'Decoded room_close close_reason: 0 normal, 1 last_user_heartbeat_timeout, 2 last_user_offline, 3 last_user_kicked_out, else unknown.';

CREATE FUNCTION public.zegolog_lifecycle_peak(ins timestamp with time zone[], outs timestamp with time zone[]) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
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
COMMENT ON FUNCTION public.zegolog_lifecycle_peak(ins timestamp with time zone[], outs timestamp with time zone[]) IS 'The most sessions online in any minute, from the login minutes (+1) and the minutes after the logout minutes (-1) of a room lifecycle''s sessions (room_lifecycle.peak_users).';

CREATE TABLE public.room_lifecycle_events (
    appid bigint NOT NULL,
    room_id text NOT NULL,
    room_session_id numeric(20,0) NOT NULL,
    event text NOT NULL,
    at timestamp with time zone NOT NULL,
    creator text,
    close_reason integer,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT room_lifecycle_events_event_check CHECK ((event = ANY (ARRAY['room_create'::text, 'room_close'::text]))),
    CONSTRAINT room_lifecycle_events_room_session_id_check CHECK (((room_session_id >= (0)::numeric) AND (room_session_id <= '18446744073709551615'::numeric)))
);
COMMENT ON TABLE public.room_lifecycle_events IS 'room_create and room_close callbacks, once per room lifecycle and event.';
COMMENT ON COLUMN public.room_lifecycle_events.at IS 'room_create_time or room_close_time.';
COMMENT ON COLUMN public.room_lifecycle_events.close_reason IS '0 normal, 1 last user''s heartbeat timed out, 2 last user went offline, 3 last user was kicked out.';

CREATE VIEW public.room_lifecycle AS
 SELECT k.appid,
    k.room_id,
    k.room_seq,
    e.created_at,
    e.creator,
    e.closed_at,
    e.close_reason AS close_reason_code,
        CASE
            WHEN (e.closed_at IS NOT NULL) THEN public.zegolog_close_reason_name(e.close_reason)
            ELSE NULL::text
        END AS close_reason,
    (e.closed_at - e.created_at) AS lifetime,
    s.sessions,
    s.users,
    s.user_minutes,
    public.zegolog_lifecycle_peak(s.ins, s.outs) AS peak_users,
    s.first_login_at,
    s.last_logout_at
   FROM ((( SELECT e_1.appid,
            e_1.room_id,
            e_1.room_session_id AS room_seq
           FROM public.room_lifecycle_events e_1
        UNION
         SELECT l.appid,
            l.room_id,
            l.room_seq
           FROM public.room_logouts l
          WHERE (l.room_seq IS NOT NULL)) k
     CROSS JOIN LATERAL ( SELECT max(v.at) FILTER (WHERE (v.event = 'room_create'::text)) AS created_at,
            max(v.creator) FILTER (WHERE (v.event = 'room_create'::text)) AS creator,
            max(v.at) FILTER (WHERE (v.event = 'room_close'::text)) AS closed_at,
            max(v.close_reason) FILTER (WHERE (v.event = 'room_close'::text)) AS close_reason
           FROM public.room_lifecycle_events v
          WHERE ((v.appid = k.appid) AND (v.room_id = k.room_id) AND (v.room_session_id = k.room_seq))) e)
     CROSS JOIN LATERAL ( SELECT count(*) AS sessions,
            count(DISTINCT r.user_account) AS users,
            (COALESCE((sum(GREATEST(EXTRACT(epoch FROM (r.logout_time - r.login_at)), (0)::numeric)) / (60)::numeric), (0)::numeric))::double precision AS user_minutes,
            min(r.login_at) AS first_login_at,
            max(r.logout_time) AS last_logout_at,
            array_agg(date_trunc('minute'::text, r.login_at, 'UTC'::text)) FILTER (WHERE (r.logout_time >= r.login_at)) AS ins,
            array_agg((date_trunc('minute'::text, r.logout_time, 'UTC'::text) + '00:01:00'::interval)) FILTER (WHERE (r.logout_time >= r.login_at)) AS outs
           FROM public.room_logouts r
          WHERE ((r.appid = k.appid) AND (r.room_id = k.room_id) AND (r.room_seq = k.room_seq))) s);
COMMENT ON VIEW public.room_lifecycle IS 'One row per room lifecycle (room_seq = room_session_id) seen in a room_create, a room_close or a logout: created / closed times, close reason, and its sessions, users, user-minutes and peak concurrency. Filter on appid, room_id or room_seq; for a time window use room_lifecycle_between(appid, from, to).';
COMMENT ON COLUMN public.room_lifecycle.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN public.room_lifecycle.room_id IS 'Room id, as sent.';
COMMENT ON COLUMN public.room_lifecycle.room_seq IS 'Room lifecycle id (u64): room_session_id of room_create / room_close, room_seq of the logins and logouts. Logouts without room_seq are in no lifecycle.';
COMMENT ON COLUMN public.room_lifecycle.created_at IS 'room_create_time; NULL when no room_create was received.';
COMMENT ON COLUMN public.room_lifecycle.creator IS 'User id that created the room (id_name of room_create); NULL when not sent.';
COMMENT ON COLUMN public.room_lifecycle.closed_at IS 'room_close_time; NULL while open or when no room_close was received.';
COMMENT ON COLUMN public.room_lifecycle.close_reason_code IS 'Raw close_reason of room_close: 0 normal, 1 last user''s heartbeat timed out, 2 last user went offline, 3 last user was kicked out.';
COMMENT ON COLUMN public.room_lifecycle.close_reason IS 'Decoded close_reason_code: normal, last_user_heartbeat_timeout, last_user_offline, last_user_kicked_out, unknown; NULL when no room_close was received.';
COMMENT ON COLUMN public.room_lifecycle.lifetime IS 'closed_at - created_at; NULL unless both were received.';
COMMENT ON COLUMN public.room_lifecycle.sessions IS 'Logouts with this room_seq (0 if none yet).';
COMMENT ON COLUMN public.room_lifecycle.users IS 'Distinct user_account among those logouts.';
COMMENT ON COLUMN public.room_lifecycle.user_minutes IS 'Sum of the session durations in minutes; negative durations (bad sender clock) count as 0.';
COMMENT ON COLUMN public.room_lifecycle.peak_users IS 'Most sessions online in any UTC minute, over this lifecycle''s sessions (a session counts from its login minute to its logout minute included; negative durations left out).';
COMMENT ON COLUMN public.room_lifecycle.first_login_at IS 'Earliest login_time among those logouts; NULL if none.';
COMMENT ON COLUMN public.room_lifecycle.last_logout_at IS 'Latest logout_time among those logouts; NULL if none.';

CREATE FUNCTION public.room_lifecycle_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) RETURNS SETOF public.room_lifecycle
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    apps bigint[] := CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END;
BEGIN
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
               coalesce(sum(greatest(extract(EPOCH FROM r.logout_time - r.login_at), 0)) / 60, 0)::double precision AS user_minutes,
               min(r.login_at) AS first_login_at,
               max(r.logout_time) AS last_logout_at,
               array_agg(date_trunc('minute', r.login_at, 'UTC')) FILTER (WHERE r.logout_time >= r.login_at) AS ins,
               array_agg(date_trunc('minute', r.logout_time, 'UTC') + interval '1 minute') FILTER (WHERE r.logout_time >= r.login_at) AS outs
        FROM room_logouts AS r
        WHERE (r.appid, r.room_id, r.room_seq) IN (SELECT k.appid, k.room_id, k.room_seq FROM k)
        GROUP BY r.appid, r.room_id, r.room_seq
    ) AS s ON s.appid = k.appid AND s.room_id = k.room_id AND s.room_seq = k.room_seq;
END
$$;
COMMENT ON FUNCTION public.room_lifecycle_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) IS 'The rows of room_lifecycle for the lifecycles created, closed or with a logout in [p_from, p_to) (p_appid NULL: every app); their statistics cover all their sessions.';

CREATE FUNCTION public.room_peak_concurrency_daily_in(p_zone text, p_from date, p_to date, p_appid bigint DEFAULT NULL::bigint) RETURNS TABLE(day date, appid bigint, room_id text, peak_users bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    SELECT day, appid, room_id, peak_users FROM zegolog_peaks_in(p_zone, p_from, p_to, true, p_appid) ORDER BY day, appid, room_id;
$$;
COMMENT ON FUNCTION public.room_peak_concurrency_daily_in(p_zone text, p_from date, p_to date, p_appid bigint) IS 'room_peak_concurrency_daily (days with users online) with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93) and app p_appid (NULL, the default: every app), from the zone-free per-minute rollups.';

CREATE FUNCTION public.room_users_online(p_appid bigint, p_room_id text, p_from timestamp with time zone, p_to timestamp with time zone) RETURNS TABLE(minute timestamp with time zone, users_online bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$#variable_conflict use_column
BEGIN
RETURN QUERY 
    WITH bounds AS (
        SELECT date_trunc('minute', p_from, 'UTC') AS first_minute,
               zegolog_local_day(p_from, z.zone) AS first_day,
               zegolog_day_start(zegolog_local_day(p_from, z.zone), z.zone) AS first_day_start
        FROM (SELECT zegolog_time_zone() AS zone) AS z
        WHERE isfinite(p_from) AND isfinite(p_to)
    ), deltas AS (
        SELECT m.minute, m.delta
        FROM room_concurrency_minute AS m, bounds AS b
        WHERE m.appid = p_appid AND m.room_id = p_room_id
          AND m.minute >= b.first_day_start AND m.minute < p_to
        UNION ALL
        SELECT c.minute, c.delta
        FROM pending_contributions AS p, unnest(p.deltas) AS c
        WHERE c.appid = p_appid AND c.room_id = p_room_id AND c.minute < p_to
    ), base AS MATERIALIZED (
        -- zegolog_room_online_at's lookup, written here so that on Citus the whole query
        -- stays one router query on the room's shard (a call would not be planned).
        SELECT coalesce((SELECT CASE WHEN d.day = b.first_day THEN d.start ELSE d.start + d.net END
                         FROM room_concurrency_day AS d
                         WHERE d.appid = p_appid AND d.room_id = p_room_id AND d.day <= b.first_day
                         ORDER BY d.day DESC LIMIT 1), 0)
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
END$$;
COMMENT ON FUNCTION public.room_users_online(p_appid bigint, p_room_id text, p_from timestamp with time zone, p_to timestamp with time zone) IS 'Sessions online in room p_room_id of app p_appid in every UTC minute of [p_from, p_to), as users_online.';

CREATE FUNCTION public.session_duration_daily_in(p_zone text, p_from date, p_to date, p_appid bigint DEFAULT NULL::bigint) RETURNS TABLE(day date, appid bigint, sessions bigint, total_minutes double precision, avg_s double precision, p50_s double precision, p90_s double precision, p99_s double precision, max_s double precision, sessions_with_duration bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    WITH b AS (
        SELECT day, appid, bucket, bucket <> zegolog_no_duration_bucket() AS timed,
               sum(sessions) AS sessions, sum(total_ms) AS total_ms, max(max_ms) AS max_ms
        FROM zegolog_buckets_in(p_zone, p_from, p_to, p_appid)
        GROUP BY day, appid, bucket
    )
    SELECT day, appid, sum(sessions)::bigint,
           (sum(total_ms) FILTER (WHERE timed) / 60000)::double precision,
           (sum(total_ms) FILTER (WHERE timed) / nullif(coalesce(sum(sessions) FILTER (WHERE timed), 0), 0) / 1000)::double precision,
           zegolog_bucket_ms(zegolog_nearest_rank(0.5, array_agg(bucket) FILTER (WHERE timed), array_agg(sessions) FILTER (WHERE timed))) / 1000,
           zegolog_bucket_ms(zegolog_nearest_rank(0.9, array_agg(bucket) FILTER (WHERE timed), array_agg(sessions) FILTER (WHERE timed))) / 1000,
           zegolog_bucket_ms(zegolog_nearest_rank(0.99, array_agg(bucket) FILTER (WHERE timed), array_agg(sessions) FILTER (WHERE timed))) / 1000,
           max(max_ms) FILTER (WHERE timed)::double precision / 1000,
           coalesce(sum(sessions) FILTER (WHERE timed), 0)::bigint
    FROM b
    GROUP BY day, appid
    ORDER BY day, appid;
$$;
COMMENT ON FUNCTION public.session_duration_daily_in(p_zone text, p_from date, p_to date, p_appid bigint) IS 'session_duration_daily with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93) and app p_appid (NULL, the default: every app), computed from the raw rows.';

CREATE FUNCTION public.zegolog_session_start(login_at timestamp with time zone, logout_at timestamp with time zone, received_at timestamp with time zone, max_session interval) RETURNS timestamp with time zone
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN zegolog_time_fault(login_at, logout_at, received_at, max_session) IS NULL THEN login_at END;
$$;
COMMENT ON FUNCTION public.zegolog_session_start(login_at timestamp with time zone, logout_at timestamp with time zone, received_at timestamp with time zone, max_session interval) IS 'The login a session''s duration and concurrency are computed from: login_at when the session is plausible (zegolog_time_fault), NULL otherwise (no duration, no concurrency, as for a logout whose login is unknown).';

CREATE VIEW public.user_daily AS
 SELECT public.zegolog_local_day(l.logout_time) AS day,
    l.appid,
    l.user_account,
    (array_agg(l.user_nickname ORDER BY l.logout_time DESC))[1] AS last_nickname,
    count(*) AS sessions,
    count(DISTINCT l.room_id) AS rooms,
    ((sum(EXTRACT(epoch FROM (l.logout_time - public.zegolog_session_start(l.login_at, l.logout_time, l.received_at, s.max_session)))) / (60)::numeric))::double precision AS total_minutes,
    sum((l.logout_time - public.zegolog_session_start(l.login_at, l.logout_time, l.received_at, s.max_session))) AS total_time,
    count(*) FILTER (WHERE (l.reason = 0)) AS normal,
    count(*) FILTER (WHERE (l.reason = 1)) AS heartbeat_timeout,
    count(*) FILTER (WHERE (l.reason = 2)) AS connection_lost,
    count(*) FILTER (WHERE (l.reason = 3)) AS kicked_out,
    count(*) FILTER (WHERE (l.reason = 4)) AS token_expired,
    count(*) FILTER (WHERE ((l.reason IS NULL) OR (l.reason <> ALL (ARRAY[0, 1, 2, 3, 4])))) AS unknown,
    min(l.login_at) AS first_login_at,
    max(l.logout_time) AS last_logout_at
   FROM (public.room_logouts l
     CROSS JOIN public.zegolog_settings s)
  GROUP BY (public.zegolog_local_day(l.logout_time)), l.appid, l.user_account;
COMMENT ON VIEW public.user_daily IS 'Per day of logout (in the reporting time zone, zegolog_time_zone()), app and user: sessions, rooms, total time, and how many sessions ended with each logout reason. Filter on appid and user_account; for a time window use user_daily_between(appid, from, to).';
COMMENT ON COLUMN public.user_daily.day IS 'Calendar day of the logout in the reporting time zone; a session counts on the day it ended.';
COMMENT ON COLUMN public.user_daily.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN public.user_daily.user_account IS 'User id used at login.';
COMMENT ON COLUMN public.user_daily.last_nickname IS 'Nickname of the user''s last session that day (it can change); NULL when not sent.';
COMMENT ON COLUMN public.user_daily.sessions IS 'Sessions (logouts) of this user that ended this day.';
COMMENT ON COLUMN public.user_daily.rooms IS 'Distinct rooms of those sessions.';
COMMENT ON COLUMN public.user_daily.total_minutes IS 'Sum of the durations of the sessions whose login is known, in minutes (negative durations counted as they are, as in session_duration_daily).';
COMMENT ON COLUMN public.user_daily.total_time IS 'The same sum as an interval.';
COMMENT ON COLUMN public.user_daily.normal IS 'Sessions that ended with reason 0 (normal logout).';
COMMENT ON COLUMN public.user_daily.heartbeat_timeout IS 'Sessions that ended with reason 1 (business-layer heartbeat timeout).';
COMMENT ON COLUMN public.user_daily.connection_lost IS 'Sessions that ended with reason 2 (access-layer connection lost or heartbeat timeout).';
COMMENT ON COLUMN public.user_daily.kicked_out IS 'Sessions that ended with reason 3 (kicked out by a backend call).';
COMMENT ON COLUMN public.user_daily.token_expired IS 'Sessions that ended with reason 4 (token expired).';
COMMENT ON COLUMN public.user_daily.unknown IS 'Sessions whose reason was not sent or is not a known code.';
COMMENT ON COLUMN public.user_daily.first_login_at IS 'Earliest login of those sessions (login_time, or that of the paired room_login).';
COMMENT ON COLUMN public.user_daily.last_logout_at IS 'Latest logout_time of those sessions.';

CREATE FUNCTION public.user_daily_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) RETURNS SETOF public.user_daily
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    apps bigint[] := CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END;
    zone text := zegolog_time_zone();
    longest interval := (SELECT max_session FROM zegolog_settings);
BEGIN
    RETURN QUERY
    SELECT
        zegolog_local_day(l.logout_time, zone) AS day,
        l.appid,
        l.user_account,
        (array_agg(l.user_nickname ORDER BY l.logout_time DESC))[1] AS last_nickname,
        count(*) AS sessions,
        count(DISTINCT l.room_id) AS rooms,
        (sum(extract(EPOCH FROM l.logout_time
                 - zegolog_session_start(l.login_at, l.logout_time,
                                         l.received_at, longest))) / 60)::double precision AS total_minutes,
        sum(l.logout_time - zegolog_session_start(l.login_at, l.logout_time,
                                                  l.received_at, longest)) AS total_time,
        count(*) FILTER (WHERE l.reason = 0) AS normal,
        count(*) FILTER (WHERE l.reason = 1) AS heartbeat_timeout,
        count(*) FILTER (WHERE l.reason = 2) AS connection_lost,
        count(*) FILTER (WHERE l.reason = 3) AS kicked_out,
        count(*) FILTER (WHERE l.reason = 4) AS token_expired,
        count(*) FILTER (WHERE l.reason IS NULL OR l.reason NOT IN (0, 1, 2, 3, 4)) AS unknown,
        min(l.login_at) AS first_login_at,
        max(l.logout_time) AS last_logout_at
    FROM room_logouts AS l
    WHERE l.appid = ANY (apps)
      AND l.logout_time >= p_from AND l.logout_time < p_to
    GROUP BY zegolog_local_day(l.logout_time, zone), l.appid, l.user_account;
END
$$;
COMMENT ON FUNCTION public.user_daily_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) IS 'The rows of user_daily for the sessions that ended in [p_from, p_to) (p_appid NULL: every app); days at the edges of the window are partial.';

CREATE FUNCTION public.users_online(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) RETURNS TABLE(minute timestamp with time zone, users_online bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    WITH bounds AS (
        SELECT date_trunc('minute', p_from, 'UTC') AS first_minute,
               zegolog_local_day(p_from, z.zone) AS first_day,
               zegolog_day_start(zegolog_local_day(p_from, z.zone), z.zone) AS first_day_start
        FROM (SELECT zegolog_time_zone() AS zone) AS z
        WHERE isfinite(p_from) AND isfinite(p_to)
    ), deltas AS (
        SELECT m.minute, m.delta
        FROM app_concurrency_minute AS m, bounds AS b
        WHERE m.appid = p_appid AND m.minute >= b.first_day_start AND m.minute < p_to
        UNION ALL
        SELECT c.minute, c.delta
        FROM pending_contributions AS p, unnest(p.deltas) AS c
        WHERE c.appid = p_appid AND c.minute < p_to
    ), base AS MATERIALIZED (
        -- Pending deltas of any earlier minute count here: compaction has not folded them
        -- into the day rows yet.
        SELECT zegolog_app_online_at(p_appid, b.first_day)
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
COMMENT ON FUNCTION public.users_online(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) IS 'Sessions online in app p_appid in every UTC minute of [p_from, p_to), from the minute holding p_from: a session counts from its login minute to its logout minute included. Compacted rollups plus pending rows: exact up to the last commit.';

CREATE FUNCTION public.zegolog_add_to_rollups(from_id bigint, to_id bigint) RETURNS void
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION public.zegolog_app_online_at(p_appid bigint, p_day date) RETURNS bigint
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce((
        SELECT CASE WHEN d.day = p_day THEN d.start ELSE d.start + d.net END
        FROM app_concurrency_day AS d
        WHERE d.appid = p_appid AND d.day <= p_day
        ORDER BY d.day DESC
        LIMIT 1), 0);
$$;
COMMENT ON FUNCTION public.zegolog_app_online_at(p_appid bigint, p_day date) IS 'Sessions online in app p_appid at the start of day p_day (reporting zone), compacted: the latest day row at or before it. The one rule for a starting count.';

CREATE FUNCTION public.zegolog_appids() RETURNS bigint[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
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
$$;
COMMENT ON FUNCTION public.zegolog_appids() IS 'Every appid that has logouts, logins or room lifecycle events, in order (loose index scan: fast).';

CREATE FUNCTION public.zegolog_begin_time_zone_change(p_zone text) RETURNS TABLE(first_day date, last_day date)
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION public.zegolog_bucket_end(bucket_start timestamp with time zone, width interval, zone text) RETURNS timestamp with time zone
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE
        WHEN width >= interval '1 day' THEN zegolog_day_start(
            zegolog_local_day(bucket_start, zone) + greatest(round(extract(EPOCH FROM width) / 86400), 1)::integer,
            zone)
        ELSE least(bucket_start + width, zegolog_day_start(zegolog_local_day(bucket_start, zone) + 1, zone))
    END;
$$;
COMMENT ON FUNCTION public.zegolog_bucket_end(bucket_start timestamp with time zone, width interval, zone text) IS 'End (exclusive) of the bucket starting at bucket_start: width later, or the next local midnight if sooner.';

CREATE FUNCTION public.zegolog_bucket_ms(bucket integer) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE
        WHEN bucket = 0 THEN 0
        ELSE sign(bucket) * 2 * power(1.01 / 0.99, abs(bucket) - 1) / (1.01 / 0.99 + 1)
    END;
$$;
COMMENT ON FUNCTION public.zegolog_bucket_ms(bucket integer) IS 'The duration in ms a bucket reports: the middle of its range, within 1% of every duration in it.';

CREATE FUNCTION public.zegolog_bucket_start(t timestamp with time zone, width interval, zone text) RETURNS timestamp with time zone
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
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
COMMENT ON FUNCTION public.zegolog_bucket_start(t timestamp with time zone, width interval, zone text) IS 'Start of the bucket of `width` holding t in time zone `zone`: under a day, aligned on the midnight of t''s local day; whole days, local days counted from Monday 2000-01-03.';

CREATE FUNCTION public.zegolog_buckets_in(p_zone text, p_from date, p_to date, p_appid bigint) RETURNS TABLE(day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint)
    LANGUAGE plpgsql STABLE
    AS $$
#variable_conflict use_column
DECLARE
    lo timestamptz;
    hi timestamptz;
    apps bigint[] := CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END;
    longest interval := (SELECT max_session FROM zegolog_settings);
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
                   zegolog_duration_ms(zegolog_session_start(r.login_at, r.logout_time, r.received_at, longest),
                                       r.logout_time) AS ms
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
    $$;

CREATE FUNCTION public.zegolog_compact_rollups() RETURNS void
    LANGUAGE plpgsql
    SET jit TO 'off'
    AS $$
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
COMMENT ON FUNCTION public.zegolog_compact_rollups() IS 'Moves the pending contributions into the rollups and recomputes the concurrency days they touch; one at a time (advisory lock), serve runs it about once a second.';

CREATE FUNCTION public.zegolog_day_start(day date, zone text) RETURNS timestamp with time zone
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT day::timestamp AT TIME ZONE zone;
$$;
COMMENT ON FUNCTION public.zegolog_day_start(day date, zone text) IS 'The instant local day `day` starts in time zone `zone` (its midnight; on a DST change the day is 23 or 25 hours long).';

CREATE FUNCTION public.zegolog_drop_partitions(parent regclass, lock_name text, cutoff timestamp with time zone) RETURNS SETOF text
    LANGUAGE plpgsql
    AS $$
DECLARE
    part record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(lock_name));
    PERFORM set_config('lock_timeout', '1s', true);
    FOR part IN
        SELECT c.relname,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
        FROM pg_inherits AS i
        JOIN pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = parent AND c.relname <> parent::text || '_default'
        ORDER BY 1
    LOOP
        IF part.upper_bound <= cutoff THEN
            EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', parent);
            EXECUTE format('DROP TABLE IF EXISTS %I', part.relname);
            RETURN NEXT part.relname;
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION public.zegolog_drop_partitions_before(cutoff timestamp with time zone) RETURNS SETOF text
    LANGUAGE sql
    AS $$
    SELECT zegolog_drop_partitions('room_logouts', 'zegolog_ensure_partition', cutoff);
$$;
COMMENT ON FUNCTION public.zegolog_drop_partitions_before(cutoff timestamp with time zone) IS 'Drops the monthly partitions of room_logouts that end at or before cutoff, giving up after 1 s of waiting for the lock (SQLSTATE 55P03; the caller retries); returns the partitions dropped. The rollups go with zegolog_retain_rollups, the rows of a partly expired month with zegolog_prune_batch.';

CREATE FUNCTION public.zegolog_duration_bucket(ms bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE
        WHEN ms = 0 THEN 0
        WHEN ms > 0 THEN 1 + ceil(round((ln(ms::double precision) / ln(1.01 / 0.99))::numeric, 9))::integer
        ELSE -(1 + ceil(round((ln((-ms)::double precision) / ln(1.01 / 0.99))::numeric, 9))::integer)
    END;
$$;
COMMENT ON FUNCTION public.zegolog_duration_bucket(ms bigint) IS 'The 1% bucket of a duration in ms (zegolog_bucket_ms is its value).';

CREATE FUNCTION public.zegolog_duration_ms(login_at timestamp with time zone, logout_at timestamp with time zone) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT (extract(EPOCH FROM logout_at - login_at) * 1000)::bigint;
$$;
COMMENT ON FUNCTION public.zegolog_duration_ms(login_at timestamp with time zone, logout_at timestamp with time zone) IS 'A session''s length in whole milliseconds (NULL when its login is unknown).';

CREATE FUNCTION public.zegolog_ensure_ledger_partition(p_day date) RETURNS text
    LANGUAGE sql
    AS $$
    SELECT zegolog_make_partition('signature_ledger', 'zegolog_signature_ledger_partitions',
                                  format('signature_ledger_%s', to_char(p_day, 'YYYY_MM_DD')),
                                  zegolog_day_start(p_day, 'UTC'), zegolog_day_start(p_day + 1, 'UTC'));
$$;
COMMENT ON FUNCTION public.zegolog_ensure_ledger_partition(p_day date) IS 'The daily partition of signature_ledger holding p_day (UTC), made if missing.';

CREATE FUNCTION public.zegolog_ensure_ledger_partitions(days_back integer DEFAULT 1, days_ahead integer DEFAULT 2) RETURNS SETOF text
    LANGUAGE sql
    AS $$
    SELECT zegolog_ensure_ledger_partition(d::date)
    FROM generate_series((now() AT TIME ZONE 'UTC')::date - days_back,
                         (now() AT TIME ZONE 'UTC')::date + days_ahead,
                         interval '1 day') AS d;
$$;

CREATE FUNCTION public.zegolog_ensure_partition(p_month date) RETURNS text
    LANGUAGE sql
    AS $$
    SELECT zegolog_make_partition('room_logouts', 'zegolog_ensure_partition',
                                  format('room_logouts_%s', to_char(p_month, 'YYYY_MM')),
                                  zegolog_day_start(date_trunc('month', p_month)::date, 'UTC'),
                                  zegolog_day_start((date_trunc('month', p_month) + interval '1 month')::date, 'UTC'));
$$;
COMMENT ON FUNCTION public.zegolog_ensure_partition(p_month date) IS 'The monthly partition of room_logouts holding p_month (UTC), made if missing.';

CREATE FUNCTION public.zegolog_ensure_partitions(months_back integer DEFAULT 1, months_ahead integer DEFAULT 3) RETURNS SETOF text
    LANGUAGE sql
    AS $$
    SELECT zegolog_ensure_partition(m::date)
    FROM generate_series(date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => months_back),
                         date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => months_ahead),
                         interval '1 month') AS m;
$$;

CREATE FUNCTION public.zegolog_erase_user(p_appid bigint, p_user_account text) RETURNS TABLE(name text, removed bigint, what text)
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
COMMENT ON FUNCTION public.zegolog_erase_user(p_appid bigint, p_user_account text) IS 'Erases user p_user_account of app p_appid (zegolog erase): their logins, logouts, every archived body naming them (zegolog_user_fields()) and its signature ledger entries; clears them as room creator; takes their sessions out of every rollup. One transaction, idempotent; returns what it removed per table.';

CREATE FUNCTION public.zegolog_is_time_zone(zone text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = zone);
$$;

CREATE FUNCTION public.zegolog_local_day(t timestamp with time zone, zone text) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT (t AT TIME ZONE zone)::date;
$$;
COMMENT ON FUNCTION public.zegolog_local_day(t timestamp with time zone, zone text) IS 'The calendar day of t in time zone `zone` (a 23- or 25-hour day around a DST change is one day).';

CREATE FUNCTION public.zegolog_logout_concurrency(p_appid bigint, p_room_id text, p_login_at timestamp with time zone, p_logout_at timestamp with time zone) RETURNS TABLE(appid bigint, room_id text, minute timestamp with time zone, delta bigint)
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT p_appid, p_room_id, date_trunc('minute', p_login_at, 'UTC'), 1::bigint
    WHERE p_logout_at >= p_login_at
    UNION ALL
    SELECT p_appid, p_room_id, date_trunc('minute', p_logout_at, 'UTC') + interval '1 minute', -1::bigint
    WHERE p_logout_at >= p_login_at;
$$;
COMMENT ON FUNCTION public.zegolog_logout_concurrency(p_appid bigint, p_room_id text, p_login_at timestamp with time zone, p_logout_at timestamp with time zone) IS 'The concurrency deltas one logout contributes (none while its login is unknown).';

CREATE FUNCTION public.zegolog_logout_contributions(p_appid bigint[], p_reason integer[], p_login_time timestamp with time zone[], p_logout_time timestamp with time zone[]) RETURNS TABLE(day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint)
    LANGUAGE sql
    AS $$
    SELECT r.day, r.appid, r.reason, r.bucket, sum(r.sessions)::bigint, sum(r.total_ms), max(r.max_ms)
    FROM unnest(p_appid, p_reason, p_login_time, p_logout_time) AS u(appid, reason, login_time, logout_time),
         zegolog_logout_rollup(u.appid, u.reason, u.login_time, u.logout_time) AS r
    GROUP BY 1, 2, 3, 4;
$$;
COMMENT ON FUNCTION public.zegolog_logout_contributions(p_appid bigint[], p_reason integer[], p_login_time timestamp with time zone[], p_logout_time timestamp with time zone[]) IS 'The logout_rollup rows (day in the reporting time zone, appid, reason, duration bucket, sums) of the logouts given as parallel arrays, each through zegolog_logout_rollup.';

CREATE FUNCTION public.zegolog_logout_rollup(p_appid bigint, p_reason integer, p_login_at timestamp with time zone, p_logout_at timestamp with time zone) RETURNS TABLE(day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint)
    LANGUAGE sql PARALLEL SAFE
    AS $$
    SELECT r.*
    FROM zegolog_settings AS s, zegolog_logout_rollup_in(p_appid, p_reason, p_login_at, p_logout_at, s.time_zone) AS r;
$$;
COMMENT ON FUNCTION public.zegolog_logout_rollup(p_appid bigint, p_reason integer, p_login_at timestamp with time zone, p_logout_at timestamp with time zone) IS 'The logout_rollup row one logout contributes (its duration bucket, or zegolog_no_duration_bucket() while its login is unknown).';

CREATE FUNCTION public.zegolog_logout_rollup_in(p_appid bigint, p_reason integer, p_login_at timestamp with time zone, p_logout_at timestamp with time zone, p_zone text) RETURNS TABLE(day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT zegolog_local_day(p_logout_at, p_zone), p_appid, zegolog_reason_name(p_reason),
           CASE WHEN d.ms IS NULL THEN zegolog_no_duration_bucket() ELSE zegolog_duration_bucket(d.ms) END,
           1::bigint, coalesce(d.ms, 0)::numeric, coalesce(d.ms, -9223372036854775808)
    FROM (SELECT zegolog_duration_ms(p_login_at, p_logout_at) AS ms) AS d;
$$;
COMMENT ON FUNCTION public.zegolog_logout_rollup_in(p_appid bigint, p_reason integer, p_login_at timestamp with time zone, p_logout_at timestamp with time zone, p_zone text) IS 'The logout_rollup row one logout contributes, its day cut in the given zone (its duration bucket, or zegolog_no_duration_bucket() while its login is unknown). Inlined where it is called.';

CREATE FUNCTION public.zegolog_make_partition(parent regclass, lock_name text, name text, lo timestamp with time zone, hi timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    AS $_$
DECLARE
    key text := (SELECT a.attname FROM pg_partitioned_table AS p
                 JOIN pg_attribute AS a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
                 WHERE p.partrelid = parent);
    columns text := (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
                     WHERE attrelid = parent AND attnum > 0 AND NOT attisdropped AND attgenerated = '');
    moved bigint;
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(lock_name));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM set_config('lock_timeout', '1s', true);
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', parent);
    EXECUTE format('CREATE TEMP TABLE zegolog_moving ON COMMIT DROP AS
                    WITH gone AS (DELETE FROM %1$s_default WHERE %2$I >= %3$L AND %2$I < %4$L RETURNING *)
                    SELECT * FROM gone', parent, key, lo, hi);
    GET DIAGNOSTICS moved = ROW_COUNT;
    EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)', name, parent, lo, hi);
    EXECUTE format('INSERT INTO %s (%2$s) SELECT %2$s FROM zegolog_moving', parent, columns);
    DROP TABLE zegolog_moving;
    IF moved > 0 THEN
        RAISE NOTICE 'moved % rows from %_default into %', moved, parent, name;
    END IF;
    RETURN name;
END
$_$;
COMMENT ON FUNCTION public.zegolog_make_partition(parent regclass, lock_name text, name text, lo timestamp with time zone, hi timestamp with time zone) IS 'Creates partition `name` of `parent` for [lo, hi) unless it exists, moving that range''s rows out of the default partition; gives up after 1 s of waiting for the parent''s lock (SQLSTATE 55P03).';

CREATE FUNCTION public.zegolog_nearest_rank(fraction numeric, vals anyarray, counts numeric[] DEFAULT NULL::numeric[]) RETURNS anyelement
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $$
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
COMMENT ON FUNCTION public.zegolog_nearest_rank(fraction numeric, vals anyarray, counts numeric[]) IS 'The percentile of every view: nearest rank. The smallest value v of vals such that at least fraction (0 to 1) of the total count is on values <= v; counts[i] is how many times vals[i] occurs (NULL: once each; values NULL or counted <= 0 are left out; NULL when none is left). On exact values it equals percentile_disc(fraction); over the rollups'' duration buckets it is the bucket of the exact nearest-rank duration.';

CREATE FUNCTION public.zegolog_no_duration_bucket() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT -2147483648 $$;

CREATE FUNCTION public.zegolog_pair_recent_logouts(p_since interval DEFAULT '00:10:00'::interval) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
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
COMMENT ON FUNCTION public.zegolog_pair_recent_logouts(p_since interval) IS 'Pairs the logouts without login_time received in the last p_since with their login (a login and its logout written concurrently see neither the other); returns how many it paired.';

CREATE FUNCTION public.zegolog_peaks_in(p_zone text, p_from date, p_to date, p_rooms boolean, p_appid bigint) RETURNS TABLE(day date, appid bigint, room_id text, peak_users bigint, net bigint)
    LANGUAGE plpgsql STABLE
    AS $$
#variable_conflict use_column
DECLARE
    apps bigint[] := CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END;
    w record;
    dz text := zegolog_time_zone();
    base_day date;
    base_start timestamptz;
BEGIN
    SELECT * INTO w FROM zegolog_zone_window(p_zone, p_from, p_to);
    base_day := zegolog_local_day(w.lo, dz);
    base_start := zegolog_day_start(base_day, dz);
    RETURN QUERY
    WITH deltas AS (
        SELECT m.appid, m.room_id, m.minute, m.delta FROM room_concurrency_minute AS m
        WHERE p_rooms AND m.appid = ANY (apps) AND m.minute >= base_start AND m.minute < w.hi
        UNION ALL
        SELECT m.appid, '', m.minute, m.delta FROM app_concurrency_minute AS m
        WHERE NOT p_rooms AND m.appid = ANY (apps) AND m.minute >= base_start AND m.minute < w.hi
        UNION ALL
        SELECT c.appid, CASE WHEN p_rooms THEN c.room_id ELSE '' END, c.minute, c.delta
        FROM pending_contributions AS p, unnest(p.deltas) AS c WHERE c.minute < w.hi AND (p_appid IS NULL OR c.appid = p_appid)
    ), starts AS (
        -- Online at the start of base_day: each key's latest day row at or before it.
        SELECT DISTINCT ON (d.appid, d.room_id) d.appid, d.room_id,
               CASE WHEN d.day = base_day THEN d.start ELSE d.start + d.net END AS users
        FROM room_concurrency_day AS d
        WHERE p_rooms AND d.day <= base_day AND (p_appid IS NULL OR d.appid = p_appid)
        ORDER BY d.appid, d.room_id, d.day DESC
    ), app_starts AS (
        SELECT DISTINCT ON (d.appid) d.appid, '' AS room_id,
               CASE WHEN d.day = base_day THEN d.start ELSE d.start + d.net END AS users
        FROM app_concurrency_day AS d
        WHERE NOT p_rooms AND d.day <= base_day AND (p_appid IS NULL OR d.appid = p_appid)
        ORDER BY d.appid, d.day DESC
    ), bases AS (
        SELECT k.appid, k.room_id, sum(k.users) AS users
        FROM (
            SELECT s.appid, s.room_id, s.users FROM starts AS s
            UNION ALL
            SELECT s.appid, s.room_id, s.users FROM app_starts AS s
            UNION ALL
            -- The deltas before the window: the minutes of base_day before it, and pending
            -- deltas of any earlier day (compaction folds them into the day rows).
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
        SELECT k.appid, k.room_id, zegolog_day_start(d::date, p_zone), 0
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

CREATE FUNCTION public.zegolog_platform_name(term_type integer) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
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
COMMENT ON FUNCTION public.zegolog_platform_name(term_type integer) IS 'Decoded room_login term_type: 0 none (TT_NONE), 1 windows, 2 ios, 3 android, 4 macos, 5 linux, 6 web, 7 mini_program (TT_MINI_PROGRAM), 32 unknown (TT_UNKNOWN); NULL and other codes unknown.';

CREATE FUNCTION public.zegolog_prune_batch(cutoff timestamp with time zone, raw_cutoff timestamp with time zone, batch integer) RETURNS TABLE(tbl text, deleted bigint)
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
COMMENT ON FUNCTION public.zegolog_prune_batch(cutoff timestamp with time zone, raw_cutoff timestamp with time zone, batch integer) IS 'Retention''s second step: deletes at most `batch` rows older than the cutoff from each table that grows with traffic and is not dropped by whole partitions (the raw archive older than raw_cutoff, logins, logouts of the default or a partly expired month, room lifecycle events, minute rollups, per-room days), and returns how many per table; repeat until all are 0. Run after zegolog_retain_rollups.';

CREATE FUNCTION public.zegolog_prune_signature_ledger(keep interval DEFAULT '2 days'::interval) RETURNS SETOF text
    LANGUAGE plpgsql
    AS $$
BEGIN
    RETURN QUERY SELECT zegolog_drop_partitions('signature_ledger', 'zegolog_signature_ledger_partitions', now() - keep);
    DELETE FROM signature_ledger_default WHERE first_seen < now() - keep;
END
$$;
COMMENT ON FUNCTION public.zegolog_prune_signature_ledger(keep interval) IS 'Drops the daily partitions of signature_ledger older than `keep` (and the default partition''s rows first seen before), giving up after 1 s of waiting for the lock (55P03).';

CREATE FUNCTION public.zegolog_rebuild_rollups_day(p_day date) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION public.zegolog_refresh_app_concurrency_days(zone text) RETURNS void
    LANGUAGE plpgsql
    SET jit TO 'off'
    AS $$
BEGIN
    -- The days any of an app's rooms touched; a day's change at its start is its rooms'.
    WITH days AS (
        SELECT appid, day, sum(moved_before) AS moved_before
        FROM zegolog_days GROUP BY appid, day
    ), bases AS MATERIALIZED (
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

CREATE FUNCTION public.zegolog_refresh_concurrency_days(zone text) RETURNS void
    LANGUAGE plpgsql
    SET jit TO 'off'
    AS $$
BEGIN
    PERFORM zegolog_refresh_app_concurrency_days(zone);
    PERFORM zegolog_refresh_room_concurrency_days(zone);
END
$$;

CREATE FUNCTION public.zegolog_refresh_duration_days() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION public.zegolog_refresh_reason_days() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION public.zegolog_refresh_room_concurrency_days(zone text) RETURNS void
    LANGUAGE plpgsql
    SET jit TO 'off'
    AS $$
BEGIN
    WITH bases AS MATERIALIZED (
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

CREATE FUNCTION public.zegolog_retain_rollups(cutoff timestamp with time zone) RETURNS TABLE(tbl text, deleted bigint)
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
COMMENT ON FUNCTION public.zegolog_retain_rollups(cutoff timestamp with time zone) IS 'Retention''s first step, in one transaction under compaction''s lock: folds the pending rollups, writes for each app and room the sessions online at the start of the cutoff''s day (in the reporting zone) into that day''s row, then deletes the per-day rollups of earlier days. Every count from the cutoff day on stays what it was. The big tables go after, in batches (zegolog_prune_batch).';

CREATE FUNCTION public.zegolog_role_name(user_role integer) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE user_role
        WHEN 1 THEN 'host'
        WHEN 2 THEN 'audience'
        WHEN 4 THEN 'admin'
        ELSE 'unknown'
    END;
$$;
COMMENT ON FUNCTION public.zegolog_role_name(user_role integer) IS 'Decoded user_role: 1 host, 2 audience, 4 admin, else unknown.';

CREATE FUNCTION public.zegolog_room_online_at(p_appid bigint, p_room_id text, p_day date) RETURNS bigint
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce((
        SELECT CASE WHEN d.day = p_day THEN d.start ELSE d.start + d.net END
        FROM room_concurrency_day AS d
        WHERE d.appid = p_appid AND d.room_id = p_room_id AND d.day <= p_day
        ORDER BY d.day DESC
        LIMIT 1), 0);
$$;
COMMENT ON FUNCTION public.zegolog_room_online_at(p_appid bigint, p_room_id text, p_day date) IS 'Sessions online in one room at the start of day p_day, as zegolog_app_online_at.';

CREATE FUNCTION public.zegolog_time_zone_fresh() RETURNS text
    LANGUAGE sql
    AS $$
    SELECT time_zone FROM zegolog_settings;
$$;
COMMENT ON FUNCTION public.zegolog_time_zone_fresh() IS 'The reporting time zone read from a fresh snapshot, for writers: see zegolog_time_zone() for readers.';

CREATE FUNCTION public.zegolog_user_fields() RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT ARRAY['user_account', 'id_name', 'operator_account', 'user_id', 'UserId', 'UserID']
$$;
COMMENT ON FUNCTION public.zegolog_user_fields() IS 'The callback fields whose value is a user''s account: room_login and room_logout user_account, room_create id_name (the creator), in-app chat room_create operator_account, stream events and other products'' user_id. zegolog_erase_user erases every body with one of them equal to the account.';

CREATE FUNCTION public.zegolog_zone_window(p_zone text, p_from date, p_to date, OUT lo timestamp with time zone, OUT hi timestamp with time zone) RETURNS record
    LANGUAGE plpgsql STABLE
    AS $$
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
COMMENT ON FUNCTION public.zegolog_zone_window(p_zone text, p_from date, p_to date, OUT lo timestamp with time zone, OUT hi timestamp with time zone) IS 'The instants [lo, hi) of the local days p_from to p_to in zone p_zone, after checking the zone and the window (at most 93 days): the window of every *_in function.';

CREATE TABLE public.alert_spikes (
    id bigint NOT NULL,
    appid bigint NOT NULL,
    reason text NOT NULL,
    started_at timestamp with time zone NOT NULL,
    ended_at timestamp with time zone,
    peak_share double precision NOT NULL,
    peak_lift double precision,
    start_message jsonb NOT NULL,
    end_message jsonb,
    start_sent_at timestamp with time zone,
    end_sent_at timestamp with time zone,
    attempts integer DEFAULT 0 NOT NULL,
    last_error text,
    CONSTRAINT alert_spikes_check CHECK (((ended_at IS NOT NULL) OR (end_message IS NULL)))
);
COMMENT ON TABLE public.alert_spikes IS 'Disconnect spikes announced by the alert webhook (--alert-webhook-url): one row per spike of one app and logout reason, with the start and end messages and when each was delivered.';

ALTER TABLE public.alert_spikes ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.alert_spikes_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.app_concurrency_day (
    appid bigint NOT NULL,
    day date NOT NULL,
    net bigint NOT NULL,
    peak bigint NOT NULL,
    start bigint DEFAULT 0 NOT NULL
);
COMMENT ON COLUMN public.app_concurrency_day.start IS 'Sessions online at the start of the day (in the reporting zone): what the day''s minutes add to. Online at the start of a day without a row: the latest earlier row''s start + net (zegolog_app_online_at).';

CREATE TABLE public.app_concurrency_minute (
    appid bigint NOT NULL,
    minute timestamp with time zone NOT NULL,
    delta bigint NOT NULL
);

ALTER TABLE public.callback_events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.callback_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.logout_duration_day (
    day date NOT NULL,
    appid bigint NOT NULL,
    sessions bigint NOT NULL,
    total_ms numeric,
    max_ms bigint,
    p50_bucket integer,
    p90_bucket integer,
    p99_bucket integer,
    timed_sessions bigint DEFAULT 0 NOT NULL
);
COMMENT ON TABLE public.logout_duration_day IS 'Per UTC day and app of the compacted rollups: sessions, total and maximum duration, percentile buckets. Kept by triggers on logout_rollup.';
COMMENT ON COLUMN public.logout_duration_day.sessions IS 'Logouts of the day, with and without a known duration.';
COMMENT ON COLUMN public.logout_duration_day.timed_sessions IS 'Of those, the ones whose duration is known (the rest wait for their login).';

CREATE TABLE public.logout_reason_day (
    day date NOT NULL,
    appid bigint NOT NULL,
    reason text NOT NULL,
    logouts bigint NOT NULL,
    median_bucket integer
);
COMMENT ON TABLE public.logout_reason_day IS 'Per UTC day, app and reason of the compacted rollups: logouts and the median duration bucket. Kept by triggers on logout_rollup.';

CREATE TABLE public.logout_rollup (
    day date NOT NULL,
    appid bigint NOT NULL,
    reason text NOT NULL,
    bucket integer NOT NULL,
    sessions bigint NOT NULL,
    total_ms numeric NOT NULL,
    max_ms bigint NOT NULL
);

CREATE TABLE public.pending_contributions (
    durations public.zegolog_rollup_row[] DEFAULT '{}'::public.zegolog_rollup_row[] NOT NULL,
    deltas public.zegolog_concurrency_delta[] DEFAULT '{}'::public.zegolog_concurrency_delta[] NOT NULL
);
COMMENT ON TABLE public.pending_contributions IS 'What the statements since the last compaction added, one row per statement; zegolog_compact_rollups moves them into the rollups.';

CREATE VIEW public.logout_rollup_all AS
 SELECT logout_rollup.day,
    logout_rollup.appid,
    logout_rollup.reason,
    logout_rollup.bucket,
    logout_rollup.sessions,
    logout_rollup.total_ms,
    logout_rollup.max_ms
   FROM public.logout_rollup
UNION ALL
 SELECT d.day,
    d.appid,
    d.reason,
    d.bucket,
    d.sessions,
    d.total_ms,
    d.max_ms
   FROM public.pending_contributions p,
    LATERAL unnest(p.durations) d(day, appid, reason, bucket, sessions, total_ms, max_ms);

CREATE VIEW public.logout_reasons_daily AS
 WITH dirty AS (
         SELECT DISTINCT d.day,
            d.appid,
            d.reason
           FROM public.pending_contributions p,
            LATERAL unnest(p.durations) d(day, appid, reason, bucket, sessions, total_ms, max_ms)
        ), settled AS (
         SELECT s.day,
            s.appid,
            s.reason,
            s.logouts,
            (public.zegolog_bucket_ms(s.median_bucket) / (1000)::double precision) AS median_duration_s
           FROM public.logout_reason_day s
          WHERE (NOT (EXISTS ( SELECT 1
                   FROM dirty d
                  WHERE ((d.appid = s.appid) AND (d.day = s.day) AND (d.reason = s.reason)))))
        ), fresh AS (
         SELECT b.day,
            b.appid,
            b.reason,
            (sum(b.sessions))::bigint AS logouts,
            (public.zegolog_bucket_ms(public.zegolog_nearest_rank(0.5, array_agg(b.bucket) FILTER (WHERE b.timed), array_agg(b.sessions) FILTER (WHERE b.timed))) / (1000)::double precision) AS median_duration_s
           FROM ( SELECT a.day,
                    a.appid,
                    a.reason,
                    a.bucket,
                    (a.bucket <> public.zegolog_no_duration_bucket()) AS timed,
                    sum(a.sessions) AS sessions
                   FROM (public.logout_rollup_all a
                     JOIN dirty d ON (((d.appid = a.appid) AND (d.day = a.day) AND (d.reason = a.reason))))
                  GROUP BY a.day, a.appid, a.reason, a.bucket) b
          GROUP BY b.day, b.appid, b.reason
        ), groups AS (
         SELECT settled.day,
            settled.appid,
            settled.reason,
            settled.logouts,
            settled.median_duration_s
           FROM settled
        UNION ALL
         SELECT fresh.day,
            fresh.appid,
            fresh.reason,
            fresh.logouts,
            fresh.median_duration_s
           FROM fresh
        )
 SELECT groups.day,
    groups.appid,
    groups.reason,
    groups.logouts,
    (((groups.logouts)::numeric / sum(groups.logouts) OVER (PARTITION BY groups.day, groups.appid)))::double precision AS share,
    groups.median_duration_s
   FROM groups;
COMMENT ON VIEW public.logout_reasons_daily IS 'Per day (in the reporting time zone, zegolog_time_zone()), app and logout reason: logouts, share of the app''s logouts that day, median duration (zegolog_nearest_rank over the rollups'' 1% duration buckets: the exact nearest-rank median, within 1%). Backed by the rollups. Other zones: logout_reasons_daily_in(zone, from, to).';

CREATE VIEW public.open_sessions AS
 SELECT i.appid,
    i.room_id,
    i.room_name,
    i.room_seq,
    i.user_account,
    i.user_nickname,
    i.session_id,
    i.user_role,
    public.zegolog_role_name(i.user_role) AS role,
    i.relogin,
    i.login_time AS login_at,
    (now() - i.login_time) AS age,
    (EXTRACT(epoch FROM (now() - i.login_time)))::double precision AS age_s,
    ((now() - i.login_time) > '24:00:00'::interval) AS stale,
    (EXISTS ( SELECT 1
           FROM public.room_lifecycle_events e
          WHERE ((e.appid = i.appid) AND (e.room_id = i.room_id) AND (e.room_session_id = i.room_seq) AND (e.event = 'room_close'::text)))) AS room_closed
   FROM public.room_logins i
  WHERE (NOT (EXISTS ( SELECT 1
           FROM public.room_logouts o
          WHERE ((o.appid = i.appid) AND (o.session_id = i.session_id) AND (o.room_id = i.room_id) AND (o.user_account = i.user_account) AND (o.logout_time >= i.login_time)))));
COMMENT ON VIEW public.open_sessions IS 'Logins with no logout yet (no logout of the same appid, room_id, user_account, session_id at or after the login), with their age. For who is probably online now: WHERE NOT stale AND NOT room_closed, and filter login_at >= now() - interval ''24 hours'' to use the indexes.';
COMMENT ON COLUMN public.open_sessions.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN public.open_sessions.room_id IS 'Room id, as sent.';
COMMENT ON COLUMN public.open_sessions.room_name IS 'Room name sent with the login; NULL when not sent.';
COMMENT ON COLUMN public.open_sessions.room_seq IS 'Room lifecycle id (u64); NULL when not sent.';
COMMENT ON COLUMN public.open_sessions.user_account IS 'User id used at login.';
COMMENT ON COLUMN public.open_sessions.user_nickname IS 'User name used at login; NULL when not sent.';
COMMENT ON COLUMN public.open_sessions.session_id IS 'User session id (u64).';
COMMENT ON COLUMN public.open_sessions.user_role IS 'Raw role code as sent: 1 host, 2 audience, 4 admin; NULL when not sent.';
COMMENT ON COLUMN public.open_sessions.role IS 'Decoded user_role: host, audience, admin or unknown.';
COMMENT ON COLUMN public.open_sessions.relogin IS 'Re-login flag as sent (1: the user logged in again, e.g. after a reconnect); NULL when not sent.';
COMMENT ON COLUMN public.open_sessions.login_at IS 'When the user logged in (login_time).';
COMMENT ON COLUMN public.open_sessions.age IS 'now() - login_at: how long the session has been open (negative if login_at is in the future).';
COMMENT ON COLUMN public.open_sessions.age_s IS 'age in seconds.';
COMMENT ON COLUMN public.open_sessions.stale IS 'True when the login is more than 24 hours old: its logout was most likely lost, the user is most likely gone.';
COMMENT ON COLUMN public.open_sessions.room_closed IS 'True when a room_close of this room lifecycle (room_seq) was received: the user is gone, the logout was lost or is late.';

CREATE VIEW public.peak_concurrency_daily AS
 SELECT app_concurrency_day.day,
    app_concurrency_day.appid,
    app_concurrency_day.peak AS peak_users
   FROM public.app_concurrency_day
  WHERE ((app_concurrency_day.peak <> 0) OR (app_concurrency_day.net <> 0));
COMMENT ON VIEW public.peak_concurrency_daily IS 'Per day (in the reporting time zone, zegolog_time_zone()) and app: the most users online in any minute of the day. Other zones: peak_concurrency_daily_in(zone, from, to).';

CREATE VIEW public.session_durations AS
 SELECT s.appid,
    s.room_id,
    s.room_seq,
    s.user_account,
    s.user_nickname,
    s.session_id,
    s.user_role,
    s.role,
    s.login_at,
    s.logout_at,
    public.zegolog_duration_ms(s.start, s.logout_at) AS duration_ms,
    (s.logout_at - s.start) AS duration,
    s.reason_code,
    s.reason,
    s.login_source,
    s.platform_code,
    public.zegolog_platform_name(s.platform_code) AS platform,
    s.time_fault
   FROM ( SELECT l.appid,
            l.room_id,
            l.room_seq,
            l.user_account,
            l.user_nickname,
            l.session_id,
            l.user_role,
            public.zegolog_role_name(l.user_role) AS role,
            l.login_at,
            l.logout_time AS logout_at,
            public.zegolog_session_start(l.login_at, l.logout_time, l.received_at, ( SELECT zegolog_settings.max_session
                   FROM public.zegolog_settings)) AS start,
            l.reason AS reason_code,
            public.zegolog_reason_name(l.reason) AS reason,
                CASE
                    WHEN (l.login_time IS NOT NULL) THEN 'logout'::text
                    WHEN (l.paired_login_time IS NOT NULL) THEN 'login'::text
                    ELSE NULL::text
                END AS login_source,
            ( SELECT i.term_type
                   FROM public.room_logins i
                  WHERE ((i.appid = l.appid) AND (i.room_id = l.room_id) AND (i.user_account = l.user_account) AND (i.session_id = l.session_id) AND (i.login_time <= l.logout_time))
                  ORDER BY ((i.login_time = l.login_at) IS TRUE) DESC, i.login_time DESC
                 LIMIT 1) AS platform_code,
            public.zegolog_time_fault(l.login_at, l.logout_time, l.received_at, ( SELECT zegolog_settings.max_session
                   FROM public.zegolog_settings)) AS time_fault
           FROM public.room_logouts l) s;
COMMENT ON VIEW public.session_durations IS 'One row per logout (one user session in one room): decoded role and reason, exact duration (NULL while the login of a logout without login_time is unknown), the platform of its login.';
COMMENT ON COLUMN public.session_durations.login_at IS 'When the user logged in: login_time of the logout, or else of its paired room_login; NULL while none is known.';
COMMENT ON COLUMN public.session_durations.duration_ms IS 'Session length in milliseconds, exact (logout_at - login_at); NULL while login_at is unknown, or when the session''s times are implausible (time_fault).';
COMMENT ON COLUMN public.session_durations.login_source IS 'Where login_at comes from: logout (login_time of the logout callback), login (its paired room_login), NULL (unknown yet).';
COMMENT ON COLUMN public.session_durations.platform_code IS 'term_type of the session''s room_login (the one at login_at, else the latest at or before the logout); NULL when not sent or no login is known.';
COMMENT ON COLUMN public.session_durations.platform IS 'Decoded platform_code (zegolog_platform_name): none, windows, ios, android, macos, linux, web, mini_program, unknown.';
COMMENT ON COLUMN public.session_durations.time_fault IS 'Why the session''s times are implausible (zegolog_time_fault: logout_before_2010, logout_after_receipt, login_before_2010, logout_before_login, session_too_long), NULL when they are plausible: an implausible session has no duration and no concurrency anywhere.';

CREATE VIEW public.platform_daily AS
 SELECT g.day,
    g.appid,
    g.platform,
    g.sessions,
    g.sessions_with_duration,
    g.avg_s,
    (public.zegolog_bucket_ms(public.zegolog_duration_bucket(g.p50_ms)) / (1000)::double precision) AS p50_s,
    (public.zegolog_bucket_ms(public.zegolog_duration_bucket(g.p90_ms)) / (1000)::double precision) AS p90_s,
    (public.zegolog_bucket_ms(public.zegolog_duration_bucket(g.p99_ms)) / (1000)::double precision) AS p99_s,
    g.normal,
    g.heartbeat_timeout,
    g.connection_lost,
    g.kicked_out,
    g.token_expired,
    g.unknown,
    ((g.p50_ms)::double precision / (1000)::double precision) AS p50_exact_s,
    ((g.p90_ms)::double precision / (1000)::double precision) AS p90_exact_s,
    ((g.p99_ms)::double precision / (1000)::double precision) AS p99_exact_s
   FROM ( SELECT public.zegolog_local_day(s.logout_at) AS day,
            s.appid,
            s.platform,
            count(*) AS sessions,
            count(s.duration_ms) AS sessions_with_duration,
            ((avg(s.duration_ms) / (1000)::numeric))::double precision AS avg_s,
            public.zegolog_nearest_rank(0.5, array_agg(s.duration_ms)) AS p50_ms,
            public.zegolog_nearest_rank(0.9, array_agg(s.duration_ms)) AS p90_ms,
            public.zegolog_nearest_rank(0.99, array_agg(s.duration_ms)) AS p99_ms,
            count(*) FILTER (WHERE (s.reason = 'normal'::text)) AS normal,
            count(*) FILTER (WHERE (s.reason = 'heartbeat_timeout'::text)) AS heartbeat_timeout,
            count(*) FILTER (WHERE (s.reason = 'connection_lost'::text)) AS connection_lost,
            count(*) FILTER (WHERE (s.reason = 'kicked_out'::text)) AS kicked_out,
            count(*) FILTER (WHERE (s.reason = 'token_expired'::text)) AS token_expired,
            count(*) FILTER (WHERE (s.reason = 'unknown'::text)) AS unknown
           FROM public.session_durations s
          GROUP BY (public.zegolog_local_day(s.logout_at)), s.appid, s.platform) g;
COMMENT ON VIEW public.platform_daily IS 'Per day of logout (in the reporting time zone), app and platform of the session''s login: sessions, duration percentiles of those with a known duration (zegolog_nearest_rank: p50_s .. p99_s at the 1% bucket resolution of the other daily views, p50_exact_s .. p99_exact_s exact) and the count of each logout reason. Reads the raw rows: filter on appid, or query session_durations for a window (sql/14).';
COMMENT ON COLUMN public.platform_daily.platform IS 'Decoded term_type of the session''s room_login; unknown when not sent (before 2026) or when no login is known.';
COMMENT ON COLUMN public.platform_daily.sessions IS 'Logouts of this app and platform that day.';
COMMENT ON COLUMN public.platform_daily.sessions_with_duration IS 'Of those, the ones whose duration is known.';
COMMENT ON COLUMN public.platform_daily.p50_s IS 'Median duration (s): the exact nearest rank (p50_exact_s) as its 1% duration bucket reports it, as session_duration_daily does.';
COMMENT ON COLUMN public.platform_daily.p50_exact_s IS 'Median duration (s), exact: nearest rank over the durations in ms (percentile_disc).';
COMMENT ON COLUMN public.platform_daily.p90_exact_s IS '90th percentile duration (s), exact nearest rank.';
COMMENT ON COLUMN public.platform_daily.p99_exact_s IS '99th percentile duration (s), exact nearest rank.';

CREATE TABLE public.room_concurrency_day (
    appid bigint NOT NULL,
    room_id text NOT NULL,
    day date NOT NULL,
    net bigint NOT NULL,
    peak bigint NOT NULL,
    start bigint DEFAULT 0 NOT NULL
);
COMMENT ON COLUMN public.room_concurrency_day.start IS 'Sessions online in the room at the start of the day, as app_concurrency_day.start (zegolog_room_online_at).';

CREATE TABLE public.room_concurrency_minute (
    appid bigint NOT NULL,
    room_id text NOT NULL,
    minute timestamp with time zone NOT NULL,
    delta bigint NOT NULL
);

ALTER TABLE public.room_logins ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.room_logins_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.room_logouts_default (
    id bigint NOT NULL,
    appid bigint NOT NULL,
    room_id text NOT NULL,
    room_seq numeric(20,0),
    user_account text NOT NULL,
    user_nickname text,
    session_id numeric(20,0) NOT NULL,
    login_time timestamp with time zone,
    logout_time timestamp with time zone NOT NULL,
    reason integer,
    user_role integer,
    user_update_seq bigint,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    paired_login_time timestamp with time zone,
    login_at timestamp with time zone GENERATED ALWAYS AS (COALESCE(login_time, paired_login_time)) STORED,
    digest bytea,
    body text,
    content_type text,
    CONSTRAINT room_logouts_room_seq_check CHECK (((room_seq >= (0)::numeric) AND (room_seq <= '18446744073709551615'::numeric))),
    CONSTRAINT room_logouts_session_id_check CHECK (((session_id >= (0)::numeric) AND (session_id <= '18446744073709551615'::numeric)))
);

ALTER TABLE public.room_logouts ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME public.room_logouts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE VIEW public.room_peak_concurrency_daily AS
 SELECT room_concurrency_day.day,
    room_concurrency_day.appid,
    room_concurrency_day.room_id,
    room_concurrency_day.peak AS peak_users
   FROM public.room_concurrency_day;
COMMENT ON VIEW public.room_peak_concurrency_daily IS 'Per day (in the reporting time zone, zegolog_time_zone()), app and room: the most users online in the room in any minute of the day. Other zones: room_peak_concurrency_daily_in(zone, from, to).';

CREATE VIEW public.session_duration_daily AS
 WITH dirty AS (
         SELECT DISTINCT d.day,
            d.appid
           FROM public.pending_contributions p,
            LATERAL unnest(p.durations) d(day, appid, reason, bucket, sessions, total_ms, max_ms)
        ), settled AS (
         SELECT s.day,
            s.appid,
            s.sessions,
            s.timed_sessions,
            s.total_ms,
            s.max_ms,
            s.p50_bucket,
            s.p90_bucket,
            s.p99_bucket
           FROM public.logout_duration_day s
          WHERE (NOT (EXISTS ( SELECT 1
                   FROM dirty d
                  WHERE ((d.appid = s.appid) AND (d.day = s.day)))))
        ), fresh AS (
         SELECT b.day,
            b.appid,
            (sum(b.sessions))::bigint AS sessions,
            (COALESCE(sum(b.sessions) FILTER (WHERE b.timed), (0)::numeric))::bigint AS timed_sessions,
            sum(b.total_ms) FILTER (WHERE b.timed) AS total_ms,
            max(b.max_ms) FILTER (WHERE (b.timed AND (b.sessions > (0)::numeric))) AS max_ms,
            public.zegolog_nearest_rank(0.5, array_agg(b.bucket) FILTER (WHERE b.timed), array_agg(b.sessions) FILTER (WHERE b.timed)) AS p50_bucket,
            public.zegolog_nearest_rank(0.9, array_agg(b.bucket) FILTER (WHERE b.timed), array_agg(b.sessions) FILTER (WHERE b.timed)) AS p90_bucket,
            public.zegolog_nearest_rank(0.99, array_agg(b.bucket) FILTER (WHERE b.timed), array_agg(b.sessions) FILTER (WHERE b.timed)) AS p99_bucket
           FROM ( SELECT a.day,
                    a.appid,
                    a.bucket,
                    (a.bucket <> public.zegolog_no_duration_bucket()) AS timed,
                    sum(a.sessions) AS sessions,
                    sum(a.total_ms) AS total_ms,
                    max(a.max_ms) AS max_ms
                   FROM (public.logout_rollup_all a
                     JOIN dirty d ON (((d.appid = a.appid) AND (d.day = a.day))))
                  GROUP BY a.day, a.appid, a.bucket) b
          GROUP BY b.day, b.appid
        ), days AS (
         SELECT settled.day,
            settled.appid,
            settled.sessions,
            settled.timed_sessions,
            settled.total_ms,
            settled.max_ms,
            settled.p50_bucket,
            settled.p90_bucket,
            settled.p99_bucket
           FROM settled
        UNION ALL
         SELECT fresh.day,
            fresh.appid,
            fresh.sessions,
            fresh.timed_sessions,
            fresh.total_ms,
            fresh.max_ms,
            fresh.p50_bucket,
            fresh.p90_bucket,
            fresh.p99_bucket
           FROM fresh
        )
 SELECT days.day,
    days.appid,
    days.sessions,
    ((days.total_ms / (60000)::numeric))::double precision AS total_minutes,
    (((days.total_ms / (NULLIF(days.timed_sessions, 0))::numeric) / (1000)::numeric))::double precision AS avg_s,
    (public.zegolog_bucket_ms(days.p50_bucket) / (1000)::double precision) AS p50_s,
    (public.zegolog_bucket_ms(days.p90_bucket) / (1000)::double precision) AS p90_s,
    (public.zegolog_bucket_ms(days.p99_bucket) / (1000)::double precision) AS p99_s,
    ((days.max_ms)::double precision / (1000)::double precision) AS max_s,
    days.timed_sessions AS sessions_with_duration
   FROM days;
COMMENT ON VIEW public.session_duration_daily IS 'Per day (in the reporting time zone, zegolog_time_zone()) and app: sessions, total minutes, average, percentiles and maximum of session durations. Percentiles: zegolog_nearest_rank over the rollups'' 1% duration buckets (the exact nearest-rank duration, within 1%). Backed by the rollups. Other zones: session_duration_daily_in(zone, from, to).';
COMMENT ON COLUMN public.session_duration_daily.sessions_with_duration IS 'Of sessions, those whose duration is known: every logout that carried login_time, and the logouts without one once their room_login is known.';

CREATE TABLE public.signature_ledger (
    signed_at timestamp with time zone NOT NULL,
    nonce text NOT NULL,
    signature text NOT NULL,
    appid bigint NOT NULL,
    digest bytea NOT NULL,
    reuses bigint DEFAULT 0 NOT NULL,
    first_seen timestamp with time zone DEFAULT now() NOT NULL
)
PARTITION BY RANGE (signed_at);
COMMENT ON TABLE public.signature_ledger IS 'Every accepted (timestamp, nonce, signature) with the digest of the body it came with first; partitioned by UTC day of the signed timestamp, kept 2 days.';
COMMENT ON COLUMN public.signature_ledger.signed_at IS 'The signed timestamp (unix seconds as sent), as timestamptz.';
COMMENT ON COLUMN public.signature_ledger.digest IS 'SHA-256 business digest of the first body this triple came with.';
COMMENT ON COLUMN public.signature_ledger.reuses IS 'Bodies with another digest offered with this triple (upper bound).';

CREATE TABLE public.signature_ledger_default (
    signed_at timestamp with time zone NOT NULL,
    nonce text NOT NULL,
    signature text NOT NULL,
    appid bigint NOT NULL,
    digest bytea NOT NULL,
    reuses bigint DEFAULT 0 NOT NULL,
    first_seen timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY public.room_logouts ATTACH PARTITION public.room_logouts_default DEFAULT;

ALTER TABLE ONLY public.signature_ledger ATTACH PARTITION public.signature_ledger_default DEFAULT;

ALTER TABLE ONLY public.alert_spikes
    ADD CONSTRAINT alert_spikes_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.app_concurrency_day
    ADD CONSTRAINT app_concurrency_day_pkey PRIMARY KEY (appid, day);

ALTER TABLE ONLY public.app_concurrency_minute
    ADD CONSTRAINT app_concurrency_minute_pkey PRIMARY KEY (appid, minute);

ALTER TABLE ONLY public.callback_events
    ADD CONSTRAINT callback_events_digest_key UNIQUE (digest);

ALTER TABLE ONLY public.logout_duration_day
    ADD CONSTRAINT logout_duration_day_pkey PRIMARY KEY (appid, day);

ALTER TABLE ONLY public.logout_reason_day
    ADD CONSTRAINT logout_reason_day_pkey PRIMARY KEY (appid, day, reason);

ALTER TABLE ONLY public.logout_rollup
    ADD CONSTRAINT logout_rollup_pkey PRIMARY KEY (appid, day, reason, bucket);

ALTER TABLE ONLY public.room_concurrency_day
    ADD CONSTRAINT room_concurrency_day_pkey PRIMARY KEY (appid, room_id, day);

ALTER TABLE ONLY public.room_concurrency_minute
    ADD CONSTRAINT room_concurrency_minute_pkey PRIMARY KEY (appid, room_id, minute);

ALTER TABLE ONLY public.room_lifecycle_events
    ADD CONSTRAINT room_lifecycle_events_key UNIQUE (appid, room_id, room_session_id, event);

ALTER TABLE ONLY public.room_logins
    ADD CONSTRAINT room_logins_natural_key UNIQUE (appid, room_id, user_account, session_id, login_time);

ALTER TABLE ONLY public.room_logouts
    ADD CONSTRAINT room_logouts_natural_key UNIQUE (appid, room_id, logout_time, session_id, user_account);

ALTER TABLE ONLY public.room_logouts_default
    ADD CONSTRAINT room_logouts_default_appid_room_id_logout_time_session_id_u_key UNIQUE (appid, room_id, logout_time, session_id, user_account);

ALTER TABLE ONLY public.signature_ledger
    ADD CONSTRAINT signature_ledger_key PRIMARY KEY (signed_at, nonce, signature);

ALTER TABLE ONLY public.signature_ledger_default
    ADD CONSTRAINT signature_ledger_default_pkey PRIMARY KEY (signed_at, nonce, signature);

ALTER TABLE ONLY public.zegolog_settings
    ADD CONSTRAINT zegolog_settings_pkey PRIMARY KEY (singleton);
CREATE UNIQUE INDEX alert_spikes_one_open ON public.alert_spikes USING btree (appid, reason) WHERE (ended_at IS NULL);
CREATE INDEX callback_events_event_received_idx ON public.callback_events USING btree (event, received_at);
CREATE INDEX callback_events_id_idx ON public.callback_events USING btree (id);
CREATE INDEX callback_events_received_brin ON public.callback_events USING brin (received_at);
CREATE INDEX callback_events_refused_idx ON public.callback_events USING btree (received_at) WHERE (refused_reason IS NOT NULL);
CREATE INDEX room_concurrency_day_top_idx ON public.room_concurrency_day USING btree (appid, day, peak DESC, room_id);
CREATE INDEX room_concurrency_minute_minute_brin ON public.room_concurrency_minute USING brin (minute);
CREATE INDEX room_lifecycle_events_appid_at_idx ON public.room_lifecycle_events USING btree (appid, at);
CREATE INDEX room_logins_appid_login_idx ON public.room_logins USING btree (appid, login_time);
CREATE INDEX room_logins_login_time_brin ON public.room_logins USING brin (login_time);
CREATE INDEX room_logins_room_idx ON public.room_logins USING btree (appid, room_id, login_time);
CREATE INDEX room_logouts_abnormal_idx ON ONLY public.room_logouts USING btree (appid, logout_time) INCLUDE (reason, room_id, user_account) WHERE ((reason >= 1) AND (reason <= 4));
CREATE INDEX room_logouts_appid_logout_reason_idx ON ONLY public.room_logouts USING btree (appid, logout_time) INCLUDE (reason);
CREATE INDEX room_logouts_clock_skew_idx ON ONLY public.room_logouts USING btree (received_at) WHERE (((logout_time - received_at) > '1 day'::interval) OR ((received_at - logout_time) > '1 day'::interval));
CREATE INDEX room_logouts_default_appid_logout_time_reason_idx ON public.room_logouts_default USING btree (appid, logout_time) INCLUDE (reason);
CREATE INDEX room_logouts_default_appid_logout_time_reason_room_id_user__idx ON public.room_logouts_default USING btree (appid, logout_time) INCLUDE (reason, room_id, user_account) WHERE ((reason >= 1) AND (reason <= 4));
CREATE INDEX room_logouts_room_seq_idx ON ONLY public.room_logouts USING btree (appid, room_id, room_seq);
CREATE INDEX room_logouts_default_appid_room_id_room_seq_idx ON public.room_logouts_default USING btree (appid, room_id, room_seq);
CREATE INDEX room_logouts_without_login_idx ON ONLY public.room_logouts USING btree (appid, room_id, user_account, session_id, logout_time) WHERE (login_time IS NULL);
CREATE INDEX room_logouts_default_appid_room_id_user_account_session_id__idx ON public.room_logouts_default USING btree (appid, room_id, user_account, session_id, logout_time) WHERE (login_time IS NULL);
CREATE INDEX room_logouts_user_idx ON ONLY public.room_logouts USING btree (appid, user_account, logout_time);
CREATE INDEX room_logouts_default_appid_user_account_logout_time_idx ON public.room_logouts_default USING btree (appid, user_account, logout_time);
CREATE INDEX room_logouts_default_received_at_idx ON public.room_logouts_default USING btree (received_at) WHERE (((logout_time - received_at) > '1 day'::interval) OR ((received_at - logout_time) > '1 day'::interval));
CREATE INDEX room_logouts_without_login_received_idx ON ONLY public.room_logouts USING btree (received_at) WHERE (login_time IS NULL);
CREATE INDEX room_logouts_default_received_at_idx1 ON public.room_logouts_default USING btree (received_at) WHERE (login_time IS NULL);
CREATE INDEX signature_ledger_default_first_seen_idx ON public.signature_ledger_default USING btree (first_seen);
ALTER INDEX public.room_logouts_appid_logout_reason_idx ATTACH PARTITION public.room_logouts_default_appid_logout_time_reason_idx;
ALTER INDEX public.room_logouts_abnormal_idx ATTACH PARTITION public.room_logouts_default_appid_logout_time_reason_room_id_user__idx;
ALTER INDEX public.room_logouts_natural_key ATTACH PARTITION public.room_logouts_default_appid_room_id_logout_time_session_id_u_key;
ALTER INDEX public.room_logouts_room_seq_idx ATTACH PARTITION public.room_logouts_default_appid_room_id_room_seq_idx;
ALTER INDEX public.room_logouts_without_login_idx ATTACH PARTITION public.room_logouts_default_appid_room_id_user_account_session_id__idx;
ALTER INDEX public.room_logouts_user_idx ATTACH PARTITION public.room_logouts_default_appid_user_account_logout_time_idx;
ALTER INDEX public.room_logouts_clock_skew_idx ATTACH PARTITION public.room_logouts_default_received_at_idx;
ALTER INDEX public.room_logouts_without_login_received_idx ATTACH PARTITION public.room_logouts_default_received_at_idx1;
ALTER INDEX public.signature_ledger_key ATTACH PARTITION public.signature_ledger_default_pkey;

CREATE TRIGGER logout_rollup_deleted AFTER DELETE ON public.logout_rollup REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION public.zegolog_refresh_reason_days();

CREATE TRIGGER logout_rollup_deleted_days AFTER DELETE ON public.logout_rollup REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION public.zegolog_refresh_duration_days();

CREATE TRIGGER logout_rollup_inserted AFTER INSERT ON public.logout_rollup REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION public.zegolog_refresh_reason_days();

CREATE TRIGGER logout_rollup_inserted_days AFTER INSERT ON public.logout_rollup REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION public.zegolog_refresh_duration_days();

CREATE TRIGGER logout_rollup_updated AFTER UPDATE ON public.logout_rollup REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION public.zegolog_refresh_reason_days();

CREATE TRIGGER logout_rollup_updated_days AFTER UPDATE ON public.logout_rollup REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION public.zegolog_refresh_duration_days();

--
-- PostgreSQL database dump complete
--

