-- The incident view (issue 9): over the last hours of one app, in 1- or 5-minute buckets,
-- logouts by reason with each reason's lift against its usual share, users online, and the
-- rooms and users with the most abnormal disconnects. `/dashboard/incident` and
-- `zegolog report --last` read these functions; analysts can call them too.
--
-- Functions (a half-open window [p_from, p_to) of one app; buckets aligned on UTC midnight):
--   reason_usual_shares(appid, before, days)          each reason's share of the app's logouts
--                                                     over the `days` whole UTC days before the
--                                                     day of `before`: the usual share;
--   incident_reasons(appid, from, to, bucket)         logouts per bucket and reason, the
--                                                     reason's share of the bucket, its usual
--                                                     share and the lift (share / usual share);
--   incident_users_online(appid, from, to, bucket)    most and fewest users online in a minute
--                                                     of each bucket (users_online of 0004);
--   abnormal_rooms_between(appid, from, to, limit)    rooms with the most abnormal disconnects
--   abnormal_users_between(appid, from, to, limit)    (reasons 1-4), by reason.
--
-- "Usual" is the 7 whole UTC days before the day the window starts, read from the daily rollups
-- (logout_reasons_daily), so it costs the same at any volume and never contains the window
-- itself: an incident does not raise its own baseline. A reason the app did not have in those
-- days has a NULL usual share and a NULL lift (new), as has every reason of an app without
-- logouts in those days.
--
-- Speed (README, "Query benchmark"): a 24-hour window of the busiest app at 10 million
-- logouts is about 180,000 logouts. The two indexes below let every function read them from an
-- index alone (an index-only scan, no heap visit), in logout_time order, and read only the
-- abnormal ones (about a fifth) for the rooms and users.

-- Logouts of an app in a window, with their reason: an index-only scan for incident_reasons.
-- It holds what room_logouts_appid_logout_idx (0003) holds, plus the reason.
CREATE INDEX room_logouts_appid_logout_reason_idx ON room_logouts (appid, logout_time) INCLUDE (reason);

-- The abnormal logouts of an app in a window, with room and user: rooms and users.
CREATE INDEX room_logouts_abnormal_idx ON room_logouts (appid, logout_time)
    INCLUDE (reason, room_id, user_account) WHERE reason BETWEEN 1 AND 4;

CREATE FUNCTION reason_usual_shares(p_appid bigint, p_before timestamptz, p_days integer DEFAULT 7)
RETURNS TABLE (reason text, logouts bigint, usual_share double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT d.reason, sum(d.logouts)::bigint,
           (sum(d.logouts) / sum(sum(d.logouts)) OVER ())::double precision
    FROM logout_reasons_daily AS d
    WHERE d.appid = p_appid
      AND d.day >= (p_before AT TIME ZONE 'UTC')::date - p_days
      AND d.day < (p_before AT TIME ZONE 'UTC')::date
    GROUP BY d.reason
    ORDER BY d.reason;
$$;

COMMENT ON FUNCTION reason_usual_shares(bigint, timestamptz, integer) IS
    'Each reason''s logouts and share of app p_appid''s logouts over the p_days (default 7) whole UTC days before the UTC day of p_before: the usual share the incident view measures lift against.';

CREATE FUNCTION incident_reasons(p_appid bigint, p_from timestamptz, p_to timestamptz,
                                 p_bucket interval DEFAULT interval '1 minute')
RETURNS TABLE (bucket_start timestamptz, reason text, logouts bigint, bucket_logouts bigint,
               share double precision, usual_share double precision, lift double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    WITH per_bucket AS (
        -- One group per bucket, a count per reason code: a hash of 1,440 groups at most, which
        -- is faster than grouping on (bucket, reason); unpivoted below.
        SELECT date_bin(p_bucket, l.logout_time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket_start,
               count(*) FILTER (WHERE l.reason = 0) AS n0,
               count(*) FILTER (WHERE l.reason = 1) AS n1,
               count(*) FILTER (WHERE l.reason = 2) AS n2,
               count(*) FILTER (WHERE l.reason = 3) AS n3,
               count(*) FILTER (WHERE l.reason = 4) AS n4,
               count(*) AS n
        FROM room_logouts AS l
        WHERE l.appid = p_appid AND l.logout_time >= p_from AND l.logout_time < p_to
        GROUP BY 1
    ), decoded AS (
        SELECT b.bucket_start, r.reason, r.logouts
        FROM per_bucket AS b
        CROSS JOIN LATERAL (VALUES
            (zegolog_reason_name(0), b.n0), (zegolog_reason_name(1), b.n1),
            (zegolog_reason_name(2), b.n2), (zegolog_reason_name(3), b.n3),
            (zegolog_reason_name(4), b.n4),
            (zegolog_reason_name(NULL), b.n - b.n0 - b.n1 - b.n2 - b.n3 - b.n4)
        ) AS r(reason, logouts)
        WHERE r.logouts > 0
    ), usual AS (
        SELECT u.reason, u.usual_share FROM reason_usual_shares(p_appid, p_from) AS u
    )
    SELECT d.bucket_start, d.reason, d.logouts::bigint,
           (sum(d.logouts) OVER w)::bigint,
           (d.logouts / sum(d.logouts) OVER w)::double precision,
           u.usual_share,
           (d.logouts / sum(d.logouts) OVER w)::double precision / nullif(u.usual_share, 0)
    FROM decoded AS d
    LEFT JOIN usual AS u ON u.reason = d.reason
    WINDOW w AS (PARTITION BY d.bucket_start)
    ORDER BY d.bucket_start, d.reason;
$$;

COMMENT ON FUNCTION incident_reasons(bigint, timestamptz, timestamptz, interval) IS
    'Logouts of app p_appid in [p_from, p_to) per bucket of p_bucket (aligned on UTC midnight) and decoded reason: logouts, all logouts of the bucket, share of the bucket, usual share (reason_usual_shares before p_from) and lift = share / usual share (NULL without a usual share). Buckets and reasons without logouts have no row.';

CREATE FUNCTION incident_users_online(p_appid bigint, p_from timestamptz, p_to timestamptz,
                                      p_bucket interval DEFAULT interval '1 minute')
RETURNS TABLE (bucket_start timestamptz, users_online bigint, fewest_online bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT date_bin(p_bucket, o.minute, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
           max(o.users_online)::bigint, min(o.users_online)::bigint
    FROM users_online(p_appid, p_from, p_to) AS o
    GROUP BY 1
    ORDER BY 1;
$$;

COMMENT ON FUNCTION incident_users_online(bigint, timestamptz, timestamptz, interval) IS
    'Per bucket of p_bucket in [p_from, p_to): the most (users_online) and the fewest sessions online in app p_appid in any UTC minute of the bucket, as users_online(appid, from, to) counts them.';

CREATE FUNCTION abnormal_rooms_between(p_appid bigint, p_from timestamptz, p_to timestamptz,
                                       p_limit integer DEFAULT 10)
RETURNS TABLE (room_id text, abnormal bigint, heartbeat_timeout bigint, connection_lost bigint,
               kicked_out bigint, token_expired bigint, users bigint, last_abnormal_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT l.room_id, count(*),
           count(*) FILTER (WHERE l.reason = 1), count(*) FILTER (WHERE l.reason = 2),
           count(*) FILTER (WHERE l.reason = 3), count(*) FILTER (WHERE l.reason = 4),
           count(DISTINCT l.user_account), max(l.logout_time)
    FROM room_logouts AS l
    WHERE l.appid = p_appid AND l.logout_time >= p_from AND l.logout_time < p_to
      AND l.reason BETWEEN 1 AND 4
    GROUP BY l.room_id
    ORDER BY 2 DESC, 1
    LIMIT p_limit;
$$;

COMMENT ON FUNCTION abnormal_rooms_between(bigint, timestamptz, timestamptz, integer) IS
    'The p_limit rooms of app p_appid with the most abnormal logouts (reason 1 heartbeat_timeout, 2 connection_lost, 3 kicked_out, 4 token_expired) in [p_from, p_to), with the count of each, the users concerned and the last one.';

CREATE FUNCTION abnormal_users_between(p_appid bigint, p_from timestamptz, p_to timestamptz,
                                       p_limit integer DEFAULT 10)
RETURNS TABLE (user_account text, abnormal bigint, heartbeat_timeout bigint, connection_lost bigint,
               kicked_out bigint, token_expired bigint, rooms bigint, last_abnormal_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT l.user_account, count(*),
           count(*) FILTER (WHERE l.reason = 1), count(*) FILTER (WHERE l.reason = 2),
           count(*) FILTER (WHERE l.reason = 3), count(*) FILTER (WHERE l.reason = 4),
           count(DISTINCT l.room_id), max(l.logout_time)
    FROM room_logouts AS l
    WHERE l.appid = p_appid AND l.logout_time >= p_from AND l.logout_time < p_to
      AND l.reason BETWEEN 1 AND 4
    GROUP BY l.user_account
    ORDER BY 2 DESC, 1
    LIMIT p_limit;
$$;

COMMENT ON FUNCTION abnormal_users_between(bigint, timestamptz, timestamptz, integer) IS
    'The p_limit users of app p_appid with the most abnormal logouts (reasons 1-4) in [p_from, p_to), with the count of each, the rooms concerned and the last one.';

-- Rights as in 0004: run as their owner; granted by `zegolog grant-analyst` like the views.
REVOKE EXECUTE ON FUNCTION
    reason_usual_shares(bigint, timestamptz, integer),
    incident_reasons(bigint, timestamptz, timestamptz, interval),
    incident_users_online(bigint, timestamptz, timestamptz, interval),
    abnormal_rooms_between(bigint, timestamptz, timestamptz, integer),
    abnormal_users_between(bigint, timestamptz, timestamptz, integer)
FROM PUBLIC;
