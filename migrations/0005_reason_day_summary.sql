-- logout_reasons_daily within its 100 ms target at 10 million logouts, and a fix of the daily
-- concurrency peak at midnight (at the end of this file).
--
-- The view of 0003 found each (day, app, reason)'s median by pushing every duration bucket of
-- the window through window functions: about 58,000 rows for one app's 30 days, 190 ms at 10M
-- logouts. Now a summary row per (day, app, reason) holds the count and the median bucket,
-- kept by triggers on logout_rollup (so every writer of the rollup, compaction and retention
-- alike, keeps it current); the view reads those rows, and recomputes from buckets only the
-- few groups that still have pending (uncompacted) rows, so it stays exact up to the last commit.

CREATE TABLE logout_reason_day (
    day           date    NOT NULL,
    appid         bigint  NOT NULL,
    reason        text    NOT NULL,
    logouts       bigint  NOT NULL,
    median_bucket integer NOT NULL,
    PRIMARY KEY (appid, day, reason)
);

COMMENT ON TABLE logout_reason_day IS
    'Per UTC day, app and reason of the compacted rollups: logouts and the median duration bucket. Kept by triggers on logout_rollup.';

-- Recomputes the summary rows of the groups in zegolog_changed_groups from logout_rollup.
CREATE FUNCTION zegolog_refresh_reason_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM logout_reason_day AS s
    USING (SELECT DISTINCT day, appid, reason FROM changed) AS g
    WHERE s.appid = g.appid AND s.day = g.day AND s.reason = g.reason;

    INSERT INTO logout_reason_day (day, appid, reason, logouts, median_bucket)
    SELECT day, appid, reason, max(n), min(bucket) FILTER (WHERE cum >= 0.5 * n)
    FROM (
        SELECT r.day, r.appid, r.reason, r.bucket,
               sum(r.sessions) OVER (PARTITION BY r.day, r.appid, r.reason ORDER BY r.bucket) AS cum,
               sum(r.sessions) OVER (PARTITION BY r.day, r.appid, r.reason) AS n
        FROM logout_rollup AS r
        JOIN (SELECT DISTINCT day, appid, reason FROM changed) AS g
          ON r.appid = g.appid AND r.day = g.day AND r.reason = g.reason
    ) AS x
    GROUP BY day, appid, reason;
    RETURN NULL;
END
$$;

-- One trigger per event: PostgreSQL allows a transition table on single-event triggers only.
-- INSERT ... ON CONFLICT DO UPDATE fires both, each with its own rows.
CREATE TRIGGER logout_rollup_inserted AFTER INSERT ON logout_rollup
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION zegolog_refresh_reason_days();
CREATE TRIGGER logout_rollup_updated AFTER UPDATE ON logout_rollup
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION zegolog_refresh_reason_days();
CREATE TRIGGER logout_rollup_deleted AFTER DELETE ON logout_rollup
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION zegolog_refresh_reason_days();

INSERT INTO logout_reason_day (day, appid, reason, logouts, median_bucket)
SELECT day, appid, reason, max(n), min(bucket) FILTER (WHERE cum >= 0.5 * n)
FROM (
    SELECT day, appid, reason, bucket,
           sum(sessions) OVER (PARTITION BY day, appid, reason ORDER BY bucket) AS cum,
           sum(sessions) OVER (PARTITION BY day, appid, reason) AS n
    FROM logout_rollup
) AS x
GROUP BY day, appid, reason;

CREATE OR REPLACE VIEW logout_reasons_daily AS
WITH dirty AS (
    SELECT DISTINCT day, appid, reason FROM logout_rollup_pending
), settled AS (
    SELECT s.day, s.appid, s.reason, s.logouts,
           zegolog_bucket_ms(s.median_bucket) / 1000 AS median_duration_s
    FROM logout_reason_day AS s
    WHERE NOT EXISTS (SELECT 1 FROM dirty AS d
                      WHERE d.appid = s.appid AND d.day = s.day AND d.reason = s.reason)
), fresh AS (
    SELECT day, appid, reason, max(n)::bigint AS logouts,
           zegolog_bucket_ms(min(bucket) FILTER (WHERE cum >= 0.5 * n)) / 1000 AS median_duration_s
    FROM (
        SELECT b.*,
               sum(sessions) OVER (PARTITION BY day, appid, reason ORDER BY bucket) AS cum,
               sum(sessions) OVER (PARTITION BY day, appid, reason) AS n
        FROM (
            SELECT a.day, a.appid, a.reason, a.bucket, sum(a.sessions) AS sessions
            FROM logout_rollup_all AS a
            JOIN dirty AS d ON d.appid = a.appid AND d.day = a.day AND d.reason = a.reason
            GROUP BY a.day, a.appid, a.reason, a.bucket
        ) AS b
    ) AS c
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

-- Fix of zegolog_compact_rollups() (0003, 0004): a day's peak counted the users online at the
-- end of the day before even when some of them logged out in its first minute, i.e. when a
-- delta falls on 00:00. The users online at midnight now count only when no delta falls on
-- that minute (the running sum then holds the value of that minute).
CREATE OR REPLACE FUNCTION zegolog_compact_rollups() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_compact_rollups'));

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

    -- The days to recompute: for each app (and room), from the first to the last day a moved
    -- delta falls on. A session's deltas sum to zero, so the days after keep their figures.
    CREATE TEMP TABLE zegolog_days ON COMMIT DROP AS
    SELECT r.appid, r.room_id, d::date AS day
    FROM (
        SELECT appid, room_id, min((minute AT TIME ZONE 'UTC')::date) AS first_day,
               max((minute AT TIME ZONE 'UTC')::date) AS last_day
        FROM zegolog_moved GROUP BY appid, room_id
    ) AS r,
    generate_series(r.first_day, r.last_day, interval '1 day') AS d;

    -- Per app: every day from the first to the last day any of its rooms touched (a day between
    -- two rooms' ranges can carry users online from an earlier compaction).
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
         AND m.minute >= d.day::timestamp AT TIME ZONE 'UTC'
         AND m.minute < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
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
               m.minute = b.day::timestamp AT TIME ZONE 'UTC' AS at_midnight
        FROM app_concurrency_minute AS m
        WHERE m.appid = b.appid
          AND m.minute >= b.day::timestamp AT TIME ZONE 'UTC'
          AND m.minute < (b.day + 1)::timestamp AT TIME ZONE 'UTC'
    ) AS w ON true
    GROUP BY b.appid, b.day, b.net, b.base
    -- A day between two rooms' ranges with nobody online gets no row, as before.
    HAVING b.net <> 0 OR greatest(CASE WHEN bool_or(w.at_midnight) IS NOT TRUE THEN b.base END, max(b.base + w.running)) <> 0
    ORDER BY 1, 2
    ON CONFLICT (appid, day) DO UPDATE SET net = excluded.net, peak = excluded.peak;

    -- Per room: the same, keyed on (appid, room_id).
    WITH nets AS (
        SELECT d.appid, d.room_id, d.day, coalesce(sum(m.delta), 0) AS net
        FROM zegolog_days AS d
        LEFT JOIN room_concurrency_minute AS m
          ON m.appid = d.appid AND m.room_id = d.room_id
         AND m.minute >= d.day::timestamp AT TIME ZONE 'UTC'
         AND m.minute < (d.day + 1)::timestamp AT TIME ZONE 'UTC'
        GROUP BY d.appid, d.room_id, d.day
    ), starts AS (
        -- Once per room (a correlated min() per room-day over the unindexed temporary table was
        -- quadratic in the number of room-days of one compaction).
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
               m.minute = b.day::timestamp AT TIME ZONE 'UTC' AS at_midnight
        FROM room_concurrency_minute AS m
        WHERE m.appid = b.appid AND m.room_id = b.room_id
          AND m.minute >= b.day::timestamp AT TIME ZONE 'UTC'
          AND m.minute < (b.day + 1)::timestamp AT TIME ZONE 'UTC'
    ) AS w ON true
    GROUP BY b.appid, b.room_id, b.day, b.net, b.base
    ORDER BY 1, 2, 3
    ON CONFLICT (appid, room_id, day) DO UPDATE SET net = excluded.net, peak = excluded.peak;

    DROP TABLE zegolog_moved;
    DROP TABLE zegolog_days;
END
$$;
