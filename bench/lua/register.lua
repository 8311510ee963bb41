-- POST /v1/users with a unique email per request:
-- r<BENCH_RUN_ID>-t<thread>-<counter>@bench.test.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local counter = 0
local run

function init(args)
   run = os.getenv("BENCH_RUN_ID") or tostring(os.time())
end

function request()
   counter = counter + 1
   local body = string.format(
      '{"email":"r%s-t%d-%d@bench.test","password":"%s"}', run, id or 0, counter, BENCH_PASSWORD)
   return json_post("/v1/users", body)
end
