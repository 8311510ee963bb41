-- Shared by every benchmark script (loaded with dofile from each one).
-- wrk runs the script once in its main Lua state (setup, done) and once per
-- thread (init, request, response); the states share nothing, so per-thread
-- counters are read back in done() through the thread objects kept in setup().

BENCH_PASSWORD = "correct horse battery staple 42"

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   thread:set("nthreads", tonumber(os.getenv("BENCH_THREADS") or "1"))
   next_id = next_id + 1
   table.insert(threads, thread)
end

-- Per-thread counters, updated by scripts that define response().
bad = 0        -- responses with a status outside 2xx
fallbacks = 0  -- refresh.lua: logins made because its token queue ran dry

function seed_random()
   math.randomseed(os.time() * 100 + (id or 0) * 7919)
   math.random(); math.random()
end

function read_lines(path)
   local out = {}
   if path == nil or path == "" then return out end
   local f = io.open(path, "r")
   if f == nil then return out end
   for line in f:lines() do
      if line ~= "" then table.insert(out, line) end
   end
   f:close()
   return out
end

function json_post(path, body, extra_headers)
   local headers = { ["Content-Type"] = "application/json" }
   if extra_headers then
      for k, v in pairs(extra_headers) do headers[k] = v end
   end
   return wrk.format("POST", path, headers, body)
end

function login_body(i)
   return string.format('{"email":"user%d@bench.test","password":"%s"}', i, BENCH_PASSWORD)
end

-- One machine-readable line; bench/run.sh parses it. Latencies in ms.
-- non2xx: wrk counts statuses >= 400; scripts with response() also count
-- every non-2xx themselves, and the larger of the two is reported.
function done(summary, latency, requests)
   local e = summary.errors
   local counted_bad, counted_fallbacks = 0, 0
   for _, t in ipairs(threads) do
      counted_bad = counted_bad + (t:get("bad") or 0)
      counted_fallbacks = counted_fallbacks + (t:get("fallbacks") or 0)
   end
   local non2xx = math.max(e.status, counted_bad)
   local socket = e.connect + e.read + e.write + e.timeout
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_s=%.3f rps=%.2f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f non2xx=%d socket_errors=%d errors=%d fallback_logins=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      latency:percentile(99.9) / 1000, latency.max / 1000,
      non2xx, socket, non2xx + socket, counted_fallbacks))
end
