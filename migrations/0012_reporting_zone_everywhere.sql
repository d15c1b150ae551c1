-- The reporting time zone everywhere, and the login of a logout that came without one.
--
-- 0010 cut the rollups and the daily duration, reason and concurrency views in the reporting
-- zone (zegolog_time_zone()). The views and functions that read raw rows still cut UTC days
-- and hours; here every one of them cuts its days (and hours, and buckets) in the zone:
--   user_daily, user_daily_between          day of the logout;
--   logout_reasons_hourly                    hour of the zone (a zone 5:30 ahead has hours
--                                            starting at :30 UTC);
--   logout_reasons_between                   buckets aligned on the zone's midnights; buckets of
--                                            whole days are the zone's days (23 or 25 hours on
--                                            a DST change);
--   data_quality_daily, _between             day of receipt;
--   platform_daily                           day of the logout;
--   reason_usual_shares                      the zone's whole days before the window's day;
--   incident_reasons, incident_users_online  buckets aligned on the zone's midnight.
--
-- 0009 added logouts without login_time, whose login comes from their room_login
-- (paired_login_time). session_durations and the rollups used it; user_daily and room_lifecycle
-- did not (such a session had no duration there, even once paired): now every view takes
-- coalesce(login_time, paired_login_time), as session_durations does.
--
-- The ad-hoc functions of 0010 (*_daily_in(zone, from, to)) take an optional app, which lets
-- them read one app's window through the (appid, logout_time) index, and the duration ones
-- count logouts without a known login as session_duration_daily does (in sessions, in no
-- duration statistic). Their signature changes, so they are dropped and created again: rerun
-- `zegolog grant-analyst` after this migration for analysts to call them (as after any
-- migration that adds a function).
--
-- Minutes are the same in every zone (every zone's offset is whole minutes), so the per-minute
-- functions (users_online, room_users_online, concurrency) need no change.

-- ---------------------------------------------------------------------------------------------
-- Buckets in the zone
-- ---------------------------------------------------------------------------------------------

-- The start of the bucket of width `width` that holds t, in time zone `zone`: buckets shorter
-- than a day are aligned on the midnight of t's day in the zone (so an hour bucket is a local
-- hour, and a DST change starts no odd bucket); buckets of whole days are whole local days,
-- counted from Monday 2000-01-03 (7 days is a week from Monday).
CREATE FUNCTION zegolog_bucket_start(t timestamptz, width interval, zone text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN width >= interval '1 day' THEN
            (date '2000-01-03'
             + (floor((zegolog_local_day(t, zone) - date '2000-01-03')::numeric
                      / greatest(round(extract(EPOCH FROM width) / 86400), 1))
                * greatest(round(extract(EPOCH FROM width) / 86400), 1))::integer
            )::timestamp AT TIME ZONE zone
        ELSE date_bin(width, t, zegolog_local_day(t, zone)::timestamp AT TIME ZONE zone)
    END;
$$;

-- The end (exclusive) of the bucket that starts at `bucket_start`: width later, or the next
-- midnight of the zone if that comes first (a width that does not divide the day, or a 23-hour
-- day); whole-day buckets end at a local midnight.
CREATE FUNCTION zegolog_bucket_end(bucket_start timestamptz, width interval, zone text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN width >= interval '1 day' THEN
            (zegolog_local_day(bucket_start, zone)
             + greatest(round(extract(EPOCH FROM width) / 86400), 1)::integer)::timestamp AT TIME ZONE zone
        ELSE least(bucket_start + width,
                   (zegolog_local_day(bucket_start, zone) + 1)::timestamp AT TIME ZONE zone)
    END;
$$;

COMMENT ON FUNCTION zegolog_bucket_start(timestamptz, interval, text) IS
    'Start of the bucket of `width` holding t in time zone `zone`: under a day, aligned on the midnight of t''s local day; whole days, local days counted from Monday 2000-01-03.';
COMMENT ON FUNCTION zegolog_bucket_end(timestamptz, interval, text) IS
    'End (exclusive) of the bucket starting at bucket_start: width later, or the next local midnight if sooner.';

-- ---------------------------------------------------------------------------------------------
-- Per user and day
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE VIEW user_daily AS
SELECT
    zegolog_local_day(l.logout_time) AS day,
    l.appid,
    l.user_account,
    (array_agg(l.user_nickname ORDER BY l.logout_time DESC))[1] AS last_nickname,
    count(*) AS sessions,
    count(DISTINCT l.room_id) AS rooms,
    (sum(extract(EPOCH FROM l.logout_time - coalesce(l.login_time, l.paired_login_time))) / 60)::double precision AS total_minutes,
    sum(l.logout_time - coalesce(l.login_time, l.paired_login_time)) AS total_time,
    count(*) FILTER (WHERE l.reason = 0) AS normal,
    count(*) FILTER (WHERE l.reason = 1) AS heartbeat_timeout,
    count(*) FILTER (WHERE l.reason = 2) AS connection_lost,
    count(*) FILTER (WHERE l.reason = 3) AS kicked_out,
    count(*) FILTER (WHERE l.reason = 4) AS token_expired,
    count(*) FILTER (WHERE l.reason IS NULL OR l.reason NOT IN (0, 1, 2, 3, 4)) AS unknown,
    min(coalesce(l.login_time, l.paired_login_time)) AS first_login_at,
    max(l.logout_time) AS last_logout_at
FROM room_logouts AS l
GROUP BY zegolog_local_day(l.logout_time), l.appid, l.user_account;

COMMENT ON VIEW user_daily IS
    'Per day of logout (in the reporting time zone, zegolog_time_zone()), app and user: sessions, rooms, total time, and how many sessions ended with each logout reason. Filter on appid and user_account; for a time window use user_daily_between(appid, from, to).';
COMMENT ON COLUMN user_daily.day IS 'Calendar day of the logout in the reporting time zone; a session counts on the day it ended.';
COMMENT ON COLUMN user_daily.total_minutes IS 'Sum of the durations of the sessions whose login is known, in minutes (negative durations counted as they are, as in session_duration_daily).';
COMMENT ON COLUMN user_daily.total_time IS 'The same sum as an interval.';
COMMENT ON COLUMN user_daily.first_login_at IS 'Earliest login of those sessions (login_time, or that of the paired room_login).';

CREATE OR REPLACE FUNCTION user_daily_between(p_appid bigint, p_from timestamptz, p_to timestamptz)
RETURNS SETOF user_daily
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    zone text := zegolog_time_zone();
BEGIN
    RETURN QUERY
    SELECT
        zegolog_local_day(l.logout_time, zone) AS day,
        l.appid,
        l.user_account,
        (array_agg(l.user_nickname ORDER BY l.logout_time DESC))[1] AS last_nickname,
        count(*) AS sessions,
        count(DISTINCT l.room_id) AS rooms,
        (sum(extract(EPOCH FROM l.logout_time - coalesce(l.login_time, l.paired_login_time))) / 60)::double precision AS total_minutes,
        sum(l.logout_time - coalesce(l.login_time, l.paired_login_time)) AS total_time,
        count(*) FILTER (WHERE l.reason = 0) AS normal,
        count(*) FILTER (WHERE l.reason = 1) AS heartbeat_timeout,
        count(*) FILTER (WHERE l.reason = 2) AS connection_lost,
        count(*) FILTER (WHERE l.reason = 3) AS kicked_out,
        count(*) FILTER (WHERE l.reason = 4) AS token_expired,
        count(*) FILTER (WHERE l.reason IS NULL OR l.reason NOT IN (0, 1, 2, 3, 4)) AS unknown,
        min(coalesce(l.login_time, l.paired_login_time)) AS first_login_at,
        max(l.logout_time) AS last_logout_at
    FROM room_logouts AS l
    WHERE l.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
      AND l.logout_time >= p_from AND l.logout_time < p_to
    GROUP BY zegolog_local_day(l.logout_time, zone), l.appid, l.user_account;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Ops: logouts per hour and per bucket, in the zone
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE VIEW logout_reasons_hourly AS
SELECT
    c.bucket_start,
    c.bucket_start + c.width AS bucket_end,
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
    SELECT date_trunc('hour', l.logout_time, zegolog_time_zone()) AS bucket_start,
           interval '1 hour' AS width,
           l.appid,
           zegolog_reason_name(l.reason) AS reason,
           count(*) AS logouts
    FROM room_logouts AS l
    GROUP BY 1, 2, 3, 4
) AS c;

COMMENT ON VIEW logout_reasons_hourly IS
    'Logouts per hour (of the reporting time zone), app and decoded reason, with share of the hour and lift over all time: an incident (a spike of connection_lost) shows as a high share and lift. Filter on appid; for a time window or a finer bucket use logout_reasons_between(appid, from, to, bucket).';
COMMENT ON COLUMN logout_reasons_hourly.bucket_start IS 'Start of the bucket (an hour of the reporting time zone), inclusive.';

CREATE OR REPLACE FUNCTION logout_reasons_between(p_appid bigint, p_from timestamptz, p_to timestamptz,
                                                  p_bucket interval DEFAULT interval '1 hour')
RETURNS SETOF logout_reasons_hourly
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
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
        WHERE l.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
          AND l.logout_time >= p_from AND l.logout_time < p_to
        GROUP BY 1, 2, 3
    ) AS c;
END
$$;

COMMENT ON FUNCTION logout_reasons_between(bigint, timestamptz, timestamptz, interval) IS
    'The rows of logout_reasons_hourly for the logouts in [p_from, p_to) (p_appid NULL: every app), in buckets of p_bucket (default 1 hour; e.g. 1 minute, 5 minutes, 1 day) of the reporting time zone (zegolog_bucket_start: aligned on its midnights; 1 day is a local day, 23 or 25 hours on a DST change); window_share and lift are over this window.';

-- ---------------------------------------------------------------------------------------------
-- Per platform and day
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE VIEW platform_daily AS
SELECT
    zegolog_local_day(s.logout_at) AS day,
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
    'Per day of logout (in the reporting time zone), app and platform of the session''s login: sessions, exact duration percentiles (percentile_disc, of those with a known duration) and the count of each logout reason. Reads the raw rows: filter on appid, or query session_durations for a window (sql/14).';

-- ---------------------------------------------------------------------------------------------
-- Data quality, per day of receipt in the zone
-- ---------------------------------------------------------------------------------------------

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
    SELECT zegolog_local_day(l.received_at) AS day,
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
    SELECT zegolog_local_day(e.received_at), e.appid, 0, 0, 0, 0, 0, 0, 1,
           (e.refused_reason LIKE 'signature reuse:%')::int, 0, 0
    FROM callback_events AS e
    WHERE e.refused_reason IS NOT NULL
) AS f
GROUP BY f.day, f.appid;

COMMENT ON VIEW data_quality_daily IS
    'Per day of receipt (received_at, in the reporting time zone) and app: logouts received, and how many had a negative or zero duration, a logout_time more than a day ahead of or behind their arrival, no login event, no login_time, no known login yet, plus the quarantined callbacks (any event) and signature reuses. Filter on appid; for a time window use data_quality_daily_between(appid, from, to).';
COMMENT ON COLUMN data_quality_daily.day IS 'Calendar day (in the reporting time zone) the rows were received (received_at), not the day of logout.';

CREATE OR REPLACE FUNCTION data_quality_daily_between(p_appid bigint, p_from timestamptz, p_to timestamptz)
RETURNS SETOF data_quality_daily
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    zone text := zegolog_time_zone();
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
    ), counts AS (
        SELECT zegolog_local_day(l.received_at, zone) AS day, l.appid,
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
           coalesce(c.without_login_time, 0), coalesce(c.unpaired, 0)
    FROM counts AS c
    LEFT JOIN unmatched AS u ON u.day = c.day AND u.appid = c.appid
    FULL JOIN quarantine AS q ON q.day = c.day AND q.appid = c.appid;
END
$$;


-- ---------------------------------------------------------------------------------------------
-- Room lifecycles: the login of a logout without login_time
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE VIEW room_lifecycle AS
SELECT
    k.appid,
    k.room_id,
    k.room_seq,
    e.created_at,
    e.creator,
    e.closed_at,
    e.close_reason AS close_reason_code,
    CASE WHEN e.closed_at IS NOT NULL THEN zegolog_close_reason_name(e.close_reason) END AS close_reason,
    e.closed_at - e.created_at AS lifetime,
    s.sessions,
    s.users,
    s.user_minutes,
    coalesce((
        SELECT max(w.running)
        FROM (
            SELECT sum(sum(d.delta)) OVER (ORDER BY d.minute) AS running
            FROM (SELECT unnest(s.ins) AS minute, 1 AS delta
                  UNION ALL
                  SELECT unnest(s.outs), -1) AS d
            GROUP BY d.minute
        ) AS w
    ), 0)::bigint AS peak_users,
    s.first_login_at,
    s.last_logout_at
FROM (
    SELECT e.appid, e.room_id, e.room_session_id AS room_seq
    FROM room_lifecycle_events AS e
    UNION
    SELECT l.appid, l.room_id, l.room_seq
    FROM room_logouts AS l
    WHERE l.room_seq IS NOT NULL
) AS k
CROSS JOIN LATERAL (
    SELECT max(v.at) FILTER (WHERE v.event = 'room_create') AS created_at,
           max(v.creator) FILTER (WHERE v.event = 'room_create') AS creator,
           max(v.at) FILTER (WHERE v.event = 'room_close') AS closed_at,
           max(v.close_reason) FILTER (WHERE v.event = 'room_close') AS close_reason
    FROM room_lifecycle_events AS v
    WHERE v.appid = k.appid AND v.room_id = k.room_id AND v.room_session_id = k.room_seq
) AS e
CROSS JOIN LATERAL (
    -- Concurrency as in 0003, over this lifecycle's sessions: +1 at the login minute, -1 the
    -- minute after the logout minute; negative durations left out.
    SELECT count(*) AS sessions,
           count(DISTINCT o.user_account) AS users,
           coalesce(sum(greatest(extract(EPOCH FROM o.logout_time - o.login_at), 0)) / 60, 0)::double precision
               AS user_minutes,
           min(o.login_at) AS first_login_at,
           max(o.logout_time) AS last_logout_at,
           array_agg(date_trunc('minute', o.login_at, 'UTC'))
               FILTER (WHERE o.logout_time >= o.login_at) AS ins,
           array_agg(date_trunc('minute', o.logout_time, 'UTC') + interval '1 minute')
               FILTER (WHERE o.logout_time >= o.login_at) AS outs
    FROM (SELECT r.user_account, r.logout_time, coalesce(r.login_time, r.paired_login_time) AS login_at
          FROM room_logouts AS r
          WHERE r.appid = k.appid AND r.room_id = k.room_id AND r.room_seq = k.room_seq) AS o
) AS s;

CREATE OR REPLACE FUNCTION room_lifecycle_between(p_appid bigint, p_from timestamptz, p_to timestamptz)
RETURNS SETOF room_lifecycle
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT
        k.appid,
        k.room_id,
        k.room_seq,
        e.created_at,
        e.creator,
        e.closed_at,
        e.close_reason AS close_reason_code,
        CASE WHEN e.closed_at IS NOT NULL THEN zegolog_close_reason_name(e.close_reason) END AS close_reason,
        e.closed_at - e.created_at AS lifetime,
        s.sessions,
        s.users,
        s.user_minutes,
        coalesce((
            SELECT max(w.running)
            FROM (
                SELECT sum(sum(d.delta)) OVER (ORDER BY d.minute) AS running
                FROM (SELECT unnest(s.ins) AS minute, 1 AS delta
                      UNION ALL
                      SELECT unnest(s.outs), -1) AS d
                GROUP BY d.minute
            ) AS w
        ), 0)::bigint AS peak_users,
        s.first_login_at,
        s.last_logout_at
    FROM (
        SELECT e.appid, e.room_id, e.room_session_id AS room_seq
        FROM room_lifecycle_events AS e
        WHERE e.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
          AND e.at >= p_from AND e.at < p_to
        UNION
        SELECT l.appid, l.room_id, l.room_seq
        FROM room_logouts AS l
        WHERE l.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
          AND l.logout_time >= p_from AND l.logout_time < p_to
          AND l.room_seq IS NOT NULL
    ) AS k
    CROSS JOIN LATERAL (
        SELECT max(v.at) FILTER (WHERE v.event = 'room_create') AS created_at,
               max(v.creator) FILTER (WHERE v.event = 'room_create') AS creator,
               max(v.at) FILTER (WHERE v.event = 'room_close') AS closed_at,
               max(v.close_reason) FILTER (WHERE v.event = 'room_close') AS close_reason
        FROM room_lifecycle_events AS v
        WHERE v.appid = k.appid AND v.room_id = k.room_id AND v.room_session_id = k.room_seq
    ) AS e
    CROSS JOIN LATERAL (
        -- Concurrency as in 0003, over this lifecycle's sessions: +1 at the login minute, -1 the
        -- minute after the logout minute; negative durations left out.
        SELECT count(*) AS sessions,
               count(DISTINCT o.user_account) AS users,
               coalesce(sum(greatest(extract(EPOCH FROM o.logout_time - o.login_at), 0)) / 60, 0)::double precision
                   AS user_minutes,
               min(o.login_at) AS first_login_at,
               max(o.logout_time) AS last_logout_at,
               array_agg(date_trunc('minute', o.login_at, 'UTC'))
                   FILTER (WHERE o.logout_time >= o.login_at) AS ins,
               array_agg(date_trunc('minute', o.logout_time, 'UTC') + interval '1 minute')
                   FILTER (WHERE o.logout_time >= o.login_at) AS outs
        FROM (SELECT r.user_account, r.logout_time, coalesce(r.login_time, r.paired_login_time) AS login_at
              FROM room_logouts AS r
              WHERE r.appid = k.appid AND r.room_id = k.room_id AND r.room_seq = k.room_seq) AS o
    ) AS s;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The incident view (0011), in the zone
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION reason_usual_shares(p_appid bigint, p_before timestamptz, p_days integer DEFAULT 7)
RETURNS TABLE (reason text, logouts bigint, usual_share double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT d.reason, sum(d.logouts)::bigint,
           (sum(d.logouts) / sum(sum(d.logouts)) OVER ())::double precision
    FROM logout_reasons_daily AS d
    WHERE d.appid = p_appid
      AND d.day >= zegolog_local_day(p_before) - p_days
      AND d.day < zegolog_local_day(p_before)
    GROUP BY d.reason
    ORDER BY d.reason;
$$;

COMMENT ON FUNCTION reason_usual_shares(bigint, timestamptz, integer) IS
    'Each reason''s logouts and share of app p_appid''s logouts over the p_days (default 7) whole days (of the reporting time zone) before the day of p_before: the usual share the incident view measures lift against.';

-- The buckets start at the zone's midnight of the window's first day (date_bin's origin, read
-- once: no per-row cost). For the view's 1- and 5-minute buckets this is the same alignment as
-- UTC's (every zone's offset is a multiple of 15 minutes); for an hour it is the local hour.
CREATE OR REPLACE FUNCTION incident_reasons(p_appid bigint, p_from timestamptz, p_to timestamptz,
                                            p_bucket interval DEFAULT interval '1 minute')
RETURNS TABLE (bucket_start timestamptz, reason text, logouts bigint, bucket_logouts bigint,
               share double precision, usual_share double precision, lift double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH origin AS MATERIALIZED (
        SELECT zegolog_local_day(p_from)::timestamp AT TIME ZONE zegolog_time_zone() AS at
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
$$;

COMMENT ON FUNCTION incident_reasons(bigint, timestamptz, timestamptz, interval) IS
    'Logouts of app p_appid in [p_from, p_to) per bucket of p_bucket (aligned on the reporting time zone''s midnight of p_from''s day) and decoded reason: logouts, all logouts of the bucket, share of the bucket, usual share (reason_usual_shares before p_from) and lift = share / usual share (NULL without a usual share). Buckets and reasons without logouts have no row.';

CREATE OR REPLACE FUNCTION incident_users_online(p_appid bigint, p_from timestamptz, p_to timestamptz,
                                                 p_bucket interval DEFAULT interval '1 minute')
RETURNS TABLE (bucket_start timestamptz, users_online bigint, fewest_online bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH origin AS MATERIALIZED (
        SELECT zegolog_local_day(p_from)::timestamp AT TIME ZONE zegolog_time_zone() AS at
    )
    SELECT date_bin(p_bucket, o.minute, origin.at),
           max(o.users_online)::bigint, min(o.users_online)::bigint
    FROM users_online(p_appid, p_from, p_to) AS o, origin
    GROUP BY 1
    ORDER BY 1;
$$;

COMMENT ON FUNCTION incident_users_online(bigint, timestamptz, timestamptz, interval) IS
    'Per bucket of p_bucket in [p_from, p_to) (aligned as incident_reasons): the most (users_online) and the fewest sessions online in app p_appid in any minute of the bucket, as users_online(appid, from, to) counts them.';

-- ---------------------------------------------------------------------------------------------
-- Ad-hoc daily views in any zone (0010), for one app or all, logouts without a login included
-- ---------------------------------------------------------------------------------------------

DROP FUNCTION session_duration_daily_in(text, date, date);
DROP FUNCTION logout_reasons_daily_in(text, date, date);
DROP FUNCTION peak_concurrency_daily_in(text, date, date);
DROP FUNCTION room_peak_concurrency_daily_in(text, date, date);
DROP FUNCTION zegolog_buckets_in(text, date, date);
DROP FUNCTION zegolog_peaks_in(text, date, date, boolean);

-- The duration buckets of the window's logouts (of app p_appid, or of every app when NULL) per
-- day in p_zone, through zegolog_logout_rollup's rule (the no-duration bucket while the login
-- is unknown): what the rollups would hold in that zone. Grouped first on the reason code (a
-- hash of a few hundred groups per day), named after: that is half the time of grouping on the
-- name, or on each distinct duration.
CREATE FUNCTION zegolog_buckets_in(p_zone text, p_from date, p_to date, p_appid bigint)
RETURNS TABLE (day date, appid bigint, reason text, bucket integer, sessions bigint,
               total_ms numeric, max_ms bigint)
LANGUAGE sql STABLE AS $$
    WITH coded AS (
        SELECT zegolog_local_day(d.logout_time, p_zone) AS day, d.appid, d.reason,
               CASE WHEN d.ms IS NULL THEN zegolog_no_duration_bucket() ELSE zegolog_duration_bucket(d.ms) END AS bucket,
               count(*) AS sessions, sum(coalesce(d.ms, 0)) AS total_ms,
               coalesce(max(d.ms), -9223372036854775808) AS max_ms
        FROM (
            -- OFFSET 0 keeps ms a column: flattened, its expression would be computed once per
            -- use in the bucket's CASE (five times a row).
            SELECT r.logout_time, r.appid, r.reason,
                   (extract(EPOCH FROM r.logout_time - coalesce(r.login_time, r.paired_login_time)) * 1000)::bigint AS ms
            FROM zegolog_zone_window(p_zone, p_from, p_to) AS w, room_logouts AS r
            WHERE r.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
              AND r.logout_time >= w.lo AND r.logout_time < w.hi
            OFFSET 0
        ) AS d
        GROUP BY 1, 2, 3, 4
    )
    SELECT c.day, c.appid, zegolog_reason_name(c.reason), c.bucket,
           sum(c.sessions)::bigint, sum(c.total_ms), max(c.max_ms)
    FROM coded AS c
    GROUP BY 1, 2, 3, 4;
$$;

CREATE FUNCTION session_duration_daily_in(p_zone text, p_from date, p_to date, p_appid bigint DEFAULT NULL)
RETURNS TABLE (day date, appid bigint, sessions bigint, total_minutes double precision,
               avg_s double precision, p50_s double precision, p90_s double precision,
               p99_s double precision, max_s double precision, sessions_with_duration bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH b AS (
        SELECT day, appid, bucket, bucket <> zegolog_no_duration_bucket() AS timed,
               sum(sessions) AS sessions, sum(total_ms) AS total_ms, max(max_ms) AS max_ms
        FROM zegolog_buckets_in(p_zone, p_from, p_to, p_appid)
        GROUP BY day, appid, bucket
    ), c AS (
        SELECT b.*,
               sum(sessions) FILTER (WHERE timed) OVER (PARTITION BY day, appid ORDER BY bucket) AS cum,
               sum(sessions) FILTER (WHERE timed) OVER (PARTITION BY day, appid) AS n
        FROM b
    )
    SELECT day, appid, sum(sessions)::bigint,
           (sum(total_ms) FILTER (WHERE timed) / 60000)::double precision,
           (sum(total_ms) FILTER (WHERE timed) / nullif(coalesce(sum(sessions) FILTER (WHERE timed), 0), 0) / 1000)::double precision,
           min(zegolog_bucket_ms(bucket)) FILTER (WHERE timed AND cum >= 0.5 * n) / 1000,
           min(zegolog_bucket_ms(bucket)) FILTER (WHERE timed AND cum >= 0.9 * n) / 1000,
           min(zegolog_bucket_ms(bucket)) FILTER (WHERE timed AND cum >= 0.99 * n) / 1000,
           max(max_ms) FILTER (WHERE timed)::double precision / 1000,
           coalesce(sum(sessions) FILTER (WHERE timed), 0)::bigint
    FROM c
    GROUP BY day, appid
    ORDER BY day, appid;
$$;

COMMENT ON FUNCTION session_duration_daily_in(text, date, date, bigint) IS
    'session_duration_daily with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93) and app p_appid (NULL, the default: every app), computed from the raw rows.';

CREATE FUNCTION logout_reasons_daily_in(p_zone text, p_from date, p_to date, p_appid bigint DEFAULT NULL)
RETURNS TABLE (day date, appid bigint, reason text, logouts bigint, share double precision,
               median_duration_s double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH c AS (
        SELECT b.*, b.bucket <> zegolog_no_duration_bucket() AS timed,
               sum(sessions) FILTER (WHERE b.bucket <> zegolog_no_duration_bucket())
                   OVER (PARTITION BY day, appid, reason ORDER BY bucket) AS cum,
               sum(sessions) FILTER (WHERE b.bucket <> zegolog_no_duration_bucket())
                   OVER (PARTITION BY day, appid, reason) AS n
        FROM zegolog_buckets_in(p_zone, p_from, p_to, p_appid) AS b
    ), g AS (
        SELECT day, appid, reason, sum(sessions)::bigint AS logouts,
               zegolog_bucket_ms(min(bucket) FILTER (WHERE timed AND cum >= 0.5 * n)) / 1000 AS median_duration_s
        FROM c
        GROUP BY day, appid, reason
    )
    SELECT day, appid, reason, logouts,
           (logouts::numeric / sum(logouts) OVER (PARTITION BY day, appid))::double precision,
           median_duration_s
    FROM g
    ORDER BY day, appid, reason;
$$;

COMMENT ON FUNCTION logout_reasons_daily_in(text, date, date, bigint) IS
    'logout_reasons_daily with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93) and app p_appid (NULL, the default: every app), computed from the raw rows.';

-- Users online per minute are zone-free (app/room_concurrency_minute plus concurrency_pending):
-- a day's peak in any zone is the most users online in any minute of that zone's day. The base
-- at the window's start comes from the daily nets of the reporting zone's days before it, and
-- the minutes since; day starts are put in the stream of changes as zero deltas so that a day
-- without any change still gets the users online since the day before.
CREATE FUNCTION zegolog_peaks_in(p_zone text, p_from date, p_to date, p_rooms boolean, p_appid bigint)
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
        WHERE p_rooms AND m.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END) AND m.minute >= base_start AND m.minute < w.hi
        UNION ALL
        SELECT m.appid, '', m.minute, m.delta FROM app_concurrency_minute AS m
        WHERE NOT p_rooms AND m.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END) AND m.minute >= base_start AND m.minute < w.hi
        UNION ALL
        SELECT c.appid, CASE WHEN p_rooms THEN c.room_id ELSE '' END, c.minute, c.delta
        FROM concurrency_pending AS c WHERE c.minute < w.hi AND (p_appid IS NULL OR c.appid = p_appid)
    ), bases AS (
        SELECT k.appid, k.room_id, sum(k.users) AS users
        FROM (
            SELECT d.appid, d.room_id, d.net AS users FROM room_concurrency_day AS d
            WHERE p_rooms AND d.day < base_day AND (p_appid IS NULL OR d.appid = p_appid)
            UNION ALL
            SELECT d.appid, '', d.net FROM app_concurrency_day AS d
            WHERE NOT p_rooms AND d.day < base_day AND (p_appid IS NULL OR d.appid = p_appid)
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

CREATE FUNCTION peak_concurrency_daily_in(p_zone text, p_from date, p_to date, p_appid bigint DEFAULT NULL)
RETURNS TABLE (day date, appid bigint, peak_users bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT day, appid, peak_users FROM zegolog_peaks_in(p_zone, p_from, p_to, false, p_appid) ORDER BY day, appid;
$$;

COMMENT ON FUNCTION peak_concurrency_daily_in(text, date, date, bigint) IS
    'peak_concurrency_daily with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93) and app p_appid (NULL, the default: every app), from the zone-free per-minute rollups.';

CREATE FUNCTION room_peak_concurrency_daily_in(p_zone text, p_from date, p_to date, p_appid bigint DEFAULT NULL)
RETURNS TABLE (day date, appid bigint, room_id text, peak_users bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT day, appid, room_id, peak_users FROM zegolog_peaks_in(p_zone, p_from, p_to, true, p_appid) ORDER BY day, appid, room_id;
$$;

COMMENT ON FUNCTION room_peak_concurrency_daily_in(text, date, date, bigint) IS
    'room_peak_concurrency_daily (days with users online) with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93) and app p_appid (NULL, the default: every app), from the zone-free per-minute rollups.';


REVOKE EXECUTE ON FUNCTION
    session_duration_daily_in(text, date, date, bigint),
    logout_reasons_daily_in(text, date, date, bigint),
    peak_concurrency_daily_in(text, date, date, bigint),
    room_peak_concurrency_daily_in(text, date, date, bigint)
FROM PUBLIC;
