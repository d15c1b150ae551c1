-- The rooms (or users) with the most abnormal disconnects over a range of days, for
-- `zegolog report`. A template: `views::days::offenders` fills in the key column (room_id or
-- user_account), the appid filter (empty or ` AND appid = $3`) and the LIMIT's parameter ($3,
-- or $4 after the appid).
SELECT appid, {column} AS key,
       count(*) FILTER (WHERE reason <> 'normal') AS abnormal,
       count(*) AS logouts,
       count(*) FILTER (WHERE reason = 'heartbeat_timeout') AS heartbeat_timeout,
       count(*) FILTER (WHERE reason = 'connection_lost') AS connection_lost,
       count(*) FILTER (WHERE reason = 'kicked_out') AS kicked_out,
       count(*) FILTER (WHERE reason = 'token_expired') AS token_expired,
       count(*) FILTER (WHERE reason NOT IN ('normal', 'heartbeat_timeout',
           'connection_lost', 'kicked_out', 'token_expired')) AS unknown,
       max(logout_at) FILTER (WHERE reason <> 'normal') AS last_abnormal_at
FROM session_durations
WHERE logout_at >= $1::date::timestamp AT TIME ZONE zegolog_time_zone()
  AND logout_at < ($2::date + 1)::timestamp AT TIME ZONE zegolog_time_zone(){filter}
GROUP BY appid, {column}
HAVING count(*) FILTER (WHERE reason <> 'normal') > 0
ORDER BY abnormal DESC, appid, key
LIMIT {limit}
