-- wrk script for comparing loaders: unique room_logout bodies (a new session_id per request,
-- per thread), as JSON. Unsigned: run zegolog with --insecure-skip-verify for it. Used by the
-- loader comparison in docs/benchmarks.md:
--   wrk -t1 -c64 -d15s -s bench/wrk-logouts.lua http://127.0.0.1:8080/zego/callback
local counter = 0
local thread_base = 0

function setup(thread)
  thread:set("thread_base", math.random(1, 2000000000) * 1000000)
end

function init(args)
  thread_base = tonumber(thread_base) or (math.random(1, 2000000000) * 1000000)
end

local headers = { ["Content-Type"] = "application/json" }

function request()
  counter = counter + 1
  local now = os.time() * 1000
  local body = string.format(
    '{"event":"room_logout","appid":"1","room_id":"room-%d","room_seq":"%d",' ..
    '"user_account":"user-%d","user_nickname":"nick %d","session_id":"%d",' ..
    '"login_time":"%d","logout_time":"%d","reason":"%d","user_role":"2",' ..
    '"user_update_seq":"13","timestamp":"%d","nonce":"%d","signature":"x"}',
    counter % 50, thread_base + counter, counter, counter, thread_base + counter,
    now - 300000, now, counter % 5, math.floor(now / 1000), counter)
  return wrk.format("POST", nil, headers, body)
end
