-- POST /v1/sessions with the correct password for a random seeded user
-- user{i}@bench.test, i in [0, BENCH_USERS).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local users

function init(args)
   seed_random()
   users = tonumber(os.getenv("BENCH_USERS") or "1")
end

function request()
   return json_post("/v1/sessions", login_body(math.random(0, users - 1)))
end
