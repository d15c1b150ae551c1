-- Raw store of every authenticated callback and the normalised room logouts.
--
-- Numbering: migrations are applied in order by `zegolog migrate` (and at `zegolog serve` start);
-- a migration that has landed is never edited, a change is a new file.

-- Every authenticated callback of any event, once per distinct business content.
-- `digest` is SHA-256 over the callback's fields except timestamp, nonce and signature
-- (see src/callback.rs, `business_digest`), so a retry with a new signature lands on the same row.
CREATE TABLE callback_events (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest         bytea       NOT NULL,
    event          text        NOT NULL,
    appid          bigint      NOT NULL,
    body           jsonb       NOT NULL,
    content_type   text        NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    -- Set when an authentic event could not be normalised (say a room_logout whose logout_time
    -- is "abc"): the sender proved it sent it, so it is kept, but it is in no typed table.
    refused_reason text,
    CONSTRAINT callback_events_digest_key UNIQUE (digest)
);

CREATE INDEX callback_events_event_received_idx ON callback_events (event, received_at);
CREATE INDEX callback_events_refused_idx ON callback_events (received_at) WHERE refused_reason IS NOT NULL;

COMMENT ON TABLE callback_events IS
    'Every authenticated ZEGOCLOUD callback, any event, once per distinct business content (retries collapse).';
COMMENT ON COLUMN callback_events.body IS 'The decoded callback fields, as sent (JSON values, or form values URL-decoded).';
COMMENT ON COLUMN callback_events.refused_reason IS 'Why an authentic callback could not be normalised (quarantined); NULL when it was.';

-- One row per user logout (event room_logout).
CREATE TABLE room_logouts (
    id              bigint        GENERATED ALWAYS AS IDENTITY,
    appid           bigint        NOT NULL,
    room_id         text          NOT NULL,
    -- u64 ids are numeric(20,0): bigint cannot hold values above 2^63, floats lose digits.
    room_seq        numeric(20,0) CHECK (room_seq BETWEEN 0 AND 18446744073709551615),
    user_account    text          NOT NULL,
    user_nickname   text,
    session_id      numeric(20,0) NOT NULL CHECK (session_id BETWEEN 0 AND 18446744073709551615),
    login_time      timestamptz   NOT NULL,
    logout_time     timestamptz   NOT NULL,
    reason          integer,
    user_role       integer,
    user_update_seq bigint,
    received_at     timestamptz   NOT NULL DEFAULT now(),
    -- The natural key of a logout. session_id alone is not enough: vendor samples send "0",
    -- and two users of one room can log out in the same millisecond.
    CONSTRAINT room_logouts_natural_key UNIQUE (appid, session_id, logout_time, room_id, user_account)
);

CREATE INDEX room_logouts_appid_logout_idx ON room_logouts (appid, logout_time);
CREATE INDEX room_logouts_room_idx ON room_logouts (appid, room_id, logout_time);
CREATE INDEX room_logouts_user_idx ON room_logouts (appid, user_account, logout_time);

COMMENT ON TABLE room_logouts IS 'One row per ZEGOCLOUD room_logout callback, stored exactly once.';
COMMENT ON COLUMN room_logouts.reason IS '0 normal, 1 heartbeat timeout (business layer), 2 connection lost (access layer), 3 kicked out, 4 token expired.';
COMMENT ON COLUMN room_logouts.user_role IS '1 host, 2 audience, 4 admin (bots); meaningful with the LiveRoom SDK only.';
