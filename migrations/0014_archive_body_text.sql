-- The archive keeps each callback's body as the JSON text zegolog decoded and checked, not as
-- jsonb (issue 11). Building a jsonb value means PostgreSQL parses every body a second time
-- (zegolog already parsed it to verify and type it): measured with callgrind on the batch
-- write statement, 46,000 of its ~390,000 instructions per logout, the largest single part of
-- the archive row's cost. A body quarantined because PostgreSQL refused its batch is now kept
-- as it is too, not wrapped in a JSON string, so `zegolog quarantine release` can read it back.
--
-- To query the fields, cast: `body::jsonb ->> 'room_id'`. The rewrite takes time in
-- proportion to the archive (measured: 419,698 rows, 436 MB with indexes, in 5.8 s on the
-- 2-core benchmark machine); `zegolog serve` applies it before it listens, so the sender
-- retries meanwhile.

ALTER TABLE callback_events ALTER COLUMN body TYPE text USING body::text;

COMMENT ON COLUMN callback_events.body IS
    'The decoded callback fields as JSON text, as sent (JSON values, or form values URL-decoded); query them with body::jsonb.';
