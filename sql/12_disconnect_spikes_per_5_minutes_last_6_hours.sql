-- 12_disconnect_spikes_per_5_minutes_last_6_hours.sql
--
-- Who runs it: on-call, during an incident ("are users being dropped right now, and since when?").
-- What it answers: per 5-minute bucket, app and logout reason over the last 6 hours: logouts, all
--   logouts of the bucket, the reason's share of them, its share over the whole 6 hours (the
--   baseline) and the lift (share / baseline). `incident` marks the buckets where drops
--   (heartbeat_timeout, connection_lost) are at least twice as frequent as usual, on enough
--   logouts to mean something. Newest bucket first.
-- Source: function logout_reasons_between(appid, from, to, bucket).
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   lookback     interval '6 hours'    time window, ending now (also the baseline's window).
--   bucket       interval '5 minutes'  bucket width: interval '1 minute' during an incident,
--                                      interval '1 hour' for a day. Aligned on the midnights
--                                      of the reporting time zone.
--   min_lift     2                     incident when share >= min_lift x baseline share ...
--   min_logouts  5                     ... and the bucket has at least this many such logouts.
--   app          NULL                  NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--
-- Notes: buckets or reasons without logouts are absent. The current bucket is partial.
--   Run with: psql -f sql/12_disconnect_spikes_per_5_minutes_last_6_hours.sql
WITH params AS (
    SELECT
        interval '6 hours' AS lookback,   -- PARAMETER: time window, ending now
        interval '5 minutes' AS bucket,   -- PARAMETER: bucket width
        2.0 AS min_lift,                  -- PARAMETER: lift that flags an incident
        5 AS min_logouts,                 -- PARAMETER: fewest logouts that can flag an incident
        NULL::bigint AS app               -- PARAMETER: NULL = all apps, or an appid
)
SELECT
    r.bucket_start,
    r.appid,
    r.reason,
    r.logouts,
    r.bucket_logouts,
    round(r.share::numeric, 4)::double precision AS share,
    round(r.window_share::numeric, 4)::double precision AS baseline_share,
    round(r.lift::numeric, 2)::double precision AS lift,
    r.reason IN ('heartbeat_timeout', 'connection_lost')
        AND r.lift >= p.min_lift
        AND r.logouts >= p.min_logouts AS incident
FROM params AS p
CROSS JOIN LATERAL logout_reasons_between(p.app, now() - p.lookback, now() + interval '1 second', p.bucket) AS r
ORDER BY r.bucket_start DESC, r.appid, r.logouts DESC, r.reason;
