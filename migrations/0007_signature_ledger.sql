-- Replay protection: the signature ledger.
--
-- ZEGOCLOUD's signature covers (secret, timestamp, nonce) and not the body, so whoever captures
-- one valid (timestamp, nonce, signature) triple can attach any body to it while the timestamp
-- passes the skew check. The ledger remembers every accepted triple with the business digest
-- (callback.rs `business_digest`) of the body it came with first. The batch write (WRITE_BATCH
-- in src/store.rs) upserts the ledger rows of a batch in the same statement, hence the same
-- transaction, as the rows themselves, and lets only the callbacks whose digest is the ledger's
-- reach the typed tables and the rollups. Another body under a known triple is a signature
-- reuse, handled by `zegolog serve --on-signature-reuse` (quarantine, reject or accept).
--
-- Key: (signed_at, nonce, signature). The appid is kept but is not part of the key, on purpose:
-- the signature does not cover the appid either, so with one secret shared by several appids
-- (`--secret`) a captured triple verifies under any of them; without the appid in the key, the
-- same triple under another appid is a reuse too (the appid is in the business digest). The
-- signature is stored in lower case, as the verifier compares it.
--
-- Storage stays bounded: the table is partitioned by UTC day of the signed timestamp.
-- zegolog_ensure_ledger_partitions() creates yesterday's to two days ahead (here, and hourly by
-- `zegolog serve`); zegolog_prune_signature_ledger() drops, whole, the days that ended more than
-- `keep` ago (default 2 days, far beyond the 600 s skew window plus the sender's ~62 s of
-- retries). A DEFAULT partition takes the timestamps no daily partition holds (only possible
-- with the skew check off, or for old callbacks drained from a spool after days); it is pruned
-- by the time its rows were first seen, through an index, and is small by construction.
-- Creation and pruning serialise on an advisory lock and take the parent's lock before any
-- partition's, in the order writers take them, so several instances can run them at once.

CREATE TABLE signature_ledger (
    signed_at  timestamptz NOT NULL,
    nonce      text        NOT NULL,
    signature  text        NOT NULL,
    appid      bigint      NOT NULL,
    digest     bytea       NOT NULL,
    -- Other bodies offered with this triple so far (an upper bound: a batch that holds the first
    -- body after another counts one more). Bounds what one triple can put in quarantine.
    reuses     bigint      NOT NULL DEFAULT 0,
    first_seen timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT signature_ledger_key PRIMARY KEY (signed_at, nonce, signature)
) PARTITION BY RANGE (signed_at);

CREATE TABLE signature_ledger_default PARTITION OF signature_ledger DEFAULT;
CREATE INDEX signature_ledger_default_first_seen_idx ON signature_ledger_default (first_seen);

COMMENT ON TABLE signature_ledger IS
    'Every accepted (timestamp, nonce, signature) with the digest of the body it came with first; partitioned by UTC day of the signed timestamp, kept 2 days.';
COMMENT ON COLUMN signature_ledger.signed_at IS 'The signed timestamp (unix seconds as sent), as timestamptz.';
COMMENT ON COLUMN signature_ledger.digest IS 'SHA-256 business digest of the first body this triple came with.';
COMMENT ON COLUMN signature_ledger.reuses IS 'Bodies with another digest offered with this triple (upper bound).';

-- The ledger partition of one UTC day, created if missing; rows of that day waiting in the
-- default partition are moved into it in the same transaction.
CREATE FUNCTION zegolog_ensure_ledger_partition(p_day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (p_day + 1)::timestamp AT TIME ZONE 'UTC';
    name text := format('signature_ledger_%s', to_char(p_day, 'YYYY_MM_DD'));
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_signature_ledger_partitions'));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    -- No writer may put a row of this day into the default partition meanwhile (the new
    -- partition's creation would then fail); the parent first, as writers lock it. Writers
    -- queue behind this lock: give up after a second rather than stall them (next hour).
    PERFORM set_config('lock_timeout', '1s', true);
    LOCK TABLE signature_ledger IN SHARE ROW EXCLUSIVE MODE;
    CREATE TEMP TABLE zegolog_ledger_moving ON COMMIT DROP AS
        SELECT * FROM signature_ledger_default WHERE false;
    WITH gone AS (
        DELETE FROM signature_ledger_default
        WHERE signed_at >= lo AND signed_at < hi
        RETURNING *
    )
    INSERT INTO zegolog_ledger_moving SELECT * FROM gone;
    EXECUTE format('CREATE TABLE %I PARTITION OF signature_ledger FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    INSERT INTO signature_ledger SELECT * FROM zegolog_ledger_moving;
    DROP TABLE zegolog_ledger_moving;
    RETURN name;
END
$$;

-- Daily partitions from `days_back` days before today (UTC) to `days_ahead` after it.
CREATE FUNCTION zegolog_ensure_ledger_partitions(days_back integer DEFAULT 1, days_ahead integer DEFAULT 2)
RETURNS SETOF text
LANGUAGE sql AS $$
    SELECT zegolog_ensure_ledger_partition(d::date)
    FROM generate_series(
        (now() AT TIME ZONE 'UTC')::date - days_back,
        (now() AT TIME ZONE 'UTC')::date + days_ahead,
        interval '1 day'
    ) AS d;
$$;

-- Drops the daily partitions that ended at or before now() - keep, and deletes the rows of the
-- default partition first seen before then. Returns the partitions dropped.
CREATE FUNCTION zegolog_prune_signature_ledger(keep interval DEFAULT interval '2 days')
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := now() - keep;
    part record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('zegolog_signature_ledger_partitions'));
    -- Writers queue behind the parent's lock: give up after a second rather than stall them.
    PERFORM set_config('lock_timeout', '1s', true);
    FOR part IN
        SELECT c.relname,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'signature_ledger'::regclass
          AND c.relname <> 'signature_ledger_default'
        ORDER BY 1
    LOOP
        IF part.upper_bound <= cutoff THEN
            -- The parent before the partition, in the order writers lock them: no deadlock.
            LOCK TABLE signature_ledger IN ACCESS EXCLUSIVE MODE;
            EXECUTE format('DROP TABLE %I', part.relname);
            RETURN NEXT part.relname;
        END IF;
    END LOOP;
    DELETE FROM signature_ledger_default WHERE first_seen < cutoff;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Data quality: signature reuses quarantined, as a column of their own (appended: CREATE OR
-- REPLACE VIEW can only add columns at the end). They are counted in `quarantined` too.
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
    sum(f.signature_reuse)::bigint AS signature_reuses
FROM (
    SELECT (l.received_at AT TIME ZONE 'UTC')::date AS day,
           l.appid,
           1 AS logout,
           (l.logout_time < l.login_time)::int AS negative,
           (l.logout_time = l.login_time)::int AS zero,
           (l.logout_time - l.received_at > interval '1 day')::int AS future,
           (l.received_at - l.logout_time > interval '1 day')::int AS past,
           (NOT EXISTS (
               SELECT 1 FROM room_logins AS i
               WHERE i.appid = l.appid AND i.room_id = l.room_id
                 AND i.user_account = l.user_account AND i.session_id = l.session_id
                 AND i.login_time >= l.login_time - interval '1 minute'
                 AND i.login_time <= l.login_time + interval '1 minute'
           ))::int AS without_login,
           0 AS quarantined,
           0 AS signature_reuse
    FROM room_logouts AS l
    UNION ALL
    SELECT (e.received_at AT TIME ZONE 'UTC')::date, e.appid, 0, 0, 0, 0, 0, 0, 1,
           (e.refused_reason LIKE 'signature reuse:%')::int
    FROM callback_events AS e
    WHERE e.refused_reason IS NOT NULL
) AS f
GROUP BY f.day, f.appid;

COMMENT ON COLUMN data_quality_daily.signature_reuses IS 'Of the quarantined, callbacks whose (timestamp, nonce, signature) came first with another body (refused_reason starts with ''signature reuse:''): a forged body, or two callbacks sharing a nonce by chance.';

CREATE OR REPLACE FUNCTION data_quality_daily_between(p_appid bigint, p_from timestamptz, p_to timestamptz)
RETURNS SETOF data_quality_daily
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RETURN QUERY
    WITH received AS MATERIALIZED (
        SELECT r.appid, r.room_id, r.user_account, r.session_id, r.login_time, r.logout_time, r.received_at
        FROM room_logouts AS r
        WHERE r.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
          AND r.logout_time >= p_from - interval '1 day' AND r.logout_time < p_to + interval '1 day'
          AND r.received_at >= p_from AND r.received_at < p_to
          AND NOT (r.logout_time - r.received_at > interval '1 day' OR r.received_at - r.logout_time > interval '1 day')
        UNION ALL
        SELECT r.appid, r.room_id, r.user_account, r.session_id, r.login_time, r.logout_time, r.received_at
        FROM room_logouts AS r
        WHERE (r.logout_time - r.received_at > interval '1 day' OR r.received_at - r.logout_time > interval '1 day')
          AND r.received_at >= p_from AND r.received_at < p_to
          AND (p_appid IS NULL OR r.appid = p_appid)
    ), logins AS (
        SELECT i.appid, i.room_id, i.user_account, i.session_id, i.login_time
        FROM room_logins AS i
        WHERE i.appid = ANY (CASE WHEN p_appid IS NULL THEN zegolog_appids() ELSE ARRAY[p_appid] END)
          AND i.login_time >= (SELECT min(login_time) - interval '1 minute' FROM received)
          AND i.login_time <= (SELECT max(login_time) + interval '1 minute' FROM received)
    ), unmatched AS (
        SELECT (l.received_at AT TIME ZONE 'UTC')::date AS day, l.appid, count(*) AS n
        FROM received AS l
        WHERE NOT EXISTS (
            SELECT 1 FROM logins AS i
            WHERE i.appid = l.appid AND i.room_id = l.room_id
              AND i.user_account = l.user_account AND i.session_id = l.session_id
              AND i.login_time >= l.login_time - interval '1 minute'
              AND i.login_time <= l.login_time + interval '1 minute'
        )
        GROUP BY 1, 2
    ), counts AS (
        SELECT (l.received_at AT TIME ZONE 'UTC')::date AS day, l.appid,
               count(*) AS logouts,
               count(*) FILTER (WHERE l.logout_time < l.login_time) AS negative_durations,
               count(*) FILTER (WHERE l.logout_time = l.login_time) AS zero_durations,
               count(*) FILTER (WHERE l.logout_time - l.received_at > interval '1 day') AS logout_far_future,
               count(*) FILTER (WHERE l.received_at - l.logout_time > interval '1 day') AS logout_far_past
        FROM received AS l
        GROUP BY 1, 2
    ), quarantine AS (
        SELECT (e.received_at AT TIME ZONE 'UTC')::date AS day, e.appid, count(*) AS n,
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
           coalesce(q.n, 0), coalesce(q.reuses, 0)
    FROM counts AS c
    LEFT JOIN unmatched AS u ON u.day = c.day AND u.appid = c.appid
    FULL JOIN quarantine AS q ON q.day = c.day AND q.appid = c.appid;
END
$$;

-- Last: the partition functions set a transaction-local lock_timeout.
SELECT zegolog_ensure_ledger_partitions();
