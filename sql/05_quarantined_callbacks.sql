-- 05_quarantined_callbacks.sql
--
-- Who runs it: the zegolog maintainer / on-call, when the refused-callbacks count is not zero or
--   a customer says a logout is missing.
-- What it answers: the authentic callbacks of the last 7 days that could not be normalised
--   (callback_events.refused_reason is set), newest first: what was refused, why, and the body
--   exactly as received, to decide whether the parser or the sender is at fault.
-- Source: table callback_events (the raw store; quarantined events are in no view).
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   lookback  interval '7 days'  time window by received_at, ending now; e.g. interval '30 days'.
--   app       NULL               NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--   event     NULL               NULL = every event; or an event name, e.g. 'room_logout'.
--   LIMIT     200                at most this many callbacks (last line).
--
-- Notes: each row is one distinct business content (retries of it collapse into one row).
--   A refused_reason starting with 'signature reuse:' is a body whose (timestamp, nonce,
--   signature) came first with another body (digest named in the reason): a forged body, or two
--   callbacks that shared a nonce by chance. `zegolog quarantine release ID` lets a genuine one in.
--   body is jsonb; in psql, \x on (expanded display) makes long bodies readable.
--   Run with: psql -f sql/05_quarantined_callbacks.sql
WITH params AS (
    SELECT
        interval '7 days' AS lookback,  -- PARAMETER: time window, ending now
        NULL::bigint AS app,            -- PARAMETER: NULL = all apps, or an appid
        NULL::text AS event             -- PARAMETER: NULL = all events, or e.g. 'room_logout'
)
SELECT
    e.id,
    e.received_at,
    e.appid,
    e.event,
    e.refused_reason,
    e.content_type,
    e.body
FROM callback_events AS e
CROSS JOIN params AS p
WHERE e.refused_reason IS NOT NULL
    AND e.received_at >= now() - p.lookback
    AND (p.app IS NULL OR e.appid = p.app)
    AND (p.event IS NULL OR e.event = p.event)
ORDER BY e.received_at DESC, e.id DESC
-- PARAMETER: maximum number of callbacks listed
LIMIT 200;
