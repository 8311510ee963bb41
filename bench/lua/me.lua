-- GET /v1/me with bearer tokens read from BENCH_TOKENS_FILE (one access
-- token a line, of different users), each thread cycling from its own offset.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local reqs = {}
local n = 0

function init(args)
   for _, token in ipairs(read_lines(os.getenv("BENCH_TOKENS_FILE"))) do
      table.insert(reqs, wrk.format("GET", "/v1/me", { ["Authorization"] = "Bearer " .. token }))
   end
   n = id or 0
end

function request()
   n = n + 1
   return reqs[(n % #reqs) + 1]
end
