-- Requests whose answers a later run uses: each thread appends one line per
-- answer to BENCH_COLLECT_FILE.<thread id>. BENCH_COLLECT_KIND:
--   nonce      POST /v1/federation/nonce → the nonce
--   authorize  GET BENCH_AUTHORIZE_PATH with one of the browser-session cookies of
--              BENCH_COOKIES_FILE (round robin) → the code of the 303 to the client
--   email      POST /v1/sessions/email for user{i}@bench.test, each i in
--              [BENCH_FIRST, BENCH_FIRST + BENCH_COUNT) once (shared among threads);
--              nothing kept: the mails land in the outbox. The thread stops when done.
-- Any answer outside 2xx/303 (or a 303 without a code) counts as an error.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local kind, out, path
local cookies, n = {}, 0
local next_i, last_i

function init(args)
   kind = os.getenv("BENCH_COLLECT_KIND")
   local me, all = id or 0, nthreads or 1
   if kind ~= "email" then
      out = io.open(os.getenv("BENCH_COLLECT_FILE") .. "." .. me, "a")
      out:setvbuf("line")
   end
   path = os.getenv("BENCH_AUTHORIZE_PATH")
   cookies = read_lines(os.getenv("BENCH_COOKIES_FILE"))
   local first = tonumber(os.getenv("BENCH_FIRST") or "0")
   next_i = first + me
   last_i = first + tonumber(os.getenv("BENCH_COUNT") or "0") - 1
   step = all
end

function request()
   n = n + 1
   if kind == "nonce" then
      return wrk.format("POST", "/v1/federation/nonce")
   elseif kind == "authorize" then
      return wrk.format("GET", path, { ["Cookie"] = cookies[(n % #cookies) + 1] })
   elseif kind == "email" then
      if next_i > last_i then return out_of_work() end
      local i = next_i
      next_i = next_i + step
      return json_post("/v1/sessions/email", '{"email":"user' .. i .. '@bench.test"}')
   end
   error("BENCH_COLLECT_KIND: unknown kind " .. tostring(kind))
end

function response(status, headers, body)
   if kind == "authorize" then
      local loc = headers["location"] or headers["Location"] or ""
      local code = string.match(loc, "[?&]code=([^&]+)")
      if status ~= 303 or code == nil then bad = bad + 1; return end
      out:write(code, "\n")
      return
   end
   if status < 200 or status > 299 then bad = bad + 1; return end
   if kind == "nonce" then
      local nonce = string.match(body, '"nonce"%s*:%s*"([^"]+)"')
      if nonce then out:write(nonce, "\n") else bad = bad + 1 end
   end
end
