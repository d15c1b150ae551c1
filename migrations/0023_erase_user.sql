-- Erasing one user (issue 19, point 7): `zegolog erase --appid A --user-account U`, for a
-- deletion request (GDPR, PIPL). One function, zegolog_erase_user(appid, user_account), does
-- it all in one transaction (all or nothing) and returns what it removed, per table.
--
-- Where a user's account and nickname live, and what becomes of them:
--   callback_events        the raw body of every callback that names the account in a field
--                          of zegolog_user_fields() (room_login/room_logout user_account,
--                          room_create id_name, in-app chat operator_account, stream user_id):
--                          deleted, quarantined bodies included. The nickname is matched
--                          through the account beside it, never alone (nicknames are not
--                          unique: "Tom" alone would erase other Toms' bodies).
--   signature_ledger       the entries whose digest is one of those bodies': deleted. A digest
--                          is a SHA-256 over the body, account included: it identifies the
--                          user to whoever holds a candidate body. Replacing it by a digest of
--                          nothing would turn a genuine retry into a "signature reuse" and
--                          quarantine the body, writing it again with a false reason; without
--                          the entry a retry is simply stored again, as any callback after an
--                          erasure is (see docs/operations.md).
--   room_logins            the user's rows: deleted.
--   room_logouts           the user's rows: deleted, and their contributions taken out of the
--                          rollups (below).
--   room_lifecycle_events  rooms the user created: creator set to NULL. The room's lifecycle
--                          is the other users' history too and holds nothing else personal.
--   rollups                no user in them, but the erased sessions counted there: see below.
--
-- The rollups. What a logout contributes is said in one place each: zegolog_logout_rollup_in
-- (duration rollups) and zegolog_logout_concurrency (concurrency deltas), called here, never
-- restated. The erased logouts' contributions go into the pending tables with the opposite
-- sign, and zegolog_compact_rollups() folds them (sessions and total_ms subtract exactly;
-- the concurrency days the deltas touch are recomputed from the minute tables, peaks
-- included). Two things a subtraction cannot do are done after it:
--   - max_ms cannot be subtracted: where an erased session's duration equals the rollup row's
--     max_ms (it may have been the maximum), the maximum is recomputed from the remaining raw
--     logouts of that day, through zegolog_logout_rollup_in. Only the maximum: a
--     concurrent writer's logout may be in the raw rows and still pending, and a maximum
--     counted twice is still right, a sum would not be.
--   - rows a recomputation would not have: rollup rows with no session, minute rows
--     left with a zero delta and room-days left with neither users nor net, where the erased
--     sessions were (an app-day left empty stays, with zeros: peak_concurrency_daily leaves
--     it out, and the later days' starts chain through it, 0021).
--
-- Concurrency with `serve`: the locks retention takes, in its order: partition creation's
-- first (so retention and partition creation wait for the erasure instead of deadlocking with
-- it over a table), compaction's only for the last step, the logouts and the rollups, so that
-- compaction waits for that step only. The archive is read first (one scan of the app's
-- bodies, no lock beyond the rows it deletes); the ledger is changed under the ledger upkeep's
-- advisory lock (so that it waits on that lock rather than queue a table lock in front of the
-- writers). Rows are locked in the writers' order (ledger, archive, typed rows), so a writer
-- retrying an erased callback meanwhile waits for the commit, then stores it again.
-- Idempotent: a second run finds nothing, changes nothing (no compaction either) and reports
-- zeros.
--
-- On Citus every statement here is one Citus plans as written: the archive and the ledger are
-- read and deleted with conditions on their own columns (the digests of the bodies found are
-- passed as an array), the raw logouts of a day are aggregated into arrays on the shards as
-- zegolog_rebuild_rollups_day does, and the rollup tables are on the coordinator. It does not
-- use zegolog_appids(), so zegolog_distribute() leaves it as it is.

CREATE FUNCTION zegolog_user_fields() RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT ARRAY['user_account', 'id_name', 'operator_account', 'user_id', 'UserId', 'UserID']
$$;

COMMENT ON FUNCTION zegolog_user_fields() IS
    'The callback fields whose value is a user''s account: room_login and room_logout user_account, room_create id_name (the creator), in-app chat room_create operator_account, stream events and other products'' user_id. zegolog_erase_user erases every body with one of them equal to the account.';

CREATE FUNCTION zegolog_erase_user(p_appid bigint, p_user_account text)
    RETURNS TABLE(name text, removed bigint, what text)
    LANGUAGE plpgsql
    SET jit = off
    SET client_min_messages = warning
    AS $$
#variable_conflict use_column
DECLARE
    zone text;
    needle text;
    patterns jsonb[];
    digests bytea[];
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

    -- 1. The archive: the bodies that name the account in a user field. strpos on the body
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

    -- 2. Their ledger entries, then the bodies (the writers' order: ledger, archive).
    n_ledger := 0;
    n_bodies := 0;
    IF cardinality(digests) > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtext('zegolog_signature_ledger_partitions'));
        DELETE FROM signature_ledger AS l WHERE l.appid = p_appid AND l.digest = ANY (digests);
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
                  zegolog_session_start(coalesce(o.login_time, o.paired_login_time), o.logout_time,
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
        INSERT INTO logout_rollup_pending (day, appid, reason, bucket, sessions, total_ms, max_ms)
        SELECT day, appid, reason, bucket, -sessions, -total_ms, -9223372036854775808
        FROM zegolog_erased_rollup;
        INSERT INTO concurrency_pending (appid, room_id, minute, delta)
        SELECT appid, room_id, minute, -delta FROM zegolog_erased_deltas;
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
                         array_agg(zegolog_session_start(coalesce(o.login_time, o.paired_login_time),
                                                         o.logout_time, o.received_at, longest)) AS login_time,
                         array_agg(o.logout_time) AS logout_time
                  FROM room_logouts AS o
                  WHERE o.appid = p_appid
                    AND o.logout_time >= d.day::timestamp AT TIME ZONE zone
                    AND o.logout_time < (d.day + 1)::timestamp AT TIME ZONE zone
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
$$;

COMMENT ON FUNCTION zegolog_erase_user(bigint, text) IS
    'Erases user p_user_account of app p_appid (zegolog erase): their logins, logouts, every archived body naming them (zegolog_user_fields()) and its signature ledger entries; clears them as room creator; takes their sessions out of every rollup. One transaction, idempotent; returns what it removed per table.';
