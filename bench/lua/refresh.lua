-- POST /v1/sessions/refresh with rotation: every refresh token is used once.
-- Each thread keeps a queue of live refresh tokens (its share of the lines of
-- BENCH_TOKENS_FILE, each from its own sign-in); every response's new
-- refresh_token goes to the back of the queue. If the queue runs dry the
-- thread signs in instead (counted as fallback_logins; with a token file of
-- at least 2 tokens per connection that does not happen).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local queue, head, tail = {}, 1, 0
local users

local function push(token)
   tail = tail + 1
   queue[tail] = token
end

function init(args)
   seed_random()
   users = tonumber(os.getenv("BENCH_USERS") or "1")
   local me, all = id or 0, nthreads or 1
   for i, token in ipairs(read_lines(os.getenv("BENCH_TOKENS_FILE"))) do
      if (i - 1) % all == me then push(token) end
   end
end

function request()
   if head <= tail then
      local token = queue[head]
      queue[head] = nil
      head = head + 1
      return json_post("/v1/sessions/refresh", '{"refresh_token":"' .. token .. '"}')
   end
   fallbacks = fallbacks + 1
   return json_post("/v1/sessions", login_body(math.random(0, users - 1)))
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      bad = bad + 1
      return
   end
   local token = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
   if token then push(token) else bad = bad + 1 end
end
