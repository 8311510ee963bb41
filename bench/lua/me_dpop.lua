-- GET /v1/me with DPoP-bound tokens: BENCH_TOKENS_FILE holds lines
-- "<access token> <proof>" (from `portcullis bench dpop-proofs --tokens`),
-- each proof with ath of its token and a fresh jti. wrk cannot sign ES256,
-- so the proofs are signed before the run; each is used once (a second use
-- is a replay: 401, counted as an error). Each thread takes its share of
-- the lines.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local lines = {}
local n = 0

function init(args)
   local me, all = id or 0, nthreads or 1
   for i, line in ipairs(read_lines(os.getenv("BENCH_TOKENS_FILE"))) do
      if (i - 1) % all == me then table.insert(lines, line) end
   end
end

function request()
   n = n + 1
   local line = lines[((n - 1) % #lines) + 1]
   local token, proof = string.match(line, "^(%S+) (%S+)$")
   return wrk.format("GET", "/v1/me", { ["Authorization"] = "DPoP " .. token, ["DPoP"] = proof })
end

function response(status, headers, body)
   if status < 200 or status > 299 then bad = bad + 1 end
end
