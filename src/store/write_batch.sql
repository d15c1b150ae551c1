-- The batch write statement, embedded by src/store/write.rs (`write_statement` binds its parameters
-- and turns the rows it returns into one outcome per callback).
--
-- One statement, hence one transaction and one round trip, for a whole batch: data-modifying
-- CTEs insert the typed rows and the archive rows, and append what the new logouts add to the
-- rollups as one row of pending_contributions (from `RETURNING`, so a retried logout is never
-- counted twice). A logout is written once, with its body, in its room_logouts row;
-- callback_events keeps the bodies of the other events, of the quarantined callbacks, and of a
-- logout whose natural key is stored with another content (a variant). That is two tuple
-- writes per new logout (its row and its ledger entry) and a share of the batch's pending row.
-- Each INSERT takes its rows in one order per table that every writer shares (its unique key's,
-- or for room_logouts (appid, session_id, logout_time, room_id, user_account)): two batches
-- holding the same callbacks (a retry storm, several instances) then wait for each other's
-- keys in one order and never deadlock.
-- Arrays are bound whole and UNNESTed, so a batch of any size is one statement; u64 ids
-- travel as text and are cast to numeric: no float, no i64.
--
-- The signature ledger comes first: every signed triple of the batch is upserted (`ON
-- CONFLICT DO UPDATE ... RETURNING`, which returns the latest committed row, also one a
-- concurrent transaction inserted after this statement's snapshot: `DO NOTHING` and a join
-- would miss it). The batch's triples are grouped first, because `DO UPDATE` cannot touch one
-- row twice in one statement, and inserted in key order, as every other table, so that
-- concurrent batches lock in one order. A callback whose digest is not its triple's ledger
-- digest is a reuse (`reused`), and the reuse policy's `verdict` on it is decided in
-- `verdicts`: under `quarantine` and `reject` its typed rows are left out (`blocked`), hence its
-- rollups too; under `quarantine` its body is archived with the reason while the triple's
-- count allows (`quarantined`, else `over_bound`); under `reject` nothing of it is written. Callbacks are
-- numbered by their position in the batch (`pos`, 1-based), which the typed arrays carry too.
--
-- A logout without `login_time` (the 2022-2023 docs) is paired with its login, the latest of
-- the same appid, room_id, user_account and session_id at or before it: at its insert with
-- the logins stored or in the batch (`paired_login_time`), or later by the new logins of a
-- batch (`to_pair`, `paired`: an UPDATE of the logout row, in key order after every insert,
-- which only moves a pairing to a later login). Rollup contributions are those of
-- `zegolog_logout_rollup_in()` (with the zone read once per statement from a fresh snapshot,
-- `zone`) and `zegolog_logout_concurrency()` (migrations/0102), the one place that says what a
-- logout adds; both are inlined here: a new logout adds its own, a paired one the difference
-- between its new and its old state (`changes`), so its reason is counted once and its
-- duration once, whatever the order in which the logout, its login and their retries arrive.
--
-- Parameters (arrays; the typed rows carry `pos`, their callback's position in the batch):
--   $1-$6     every callback: digest, event, appid, body, content_type, refused_reason
--   $37-$39   its signed triple: signed_at, nonce, signature (NULL when unsigned)
--   $40, $41  the reuse policy (quarantine, reject, accept), QUARANTINE_PER_SIGNATURE
--   $7-$17, $42                room_logout rows, pos
--   $18-$29, $43, $45, $46     room_login rows, pos, term_type, callback_data
--   $30-$36, $44               room_create / room_close rows, pos
--
-- Two forms, cut from this one text by `src/store/write.rs` (`WriteStatement`): the lines
-- between `-- [with logins or room events]` and `-- [else]` are the full form's; a batch with
-- neither runs the lines between `-- [else]` and `-- [end]` instead, which leave out the
-- inserts into room_logins and room_lifecycle_events and the pairing UPDATE: each costs
-- PostgreSQL its setup on every execution, rows or none (about 0.4 ms a batch, measured in
-- docs/benchmarks.md). Every rule stays written once: the logouts' own CTEs are shared.
WITH input AS (
    SELECT *
    FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                $37::timestamptz[], $38::text[], $39::text[])
        WITH ORDINALITY AS t(digest, event, appid, body, content_type, refused_reason,
                             signed_at, nonce, signature, pos)
), triples AS (
    SELECT signed_at, nonce, signature,
           (array_agg(appid ORDER BY pos))[1] AS appid,
           (array_agg(digest ORDER BY pos))[1] AS digest,
           count(DISTINCT digest) - 1 AS others
    FROM input
    WHERE signature IS NOT NULL
    GROUP BY signed_at, nonce, signature
), ledger AS (
    INSERT INTO signature_ledger AS l (signed_at, nonce, signature, appid, digest, reuses)
    SELECT signed_at, nonce, signature, appid, digest, others
    FROM triples
    ORDER BY signed_at, nonce, signature
    ON CONFLICT ON CONSTRAINT signature_ledger_key DO UPDATE
    SET reuses = l.reuses + excluded.reuses + (excluded.digest <> l.digest)::int
    RETURNING l.signed_at, l.nonce, l.signature, l.digest, l.reuses
), reused AS (
    -- The n-th other body of its triple, over every batch so far: the count before this
    -- statement plus the rank of its digest among this batch's other bodies.
    SELECT i.pos, l.digest AS first_digest,
           l.reuses - t.others - (t.digest <> l.digest)::int
           + dense_rank() OVER (PARTITION BY i.signed_at, i.nonce, i.signature
                                ORDER BY i.first_pos) AS nth
    FROM (SELECT *, min(pos) OVER (PARTITION BY signed_at, nonce, signature, digest) AS first_pos
          FROM input WHERE signature IS NOT NULL) AS i
    JOIN ledger AS l USING (signed_at, nonce, signature)
    JOIN triples AS t USING (signed_at, nonce, signature)
    WHERE i.digest <> l.digest
), verdicts AS (
    -- What the reuse policy makes of each reuse, decided here and nowhere else (the store
    -- reads `verdict` back as its outcome).
    SELECT pos, first_digest,
           CASE WHEN $40 = 'accept' THEN 'accepted'
                WHEN $40 = 'reject' THEN 'rejected'
                WHEN nth <= $41 THEN 'quarantined'
                ELSE 'over_bound' END AS verdict
    FROM reused
), blocked AS (
    SELECT pos FROM verdicts WHERE verdict <> 'accepted'
), logout_input AS (
    -- Typed logouts, with their callback's digest and body.
    SELECT t.*, i.digest, i.body, i.content_type
    FROM unnest($7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                $13::timestamptz[], $14::timestamptz[], $15::int[], $16::int[], $17::bigint[],
                $42::bigint[])
        AS t(appid, room_id, room_seq, user_account, user_nickname, session_id,
             login_time, logout_time, reason, user_role, user_update_seq, pos)
    JOIN input AS i USING (pos)
    WHERE NOT EXISTS (SELECT 1 FROM blocked AS b WHERE b.pos = t.pos)
), first_logouts AS (
    -- The first of the batch's copies of each natural key: ON CONFLICT DO UPDATE may touch a
    -- row once per statement.
    SELECT DISTINCT ON (appid, room_id, logout_time, session_id::numeric, user_account) *
    FROM logout_input
    ORDER BY appid, room_id, logout_time, session_id::numeric, user_account, pos
), login_input AS (
    SELECT *
    FROM unnest($18::bigint[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[],
                $24::text[], $25::timestamptz[], $26::int[], $27::int[], $28::int[], $29::bigint[],
                $43::bigint[], $45::int[], $46::text[])
        AS t(appid, room_id, room_name, room_seq, user_account, user_nickname,
             session_id, login_time, user_role, auth_level, relogin, user_update_seq, pos,
             term_type, callback_data)
    WHERE NOT EXISTS (SELECT 1 FROM blocked AS b WHERE b.pos = t.pos)
), stored_logins AS (
    -- The latest stored login at or before each logout without login_time: a join, not a
    -- correlated subquery in the INSERT below, which Citus cannot plan over a CTE.
    SELECT t.pos, max(i.login_time) AS login_time
    FROM logout_input AS t
    JOIN room_logins AS i
      ON i.appid = t.appid AND i.room_id = t.room_id AND i.user_account = t.user_account
     AND i.session_id = t.session_id::numeric AND i.login_time <= t.logout_time
    WHERE t.login_time IS NULL
    GROUP BY t.pos
), logouts AS (
    -- A logout without login_time is paired at once with the latest login at or before it
    -- that this statement can see: stored, or in this batch. A stored key returns nothing when
    -- its content is the same (a retry), and its stored digest when it differs (a variant:
    -- the no-op update is what makes it return, checked on the latest committed version, so
    -- that a retry racing its first delivery is never taken for a variant).
    INSERT INTO room_logouts AS r (appid, room_id, room_seq, user_account, user_nickname, session_id,
                                   login_time, paired_login_time, logout_time, reason, user_role,
                                   user_update_seq, digest, body, content_type)
    SELECT t.appid, t.room_id, t.room_seq::numeric, t.user_account, t.user_nickname,
           t.session_id::numeric, t.login_time,
           CASE WHEN t.login_time IS NULL THEN greatest(
               s.login_time,
               (SELECT max(b.login_time) FROM login_input AS b
                WHERE b.appid = t.appid AND b.room_id = t.room_id
                  AND b.user_account = t.user_account
                  AND b.session_id::numeric = t.session_id::numeric
                  AND b.login_time <= t.logout_time))
           END,
           t.logout_time, t.reason, t.user_role, t.user_update_seq, t.digest, t.body, t.content_type
    FROM first_logouts AS t
    LEFT JOIN stored_logins AS s USING (pos)
    ORDER BY t.appid, t.session_id::numeric, t.logout_time, t.room_id, t.user_account
    ON CONFLICT ON CONSTRAINT room_logouts_natural_key DO UPDATE SET digest = r.digest
    WHERE r.digest <> excluded.digest
    RETURNING r.appid, r.session_id::text AS session_id, r.login_at, r.logout_time, r.room_id,
              r.user_account, r.reason, r.received_at, r.digest
), new_logouts AS (
    -- u64 ids as text: both sides print them in the same canonical digits.
    SELECT l.* FROM logouts AS l
    JOIN first_logouts AS t
      ON t.appid = l.appid AND t.room_id = l.room_id AND t.logout_time = l.logout_time
     AND t.session_id = l.session_id AND t.user_account = l.user_account
     AND t.digest = l.digest
), variants AS (
    -- Logouts whose key is stored, or first in this batch, with another content.
    SELECT t.pos
    FROM logout_input AS t
    JOIN first_logouts AS f
      ON f.appid = t.appid AND f.room_id = t.room_id AND f.logout_time = t.logout_time
     AND f.session_id = t.session_id AND f.user_account = t.user_account
    LEFT JOIN logouts AS l
      ON l.appid = t.appid AND l.room_id = t.room_id AND l.logout_time = t.logout_time
     AND l.session_id = t.session_id AND l.user_account = t.user_account
    WHERE CASE WHEN f.pos = t.pos THEN l.digest <> t.digest ELSE f.digest <> t.digest END
), events AS (
    -- The archive: every callback but a typed logout, unless a variant. Under `quarantine` a
    -- reused signature's body is kept with the reason while the triple's count allows; under
    -- `reject` nothing of it is written.
    INSERT INTO callback_events (digest, event, appid, body, content_type, refused_reason)
    SELECT i.digest, i.event, i.appid, i.body, i.content_type,
           CASE WHEN v.verdict = 'quarantined'
                THEN format('signature reuse: this (timestamp, nonce, signature) came first with another body (digest %s); kept out of the typed tables',
                            encode(v.first_digest, 'hex'))
                ELSE i.refused_reason END
    FROM input AS i
    LEFT JOIN verdicts AS v USING (pos)
    LEFT JOIN logout_input AS t USING (pos)
    LEFT JOIN variants AS x USING (pos)
    WHERE (v.pos IS NULL OR v.verdict IN ('quarantined', 'accepted'))
      AND (t.pos IS NULL OR x.pos IS NOT NULL)
    -- Key order; of two copies of one body, the genuine one first (it keeps the archive row).
    ORDER BY i.digest, v.pos IS NOT NULL, i.pos
    ON CONFLICT (digest) DO NOTHING
    RETURNING encode(digest, 'hex') AS digest
-- [with logins or room events]
), logins AS (
    INSERT INTO room_logins (appid, room_id, room_name, room_seq, user_account, user_nickname,
                             session_id, login_time, user_role, auth_level, relogin, user_update_seq,
                             term_type, callback_data)
    SELECT appid, room_id, room_name, room_seq::numeric, user_account, user_nickname,
           session_id::numeric, login_time, user_role, auth_level, relogin, user_update_seq,
           term_type, callback_data
    FROM login_input
    ORDER BY appid, room_id, user_account, session_id::numeric, login_time
    ON CONFLICT ON CONSTRAINT room_logins_natural_key DO NOTHING
    RETURNING appid, room_id, user_account, session_id, login_time
), to_pair AS (
    -- The stored logouts without login_time that a new login pairs with: its login is the
    -- latest new one at or before the logout, when later than the one it has (a retried
    -- login is not new; an earlier re-login does not move it). No FOR UPDATE (Citus runs it
    -- on one shard only): `paired` updates a logout only if its pairing is still the one read
    -- here, rechecked on the latest row version once its lock is held, so that two statements
    -- never pair one logout from the same old state (the later one leaves it to
    -- zegolog_pair_recent_logouts).
    SELECT o.appid, o.session_id, o.logout_time, o.room_id, o.user_account, o.reason,
           o.paired_login_time AS old_login, n.login_time AS new_login
    FROM room_logouts AS o
    JOIN (SELECT x.appid, x.session_id, x.logout_time, x.room_id, x.user_account,
                 max(n.login_time) AS login_time
          FROM logins AS n
          JOIN room_logouts AS x
            ON x.appid = n.appid AND x.room_id = n.room_id AND x.user_account = n.user_account
           AND x.session_id = n.session_id AND x.login_time IS NULL
           AND n.login_time <= x.logout_time
          GROUP BY 1, 2, 3, 4, 5) AS n
      USING (appid, session_id, logout_time, room_id, user_account)
    WHERE o.login_time IS NULL
      AND (o.paired_login_time IS NULL OR n.login_time > o.paired_login_time)
), paired AS (
    UPDATE room_logouts AS o SET paired_login_time = p.new_login
    FROM to_pair AS p
    WHERE o.appid = p.appid AND o.session_id = p.session_id AND o.logout_time = p.logout_time
      AND o.room_id = p.room_id AND o.user_account = p.user_account
      AND o.paired_login_time IS NOT DISTINCT FROM p.old_login
    RETURNING o.appid, o.room_id, o.reason, o.logout_time, o.received_at, p.old_login, p.new_login
), rooms AS (
    INSERT INTO room_lifecycle_events (appid, room_id, room_session_id, event, at, creator, close_reason)
    SELECT appid, room_id, room_session_id::numeric, event, at, creator, close_reason
    FROM unnest($30::bigint[], $31::text[], $32::text[], $33::text[], $34::timestamptz[],
                $35::text[], $36::int[], $44::bigint[])
        AS t(appid, room_id, room_session_id, event, at, creator, close_reason, pos)
    WHERE NOT EXISTS (SELECT 1 FROM blocked AS b WHERE b.pos = t.pos)
    ORDER BY appid, room_id, room_session_id::numeric, event
    ON CONFLICT ON CONSTRAINT room_lifecycle_events_key DO NOTHING
-- [else]
), paired AS (
    -- A batch of logouts and other events only: no login to store, none to pair with.
    SELECT NULL::bigint AS appid, NULL::text AS room_id, NULL::integer AS reason,
           NULL::timestamptz AS logout_time, NULL::timestamptz AS received_at,
           NULL::timestamptz AS old_login,
           NULL::timestamptz AS new_login
    WHERE false
-- [end]
), zone AS MATERIALIZED (
    -- The reporting zone and the longest plausible session, once, from a fresh snapshot: a writer that waited for a change of zone cuts its days in the new one.
    SELECT zegolog_time_zone_fresh() AS zone, (SELECT max_session FROM zegolog_settings) AS max_session
), changes AS (
    -- Rollup contributions: each new logout's, and for each logout paired now the difference
    -- between its contribution with the new login and with the old one (none: the
    -- no-duration bucket), so that its reason counts once whatever the order of arrival.
    SELECT appid, room_id, reason, logout_time, login_at, received_at, 1 AS sign
    FROM new_logouts
    UNION ALL
    SELECT appid, room_id, reason, logout_time, new_login, received_at, 1 FROM paired
    UNION ALL
    SELECT appid, room_id, reason, logout_time, old_login, received_at, -1 FROM paired
), starts AS (
    -- The login each change's duration and concurrency are computed from: NULL for a session
    -- with implausible times (zegolog_session_start), hence no duration, no concurrency.
    -- Computed once here, so that what follows reads a plain column: PostgreSQL inlines
    -- zegolog_duration_bucket only when its argument is that cheap, and otherwise calls it as
    -- a function once per logout.
    SELECT c.appid, c.room_id, c.reason, c.logout_time, c.sign,
           zegolog_session_start(c.login_at, c.logout_time, c.received_at, z.max_session) AS login_at
    FROM changes AS c, zone AS z
), durations AS (
    -- The day cut, bucket and sums: zegolog_logout_rollup_in.
    SELECT r.day, r.appid, r.reason, r.bucket, sum(c.sign * r.sessions)::bigint AS sessions,
           sum(c.sign * r.total_ms) AS total_ms,
           coalesce(max(r.max_ms) FILTER (WHERE c.sign > 0), -9223372036854775808) AS max_ms
    FROM starts AS c, zone AS z,
         zegolog_logout_rollup_in(c.appid, c.reason, c.login_at, c.logout_time, z.zone) AS r
    GROUP BY 1, 2, 3, 4
), deltas AS (
    SELECT d.appid, d.room_id, d.minute, sum(c.sign * d.delta)::bigint AS delta
    FROM starts AS c,
         zegolog_logout_concurrency(c.appid, c.room_id, c.login_at, c.logout_time) AS d
    GROUP BY 1, 2, 3
), pending AS (
    -- All of it as one row, whatever the size of the batch.
    INSERT INTO pending_contributions (durations, deltas)
    SELECT coalesce((SELECT array_agg(ROW(d.*)::zegolog_rollup_row) FROM durations AS d), '{}'),
           coalesce((SELECT array_agg(ROW(d.*)::zegolog_concurrency_delta) FROM deltas AS d), '{}')
    WHERE EXISTS (SELECT FROM changes)
)
SELECT NULL::bigint AS appid, digest AS key, NULL::timestamptz AS logout_time,
       NULL AS room_id, NULL AS user_account, NULL::bigint AS pos, NULL::text AS verdict
FROM events
UNION ALL
SELECT appid, session_id, logout_time, room_id, user_account, NULL, NULL FROM new_logouts
UNION ALL
SELECT NULL, encode(first_digest, 'hex'), NULL, NULL, NULL, pos, verdict FROM verdicts
