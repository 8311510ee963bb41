#!/usr/bin/env bash
# Scenarios of bench/run.sh (sourced by it): the floor, and the sign-in
# flows whose credentials are single-use, so wrk is handed them in files
# made just before each run and uses each once (bench/lua/once.lua):
#   floor  GET /bench/floor of `portcullis bench floor` (the real route tree and
#          middleware, an empty handler) beside GET /v1/me and refresh on the
#          same server: what HTTP alone allows here
#   fed    POST /v1/federation/nonce, then the native ID-token exchange
#          POST /v1/sessions/id-token against a local provider (discovery and
#          JWKS as static files; ID tokens signed by `bench id-tokens`)
#   oauth  GET /oauth/authorize with a browser session (codes collected), then
#          POST /oauth/token with each code once, right after (codes live 60 s)
#   email  POST /v1/sessions/email for N users, then the codes read from the
#          dev outbox (<data>/outbox/*.eml), each used once at
#          POST /v1/sessions/email/verify
# shellcheck shell=bash disable=SC2034

FED_SUBJECTS=${BENCH_FED_SUBJECTS:-$([[ $QUICK == 1 ]] && echo 50 || echo 1000)}
EMAIL_CODES=${BENCH_EMAIL_CODES:-$([[ $QUICK == 1 ]] && echo 300 || echo 20000)}
IDP_PORT=$((PORT + 7))
IDP_PID=""
# The binary whose `bench id-tokens` signs the provider's tokens (any build of
# this branch: the server under test need not have the command).
TOOL_BIN=$(realpath "${BENCH_TOOL_BIN:-$NEW_BIN}")
REDIRECT="http://127.0.0.1:9/cb"
PKCE_VERIFIER="bench-verifier-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFG"

# Whether $BIN has `bench SUBCOMMAND` (the baseline may not).
bin_has() { "$BIN" bench "$1" --help >/dev/null 2>&1; }
cpu_ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-"}'; }

# BENCH_FLOOR_BASELINE_BIN: in A/B mode, the baseline of the floor units when
# BENCH_BASELINE_BIN has no `bench floor` (e.g. the baseline's source plus
# the bench commits: the same server code with the floor mounted).
FLOOR_BASE_BIN=${BENCH_FLOOR_BASELINE_BIN:-}
floor_run() {
  local data load f1 f1c m mc r rc f2 f2c
  if [[ -n $FLOOR_BASE_BIN && -n $BASE_BIN && $BIN == "$BASE_BIN" ]] && ! bin_has floor; then
    BIN=$(realpath "$FLOOR_BASE_BIN")
    note "${AB_TAG:+$AB_TAG: }floor baseline: $(bin_id "$BIN") (BENCH_FLOOR_BASELINE_BIN)"
  fi
  if ! bin_has floor; then
    note "${AB_TAG:+$AB_TAG: }floor skipped: $(basename "$BIN") has no \`bench floor\`"
    return 0
  fi
  data=$(fresh_data "floor-c$REGISTER_COST" "$REGISTER_COST")
  SERVE_ARGS="bench floor" start_server "$data" "$REGISTER_COST"
  export BENCH_USERS=$LOGIN_USERS
  login_tokens 32 "$LOGIN_USERS" access_token >"$TMP/me.tokens"
  export BENCH_TOKENS_FILE="$TMP/me.tokens"
  load=$(loadavg); warmup floor.lua "$CONNS"
  run_wrk floor floor.lua "$CONNS" "$DURATION"
  f1=$R_RPS f1c=$R_CPU_MS
  row 0 "floor: GET /bench/floor (empty handler, real middleware)" "$CONNS" "$load" "200, no body; the same route tree, middleware, access log line as every route; wrk -t$THREADS"
  load=$(loadavg); warmup me.lua "$CONNS"
  run_wrk floor-me me.lua "$CONNS" "$DURATION"
  m=$R_RPS mc=$R_CPU_MS
  row 0 "floor server: GET /v1/me" "$CONNS" "$load" "same server, right after the floor; 32 users' tokens"
  load=$(loadavg)
  login_tokens $((CONNS * 2)) "$LOGIN_USERS" refresh_token >"$TMP/refresh.tokens"
  BENCH_TOKENS_FILE="$TMP/refresh.tokens" run_wrk floor-refresh refresh.lua "$CONNS" "$DURATION"
  r=$R_RPS rc=$R_CPU_MS
  row 0 "floor server: POST /v1/sessions/refresh" "$CONNS" "$load" "same server; rotation, each token once; fallback sign-ins: ${R_FALLBACK}"
  load=$(loadavg)
  run_wrk floor-2 floor.lua "$CONNS" "$DURATION"
  f2=$R_RPS f2c=$R_CPU_MS
  row 0 "floor: GET /bench/floor, again" "$CONNS" "$load" "after GET /v1/me and refresh: floor before and after bracket them"
  local f fc
  f=$(awk -v a="$f1" -v b="$f2" 'BEGIN{printf "%.1f", (a + b) / 2}')
  fc=$(awk -v a="$f1c" -v b="$f2c" 'BEGIN{if (a + 0 > 0 && b + 0 > 0) printf "%.3f", (a + b) / 2; else print "-"}')
  note "${AB_TAG:+$AB_TAG: }floor (mean of the two floor runs): $f req/s, $fc ms of server CPU a request. GET /v1/me: $m req/s = **$(cpu_ratio "$m" "$f") of the floor's req/s**, $mc ms CPU/req = $(cpu_ratio "$mc" "$fc") × the floor's; refresh: $r req/s = **$(cpu_ratio "$r" "$f") of the floor**, $rc ms CPU/req = $(cpu_ratio "$rc" "$fc") × the floor's"
}

# The local provider: its discovery document and JWKS as static files
# (python3 -m http.server), started once; the server fetches and caches them.
idp_start() {
  [[ -n $IDP_PID ]] && return 0
  command -v python3 >/dev/null || die "python3 is required for the fed scenario (the provider's static files)"
  "$TOOL_BIN" bench id-tokens --key "$TMP/idp.p8" --issuer "http://127.0.0.1:$IDP_PORT" --publish "$TMP/idp" >/dev/null
  python3 -m http.server "$IDP_PORT" --bind 127.0.0.1 --directory "$TMP/idp" >"$TMP/idp.log" 2>&1 &
  IDP_PID=$!
  for _ in $(seq 1 100); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$IDP_PORT/jwks.json" && return 0
    sleep 0.1
  done
  die "the local provider did not start; see $TMP/idp.log"
}
id_tokens() { # nonces_file first subjects
  "$TOOL_BIN" bench id-tokens --key "$TMP/idp.p8" --issuer "http://127.0.0.1:$IDP_PORT" \
    --nonces "$1" --first "$2" --subjects "$3"
}

fed_run() {
  local data load n
  idp_start
  EXTRA_ENV+=(PORTCULLIS_PROVIDERS=benchidp PORTCULLIS_PROVIDER_BENCHIDP_ISSUER="http://127.0.0.1:$IDP_PORT"
    PORTCULLIS_PROVIDER_BENCHIDP_CLIENT_ID=bench-client PORTCULLIS_PROVIDER_BENCHIDP_CLIENT_SECRET=bench-secret)
  data=$(fresh_data "fed-c$REGISTER_COST" "$REGISTER_COST")
  start_server "$data" "$REGISTER_COST"
  rm -f "$TMP"/nonces.*
  load=$(loadavg)
  BENCH_COLLECT_KIND=nonce BENCH_COLLECT_FILE="$TMP/nonces" run_wrk fed-nonce collect.lua "$CONNS" "$DURATION"
  row 11 "POST /v1/federation/nonce" "$CONNS" "$load" "a server nonce (single use, 10 min) stored per request; the nonces feed the next two rows"
  cat "$TMP"/nonces.* >"$TMP/nonces"
  n=$(wc -l <"$TMP/nonces")
  head -n "$FED_SUBJECTS" "$TMP/nonces" >"$TMP/nonces-signup"
  tail -n +"$((FED_SUBJECTS + 1))" "$TMP/nonces" >"$TMP/nonces-signin"
  id_tokens "$TMP/nonces-signup" 0 "$FED_SUBJECTS" >"$TMP/fed-signup.lines"
  id_tokens "$TMP/nonces-signin" 0 "$FED_SUBJECTS" >"$TMP/fed-signin.lines"
  export BENCH_ONCE_KIND=id-token BENCH_PROVIDER=benchidp
  load=$(loadavg)
  BENCH_LINES_FILE="$TMP/fed-signup.lines" run_wrk fed-signup once.lua "$CONNS" "$(((DURATION + 1) / 2))"
  row 12 "federated sign-up: POST /v1/sessions/id-token, new identity" "$CONNS" "$load" "$FED_SUBJECTS first ID tokens of new identities: account + identity created (unverified-email rules, verified here)"
  load=$(loadavg)
  BENCH_LINES_FILE="$TMP/fed-signin.lines" run_wrk fed-signin once.lua "$CONNS" "$DURATION"
  row 12 "POST /v1/sessions/id-token (federated sign-in)" "$CONNS" "$load" "$((n - FED_SUBJECTS)) ID tokens (ES256, local provider, JWKS cached) of $FED_SUBJECTS linked identities, each with its own server nonce, each used once"
  unset BENCH_ONCE_KIND BENCH_PROVIDER
  EXTRA_ENV=("${EXTRA_ENV[@]:0:${#EXTRA_ENV[@]}-4}")
}

# Signs user I in on the hosted page for the authorization URL; prints the
# browser session cookie ("__Host-portcullis=...").
browser_session() { # i authorize_path
  local login page ar csrf jar="$TMP/jar-$1"
  rm -f "$jar"
  login=$(curl -s -o /dev/null -w '%{redirect_url}' "$URL$2")
  page=$(curl -s -c "$jar" "$login") # the page's CSRF cookie goes with the form
  ar=$(grep -o 'name="ar" value="[^"]*"' <<<"$page" | sed 's/.*value="//;s/"$//')
  csrf=$(grep -o 'name="csrf" value="[^"]*"' <<<"$page" | sed 's/.*value="//;s/"$//')
  curl -s -D - -o /dev/null -b "$jar" --data-urlencode "ar=$ar" --data-urlencode "csrf=$csrf" \
    --data-urlencode "email=user$1@bench.test" --data-urlencode "password=$PASSWORD" "$URL/login" |
    grep -io '__Host-portcullis=[^;]*' | head -n 1
}

oauth_run() {
  local data load client challenge path secs i
  data=$(fresh_data "oauth-c$REGISTER_COST" "$REGISTER_COST")
  stop_server
  client=$(pc "$data" "$REGISTER_COST" clients create bench --redirect-uri "$REDIRECT" --first-party 2>/dev/null | head -n 1)
  [[ -n $client ]] || die "oauth: clients create printed no client id"
  challenge=$(printf %s "$PKCE_VERIFIER" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')
  path="/oauth/authorize?response_type=code&client_id=$client&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid%20email&state=bench&nonce=bench&code_challenge=$challenge&code_challenge_method=S256"
  start_server "$data" "$REGISTER_COST"
  : >"$TMP/cookies"
  for i in 1 2 3 4; do browser_session "$i" "$path" >>"$TMP/cookies"; done
  (($(grep -c . "$TMP/cookies") == 4)) || die "oauth: the hosted sign-in gave no browser session; see $TMP/server.log"
  rm -f "$TMP"/codes.*
  secs=$((DURATION < 20 ? DURATION : 20)) # the codes must outlive the next run (60 s)
  load=$(loadavg)
  BENCH_COLLECT_KIND=authorize BENCH_COLLECT_FILE="$TMP/codes" BENCH_AUTHORIZE_PATH=$path BENCH_COOKIES_FILE="$TMP/cookies" \
    run_wrk oauth-authorize collect.lua "$CONNS" "$secs"
  row 13 "GET /oauth/authorize (browser session → code)" "$CONNS" "$load" "4 signed-in browser sessions (cookie), first-party client (no consent), PKCE S256; each 303 carries a code, kept for the next row"
  cat "$TMP"/codes.* >"$TMP/codes"
  load=$(loadavg)
  BENCH_ONCE_KIND=oauth-code BENCH_LINES_FILE="$TMP/codes" BENCH_PKCE_VERIFIER=$PKCE_VERIFIER BENCH_CLIENT_ID=$client \
    BENCH_REDIRECT_URI=$REDIRECT run_wrk oauth-token once.lua "$CONNS" "$DURATION"
  row 14 "POST /oauth/token (authorization_code)" "$CONNS" "$load" "the $(wc -l <"$TMP/codes") codes minted by the row above (0–$((secs + DURATION)) s old, each once); public client + PKCE; scope openid email: access, refresh and RS256 ID token"
}

email_run() {
  local data load want got t0 waited
  data=$(fresh_data "email-c$REGISTER_COST" "$REGISTER_COST" "$((EMAIL_CODES > LOGIN_USERS ? EMAIL_CODES : LOGIN_USERS))")
  rm -rf "$data/outbox"
  start_server "$data" "$REGISTER_COST"
  load=$(loadavg)
  BENCH_COLLECT_KIND=email BENCH_FIRST=0 BENCH_COUNT=$EMAIL_CODES run_wrk email-request collect.lua "$CONNS" "$DURATION"
  row 15 "POST /v1/sessions/email (202)" "$CONNS" "$load" "one mail each to $EMAIL_CODES users; the 202 comes before the mail (queued, sent off the request path into the dev outbox)"
  want=$R_REQS
  [[ $R_RANOUT == yes ]] && want=$EMAIL_CODES # all sent (wrk does not count the last answers of a stopped thread)
  t0=$(date +%s%N)
  # Until all are there, or none came for 3 s (a stopped wrk thread may not
  # have written its last request), at most 2 minutes.
  local prev=-1 still=0
  for _ in $(seq 1 600); do
    got=$(find "$data/outbox" -name '*.eml' 2>/dev/null | wc -l)
    ((got >= want)) && break
    if ((got == prev)); then still=$((still + 1)); else still=0; fi
    ((still >= 15)) && break
    prev=$got
    sleep 0.2
  done
  waited=$(awk -v ns="$(($(date +%s%N) - t0))" 'BEGIN{printf "%.1f", ns/1e9}')
  note "${AB_TAG:+$AB_TAG: }email: $got of $want mails in the outbox ${waited} s after the requests ended"
  # shellcheck disable=SC2016 # an awk program
  find "$data/outbox" -name '*.eml' -print0 | xargs -0 awk '{sub(/\r$/, "")} /^To: /{to=$2} /^    Code: /{print to, $2; nextfile}' >"$TMP/email.lines"
  load=$(loadavg)
  BENCH_ONCE_KIND=email-code BENCH_LINES_FILE="$TMP/email.lines" run_wrk email-verify once.lua "$CONNS" "$DURATION"
  row 16 "POST /v1/sessions/email/verify (code)" "$CONNS" "$load" "$(wc -l <"$TMP/email.lines") (address, 8-digit code) pairs read from the outbox, each once"
}

sc_floor() { ab floor_run; }
sc_fed() { ab fed_run; }
sc_oauth() { ab oauth_run; }
sc_email() { ab email_run; }
