-- Single-use credentials, each line of BENCH_LINES_FILE used once; each
-- thread takes its share of the lines. A thread whose lines are spent
-- stops (common.lua's out_of_work); when all stopped before -d ended, the
-- rate is divided by the time until the last one stopped. BENCH_ONCE_KIND:
--   id-token    "<nonce> <ID token>" → POST /v1/sessions/id-token (provider BENCH_PROVIDER)
--   email-code  "<email> <code>"     → POST /v1/sessions/email/verify
--   oauth-code  "<code>"             → POST /oauth/token (authorization_code, PKCE
--               verifier BENCH_PKCE_VERIFIER, client BENCH_CLIENT_ID, BENCH_REDIRECT_URI)
--   revoke      "<access token>"     → DELETE /v1/sessions (sign-out)
-- Any answer outside 2xx counts as an error (a reused line would be one).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local lines, n = {}, 0
local kind, provider, verifier, client, redirect

local function urlencode(s)
   return (string.gsub(s, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function init(args)
   local me, all = id or 0, nthreads or 1
   for i, line in ipairs(read_lines(os.getenv("BENCH_LINES_FILE"))) do
      if (i - 1) % all == me then table.insert(lines, line) end
   end
   kind = os.getenv("BENCH_ONCE_KIND")
   provider = os.getenv("BENCH_PROVIDER") or "benchidp"
   verifier = os.getenv("BENCH_PKCE_VERIFIER") or ""
   client = os.getenv("BENCH_CLIENT_ID") or ""
   redirect = urlencode(os.getenv("BENCH_REDIRECT_URI") or "")
end

function request()
   n = n + 1
   local line = lines[n]
   if line == nil then return out_of_work() end
   if kind == "id-token" then
      local nonce, token = string.match(line, "^(%S+) (%S+)$")
      return json_post("/v1/sessions/id-token",
         '{"provider":"' .. provider .. '","id_token":"' .. token .. '","nonce":"' .. nonce .. '"}')
   elseif kind == "email-code" then
      local email, code = string.match(line, "^(%S+) (%S+)$")
      return json_post("/v1/sessions/email/verify", '{"email":"' .. email .. '","email_code":"' .. code .. '"}')
   elseif kind == "oauth-code" then
      return wrk.format("POST", "/oauth/token", { ["Content-Type"] = "application/x-www-form-urlencoded" },
         "grant_type=authorization_code&code=" .. line .. "&code_verifier=" .. verifier ..
         "&redirect_uri=" .. redirect .. "&client_id=" .. client)
   elseif kind == "revoke" then
      return wrk.format("DELETE", "/v1/sessions", { ["Authorization"] = "Bearer " .. line })
   end
   error("BENCH_ONCE_KIND: unknown kind " .. tostring(kind))
end

function response(status, headers, body)
   if status < 200 or status > 299 then bad = bad + 1 end
end
