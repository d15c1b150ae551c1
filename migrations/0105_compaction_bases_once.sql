-- Compaction's refresh of the concurrency days (0102) computes each app-day's and room-day's
-- starting count and net once. `bases` was inlined into the statement that joins it with the
-- day's minutes, so zegolog_app_online_at / zegolog_room_online_at and the net's subquery ran
-- for every minute row of a day instead of once per day: under load, 87,995 calls of
-- zegolog_room_online_at for 8,654 room-days (pg_stat_statements), and the larger part of a
-- compaction run. MATERIALIZED computes them once per day (a run under 256 connections: the
-- refresh about 0.8 s -> 0.4 s, the run about 1.4 s -> 1.0 s). The bodies are 0102's otherwise.
-- On Citus, schema/citus.sql still replaces the per-room form with its own.

CREATE OR REPLACE FUNCTION zegolog_refresh_app_concurrency_days(zone text) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
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

-- On Citus, schema/citus.sql replaces this one with a form that runs on the shards.
CREATE OR REPLACE FUNCTION zegolog_refresh_room_concurrency_days(zone text) RETURNS void
LANGUAGE plpgsql SET jit = off AS $$
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
