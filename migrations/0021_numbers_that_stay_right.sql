-- Numbers that stay right (issue 19): concurrency that survives retention, plausible times only
-- in the rollups, retention of every table that grows with traffic, partition DDL that gives up
-- rather than stall writers.
--
-- 1. Concurrency from a stored start, not from all history. Every day row of
--    app_concurrency_day and room_concurrency_day now holds `start`, the sessions online at the
--    start of its day. Until now the sessions online at a day's start were the sum of `net` over
--    every earlier day, so retention, which deletes old day rows, made every later count wrong
--    (issue 19: -50 users online). Now:
--    - "online at the start of day D" is the latest row at or before D (its `start` on D, else
--      its `start + net`): zegolog_app_online_at / zegolog_room_online_at, the one rule every
--      reader calls;
--    - compaction recomputes only the days its new deltas touch: the days holding a delta, and
--      the days between two of them while the deltas before are not back to zero (a session's
--      days). A day's new start is its old start plus the deltas moved before it
--      (zegolog_days.moved_before). Its work grows with the callbacks, never with the span of
--      their timestamps;
--    - retention first writes a row at the cutoff day for each app and room with sessions
--      online across it (zegolog_retain_rollups), then deletes what is older.
-- 2. Plausible times only (zegolog_time_fault, zegolog_session_start). Every authentic callback
--    is still stored as sent, but a session whose times are implausible (a time before 2010, a
--    logout more than a day after its receipt, a logout before its login, a session longer than
--    zegolog_settings.max_session, 7 days by default) has no start for the rollups: no duration
--    and no concurrency, like a logout whose login is unknown; its reason still counts on its
--    logout's day. data_quality_daily counts it with its reason.
-- 3. Retention of every table (zegolog_retain_rollups, zegolog_prune_batch): the raw archive,
--    logins, room lifecycle events, logouts of the default partition and of a partly expired
--    month, the minute rollups. In batches of bounded size, each its own transaction (the Rust
--    `retain` loops), or whole partitions.
-- 4. Partition DDL with lock_timeout (1 s), like the ledger's: creating or dropping a partition
--    of room_logouts gives up rather than queue every writer behind one long analyst query; the
--    caller retries.

-- ---------------------------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------------------------

ALTER TABLE zegolog_settings ADD COLUMN max_session interval NOT NULL DEFAULT interval '7 days';
-- EXECUTE'd (here and for the indexes below): on a Citus cluster migrated before, Citus sends a
-- constraint or an index to the workers as the text of the statement that made it, and the
-- migration's whole text, many statements, is refused there.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE zegolog_settings ADD CONSTRAINT zegolog_settings_max_session_check CHECK (max_session > interval ''0'')';
END
$$;
COMMENT ON COLUMN zegolog_settings.max_session IS
    'The longest plausible session: a longer one is stored but has no duration and no concurrency in the rollups (zegolog_time_fault). A change applies to callbacks stored afterwards; `zegolog time-zone set` with the current zone recomputes the stored duration rollups under it (not the concurrency already counted).';

-- ---------------------------------------------------------------------------------------------
-- Plausible times
-- ---------------------------------------------------------------------------------------------

-- Immutable operators only (timestamptz - timestamptz, not timestamptz + interval, which
-- depends on the session's TimeZone): PostgreSQL then inlines the function into the write
-- statement; a function it cannot inline runs as a query per row (6x the write on Citus).
CREATE FUNCTION zegolog_time_fault(login_at timestamptz, logout_at timestamptz,
                                   received_at timestamptz, max_session interval)
RETURNS text
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
COMMENT ON FUNCTION zegolog_time_fault(timestamptz, timestamptz, timestamptz, interval) IS
    'Why a session''s times are implausible, or NULL when they are plausible (or its login is unknown): logout_before_2010, logout_after_receipt (more than a day after received_at), login_before_2010, logout_before_login, session_too_long (longer than max_session). The one definition of a plausible session.';

CREATE FUNCTION zegolog_session_start(login_at timestamptz, logout_at timestamptz,
                                      received_at timestamptz, max_session interval)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN zegolog_time_fault(login_at, logout_at, received_at, max_session) IS NULL
                THEN login_at END;
$$;
COMMENT ON FUNCTION zegolog_session_start(timestamptz, timestamptz, timestamptz, interval) IS
    'The login a session''s duration and concurrency are computed from: login_at when the session is plausible (zegolog_time_fault), NULL otherwise (no duration, no concurrency, as for a logout whose login is unknown).';

-- The logouts' contributions with the rule: the seed's bulk path, the pairing sweep and the
-- time-zone rebuild. The write statement (src/store/write_batch.sql) calls zegolog_session_start
-- itself, with the settings read once per statement.
-- PL/pgSQL, with the settings read once, in the form Citus can plan (0017's step 6 then leaves
-- it as it is).
CREATE OR REPLACE FUNCTION zegolog_add_to_rollups(from_id bigint, to_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    zone text := zegolog_time_zone();
    longest interval := (SELECT max_session FROM zegolog_settings);
BEGIN
    INSERT INTO logout_rollup_pending (day, appid, reason, bucket, sessions, total_ms, max_ms)
    SELECT r.day, r.appid, r.reason, r.bucket, sum(r.sessions), sum(r.total_ms), max(r.max_ms)
    FROM room_logouts AS l,
         zegolog_logout_rollup_in(l.appid, l.reason,
                                  zegolog_session_start(coalesce(l.login_time, l.paired_login_time),
                                                        l.logout_time, l.received_at, longest),
                                  l.logout_time, zone) AS r
    WHERE l.id BETWEEN from_id AND to_id
    GROUP BY 1, 2, 3, 4;
    INSERT INTO concurrency_pending (appid, room_id, minute, delta)
    SELECT c.appid, c.room_id, c.minute, sum(c.delta)
    FROM room_logouts AS l,
         zegolog_logout_concurrency(l.appid, l.room_id,
                                    zegolog_session_start(coalesce(l.login_time, l.paired_login_time),
                                                          l.logout_time, l.received_at, longest),
                                    l.logout_time) AS c
    WHERE l.id BETWEEN from_id AND to_id
    GROUP BY 1, 2, 3;
END
$$;

CREATE OR REPLACE FUNCTION zegolog_pair_recent_logouts(p_since interval DEFAULT '00:10:00'::interval) RETURNS bigint
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
        RETURNING o.appid, o.room_id, o.reason, o.logout_time, o.received_at, k.old_login, k.new_login
    ), changes AS (
        SELECT p.appid, p.room_id, p.reason, p.logout_time,
               zegolog_session_start(p.new_login, p.logout_time, p.received_at, s.max_session) AS login_at,
               1 AS sign
        FROM paired AS p, zegolog_settings AS s
        UNION ALL
        SELECT p.appid, p.room_id, p.reason, p.logout_time,
               zegolog_session_start(p.old_login, p.logout_time, p.received_at, s.max_session), -1
        FROM paired AS p, zegolog_settings AS s
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

-- The *_daily_in functions' buckets, cut in any zone from the raw rows, with the same rule.
CREATE OR REPLACE FUNCTION zegolog_buckets_in(p_zone text, p_from date, p_to date, p_appid bigint)
RETURNS TABLE(day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint)
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
                   (extract(EPOCH FROM r.logout_time
                        - zegolog_session_start(coalesce(r.login_time, r.paired_login_time),
                                                r.logout_time, r.received_at, s.max_session)) * 1000)::bigint AS ms
            FROM zegolog_zone_window(p_zone, p_from, p_to) AS w, zegolog_settings AS s, room_logouts AS r
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

-- data_quality_daily: the implausible sessions, by reason (columns added at the end).
CREATE OR REPLACE VIEW data_quality_daily AS
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
            (((l.logout_time < COALESCE(l.login_time, l.paired_login_time)) IS TRUE))::integer AS negative,
            (((l.logout_time = COALESCE(l.login_time, l.paired_login_time)) IS TRUE))::integer AS zero,
            (((l.logout_time - l.received_at) > '1 day'::interval))::integer AS future,
            (((l.received_at - l.logout_time) > '1 day'::interval))::integer AS past,
            ((NOT (EXISTS ( SELECT 1
                   FROM room_logins i
                  WHERE ((i.appid = l.appid) AND (i.room_id = l.room_id) AND (i.user_account = l.user_account) AND (i.session_id = l.session_id) AND (i.login_time >= (COALESCE(l.login_time, l.paired_login_time) - '00:01:00'::interval)) AND (i.login_time <= (COALESCE(l.login_time, l.paired_login_time) + '00:01:00'::interval)))))))::integer AS without_login,
            0 AS quarantined,
            0 AS signature_reuse,
            ((l.login_time IS NULL))::integer AS no_login_time,
            (((l.login_time IS NULL) AND (l.paired_login_time IS NULL)))::integer AS unpaired,
            (t.fault IS NOT NULL)::integer AS implausible,
            (COALESCE(t.fault IN ('logout_before_2010', 'login_before_2010'), false))::integer AS before_2010,
            (COALESCE(t.fault = 'session_too_long', false))::integer AS too_long
           FROM room_logouts l
           CROSS JOIN LATERAL (
               SELECT zegolog_time_fault(COALESCE(l.login_time, l.paired_login_time), l.logout_time,
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
COMMENT ON COLUMN data_quality_daily.implausible_times IS
    'Of the logouts, those whose times are implausible (zegolog_time_fault: a time before 2010, logout_time more than a day after received_at, logout before login, a session longer than zegolog_settings.max_session): stored, counted in their reason, in no duration and no concurrency.';
COMMENT ON COLUMN data_quality_daily.before_2010 IS
    'Of the implausible, those with a login_time or logout_time before 2010 (0, or seconds sent for milliseconds).';
COMMENT ON COLUMN data_quality_daily.sessions_too_long IS
    'Of the implausible, sessions longer than zegolog_settings.max_session.';

CREATE OR REPLACE FUNCTION data_quality_daily_between(p_appid bigint, p_from timestamptz, p_to timestamptz)
RETURNS SETOF data_quality_daily
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'public', 'pg_temp' AS $$
DECLARE
    zone text := zegolog_time_zone();
    longest interval := (SELECT max_session FROM zegolog_settings);
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

-- ---------------------------------------------------------------------------------------------
-- Concurrency from a stored start
-- ---------------------------------------------------------------------------------------------

ALTER TABLE app_concurrency_day ADD COLUMN start bigint NOT NULL DEFAULT 0;
ALTER TABLE room_concurrency_day ADD COLUMN start bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN app_concurrency_day.start IS
    'Sessions online at the start of the day (in the reporting zone): what the day''s minutes add to. Online at the start of a day without a row: the latest earlier row''s start + net (zegolog_app_online_at).';
COMMENT ON COLUMN room_concurrency_day.start IS
    'Sessions online in the room at the start of the day, as app_concurrency_day.start (zegolog_room_online_at).';
UPDATE app_concurrency_day AS d SET start = s.start
FROM (SELECT appid, day, coalesce(sum(net) OVER (PARTITION BY appid ORDER BY day
                                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS start
      FROM app_concurrency_day) AS s
WHERE d.appid = s.appid AND d.day = s.day AND s.start <> 0;
UPDATE room_concurrency_day AS d SET start = s.start
FROM (SELECT appid, room_id, day,
             coalesce(sum(net) OVER (PARTITION BY appid, room_id ORDER BY day
                                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS start
      FROM room_concurrency_day) AS s
WHERE d.appid = s.appid AND d.room_id = s.room_id AND d.day = s.day AND s.start <> 0;

CREATE FUNCTION zegolog_app_online_at(p_appid bigint, p_day date) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((
        SELECT CASE WHEN d.day = p_day THEN d.start ELSE d.start + d.net END
        FROM app_concurrency_day AS d
        WHERE d.appid = p_appid AND d.day <= p_day
        ORDER BY d.day DESC
        LIMIT 1), 0);
$$;
COMMENT ON FUNCTION zegolog_app_online_at(bigint, date) IS
    'Sessions online in app p_appid at the start of day p_day (reporting zone), compacted: the latest day row at or before it. The one rule for a starting count.';

CREATE FUNCTION zegolog_room_online_at(p_appid bigint, p_room_id text, p_day date) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((
        SELECT CASE WHEN d.day = p_day THEN d.start ELSE d.start + d.net END
        FROM room_concurrency_day AS d
        WHERE d.appid = p_appid AND d.room_id = p_room_id AND d.day <= p_day
        ORDER BY d.day DESC
        LIMIT 1), 0);
$$;
COMMENT ON FUNCTION zegolog_room_online_at(bigint, text, date) IS
    'Sessions online in one room at the start of day p_day, as zegolog_app_online_at.';

CREATE OR REPLACE VIEW peak_concurrency_daily AS
 SELECT day, appid, peak AS peak_users
   FROM app_concurrency_day
  WHERE peak <> 0 OR net <> 0;

-- Input: the temp table zegolog_days (appid, room_id, day, moved_before): the room-days to
-- recompute, each with the change its new deltas make to the sessions online at its start.
CREATE OR REPLACE FUNCTION zegolog_refresh_concurrency_days(zone text) RETURNS void
LANGUAGE plpgsql
SET jit TO 'off'
AS $$
BEGIN
    -- Per app: the days any of its rooms touched; a day's change at its start is its rooms'.
    WITH days AS (
        SELECT appid, day, sum(moved_before) AS moved_before
        FROM zegolog_days GROUP BY appid, day
    ), bases AS (
        -- One index range scan per day (a join let the planner, which cannot see how few
        -- days there are, sort the whole table instead).
        SELECT d.appid, d.day, coalesce(n.net, 0) AS net,
               zegolog_app_online_at(d.appid, d.day) + d.moved_before AS base
        FROM days AS d
        CROSS JOIN LATERAL (
            SELECT sum(m.delta) AS net
            FROM app_concurrency_minute AS m
            WHERE m.appid = d.appid
              AND m.minute >= d.day::timestamp AT TIME ZONE zone
              AND m.minute < (d.day + 1)::timestamp AT TIME ZONE zone
        ) AS n
    )
    INSERT INTO app_concurrency_day AS r (appid, day, start, net, peak)
    SELECT b.appid, b.day, b.base, b.net, coalesce(greatest(CASE WHEN bool_or(w.at_midnight) IS NOT TRUE THEN b.base END, max(b.base + w.running)), 0)
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
    ORDER BY 1, 2
    ON CONFLICT (appid, day) DO UPDATE SET start = excluded.start, net = excluded.net, peak = excluded.peak;

    -- Per room: the same, keyed on (appid, room_id).
    WITH bases AS (
        SELECT d.appid, d.room_id, d.day, d.moved_before,
               zegolog_room_online_at(d.appid, d.room_id, d.day) + d.moved_before AS base,
               coalesce((SELECT sum(m.delta) FROM room_concurrency_minute AS m
                         WHERE m.appid = d.appid AND m.room_id = d.room_id
                           AND m.minute >= d.day::timestamp AT TIME ZONE zone
                           AND m.minute < (d.day + 1)::timestamp AT TIME ZONE zone), 0) AS net
        FROM zegolog_days AS d
    )
    INSERT INTO room_concurrency_day AS r (appid, room_id, day, start, net, peak)
    SELECT b.appid, b.room_id, b.day, b.base, b.net, coalesce(greatest(CASE WHEN bool_or(w.at_midnight) IS NOT TRUE THEN b.base END, max(b.base + w.running)), 0)
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
    ON CONFLICT (appid, room_id, day) DO UPDATE SET start = excluded.start, net = excluded.net, peak = excluded.peak;
END
$$;

CREATE OR REPLACE FUNCTION zegolog_compact_rollups() RETURNS void
LANGUAGE plpgsql
SET jit TO 'off'
AS $$
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
    FROM runs AS r,
         generate_series((r.day + 1)::timestamp, (r.next_day - 1)::timestamp, interval '1 day') AS g
    WHERE r.after <> 0 AND r.next_day > r.day + 1;

    PERFORM zegolog_refresh_concurrency_days(zone);

    DROP TABLE zegolog_moved;
    DROP TABLE zegolog_days;
END
$$;

-- The time-zone change: the day rows are cut again from the minutes. What retention left as
-- the sessions online at the first kept day (the earliest row's start, per room) is carried to
-- the first day of the new cut.
CREATE OR REPLACE FUNCTION zegolog_begin_time_zone_change(p_zone text) RETURNS TABLE(first_day date, last_day date)
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

CREATE OR REPLACE FUNCTION zegolog_rebuild_rollups_day(p_day date) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    zone text := zegolog_time_zone();
    longest interval := (SELECT max_session FROM zegolog_settings);
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
                 array_agg(zegolog_session_start(coalesce(login_time, paired_login_time), logout_time,
                                                 received_at, longest)) AS login_time,
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

    -- Each room's first day starts from what retention carried (none: 0); the later days from
    -- the day rows rebuilt before them (the days go in order).
    DROP TABLE IF EXISTS zegolog_days;
    CREATE TEMP TABLE zegolog_days ON COMMIT DROP AS
    SELECT appid, room_id, p_day AS day,
           CASE WHEN p_day = first_day THEN carried ELSE 0 END AS moved_before
    FROM zegolog_spans
    WHERE p_day BETWEEN first_day AND last_day;
    PERFORM zegolog_refresh_concurrency_days(zone);
    DROP TABLE zegolog_days;
    RETURN logouts;
END
$$;

CREATE OR REPLACE FUNCTION users_online(p_appid bigint, p_from timestamptz, p_to timestamptz)
RETURNS TABLE(minute timestamptz, users_online bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'public', 'pg_temp' AS $$
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

CREATE OR REPLACE FUNCTION room_users_online(p_appid bigint, p_room_id text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE(minute timestamptz, users_online bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'public', 'pg_temp' AS $$
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
$$;

CREATE OR REPLACE FUNCTION zegolog_peaks_in(p_zone text, p_from date, p_to date, p_rooms boolean, p_appid bigint)
RETURNS TABLE(day date, appid bigint, room_id text, peak_users bigint, net bigint)
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

-- On Citus (0020): the per-room refresh on the shards, through zegolog_room_days, with the
-- start of each room-day from its latest earlier row (a join grouped per room-day: no
-- correlated subquery).
CREATE OR REPLACE FUNCTION zegolog_citus_room_rollups() RETURNS SETOF text
LANGUAGE plpgsql AS $_$
DECLARE
    marker CONSTANT text := '-- Per room: the same, keyed on (appid, room_id).';
    made CONSTANT text := '-- zegolog_citus_room_rollups: per room, on the shards (migrations 0020, 0021)';
    def text;
    at integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    ALTER TABLE zegolog_room_days ADD COLUMN IF NOT EXISTS moved_before bigint NOT NULL DEFAULT 0;
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
    INSERT INTO zegolog_room_days (appid, room_id, day, moved_before)
    SELECT appid, room_id, day, moved_before FROM zegolog_days;
    -- Every join, window and grouping on room_id: one statement each shard runs for its rooms.
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
             AND m.minute >= d.day::timestamp AT TIME ZONE zone
             AND m.minute < (d.day + 1)::timestamp AT TIME ZONE zone
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
               m.minute = d.day::timestamp AT TIME ZONE zone AS at_midnight
        FROM zegolog_room_days AS d
        JOIN room_concurrency_minute AS m
          ON m.room_id = d.room_id AND m.appid = d.appid
         AND m.minute >= d.day::timestamp AT TIME ZONE zone
         AND m.minute < (d.day + 1)::timestamp AT TIME ZONE zone
    ) AS w ON w.room_id = b.room_id AND w.appid = b.appid AND w.day = b.day
    GROUP BY b.room_id, b.appid, b.day, b.net, b.base
    ON CONFLICT (appid, room_id, day) DO UPDATE SET start = excluded.start, net = excluded.net, peak = excluded.peak;
    DELETE FROM zegolog_room_days;
END
$function$
$f$;
    RETURN NEXT 'zegolog_refresh_concurrency_days(text)';
END
$_$;

-- ---------------------------------------------------------------------------------------------
-- Retention
-- ---------------------------------------------------------------------------------------------

-- What the batches look their old rows up by: the archive and the logins arrive in time order,
-- so a BRIN index finds their old block ranges at almost no write cost.
DO $$
BEGIN
    EXECUTE 'CREATE INDEX callback_events_received_brin ON callback_events USING brin (received_at)';
    EXECUTE 'CREATE INDEX room_logins_login_time_brin ON room_logins USING brin (login_time)';
    EXECUTE 'CREATE INDEX room_concurrency_minute_minute_brin ON room_concurrency_minute USING brin (minute)';
END
$$;

CREATE FUNCTION zegolog_retain_rollups(cutoff timestamptz) RETURNS TABLE(tbl text, deleted bigint)
LANGUAGE plpgsql AS $$
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
COMMENT ON FUNCTION zegolog_retain_rollups(timestamptz) IS
    'Retention''s first step, in one transaction under compaction''s lock: folds the pending rollups, writes for each app and room the sessions online at the start of the cutoff''s day (in the reporting zone) into that day''s row, then deletes the per-day rollups of earlier days. Every count from the cutoff day on stays what it was. The big tables go after, in batches (zegolog_prune_batch).';

CREATE FUNCTION zegolog_prune_batch(cutoff timestamptz, raw_cutoff timestamptz, batch integer)
RETURNS TABLE(tbl text, deleted bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    zone text := zegolog_time_zone();
    cutoff_day date := zegolog_local_day(cutoff, zone);
    cutoff_start timestamptz := cutoff_day::timestamp AT TIME ZONE zone;
    apps bigint[] := zegolog_appids();
    n bigint;
BEGIN
    -- At most `batch` rows of each table, by its key: a short transaction a writer never waits
    -- long behind. The caller repeats until every count is 0.
    DELETE FROM callback_events AS e
    WHERE e.digest IN (SELECT x.digest FROM callback_events AS x WHERE x.received_at < raw_cutoff LIMIT batch);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN QUERY SELECT 'callback_events', n;

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
COMMENT ON FUNCTION zegolog_prune_batch(timestamptz, timestamptz, integer) IS
    'Retention''s second step: deletes at most `batch` rows older than the cutoff from each table that grows with traffic and is not dropped by whole partitions (the raw archive older than raw_cutoff, logins, logouts of the default or a partly expired month, room lifecycle events, minute rollups, per-room days), and returns how many per table; repeat until all are 0. Run after zegolog_retain_rollups.';

-- Partition DDL gives up after a second rather than queue every writer behind a long query
-- (the lock a DDL waits for blocks every later lock request); callers retry.
CREATE OR REPLACE FUNCTION zegolog_ensure_partition(p_month date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    month_start date := date_trunc('month', p_month)::date;
    lo timestamptz := month_start::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    name text := format('room_logouts_%s', to_char(month_start, 'YYYY_MM'));
    moved bigint;
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    -- Serialise partition creation between concurrent callers.
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_ensure_partition'));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM set_config('lock_timeout', '1s', true);
    -- The parent first, as writers lock it: no row of this month can reach the default
    -- partition meanwhile.
    LOCK TABLE room_logouts IN SHARE ROW EXCLUSIVE MODE;
    CREATE TEMP TABLE zegolog_moving ON COMMIT DROP AS
        SELECT * FROM room_logouts_default WHERE false;
    WITH gone AS (
        DELETE FROM room_logouts_default
        WHERE logout_time >= lo AND logout_time < hi
        RETURNING *
    )
    INSERT INTO zegolog_moving SELECT * FROM gone;
    GET DIAGNOSTICS moved = ROW_COUNT;
    EXECUTE format('CREATE TABLE %I PARTITION OF room_logouts FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    INSERT INTO room_logouts SELECT * FROM zegolog_moving;
    DROP TABLE zegolog_moving;
    IF moved > 0 THEN
        RAISE NOTICE 'moved % rows from room_logouts_default into %', moved, name;
    END IF;
    RETURN name;
END
$$;

CREATE OR REPLACE FUNCTION zegolog_drop_partitions_before(cutoff timestamptz) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    part record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_ensure_partition'));
    PERFORM set_config('lock_timeout', '1s', true);
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
            -- The parent before the partition, in the order writers lock them: no deadlock.
            LOCK TABLE room_logouts IN ACCESS EXCLUSIVE MODE;
            EXECUTE format('DROP TABLE IF EXISTS %I', part.relname);
            RETURN NEXT part.relname;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION zegolog_drop_partitions_before(timestamptz) IS
    'Drops the monthly partitions of room_logouts that end at or before cutoff, giving up after 1 s of waiting for the lock (SQLSTATE 55P03; the caller retries); returns the partitions dropped. The rollups go with zegolog_retain_rollups, the rows of a partly expired month with zegolog_prune_batch.';

-- session_durations: an implausible session has no duration here either, and says why.
CREATE OR REPLACE VIEW session_durations AS
 SELECT l.appid,
    l.room_id,
    l.room_seq,
    l.user_account,
    l.user_nickname,
    l.session_id,
    l.user_role,
    zegolog_role_name(l.user_role) AS role,
    COALESCE(l.login_time, l.paired_login_time) AS login_at,
    l.logout_time AS logout_at,
    ((EXTRACT(epoch FROM (l.logout_time - zegolog_session_start(COALESCE(l.login_time, l.paired_login_time), l.logout_time, l.received_at, (SELECT zegolog_settings.max_session FROM zegolog_settings)))) * (1000)::numeric))::bigint AS duration_ms,
    (l.logout_time - zegolog_session_start(COALESCE(l.login_time, l.paired_login_time), l.logout_time, l.received_at, (SELECT zegolog_settings.max_session FROM zegolog_settings))) AS duration,
    l.reason AS reason_code,
    zegolog_reason_name(l.reason) AS reason,
        CASE
            WHEN (l.login_time IS NOT NULL) THEN 'logout'::text
            WHEN (l.paired_login_time IS NOT NULL) THEN 'login'::text
            ELSE NULL::text
        END AS login_source,
    ( SELECT i.term_type
           FROM room_logins i
          WHERE ((i.appid = l.appid) AND (i.room_id = l.room_id) AND (i.user_account = l.user_account) AND (i.session_id = l.session_id) AND (i.login_time <= l.logout_time))
          ORDER BY ((i.login_time = COALESCE(l.login_time, l.paired_login_time)) IS TRUE) DESC, i.login_time DESC
         LIMIT 1) AS platform_code,
    zegolog_platform_name(( SELECT i.term_type
           FROM room_logins i
          WHERE ((i.appid = l.appid) AND (i.room_id = l.room_id) AND (i.user_account = l.user_account) AND (i.session_id = l.session_id) AND (i.login_time <= l.logout_time))
          ORDER BY ((i.login_time = COALESCE(l.login_time, l.paired_login_time)) IS TRUE) DESC, i.login_time DESC
         LIMIT 1)) AS platform,
    zegolog_time_fault(COALESCE(l.login_time, l.paired_login_time), l.logout_time, l.received_at, (SELECT zegolog_settings.max_session FROM zegolog_settings)) AS time_fault
   FROM room_logouts l;
COMMENT ON COLUMN session_durations.duration_ms IS
    'Session length in milliseconds, exact (logout_at - login_at); NULL while login_at is unknown, or when the session''s times are implausible (time_fault).';
COMMENT ON COLUMN session_durations.time_fault IS
    'Why the session''s times are implausible (zegolog_time_fault: logout_before_2010, logout_after_receipt, login_before_2010, logout_before_login, session_too_long), NULL when they are plausible: an implausible session has no duration and no concurrency anywhere.';

-- On Citus, zegolog_citus_read_side (0017) makes its own PL/pgSQL form of zegolog_buckets_in;
-- a fourth step of zegolog_distribute() gives that form the plausibility rule too.
CREATE FUNCTION zegolog_citus_plausible_times() RETURNS SETOF text
LANGUAGE plpgsql AS $_$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    IF (SELECT p.prosrc FROM pg_proc AS p
        WHERE p.oid = 'zegolog_buckets_in(text, date, date, bigint)'::regprocedure) LIKE '%zegolog_session_start%' THEN
        RETURN;
    END IF;
    CREATE OR REPLACE FUNCTION zegolog_buckets_in(p_zone text, p_from date, p_to date, p_appid bigint)
    RETURNS TABLE(day date, appid bigint, reason text, bucket integer, sessions bigint, total_ms numeric, max_ms bigint)
    LANGUAGE plpgsql STABLE AS $f$
    #variable_conflict use_column
    DECLARE
        -- zegolog_citus_read_side: the apps, before the queries
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
                       (extract(EPOCH FROM r.logout_time
                            - zegolog_session_start(coalesce(r.login_time, r.paired_login_time),
                                                    r.logout_time, r.received_at, longest)) * 1000)::bigint AS ms
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
END
$_$;
COMMENT ON FUNCTION zegolog_citus_plausible_times() IS
    'zegolog_distribute()''s fourth step (0021): on a Citus coordinator, gives the Citus form of zegolog_buckets_in (0017) the plausibility rule (zegolog_session_start); on PostgreSQL without citus, does nothing. Idempotent.';

CREATE OR REPLACE FUNCTION zegolog_distribute() RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT zegolog_distribute_tables();
    RETURN QUERY SELECT zegolog_citus_read_side();
    RETURN QUERY SELECT zegolog_citus_room_rollups();
    RETURN QUERY SELECT zegolog_citus_plausible_times();
END
$$;
COMMENT ON FUNCTION zegolog_distribute() IS
    'On a Citus coordinator, distributes the tables not distributed yet (zegolog_distribute_tables), redefines the read side for Citus (zegolog_citus_read_side), the per-room rollup refresh (zegolog_citus_room_rollups) and the raw buckets'' plausibility rule (zegolog_citus_plausible_times), and returns what it changed; on PostgreSQL without the citus extension, does nothing. Idempotent.';

-- user_daily: an implausible session adds no time either (total_minutes, total_time).
CREATE OR REPLACE VIEW user_daily AS
 SELECT zegolog_local_day(l.logout_time) AS day,
    l.appid,
    l.user_account,
    (array_agg(l.user_nickname ORDER BY l.logout_time DESC))[1] AS last_nickname,
    count(*) AS sessions,
    count(DISTINCT l.room_id) AS rooms,
    ((sum(EXTRACT(epoch FROM (l.logout_time - zegolog_session_start(COALESCE(l.login_time, l.paired_login_time), l.logout_time, l.received_at, s.max_session)))) / (60)::numeric))::double precision AS total_minutes,
    sum((l.logout_time - zegolog_session_start(COALESCE(l.login_time, l.paired_login_time), l.logout_time, l.received_at, s.max_session))) AS total_time,
    count(*) FILTER (WHERE (l.reason = 0)) AS normal,
    count(*) FILTER (WHERE (l.reason = 1)) AS heartbeat_timeout,
    count(*) FILTER (WHERE (l.reason = 2)) AS connection_lost,
    count(*) FILTER (WHERE (l.reason = 3)) AS kicked_out,
    count(*) FILTER (WHERE (l.reason = 4)) AS token_expired,
    count(*) FILTER (WHERE ((l.reason IS NULL) OR (l.reason <> ALL (ARRAY[0, 1, 2, 3, 4])))) AS unknown,
    min(COALESCE(l.login_time, l.paired_login_time)) AS first_login_at,
    max(l.logout_time) AS last_logout_at
   FROM room_logouts l
   CROSS JOIN zegolog_settings s
  GROUP BY (zegolog_local_day(l.logout_time)), l.appid, l.user_account;

CREATE OR REPLACE FUNCTION user_daily_between(p_appid bigint, p_from timestamptz, p_to timestamptz)
RETURNS SETOF user_daily
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'public', 'pg_temp' AS $$
DECLARE
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
                 - zegolog_session_start(coalesce(l.login_time, l.paired_login_time), l.logout_time,
                                         l.received_at, longest))) / 60)::double precision AS total_minutes,
        sum(l.logout_time - zegolog_session_start(coalesce(l.login_time, l.paired_login_time), l.logout_time,
                                                  l.received_at, longest)) AS total_time,
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
