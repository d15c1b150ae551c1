-- 09_open_sessions.sql
--
-- Who runs it: support / on-call, for "who is in this room right now?", or to find logouts that
--   never came.
-- What it answers: the logins of the last 24 hours that have no logout yet (no logout of the same
--   appid, room, user and session at or after the login), newest first, with how long they have
--   been open, leaving out the lifecycles whose room was closed.
-- Source: view open_sessions.
--
-- Parameters (edit the lines marked PARAMETER in the params CTE below):
--   max_age        interval '24 hours'  leave out logins older than this (their logout was most
--                                       likely lost); e.g. interval '2 hours'.
--   app            NULL                 NULL = every app; put an appid to restrict, e.g. 1234567890::bigint.
--   room           NULL                 NULL = every room; or a room id, e.g. 'rid_1242649'.
--   closed_rooms   false                true = also list sessions of room lifecycles already closed.
--   LIMIT          500                  at most this many sessions (last line).
--
-- Notes: to find lost logouts instead, set max_age to interval '30 days' and keep the rows where
--   stale is true. session_id is shown as text (u64). Run with: psql -f sql/09_open_sessions.sql
WITH params AS (
    SELECT
        interval '24 hours' AS max_age,  -- PARAMETER: oldest login listed
        NULL::bigint AS app,             -- PARAMETER: NULL = all apps, or an appid
        NULL::text AS room,              -- PARAMETER: NULL = all rooms, or a room id
        false AS closed_rooms            -- PARAMETER: true = include closed room lifecycles
), apps AS MATERIALIZED (
    -- The apps, listed once before the query (on Citus, on the coordinator: a function in the
    -- query itself would run on the shards, where it may not read the distributed tables).
    SELECT CASE WHEN p.app IS NULL THEN zegolog_appids() ELSE ARRAY[p.app] END AS ids
    FROM params AS p
)
SELECT
    s.appid,
    s.room_id,
    s.room_name,
    s.user_account,
    s.user_nickname,
    s.role,
    s.session_id::text AS session_id,
    s.login_at,
    date_trunc('second', s.age) AS open_for,
    s.stale,
    s.room_closed
FROM open_sessions AS s
CROSS JOIN params AS p
WHERE s.login_at >= now() - p.max_age
    AND s.appid = ANY ((SELECT a.ids FROM apps AS a)::bigint[])
    AND (p.room IS NULL OR s.room_id = p.room)
    AND (p.closed_rooms OR NOT s.room_closed)
ORDER BY s.login_at DESC, s.appid, s.room_id, s.user_account
-- PARAMETER: maximum number of sessions listed
LIMIT 500;
