-- Rollup compaction without PostgreSQL's JIT compiler, and the per-app day refresh by index
-- (issue 11: what compaction costs per callback).
--
-- Measured (pg_stat_statements, auto_explain) on a database seeded with 60 days, then 60,000
-- logouts: the per-app statement of zegolog_refresh_concurrency_days cost 818 ms, 698 ms of it
-- compiling itself with LLVM. Its planner cannot see how many days generate_series yields
-- (it guesses 200,000 rows per app), so it estimated a cost in the millions, past
-- jit_above_cost and jit_optimize_above_cost, and joined the days to app_concurrency_minute by
-- sorting that whole table (every minute of every day of history). Compaction runs every few
-- seconds, and each run compiled again: 50 to 700 ms a run, growing with the history.
--
-- jit = off for compaction and the refresh it calls (the trigger functions it fires included:
-- a function's settings hold until it returns). Compaction's statements are short, index-
-- driven and planned on guesses; JIT pays only for long scans. The per-app nets are an index
-- range scan per day instead of a join.

ALTER FUNCTION zegolog_compact_rollups() SET jit = off;

CREATE OR REPLACE FUNCTION zegolog_refresh_concurrency_days(zone text) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    -- Per app: every day from the first to the last day any of its rooms touched.
    WITH days AS (
        SELECT r.appid, d::date AS day
        FROM (SELECT appid, min(day) AS first_day, max(day) AS last_day
              FROM zegolog_days GROUP BY appid) AS r,
        generate_series(r.first_day, r.last_day, interval '1 day') AS d
    ), nets AS (
        -- One index range scan per day (a join let the planner, which cannot see how few
        -- days generate_series yields, sort the whole table instead).
        SELECT d.appid, d.day, coalesce(n.net, 0) AS net
        FROM days AS d
        CROSS JOIN LATERAL (
            SELECT sum(m.delta) AS net
            FROM app_concurrency_minute AS m
            WHERE m.appid = d.appid
              AND m.minute >= d.day::timestamp AT TIME ZONE zone
              AND m.minute < (d.day + 1)::timestamp AT TIME ZONE zone
        ) AS n
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
ALTER FUNCTION zegolog_refresh_concurrency_days(text) SET jit = off;
