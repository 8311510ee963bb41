-- GET /bench/floor: the empty endpoint of `portcullis bench floor`, behind
-- the real route tree and middleware (the floor row).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local req

function init(args)
   req = wrk.format("GET", "/bench/floor")
end

function request()
   return req
end
