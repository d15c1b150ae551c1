-- zegolog's own alert webhook (issue 21, src/notifier.rs): every minute `serve` looks for
-- disconnect spikes with the incident view's rule (incident_reasons, and the spike rule of
-- src/views/incident.rs) and POSTs one message when a spike starts and one when it ends.
--
-- One row per spike of one app and reason. Several instances on one database share it: only
-- the instance holding the advisory lock hashtext('zegolog_alert_spikes') evaluates and sends
-- in a given minute, and the partial unique index allows one open spike per app and reason
-- whatever happens, so a spike is announced once, not once per instance. A message is kept in
-- its row until delivered (start_sent_at, end_sent_at), so that the next minute, or another
-- instance if this one stops, retries it.
--
-- Written by the notifier only; read by nobody else (not granted to the analyst). Rows of
-- spikes that ended more than 30 days ago are deleted by the notifier.

CREATE TABLE alert_spikes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appid         bigint      NOT NULL,
    reason        text        NOT NULL,
    started_at    timestamptz NOT NULL,
    -- NULL while the spike lasts.
    ended_at      timestamptz,
    -- The highest share and lift seen while it lasted, for the end message.
    peak_share    double precision NOT NULL,
    peak_lift     double precision,
    -- The messages as sent (the webhook's JSON body), kept until delivered.
    start_message jsonb       NOT NULL,
    end_message   jsonb,
    start_sent_at timestamptz,
    end_sent_at   timestamptz,
    -- Failed deliveries of the pending message, and the last failure (no URL in it).
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    CHECK (ended_at IS NOT NULL OR end_message IS NULL)
);

CREATE UNIQUE INDEX alert_spikes_one_open ON alert_spikes (appid, reason) WHERE ended_at IS NULL;

COMMENT ON TABLE alert_spikes IS
    'Disconnect spikes announced by the alert webhook (--alert-webhook-url): one row per spike of one app and logout reason, with the start and end messages and when each was delivered.';

REVOKE ALL ON alert_spikes FROM PUBLIC;
