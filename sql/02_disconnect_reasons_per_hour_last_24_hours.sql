-- 02_disconnect_reasons_per_hour_last_24_hours.sql
--
-- Who runs it: on-call / operations, during or after an incident ("did users drop out, and why?").
-- What it answers: per hour (of the reporting time zone), app and logout reason: number of
--   logouts and that reason's share of the app's logouts in that hour. A jump in heartbeat_timeout or connection_lost shares
--   points at network or client problems; kicked_out at backend calls; token_expired at tokens.
-- Source: view session_durations.
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   lookback  interval '24 hours'  how many whole hours before the current one to cover; the
--                                  current (incomplete) hour is included too. E.g. interval '6 hours'.
--   app       NULL                 NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--
-- Notes: hours are those of the reporting time zone (zegolog_time_zone()); hour_start is a
--   timestamptz, shown in your session time zone.
--   Hours without any logout are absent. share is between 0 and 1 and sums to 1 per app and hour.
--   Run with: psql -f sql/02_disconnect_reasons_per_hour_last_24_hours.sql
WITH params AS (
    SELECT
        interval '24 hours' AS lookback,  -- PARAMETER: whole hours to cover before the current hour
        NULL::bigint AS app               -- PARAMETER: NULL = all apps, or an appid
)
SELECT
    date_trunc('hour', s.logout_at, zegolog_time_zone()) AS hour_start,
    s.appid,
    s.reason,
    count(*) AS logouts,
    round(
        count(*)::numeric / sum(count(*)) OVER (PARTITION BY date_trunc('hour', s.logout_at, zegolog_time_zone()), s.appid),
        4
    )::double precision AS share
FROM session_durations AS s
CROSS JOIN params AS p
WHERE s.logout_at >= date_trunc('hour', now(), zegolog_time_zone()) - p.lookback
    AND (p.app IS NULL OR s.appid = p.app)
GROUP BY date_trunc('hour', s.logout_at, zegolog_time_zone()), s.appid, s.reason
ORDER BY hour_start DESC, s.appid, logouts DESC, s.reason;
