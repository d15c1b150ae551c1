-- Several zegolog instances on one database each run the upkeep (rollup compaction every few
-- seconds, partitions ahead and retention hourly). Compaction and partition creation already
-- serialise on advisory locks (0003); retention did not: two instances could drop the same
-- partition (the second failing), and its DELETEs from the default partition and the rollups
-- could cross a partition's creation (which moves rows out of the default partition) or a
-- compaction (which updates rollup rows), row by row in another order.
--
-- Retention now takes the partition lock, then the compaction lock, for its transaction: it runs
-- alone against both, and since no one holds the compaction lock while waiting for the partition
-- lock, the two locks cannot deadlock. A partition another run dropped meanwhile is skipped.

CREATE OR REPLACE FUNCTION zegolog_drop_partitions_before(cutoff timestamptz) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    part record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_ensure_partition'));
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_compact_rollups'));
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
    DELETE FROM logout_rollup WHERE day < (cutoff AT TIME ZONE 'UTC')::date;
    DELETE FROM app_concurrency_day WHERE day < (cutoff AT TIME ZONE 'UTC')::date;
    DELETE FROM room_concurrency_day WHERE day < (cutoff AT TIME ZONE 'UTC')::date;
END
$$;
