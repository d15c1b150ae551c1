-- zegolog's schema, 4 of 5: what analysts query (docs/views.md lists every view and function).
--
-- Daily views come in three forms: the view (days in the reporting zone, every app), its
-- `_between(appid, from, to)` function (a window of one app, through the indexes) and its
-- `_in(zone, from, to)` function (days cut in any zone). Functions an analyst calls are
-- SECURITY DEFINER with a fixed search_path: `zegolog grant-analyst` grants the views and these
-- functions, never the raw tables.

CREATE FUNCTION zegolog_buckets_in(p_zone text, p_from date, p_to date, p_appid bigint)
 RETURNS TABLE(day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint)
 LANGUAGE plpgsql
 STABLE
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

CREATE FUNCTION zegolog_peaks_in(p_zone text, p_from date, p_to date, p_rooms boolean, p_appid bigint)
 RETURNS TABLE(day date, appid bigint, room_id text, peak_users bigint, net bigint)
 LANGUAGE plpgsql
 STABLE
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

CREATE VIEW session_durations AS
SELECT appid, room_id, room_seq, user_account, user_nickname, session_id, user_role, role,
       login_at, logout_at, zegolog_duration_ms(start, logout_at) AS duration_ms,
       logout_at - start AS duration, reason_code, reason, login_source,
       platform_code, zegolog_platform_name(platform_code) AS platform, time_fault
FROM (
    SELECT l.appid, l.room_id, l.room_seq, l.user_account, l.user_nickname, l.session_id, l.user_role,
           zegolog_role_name(l.user_role) AS role,
           l.login_at,
           l.logout_time AS logout_at,
           zegolog_session_start(l.login_at, l.logout_time, l.received_at, (SELECT max_session FROM zegolog_settings)) AS start,
           l.reason AS reason_code,
           zegolog_reason_name(l.reason) AS reason,
           CASE WHEN l.login_time IS NOT NULL THEN 'logout'
                WHEN l.paired_login_time IS NOT NULL THEN 'login' END AS login_source,
           -- The session's room_login: the one at its login, else the latest before its logout.
           (SELECT i.term_type
            FROM room_logins AS i
            WHERE i.appid = l.appid AND i.room_id = l.room_id AND i.user_account = l.user_account
              AND i.session_id = l.session_id AND i.login_time <= l.logout_time
            ORDER BY (i.login_time = l.login_at) IS TRUE DESC, i.login_time DESC
            LIMIT 1) AS platform_code,
           zegolog_time_fault(l.login_at, l.logout_time, l.received_at, (SELECT max_session FROM zegolog_settings)) AS time_fault
    -- The settings as a scalar subquery, computed once: joined, they cost the planner its
    -- parallel index plan (6x slower over a day of logouts at 10M).
    FROM room_logouts AS l
) AS s;
COMMENT ON VIEW session_durations IS 'One row per logout (one user session in one room): decoded role and reason, exact duration (NULL while the login of a logout without login_time is unknown), the platform of its login.';
COMMENT ON COLUMN session_durations.login_at IS 'When the user logged in: login_time of the logout, or else of its paired room_login; NULL while none is known.';
COMMENT ON COLUMN session_durations.duration_ms IS 'Session length in milliseconds, exact (logout_at - login_at); NULL while login_at is unknown, or when the session''s times are implausible (time_fault).';
COMMENT ON COLUMN session_durations.login_source IS 'Where login_at comes from: logout (login_time of the logout callback), login (its paired room_login), NULL (unknown yet).';
COMMENT ON COLUMN session_durations.platform_code IS 'term_type of the session''s room_login (the one at login_at, else the latest at or before the logout); NULL when not sent or no login is known.';
COMMENT ON COLUMN session_durations.platform IS 'Decoded platform_code (zegolog_platform_name): none, windows, ios, android, macos, linux, web, mini_program, unknown.';
COMMENT ON COLUMN session_durations.time_fault IS 'Why the session''s times are implausible (zegolog_time_fault: logout_before_2010, logout_after_receipt, login_before_2010, logout_before_login, session_too_long), NULL when they are plausible: an implausible session has no duration and no concurrency anywhere.';

CREATE VIEW session_duration_daily AS
WITH dirty AS (
    SELECT DISTINCT d.day, d.appid FROM pending_contributions AS p, unnest(p.durations) AS d
), settled AS (
    SELECT s.day, s.appid, s.sessions, s.timed_sessions, s.total_ms, s.max_ms,
           s.p50_bucket, s.p90_bucket, s.p99_bucket
    FROM logout_duration_day AS s
    WHERE NOT EXISTS (SELECT 1 FROM dirty AS d WHERE d.appid = s.appid AND d.day = s.day)
), fresh AS (
    SELECT day, appid, sum(sessions)::bigint AS sessions,
           coalesce(sum(sessions) FILTER (WHERE timed), 0)::bigint AS timed_sessions,
           sum(total_ms) FILTER (WHERE timed) AS total_ms,
           max(max_ms) FILTER (WHERE timed AND sessions > 0) AS max_ms,
           zegolog_nearest_rank(0.5, array_agg(bucket) FILTER (WHERE timed), array_agg(sessions) FILTER (WHERE timed)) AS p50_bucket,
           zegolog_nearest_rank(0.9, array_agg(bucket) FILTER (WHERE timed), array_agg(sessions) FILTER (WHERE timed)) AS p90_bucket,
           zegolog_nearest_rank(0.99, array_agg(bucket) FILTER (WHERE timed), array_agg(sessions) FILTER (WHERE timed)) AS p99_bucket
    FROM (
        SELECT a.day, a.appid, a.bucket, a.bucket <> zegolog_no_duration_bucket() AS timed,
               sum(a.sessions) AS sessions, sum(a.total_ms) AS total_ms, max(a.max_ms) AS max_ms
        FROM logout_rollup_all AS a
        JOIN dirty AS d ON d.appid = a.appid AND d.day = a.day
        GROUP BY a.day, a.appid, a.bucket
    ) AS b
    GROUP BY day, appid
), days AS (
    SELECT * FROM settled
    UNION ALL
    SELECT * FROM fresh
)
SELECT
    day,
    appid,
    sessions,
    (total_ms / 60000)::double precision AS total_minutes,
    (total_ms / nullif(timed_sessions, 0) / 1000)::double precision AS avg_s,
    zegolog_bucket_ms(p50_bucket) / 1000 AS p50_s,
    zegolog_bucket_ms(p90_bucket) / 1000 AS p90_s,
    zegolog_bucket_ms(p99_bucket) / 1000 AS p99_s,
    max_ms::double precision / 1000 AS max_s,
    timed_sessions AS sessions_with_duration
FROM days;
COMMENT ON VIEW session_duration_daily IS 'Per day (in the reporting time zone, zegolog_time_zone()) and app: sessions, total minutes, average, percentiles and maximum of session durations. Percentiles: zegolog_nearest_rank over the rollups'' 1% duration buckets (the exact nearest-rank duration, within 1%). Backed by the rollups. Other zones: session_duration_daily_in(zone, from, to).';
COMMENT ON COLUMN session_duration_daily.sessions_with_duration IS 'Of sessions, those whose duration is known: every logout that carried login_time, and the logouts without one once their room_login is known.';

CREATE FUNCTION session_duration_daily_in(p_zone text, p_from date, p_to date, p_appid bigint DEFAULT NULL::bigint) RETURNS TABLE(day date, appid bigint, sessions bigint, total_minutes double precision, avg_s double precision, p50_s double precision, p90_s double precision, p99_s double precision, max_s double precision, sessions_with_duration bigint)
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
COMMENT ON FUNCTION session_duration_daily_in(p_zone text, p_from date, p_to date, p_appid bigint) IS 'session_duration_daily with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93) and app p_appid (NULL, the default: every app), computed from the raw rows.';
REVOKE ALL ON FUNCTION session_duration_daily_in(p_zone text, p_from date, p_to date, p_appid bigint) FROM PUBLIC;

CREATE VIEW logout_reasons_daily AS
WITH dirty AS (
    SELECT DISTINCT d.day, d.appid, d.reason FROM pending_contributions AS p, unnest(p.durations) AS d
), settled AS (
    SELECT s.day, s.appid, s.reason, s.logouts,
           zegolog_bucket_ms(s.median_bucket) / 1000 AS median_duration_s
    FROM logout_reason_day AS s
    WHERE NOT EXISTS (SELECT 1 FROM dirty AS d
                      WHERE d.appid = s.appid AND d.day = s.day AND d.reason = s.reason)
), fresh AS (
    SELECT day, appid, reason, sum(sessions)::bigint AS logouts,
           zegolog_bucket_ms(zegolog_nearest_rank(0.5, array_agg(bucket) FILTER (WHERE timed),
                                                  array_agg(sessions) FILTER (WHERE timed))) / 1000
               AS median_duration_s
    FROM (
        SELECT a.day, a.appid, a.reason, a.bucket, a.bucket <> zegolog_no_duration_bucket() AS timed,
               sum(a.sessions) AS sessions
        FROM logout_rollup_all AS a
        JOIN dirty AS d ON d.appid = a.appid AND d.day = a.day AND d.reason = a.reason
        GROUP BY a.day, a.appid, a.reason, a.bucket
    ) AS b
    GROUP BY day, appid, reason
), groups AS (
    SELECT * FROM settled
    UNION ALL
    SELECT * FROM fresh
)
SELECT
    day,
    appid,
    reason,
    logouts,
    (logouts::numeric / sum(logouts) OVER (PARTITION BY day, appid))::double precision AS share,
    median_duration_s
FROM groups;
COMMENT ON VIEW logout_reasons_daily IS 'Per day (in the reporting time zone, zegolog_time_zone()), app and logout reason: logouts, share of the app''s logouts that day, median duration (zegolog_nearest_rank over the rollups'' 1% duration buckets: the exact nearest-rank median, within 1%). Backed by the rollups. Other zones: logout_reasons_daily_in(zone, from, to).';

CREATE FUNCTION logout_reasons_daily_in(p_zone text, p_from date, p_to date, p_appid bigint DEFAULT NULL::bigint) RETURNS TABLE(day date, appid bigint, reason text, logouts bigint, share double precision, median_duration_s double precision)
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
COMMENT ON FUNCTION logout_reasons_daily_in(p_zone text, p_from date, p_to date, p_appid bigint) IS 'logout_reasons_daily with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93) and app p_appid (NULL, the default: every app), computed from the raw rows.';
REVOKE ALL ON FUNCTION logout_reasons_daily_in(p_zone text, p_from date, p_to date, p_appid bigint) FROM PUBLIC;

CREATE VIEW logout_reasons_hourly AS
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
COMMENT ON VIEW logout_reasons_hourly IS 'Logouts per hour (of the reporting time zone), app and decoded reason, with share of the hour and lift over all time: an incident (a spike of connection_lost) shows as a high share and lift. Filter on appid; for a time window or a finer bucket use logout_reasons_between(appid, from, to, bucket).';
COMMENT ON COLUMN logout_reasons_hourly.bucket_start IS 'Start of the bucket (an hour of the reporting time zone), inclusive.';
COMMENT ON COLUMN logout_reasons_hourly.bucket_end IS 'End of the bucket, exclusive.';
COMMENT ON COLUMN logout_reasons_hourly.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN logout_reasons_hourly.reason IS 'Decoded logout reason: normal, heartbeat_timeout, connection_lost, kicked_out, token_expired, unknown.';
COMMENT ON COLUMN logout_reasons_hourly.logouts IS 'Logouts of this app with this reason in the bucket (a bucket-reason without logouts has no row).';
COMMENT ON COLUMN logout_reasons_hourly.bucket_logouts IS 'All logouts of this app in the bucket, every reason.';
COMMENT ON COLUMN logout_reasons_hourly.share IS 'logouts / bucket_logouts, between 0 and 1; the shares of one app-bucket sum to 1.';
COMMENT ON COLUMN logout_reasons_hourly.window_share IS 'This reason''s share of the app''s logouts over the whole window (all time for the view): the baseline.';
COMMENT ON COLUMN logout_reasons_hourly.lift IS 'share / window_share: 1 is usual, 3 means this reason is three times as frequent as usual in this bucket.';

CREATE FUNCTION logout_reasons_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval DEFAULT '01:00:00'::interval)
 RETURNS SETOF logout_reasons_hourly
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
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
COMMENT ON FUNCTION logout_reasons_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval) IS 'The rows of logout_reasons_hourly for the logouts in [p_from, p_to) (p_appid NULL: every app), in buckets of p_bucket (default 1 hour; e.g. 1 minute, 5 minutes, 1 day) of the reporting time zone (zegolog_bucket_start: aligned on its midnights; 1 day is a local day, 23 or 25 hours on a DST change); window_share and lift are over this window.';
REVOKE ALL ON FUNCTION logout_reasons_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval) FROM PUBLIC;

CREATE VIEW peak_concurrency_daily AS
 SELECT day, appid, peak AS peak_users
   FROM app_concurrency_day
  WHERE peak <> 0 OR net <> 0;
COMMENT ON VIEW peak_concurrency_daily IS 'Per day (in the reporting time zone, zegolog_time_zone()) and app: the most users online in any minute of the day. Other zones: peak_concurrency_daily_in(zone, from, to).';

CREATE FUNCTION peak_concurrency_daily_in(p_zone text, p_from date, p_to date, p_appid bigint DEFAULT NULL::bigint) RETURNS TABLE(day date, appid bigint, peak_users bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    SELECT day, appid, peak_users FROM zegolog_peaks_in(p_zone, p_from, p_to, false, p_appid) ORDER BY day, appid;
$$;
COMMENT ON FUNCTION peak_concurrency_daily_in(p_zone text, p_from date, p_to date, p_appid bigint) IS 'peak_concurrency_daily with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93) and app p_appid (NULL, the default: every app), from the zone-free per-minute rollups.';
REVOKE ALL ON FUNCTION peak_concurrency_daily_in(p_zone text, p_from date, p_to date, p_appid bigint) FROM PUBLIC;

CREATE VIEW room_peak_concurrency_daily AS
SELECT day, appid, room_id, peak AS peak_users
FROM room_concurrency_day;
COMMENT ON VIEW room_peak_concurrency_daily IS 'Per day (in the reporting time zone, zegolog_time_zone()), app and room: the most users online in the room in any minute of the day. Other zones: room_peak_concurrency_daily_in(zone, from, to).';

CREATE FUNCTION room_peak_concurrency_daily_in(p_zone text, p_from date, p_to date, p_appid bigint DEFAULT NULL::bigint) RETURNS TABLE(day date, appid bigint, room_id text, peak_users bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    SELECT day, appid, room_id, peak_users FROM zegolog_peaks_in(p_zone, p_from, p_to, true, p_appid) ORDER BY day, appid, room_id;
$$;
COMMENT ON FUNCTION room_peak_concurrency_daily_in(p_zone text, p_from date, p_to date, p_appid bigint) IS 'room_peak_concurrency_daily (days with users online) with days cut in time zone p_zone, for the days p_from to p_to (both included, at most 93) and app p_appid (NULL, the default: every app), from the zone-free per-minute rollups.';
REVOKE ALL ON FUNCTION room_peak_concurrency_daily_in(p_zone text, p_from date, p_to date, p_appid bigint) FROM PUBLIC;

CREATE FUNCTION users_online(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) RETURNS TABLE(minute timestamp with time zone, users_online bigint)
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
COMMENT ON FUNCTION users_online(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) IS 'Sessions online in app p_appid in every UTC minute of [p_from, p_to), from the minute holding p_from: a session counts from its login minute to its logout minute included. Compacted rollups plus pending rows: exact up to the last commit.';
REVOKE ALL ON FUNCTION users_online(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) FROM PUBLIC;

CREATE FUNCTION room_users_online(p_appid bigint, p_room_id text, p_from timestamp with time zone, p_to timestamp with time zone)
 RETURNS TABLE(minute timestamp with time zone, users_online bigint)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
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
COMMENT ON FUNCTION room_users_online(p_appid bigint, p_room_id text, p_from timestamp with time zone, p_to timestamp with time zone) IS 'Sessions online in room p_room_id of app p_appid in every UTC minute of [p_from, p_to), as users_online.';
REVOKE ALL ON FUNCTION room_users_online(p_appid bigint, p_room_id text, p_from timestamp with time zone, p_to timestamp with time zone) FROM PUBLIC;

CREATE VIEW user_daily AS
 SELECT zegolog_local_day(l.logout_time) AS day,
    l.appid,
    l.user_account,
    (array_agg(l.user_nickname ORDER BY l.logout_time DESC))[1] AS last_nickname,
    count(*) AS sessions,
    count(DISTINCT l.room_id) AS rooms,
    ((sum(EXTRACT(epoch FROM (l.logout_time - zegolog_session_start(l.login_at, l.logout_time, l.received_at, s.max_session)))) / (60)::numeric))::double precision AS total_minutes,
    sum((l.logout_time - zegolog_session_start(l.login_at, l.logout_time, l.received_at, s.max_session))) AS total_time,
    count(*) FILTER (WHERE (l.reason = 0)) AS normal,
    count(*) FILTER (WHERE (l.reason = 1)) AS heartbeat_timeout,
    count(*) FILTER (WHERE (l.reason = 2)) AS connection_lost,
    count(*) FILTER (WHERE (l.reason = 3)) AS kicked_out,
    count(*) FILTER (WHERE (l.reason = 4)) AS token_expired,
    count(*) FILTER (WHERE ((l.reason IS NULL) OR (l.reason <> ALL (ARRAY[0, 1, 2, 3, 4])))) AS unknown,
    min(l.login_at) AS first_login_at,
    max(l.logout_time) AS last_logout_at
   FROM room_logouts l
   CROSS JOIN zegolog_settings s
  GROUP BY (zegolog_local_day(l.logout_time)), l.appid, l.user_account;
COMMENT ON VIEW user_daily IS 'Per day of logout (in the reporting time zone, zegolog_time_zone()), app and user: sessions, rooms, total time, and how many sessions ended with each logout reason. Filter on appid and user_account; for a time window use user_daily_between(appid, from, to).';
COMMENT ON COLUMN user_daily.day IS 'Calendar day of the logout in the reporting time zone; a session counts on the day it ended.';
COMMENT ON COLUMN user_daily.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN user_daily.user_account IS 'User id used at login.';
COMMENT ON COLUMN user_daily.last_nickname IS 'Nickname of the user''s last session that day (it can change); NULL when not sent.';
COMMENT ON COLUMN user_daily.sessions IS 'Sessions (logouts) of this user that ended this day.';
COMMENT ON COLUMN user_daily.rooms IS 'Distinct rooms of those sessions.';
COMMENT ON COLUMN user_daily.total_minutes IS 'Sum of the durations of the sessions whose login is known, in minutes (negative durations counted as they are, as in session_duration_daily).';
COMMENT ON COLUMN user_daily.total_time IS 'The same sum as an interval.';
COMMENT ON COLUMN user_daily.normal IS 'Sessions that ended with reason 0 (normal logout).';
COMMENT ON COLUMN user_daily.heartbeat_timeout IS 'Sessions that ended with reason 1 (business-layer heartbeat timeout).';
COMMENT ON COLUMN user_daily.connection_lost IS 'Sessions that ended with reason 2 (access-layer connection lost or heartbeat timeout).';
COMMENT ON COLUMN user_daily.kicked_out IS 'Sessions that ended with reason 3 (kicked out by a backend call).';
COMMENT ON COLUMN user_daily.token_expired IS 'Sessions that ended with reason 4 (token expired).';
COMMENT ON COLUMN user_daily.unknown IS 'Sessions whose reason was not sent or is not a known code.';
COMMENT ON COLUMN user_daily.first_login_at IS 'Earliest login of those sessions (login_time, or that of the paired room_login).';
COMMENT ON COLUMN user_daily.last_logout_at IS 'Latest logout_time of those sessions.';

CREATE FUNCTION user_daily_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone)
 RETURNS SETOF user_daily
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
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
COMMENT ON FUNCTION user_daily_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) IS 'The rows of user_daily for the sessions that ended in [p_from, p_to) (p_appid NULL: every app); days at the edges of the window are partial.';
REVOKE ALL ON FUNCTION user_daily_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) FROM PUBLIC;

CREATE VIEW platform_daily AS
SELECT
    g.day,
    g.appid,
    g.platform,
    g.sessions,
    g.sessions_with_duration,
    g.avg_s,
    zegolog_bucket_ms(zegolog_duration_bucket(g.p50_ms)) / 1000 AS p50_s,
    zegolog_bucket_ms(zegolog_duration_bucket(g.p90_ms)) / 1000 AS p90_s,
    zegolog_bucket_ms(zegolog_duration_bucket(g.p99_ms)) / 1000 AS p99_s,
    g.normal,
    g.heartbeat_timeout,
    g.connection_lost,
    g.kicked_out,
    g.token_expired,
    g.unknown,
    g.p50_ms::double precision / 1000 AS p50_exact_s,
    g.p90_ms::double precision / 1000 AS p90_exact_s,
    g.p99_ms::double precision / 1000 AS p99_exact_s
FROM (
    SELECT
        zegolog_local_day(s.logout_at) AS day,
        s.appid,
        s.platform,
        count(*) AS sessions,
        count(s.duration_ms) AS sessions_with_duration,
        (avg(s.duration_ms) / 1000)::double precision AS avg_s,
        zegolog_nearest_rank(0.5, array_agg(s.duration_ms)) AS p50_ms,
        zegolog_nearest_rank(0.9, array_agg(s.duration_ms)) AS p90_ms,
        zegolog_nearest_rank(0.99, array_agg(s.duration_ms)) AS p99_ms,
        count(*) FILTER (WHERE s.reason = 'normal') AS normal,
        count(*) FILTER (WHERE s.reason = 'heartbeat_timeout') AS heartbeat_timeout,
        count(*) FILTER (WHERE s.reason = 'connection_lost') AS connection_lost,
        count(*) FILTER (WHERE s.reason = 'kicked_out') AS kicked_out,
        count(*) FILTER (WHERE s.reason = 'token_expired') AS token_expired,
        count(*) FILTER (WHERE s.reason = 'unknown') AS unknown
    FROM session_durations AS s
    GROUP BY 1, 2, 3
) AS g;
COMMENT ON VIEW platform_daily IS 'Per day of logout (in the reporting time zone), app and platform of the session''s login: sessions, duration percentiles of those with a known duration (zegolog_nearest_rank: p50_s .. p99_s at the 1% bucket resolution of the other daily views, p50_exact_s .. p99_exact_s exact) and the count of each logout reason. Reads the raw rows: filter on appid, or query session_durations for a window (sql/14).';
COMMENT ON COLUMN platform_daily.platform IS 'Decoded term_type of the session''s room_login; unknown when not sent (before 2026) or when no login is known.';
COMMENT ON COLUMN platform_daily.sessions IS 'Logouts of this app and platform that day.';
COMMENT ON COLUMN platform_daily.sessions_with_duration IS 'Of those, the ones whose duration is known.';
COMMENT ON COLUMN platform_daily.p50_s IS 'Median duration (s): the exact nearest rank (p50_exact_s) as its 1% duration bucket reports it, as session_duration_daily does.';
COMMENT ON COLUMN platform_daily.p50_exact_s IS 'Median duration (s), exact: nearest rank over the durations in ms (percentile_disc).';
COMMENT ON COLUMN platform_daily.p90_exact_s IS '90th percentile duration (s), exact nearest rank.';
COMMENT ON COLUMN platform_daily.p99_exact_s IS '99th percentile duration (s), exact nearest rank.';

CREATE VIEW data_quality_daily AS
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
   FROM ( SELECT zegolog_local_day(l.received_at) AS day,
            l.appid,
            1 AS logout,
            (((l.logout_time < l.login_at) IS TRUE))::integer AS negative,
            (((l.logout_time = l.login_at) IS TRUE))::integer AS zero,
            (((l.logout_time - l.received_at) > '1 day'::interval))::integer AS future,
            (((l.received_at - l.logout_time) > '1 day'::interval))::integer AS past,
            ((NOT (EXISTS ( SELECT 1
                   FROM room_logins i
                  WHERE ((i.appid = l.appid) AND (i.room_id = l.room_id) AND (i.user_account = l.user_account) AND (i.session_id = l.session_id) AND (i.login_time >= (l.login_at - '00:01:00'::interval)) AND (i.login_time <= (l.login_at + '00:01:00'::interval)))))))::integer AS without_login,
            0 AS quarantined,
            0 AS signature_reuse,
            ((l.login_time IS NULL))::integer AS no_login_time,
            (((l.login_time IS NULL) AND (l.paired_login_time IS NULL)))::integer AS unpaired,
            (t.fault IS NOT NULL)::integer AS implausible,
            (COALESCE(t.fault IN ('logout_before_2010', 'login_before_2010'), false))::integer AS before_2010,
            (COALESCE(t.fault = 'session_too_long', false))::integer AS too_long
           FROM room_logouts l
           CROSS JOIN LATERAL (
               SELECT zegolog_time_fault(l.login_at, l.logout_time,
                                         l.received_at, s.max_session) AS fault
               FROM zegolog_settings s) t
        UNION ALL
         SELECT zegolog_local_day(e.received_at) AS zegolog_local_day,
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
           FROM callback_events e
          WHERE (e.refused_reason IS NOT NULL)) f
  GROUP BY f.day, f.appid;
COMMENT ON VIEW data_quality_daily IS 'Per day of receipt (received_at, in the reporting time zone) and app: logouts received, and how many had a negative or zero duration, a logout_time more than a day ahead of or behind their arrival, no login event, no login_time, no known login yet, plus the quarantined callbacks (any event) and signature reuses. Filter on appid; for a time window use data_quality_daily_between(appid, from, to).';
COMMENT ON COLUMN data_quality_daily.day IS 'Calendar day (in the reporting time zone) the rows were received (received_at), not the day of logout.';
COMMENT ON COLUMN data_quality_daily.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN data_quality_daily.logouts IS 'Logouts received that day.';
COMMENT ON COLUMN data_quality_daily.negative_durations IS 'Of those, logout_time before login_time (the sender''s clock went backwards).';
COMMENT ON COLUMN data_quality_daily.zero_durations IS 'Of those, logout_time equal to login_time.';
COMMENT ON COLUMN data_quality_daily.logout_far_future IS 'Of those, logout_time more than 1 day after received_at.';
COMMENT ON COLUMN data_quality_daily.logout_far_past IS 'Of those, logout_time more than 1 day before received_at (a late delivery, or a long spool replay).';
COMMENT ON COLUMN data_quality_daily.without_login IS 'Of those, logouts with no room_login of the same appid, room_id, user_account and session_id whose login_time is within a minute of the logout''s login_time (the login was lost, or room_login is not enabled in the console).';
COMMENT ON COLUMN data_quality_daily.quarantined IS 'Authentic callbacks of any event received that day that could not be normalised (callback_events.refused_reason set).';
COMMENT ON COLUMN data_quality_daily.signature_reuses IS 'Of the quarantined, callbacks whose (timestamp, nonce, signature) came first with another body (refused_reason starts with ''signature reuse:''): a forged body, or two callbacks sharing a nonce by chance.';
COMMENT ON COLUMN data_quality_daily.without_login_time IS 'Of the logouts, those that came without login_time (room_logout of the 2022-2023 docs); their login comes from room_login.';
COMMENT ON COLUMN data_quality_daily.unpaired IS 'Of those, the ones whose room_login is still unknown: in reason counts, in no duration statistic yet.';
COMMENT ON COLUMN data_quality_daily.implausible_times IS 'Of the logouts, those whose times are implausible (zegolog_time_fault: a time before 2010, logout_time more than a day after received_at, logout before login, a session longer than zegolog_settings.max_session): stored, counted in their reason, in no duration and no concurrency.';
COMMENT ON COLUMN data_quality_daily.before_2010 IS 'Of the implausible, those with a login_time or logout_time before 2010 (0, or seconds sent for milliseconds).';
COMMENT ON COLUMN data_quality_daily.sessions_too_long IS 'Of the implausible, sessions longer than zegolog_settings.max_session.';

CREATE FUNCTION data_quality_daily_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone)
 RETURNS SETOF data_quality_daily
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
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
COMMENT ON FUNCTION data_quality_daily_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) IS 'The rows of data_quality_daily for what was received in [p_from, p_to) (p_appid NULL: every app).';
REVOKE ALL ON FUNCTION data_quality_daily_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) FROM PUBLIC;

CREATE VIEW open_sessions AS
SELECT
    i.appid,
    i.room_id,
    i.room_name,
    i.room_seq,
    i.user_account,
    i.user_nickname,
    i.session_id,
    i.user_role,
    zegolog_role_name(i.user_role) AS role,
    i.relogin,
    i.login_time AS login_at,
    now() - i.login_time AS age,
    extract(EPOCH FROM now() - i.login_time)::double precision AS age_s,
    now() - i.login_time > interval '24 hours' AS stale,
    EXISTS (
        SELECT 1 FROM room_lifecycle_events AS e
        WHERE e.appid = i.appid AND e.room_id = i.room_id
          AND e.room_session_id = i.room_seq AND e.event = 'room_close'
    ) AS room_closed
FROM room_logins AS i
WHERE NOT EXISTS (
    SELECT 1 FROM room_logouts AS o
    WHERE o.appid = i.appid
      AND o.session_id = i.session_id
      AND o.room_id = i.room_id
      AND o.user_account = i.user_account
      AND o.logout_time >= i.login_time
);
COMMENT ON VIEW open_sessions IS 'Logins with no logout yet (no logout of the same appid, room_id, user_account, session_id at or after the login), with their age. For who is probably online now: WHERE NOT stale AND NOT room_closed, and filter login_at >= now() - interval ''24 hours'' to use the indexes.';
COMMENT ON COLUMN open_sessions.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN open_sessions.room_id IS 'Room id, as sent.';
COMMENT ON COLUMN open_sessions.room_name IS 'Room name sent with the login; NULL when not sent.';
COMMENT ON COLUMN open_sessions.room_seq IS 'Room lifecycle id (u64); NULL when not sent.';
COMMENT ON COLUMN open_sessions.user_account IS 'User id used at login.';
COMMENT ON COLUMN open_sessions.user_nickname IS 'User name used at login; NULL when not sent.';
COMMENT ON COLUMN open_sessions.session_id IS 'User session id (u64).';
COMMENT ON COLUMN open_sessions.user_role IS 'Raw role code as sent: 1 host, 2 audience, 4 admin; NULL when not sent.';
COMMENT ON COLUMN open_sessions.role IS 'Decoded user_role: host, audience, admin or unknown.';
COMMENT ON COLUMN open_sessions.relogin IS 'Re-login flag as sent (1: the user logged in again, e.g. after a reconnect); NULL when not sent.';
COMMENT ON COLUMN open_sessions.login_at IS 'When the user logged in (login_time).';
COMMENT ON COLUMN open_sessions.age IS 'now() - login_at: how long the session has been open (negative if login_at is in the future).';
COMMENT ON COLUMN open_sessions.age_s IS 'age in seconds.';
COMMENT ON COLUMN open_sessions.stale IS 'True when the login is more than 24 hours old: its logout was most likely lost, the user is most likely gone.';
COMMENT ON COLUMN open_sessions.room_closed IS 'True when a room_close of this room lifecycle (room_seq) was received: the user is gone, the logout was lost or is late.';

-- On Citus, schema/citus.sql writes it without LATERAL.
CREATE VIEW room_lifecycle AS
SELECT k.appid, k.room_id, k.room_seq,
       e.created_at, e.creator, e.closed_at, e.close_reason AS close_reason_code,
       CASE WHEN e.closed_at IS NOT NULL THEN zegolog_close_reason_name(e.close_reason) END AS close_reason,
       e.closed_at - e.created_at AS lifetime,
       s.sessions, s.users, s.user_minutes,
       zegolog_lifecycle_peak(s.ins, s.outs) AS peak_users,
       s.first_login_at, s.last_logout_at
FROM (
    SELECT e.appid, e.room_id, e.room_session_id AS room_seq FROM room_lifecycle_events AS e
    UNION
    SELECT l.appid, l.room_id, l.room_seq FROM room_logouts AS l WHERE l.room_seq IS NOT NULL
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
    -- This lifecycle's sessions: +1 at the login minute, -1 the minute after the logout
    -- minute (zegolog_logout_concurrency's rule); negative durations left out.
    SELECT count(*) AS sessions,
           count(DISTINCT r.user_account) AS users,
           coalesce(sum(greatest(extract(EPOCH FROM r.logout_time - r.login_at), 0)) / 60, 0)::double precision AS user_minutes,
           min(r.login_at) AS first_login_at,
           max(r.logout_time) AS last_logout_at,
           array_agg(date_trunc('minute', r.login_at, 'UTC')) FILTER (WHERE r.logout_time >= r.login_at) AS ins,
           array_agg(date_trunc('minute', r.logout_time, 'UTC') + interval '1 minute') FILTER (WHERE r.logout_time >= r.login_at) AS outs
    FROM room_logouts AS r
    WHERE r.appid = k.appid AND r.room_id = k.room_id AND r.room_seq = k.room_seq
) AS s;
COMMENT ON VIEW room_lifecycle IS 'One row per room lifecycle (room_seq = room_session_id) seen in a room_create, a room_close or a logout: created / closed times, close reason, and its sessions, users, user-minutes and peak concurrency. Filter on appid, room_id or room_seq; for a time window use room_lifecycle_between(appid, from, to).';
COMMENT ON COLUMN room_lifecycle.appid IS 'ZEGOCLOUD application id.';
COMMENT ON COLUMN room_lifecycle.room_id IS 'Room id, as sent.';
COMMENT ON COLUMN room_lifecycle.room_seq IS 'Room lifecycle id (u64): room_session_id of room_create / room_close, room_seq of the logins and logouts. Logouts without room_seq are in no lifecycle.';
COMMENT ON COLUMN room_lifecycle.created_at IS 'room_create_time; NULL when no room_create was received.';
COMMENT ON COLUMN room_lifecycle.creator IS 'User id that created the room (id_name of room_create); NULL when not sent.';
COMMENT ON COLUMN room_lifecycle.closed_at IS 'room_close_time; NULL while open or when no room_close was received.';
COMMENT ON COLUMN room_lifecycle.close_reason_code IS 'Raw close_reason of room_close: 0 normal, 1 last user''s heartbeat timed out, 2 last user went offline, 3 last user was kicked out.';
COMMENT ON COLUMN room_lifecycle.close_reason IS 'Decoded close_reason_code: normal, last_user_heartbeat_timeout, last_user_offline, last_user_kicked_out, unknown; NULL when no room_close was received.';
COMMENT ON COLUMN room_lifecycle.lifetime IS 'closed_at - created_at; NULL unless both were received.';
COMMENT ON COLUMN room_lifecycle.sessions IS 'Logouts with this room_seq (0 if none yet).';
COMMENT ON COLUMN room_lifecycle.users IS 'Distinct user_account among those logouts.';
COMMENT ON COLUMN room_lifecycle.user_minutes IS 'Sum of the session durations in minutes; negative durations (bad sender clock) count as 0.';
COMMENT ON COLUMN room_lifecycle.peak_users IS 'Most sessions online in any UTC minute, over this lifecycle''s sessions (a session counts from its login minute to its logout minute included; negative durations left out).';
COMMENT ON COLUMN room_lifecycle.first_login_at IS 'Earliest login_time among those logouts; NULL if none.';
COMMENT ON COLUMN room_lifecycle.last_logout_at IS 'Latest logout_time among those logouts; NULL if none.';

-- The lifecycles of the window (k), each joined with its aggregates over all its rows; each key
-- list is the same subquery, inlined, so that Citus pushes it down to the shards.
CREATE FUNCTION room_lifecycle_between(p_appid bigint, p_from timestamptz, p_to timestamptz) RETURNS SETOF room_lifecycle
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
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
COMMENT ON FUNCTION room_lifecycle_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) IS 'The rows of room_lifecycle for the lifecycles created, closed or with a logout in [p_from, p_to) (p_appid NULL: every app); their statistics cover all their sessions.';
REVOKE ALL ON FUNCTION room_lifecycle_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone) FROM PUBLIC;

CREATE FUNCTION reason_usual_shares(p_appid bigint, p_before timestamp with time zone, p_days integer DEFAULT 7) RETURNS TABLE(reason text, logouts bigint, usual_share double precision)
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
COMMENT ON FUNCTION reason_usual_shares(p_appid bigint, p_before timestamp with time zone, p_days integer) IS 'Each reason''s logouts and share of app p_appid''s logouts over the p_days (default 7) whole days (of the reporting time zone) before the day of p_before: the usual share the incident view measures lift against.';
REVOKE ALL ON FUNCTION reason_usual_shares(p_appid bigint, p_before timestamp with time zone, p_days integer) FROM PUBLIC;

CREATE FUNCTION incident_reasons(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval DEFAULT '00:01:00'::interval)
 RETURNS TABLE(bucket_start timestamp with time zone, reason text, logouts bigint, bucket_logouts bigint, share double precision, usual_share double precision, lift double precision)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
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
COMMENT ON FUNCTION incident_reasons(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval) IS 'Logouts of app p_appid in [p_from, p_to) per bucket of p_bucket (aligned on the reporting time zone''s midnight of p_from''s day) and decoded reason: logouts, all logouts of the bucket, share of the bucket, usual share (reason_usual_shares before p_from) and lift = share / usual share (NULL without a usual share). Buckets and reasons without logouts have no row.';
REVOKE ALL ON FUNCTION incident_reasons(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval) FROM PUBLIC;

CREATE FUNCTION incident_users_online(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval DEFAULT '00:01:00'::interval) RETURNS TABLE(bucket_start timestamp with time zone, users_online bigint, fewest_online bigint)
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
COMMENT ON FUNCTION incident_users_online(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval) IS 'Per bucket of p_bucket in [p_from, p_to) (aligned as incident_reasons): the most (users_online) and the fewest sessions online in app p_appid in any minute of the bucket, as users_online(appid, from, to) counts them.';
REVOKE ALL ON FUNCTION incident_users_online(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_bucket interval) FROM PUBLIC;

CREATE FUNCTION abnormal_rooms_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_limit integer DEFAULT 10)
 RETURNS TABLE(room_id text, abnormal bigint, heartbeat_timeout bigint, connection_lost bigint, kicked_out bigint, token_expired bigint, users bigint, last_abnormal_at timestamp with time zone)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
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
COMMENT ON FUNCTION abnormal_rooms_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_limit integer) IS 'The p_limit rooms of app p_appid with the most abnormal logouts (reason 1 heartbeat_timeout, 2 connection_lost, 3 kicked_out, 4 token_expired) in [p_from, p_to), with the count of each, the users concerned and the last one.';
REVOKE ALL ON FUNCTION abnormal_rooms_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_limit integer) FROM PUBLIC;

CREATE FUNCTION abnormal_users_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_limit integer DEFAULT 10)
 RETURNS TABLE(user_account text, abnormal bigint, heartbeat_timeout bigint, connection_lost bigint, kicked_out bigint, token_expired bigint, rooms bigint, last_abnormal_at timestamp with time zone)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
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
COMMENT ON FUNCTION abnormal_users_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_limit integer) IS 'The p_limit users of app p_appid with the most abnormal logouts (reasons 1-4) in [p_from, p_to), with the count of each, the rooms concerned and the last one.';
REVOKE ALL ON FUNCTION abnormal_users_between(p_appid bigint, p_from timestamp with time zone, p_to timestamp with time zone, p_limit integer) FROM PUBLIC;
