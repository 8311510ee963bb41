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
extra = 0      -- once.lua, collect.lua: requests after a thread ran out of work (not counted)
stopped_us = 0 -- once.lua, collect.lua: when this thread ran out of work (0: never)

-- Wall clock in microseconds (LuaJIT's FFI; os.time() has 1 s resolution).
local ffi_ok, ffi = pcall(require, "ffi")
if ffi_ok then
   ffi_ok = pcall(ffi.cdef, "typedef struct { long tv_sec; long tv_usec; } bench_timeval; int gettimeofday(bench_timeval *tv, void *tz);")
end
function now_us()
   if ffi_ok then
      local tv = ffi.new("bench_timeval")
      ffi.C.gettimeofday(tv, nil)
      return tonumber(tv.tv_sec) * 1e6 + tonumber(tv.tv_usec)
   end
   return os.time() * 1e6
end
local started_us = now_us()

-- A thread with nothing left to send (single-use credentials spent): it
-- notes when, stops, and sends one harmless request (wrk wants one).
function out_of_work()
   if stopped_us == 0 then stopped_us = now_us() end
   extra = extra + 1
   wrk.thread:stop()
   return wrk.format("GET", "/healthz")
end

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
   local counted_bad, counted_fallbacks, counted_extra, last_stop, all_stopped = 0, 0, 0, 0, true
   for _, t in ipairs(threads) do
      counted_bad = counted_bad + (t:get("bad") or 0)
      counted_fallbacks = counted_fallbacks + (t:get("fallbacks") or 0)
      counted_extra = counted_extra + (t:get("extra") or 0)
      local s = t:get("stopped_us") or 0
      if s == 0 then all_stopped = false elseif s > last_stop then last_stop = s end
   end
   local non2xx = math.max(e.status, counted_bad)
   local socket = e.connect + e.read + e.write + e.timeout
   local secs = summary.duration / 1e6
   -- Every thread ran out of work before -d ended: the work took until the
   -- last one stopped (wrk itself still waits for -d).
   if all_stopped and last_stop > started_us then secs = math.min(secs, (last_stop - started_us) / 1e6) end
   local reqs = summary.requests - counted_extra
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_s=%.3f rps=%.2f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f non2xx=%d socket_errors=%d errors=%d fallback_logins=%d ran_out=%s\n",
      reqs, secs, reqs / secs,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      latency:percentile(99.9) / 1000, latency.max / 1000,
      non2xx, socket, non2xx + socket, counted_fallbacks, all_stopped and "yes" or "no"))
end
