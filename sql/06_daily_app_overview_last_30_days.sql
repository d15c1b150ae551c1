-- 06_daily_app_overview_last_30_days.sql
--
-- Who runs it: product / management, for a daily health report per app (e.g. a dashboard).
-- What it answers: per day (in the reporting time zone, zegolog_time_zone()) and app: sessions, total hours, median / p90 / p99 / longest
--   session in seconds, and which share of the logouts were normal, dropped (heartbeat_timeout
--   or connection_lost), kicked_out, token_expired or unknown.
-- Source: views session_duration_daily and logout_reasons_daily.
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   lookback  interval '30 days'  how many days (of the reporting time zone) before today to cover (today so far is
--                                 included); e.g. interval '90 days'.
--   app       NULL                NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--
-- Notes: day is the day of the logout in the reporting time zone; a session counts on the day it ended. The five shares
--   of a row sum to 1 (up to rounding). Days without any session are absent.
--   Run with: psql -f sql/06_daily_app_overview_last_30_days.sql
WITH params AS (
    SELECT
        interval '30 days' AS lookback,  -- PARAMETER: days before today to cover
        NULL::bigint AS app              -- PARAMETER: NULL = all apps, or an appid
),
days AS (
    SELECT
        ((now() AT TIME ZONE zegolog_time_zone()) - p.lookback)::date AS first_day,
        p.app
    FROM params AS p
),
reasons AS (
    SELECT
        r.day,
        r.appid,
        sum(r.share) FILTER (WHERE r.reason = 'normal') AS normal,
        sum(r.share) FILTER (WHERE r.reason IN ('heartbeat_timeout', 'connection_lost')) AS dropped,
        sum(r.share) FILTER (WHERE r.reason = 'kicked_out') AS kicked,
        sum(r.share) FILTER (WHERE r.reason = 'token_expired') AS token_expired,
        sum(r.share) FILTER (WHERE r.reason = 'unknown') AS unknown
    FROM logout_reasons_daily AS r
    CROSS JOIN days AS w
    WHERE r.day >= w.first_day
        AND (w.app IS NULL OR r.appid = w.app)
    GROUP BY r.day, r.appid
)
SELECT
    d.day,
    d.appid,
    d.sessions,
    round((d.total_minutes / 60)::numeric, 2)::double precision AS total_hours,
    round(d.p50_s::numeric, 3)::double precision AS p50_s,
    round(d.p90_s::numeric, 3)::double precision AS p90_s,
    round(d.p99_s::numeric, 3)::double precision AS p99_s,
    round(d.max_s::numeric, 3)::double precision AS max_s,
    round(coalesce(r.normal, 0)::numeric, 4)::double precision AS normal_share,
    round(coalesce(r.dropped, 0)::numeric, 4)::double precision AS dropped_share,
    round(coalesce(r.kicked, 0)::numeric, 4)::double precision AS kicked_share,
    round(coalesce(r.token_expired, 0)::numeric, 4)::double precision AS token_expired_share,
    round(coalesce(r.unknown, 0)::numeric, 4)::double precision AS unknown_share
FROM session_duration_daily AS d
CROSS JOIN days AS w
LEFT JOIN reasons AS r ON r.day = d.day AND r.appid = d.appid
WHERE d.day >= w.first_day
    AND (w.app IS NULL OR d.appid = w.app)
ORDER BY d.day DESC, d.appid;
