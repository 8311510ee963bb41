-- POST /v1/sessions/refresh of DPoP-bound sessions: as refresh.lua (a queue
-- of live refresh tokens per thread, each used once, the new one queued),
-- and every request carries one of the proofs of BENCH_PROOFS_FILE (htm
-- POST, htu the refresh URL, by the key the sessions are bound to), each
-- used once. No fallback sign-in: a thread whose queue runs dry counts it.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local queue, head, tail = {}, 1, 0
local proofs, p = {}, 0

local function push(token)
   tail = tail + 1
   queue[tail] = token
end

function init(args)
   local me, all = id or 0, nthreads or 1
   for i, token in ipairs(read_lines(os.getenv("BENCH_TOKENS_FILE"))) do
      if (i - 1) % all == me then push(token) end
   end
   for i, proof in ipairs(read_lines(os.getenv("BENCH_PROOFS_FILE"))) do
      if (i - 1) % all == me then table.insert(proofs, proof) end
   end
end

function request()
   p = p + 1
   local proof = proofs[((p - 1) % #proofs) + 1]
   if head <= tail then
      local token = queue[head]
      queue[head] = nil
      head = head + 1
      return json_post("/v1/sessions/refresh", '{"refresh_token":"' .. token .. '"}', { ["DPoP"] = proof })
   end
   fallbacks = fallbacks + 1
   return wrk.format("GET", "/healthz")
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      bad = bad + 1
      return
   end
   local token = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
   if token then push(token) end
end
