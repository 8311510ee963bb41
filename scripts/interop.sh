#!/usr/bin/env bash
# Proved from the outside: third-party clients against a real Portcullis.
#
#   scripts/interop.sh                      # binary from $PORTCULLIS_BIN or target/debug/portcullis
#   INTEROP_ONLY=jwt scripts/interop.sh     # only some phases: jwt, swagger, fuzz, reset, passkeys, oauth, federation, oidc, dpop (comma-separated)
#
# 1. jwt     For EdDSA, ES256 and RS256: a resource server verifies access
#            tokens with PyJWT (PyJWKClient) and with jose (createRemoteJWKSet),
#            finding keys only via /.well-known/openid-configuration → jwks_uri.
#            Both accept a fresh token and reject a tampered one, one for
#            another audience, a refresh token, an expired one, and one whose
#            key was rotated out of the JWKS (while a token of the new key
#            still verifies).
# 2. swagger Swagger UI at /docs in headless Chromium (Playwright): Authorize
#            with a bearer token, GET /v1/me via "Try it out" → "Execute"; the
#            page must show 200 and the email. Screenshot:
#            interop/artifacts/swagger-me.png.
# 4. reset   The built-in password-reset page in headless Chromium
#            with JavaScript off: ask for a reset, take the link from the
#            outbox `.eml` (parsed as MIME), open it, type a new password,
#            submit; then sign in with it (and not with the old one).
#            Screenshot: interop/artifacts/reset-page.png.
# 5. passkeys (after fuzz in the run) Debian's Chromium with a CDP virtual
#            authenticator: a test page on its own origin registers an
#            account and a passkey, signs out and signs in without typing an
#            email; then a second account with a password, a passkey and
#            TOTP on uses the passkey as its second factor after the
#            password (amr pwd,hwk; replays refused); both accounts then
#            delete themselves with a passkey proof (interop/passkeys.mjs).
#            Screenshots: interop/artifacts/passkeys.png, passkeys-mfa.png.
# 3. fuzz    schemathesis against /openapi.json (seeded, bounded examples),
#            --checks all (interop/schemathesis.toml says which refusals of
#            schema-valid data are the contract), with a real bearer token. Output: interop/artifacts/schemathesis-*.txt.
# 4. oauth   A standard OAuth client (oauth4webapi), configured by discovery
#            only: refresh_token grant at token_endpoint (twice), userinfo,
#            RFC 7662 introspection (active), RFC 7009 revocation, then
#            introspection inactive and the revoked refresh token refused
#            with invalid_grant (interop/oauth_client.mjs).
# 7. dpop    DPoP (RFC 9449). oauth4webapi, by discovery only, with its DPoP
#            handle: a refresh_token grant with a proof binds the session
#            (token_type DPoP, cnf.jkt), refresh without a proof refused,
#            userinfo and GET /v1/me with proofs, the bound token refused as
#            bearer and with another key's proof, introspection shows cnf;
#            once with PORTCULLIS_DPOP_NONCE=true (the first grant must ask
#            for a nonce, the retry pass) and once without
#            (interop/dpop_client.mjs). Then Chromium with the TS client
#            (interop/dpop_browser.mjs): the key is non-extractable, survives
#            a reload and is shared by two tabs; the access token copied out
#            of the page gets 401 with no proof, with another key's proof and
#            with a replayed proof.
#
# Tools are pinned in interop/requirements.txt (→ interop/.venv) and
# interop/package-lock.json (→ interop/node_modules); both are installed on
# first run and skipped while their lock files are unchanged. Chromium comes
# from Debian (apt-get, when root and /usr/bin/chromium is missing).
# Servers run on free loopback ports in a temp dir and are always stopped on
# exit. Every step has a time limit. The last line is
# `interop: N passed, M failed`; the exit code is non-zero on any failure.
set -euo pipefail
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INTEROP="$ROOT/interop"
ARTIFACTS="$INTEROP/artifacts"
BIN=${PORTCULLIS_BIN:-$ROOT/target/debug/portcullis}
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
ONLY=${INTEROP_ONLY:-jwt,swagger,fuzz,reset,passkeys,oauth,federation,oidc,dpop}
FUZZ_EXAMPLES=${INTEROP_FUZZ_EXAMPLES:-50}
FUZZ_SEED=${INTEROP_FUZZ_SEED:-20261125}
CHROMIUM=/usr/bin/chromium
PASSWORD='correct horse battery staple 42'
INTROSPECTION_TOKEN='interop-resource-server-credential'
AUDIENCE=portcullis

# The servers get exactly the configuration written below, nothing inherited.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^PORTCULLIS_' || true)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-interop.XXXXXX")
RESULTS="$WORK/results"   # one PASS or FAIL line per check (phases run in subshells)
PIDFILE="$WORK/server-pids"
: >"$RESULTS"; : >"$PIDFILE"
START=$SECONDS

count() { grep -c "^$1\$" "$RESULTS" 2>/dev/null || true; }
cleanup() {
  local rc=$? pid i passed failed log
  trap - EXIT INT TERM
  if [ -f "$PIDFILE" ]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$PIDFILE"
    for i in $(seq 1 50); do
      pid=""
      while read -r pid; do kill -0 "$pid" 2>/dev/null && break; pid=""; done <"$PIDFILE"
      [ -z "$pid" ] && break
      sleep 0.1
    done
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$PIDFILE"
  fi
  passed=$(count PASS); failed=$(count FAIL)
  # Keep the server logs for a look after a failure.
  if compgen -G "$WORK/*/server.log" >/dev/null; then
    mkdir -p "$ARTIFACTS/server-logs"
    for log in "$WORK"/*/server.log; do cp "$log" "$ARTIFACTS/server-logs/$(basename "$(dirname "$log")").log"; done
  fi
  rm -rf "$WORK"
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    echo "interop: aborted (exit $rc)" >&2
    failed=1
  fi
  echo "interop: finished in $((SECONDS - START))s"
  echo "interop: $passed passed, $failed failed"
  if [ "$failed" -ne 0 ]; then exit 1; fi
  exit 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "interop: $*"; }
wants() { [[ ",$ONLY," == *",$1,"* ]]; }
pass() { echo PASS >>"$RESULTS"; echo "ok   - $1"; }
fail() {
  echo FAIL >>"$RESULTS"; echo "FAIL - $1"
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/       /'; fi
}

# expect_valid NAME CMD... : CMD must exit 0.
expect_valid() {
  local name=$1 out rc=0; shift
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then pass "$name"; else fail "$name (exit $rc, want 0)" "$out"; fi
}
# expect_rejected NAME REASON CMD... : CMD must exit 1 and name REASON.
expect_rejected() {
  local name=$1 reason=$2 out rc=0; shift 2
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -eq 1 ] && [[ "$out" == *"reason=$reason "* ]]; then
    pass "$name"
  else
    fail "$name (exit $rc, want 1 with reason=$reason)" "$out"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Per-server settings live in these arrays, so that a restart or
# `keys rotate` of server NAME uses exactly the same environment.
declare -A SRV_PORT SRV_PID SRV_ALG SRV_TTL SRV_EXTRA
server_env() {
  local name=$1 port=${SRV_PORT[$1]}
  echo "PORTCULLIS_LISTEN=127.0.0.1:$port"
  echo "PORTCULLIS_PUBLIC_URL=http://127.0.0.1:$port"
  echo "PORTCULLIS_ISSUER=$(issuer "$name")"
  echo "PORTCULLIS_AUDIENCE=$AUDIENCE"
  echo "PORTCULLIS_DATA_DIR=$WORK/$name/data"
  echo "PORTCULLIS_KEYS_DIR=$WORK/$name/keys"
  echo "PORTCULLIS_BCRYPT_COST=4"
  echo "PORTCULLIS_RATE_LIMIT=off"
  echo "PORTCULLIS_CAPTCHA=off"
  echo "PORTCULLIS_SIGNING_ALG=${SRV_ALG[$name]}"
  echo "PORTCULLIS_ACCESS_TTL=${SRV_TTL[$name]}"
  echo "PORTCULLIS_LOG_FORMAT=json"
  # Extra lines for one server (later lines win), e.g. passkeys' settings.
  if [ -n "${SRV_EXTRA[$name]:-}" ]; then printf '%s\n' "${SRV_EXTRA[$name]}"; fi
  echo "PORTCULLIS_INTROSPECTION_TOKEN=$INTROSPECTION_TOKEN"
}
issuer() { echo "http://127.0.0.1:${SRV_PORT[$1]}"; }
base() { echo "http://127.0.0.1:${SRV_PORT[$1]}"; }
discovery() { echo "$(base "$1")/.well-known/openid-configuration"; }
portcullis() { # portcullis NAME ARGS... : run the binary with that server's env
  local name=$1 envs; shift
  mapfile -t envs < <(server_env "$name")
  (cd "$WORK/$name" && exec env "${envs[@]}" "$BIN" "$@")
}

# new_server NAME ALG TTL : allocate a port and a temp dir.
new_server() {
  SRV_PORT[$1]=$(free_port); SRV_ALG[$1]=$2; SRV_TTL[$1]=$3
  mkdir -p "$WORK/$1/data" "$WORK/$1/keys"
}
# start_server NAME : start and wait (≤ 20 s) until /healthz answers.
start_server() {
  local name=$1 i envs pid
  if curl -fsS -m 2 -o /dev/null "$(base "$name")/healthz" 2>/dev/null; then
    echo "port ${SRV_PORT[$name]} for server $name is already serving" >&2
    return 1
  fi
  mapfile -t envs < <(server_env "$name")
  # exec: $! is the server process itself, so stop_server really stops it.
  (cd "$WORK/$name" && exec env "${envs[@]}" "$BIN" serve) >>"$WORK/$name/server.log" 2>&1 &
  pid=$!
  SRV_PID[$name]=$pid
  echo "$pid" >>"$PIDFILE"
  for i in $(seq 1 200); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if curl -fsS -m 2 -o /dev/null "$(base "$name")/healthz" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "server $name did not start; its log:" >&2
  tail -n 30 "$WORK/$name/server.log" >&2
  return 1
}
stop_server() {
  local pid=${SRV_PID[$1]}
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # Reaped: forget it, so that cleanup never signals a reused pid.
  sed -i "/^$pid\$/d" "$PIDFILE"
}

# api NAME METHOD PATH [JSON] : print the body; fail unless 2xx.
api() {
  local name=$1 method=$2 path=$3 data=${4:-}
  if [ -n "$data" ]; then
    curl -fsS -m 10 -X "$method" -H 'content-type: application/json' --data "$data" "$(base "$name")$path"
  else
    curl -fsS -m 10 -X "$method" "$(base "$name")$path"
  fi
}
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
jwt_part() { # jwt_part TOKEN header|payload FIELD
  python3 - "$@" <<'EOF'
import base64, json, sys
tok, part, field = sys.argv[1:4]
seg = tok.split(".")[0 if part == "header" else 1]
print(json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))[field])
EOF
}
# register_login NAME EMAIL [DISPLAY_NAME] : register (201) then sign in;
# print the access token.
register_login() {
  local name=$1 email=$2 display=${3:-}
  if [ -n "$display" ]; then display=",\"display_name\":\"$display\""; fi
  api "$name" POST /v1/users "{\"email\":\"$email\",\"password\":\"$PASSWORD\"$display}" >/dev/null
  login "$name" "$email"
}
login() {
  api "$1" POST /v1/sessions "{\"email\":\"$2\",\"password\":\"$PASSWORD\"}" | json_field access_token
}
jwks_kids() { api "$1" GET /.well-known/jwks.json | python3 -c 'import json, sys; print(" ".join(k["kid"] for k in json.load(sys.stdin)["keys"]))'; }

# verify VERIFIER NAME TOKEN [AUDIENCE] : run a verifier against server NAME.
verify() {
  local verifier=$1 name=$2 token=$3 aud=${4:-$AUDIENCE}
  local args=(--discovery "$(discovery "$name")" --token "$token" --issuer "$(issuer "$name")" --audience "$aud" --alg "${SRV_ALG[$name]}")
  case "$verifier" in
    pyjwt) timeout 30 "$INTEROP/.venv/bin/python" "$INTEROP/verify_pyjwt.py" "${args[@]}" ;;
    jose) timeout 30 node "$INTEROP/verify_jose.mjs" "${args[@]}" ;;
  esac
}

# ---------------------------------------------------------------- setup
setup_ok=true
if [ ! -x "$BIN" ]; then
  fail "portcullis binary at $BIN" "build it first: cargo build (or set PORTCULLIS_BIN)"
  exit 1
fi
mkdir -p "$ARTIFACTS"

# The installers run inside `if`, where set -e does not apply: every step
# says `|| return 1` itself.
sha() { sha256sum "$1" | cut -d' ' -f1; }
install_python() {
  local stamp="$INTEROP/.venv/.requirements.stamp" want
  want="$(python3 --version 2>&1) $(sha "$INTEROP/requirements.txt")" || return 1
  if [ -x "$INTEROP/.venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "python tools: cached in interop/.venv"; return 0
  fi
  log "python tools: installing interop/requirements.txt into interop/.venv"
  python3 -m venv --clear "$INTEROP/.venv" || return 1
  timeout 600 "$INTEROP/.venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$INTEROP/requirements.txt" || return 1
  echo "$want" >"$stamp"
}
install_node() {
  local stamp="$INTEROP/node_modules/.package-lock.stamp" want
  want="$(node --version) $(sha "$INTEROP/package-lock.json")" || return 1
  if [ -d "$INTEROP/node_modules" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "node tools: cached in interop/node_modules"; return 0
  fi
  log "node tools: npm ci in interop/"
  (cd "$INTEROP" && timeout 600 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) || return 1
  echo "$want" >"$stamp"
}
install_chromium() {
  if [ -x "$CHROMIUM" ]; then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "$CHROMIUM is missing and this is not root: apt-get install chromium" >&2; return 1
  fi
  log "chromium: apt-get install chromium"
  timeout 300 apt-get update -qq || return 1
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq chromium >/dev/null || return 1
  [ -x "$CHROMIUM" ] || return 1
  log "chromium: $("$CHROMIUM" --version 2>/dev/null)"
}

t0=$SECONDS
if wants jwt || wants fuzz; then
  if out=$(install_python 2>&1); then echo "$out"; else fail "install python tools" "$out"; setup_ok=false; fi
fi
if wants jwt || wants swagger || wants reset || wants passkeys || wants oauth || wants federation || wants oidc || wants dpop; then
  if out=$(install_node 2>&1); then echo "$out"; else fail "install node tools" "$out"; setup_ok=false; fi
fi
if wants swagger || wants reset || wants passkeys || wants federation || wants oidc || wants dpop; then
  if out=$(install_chromium 2>&1); then [ -z "$out" ] || echo "$out"; else fail "install chromium" "$out"; setup_ok=false; fi
fi
log "setup took $((SECONDS - t0))s; binary $BIN"
if [ "$setup_ok" != true ]; then exit 1; fi

# ---------------------------------------------------------------- 1. jwt
jwt_phase() {
  local alg=$1 main="main-$alg" short="short-$alg" v
  local t0=$SECONDS
  log "--- jwt $alg"
  new_server "$main" "$alg" 15m
  new_server "$short" "$alg" 2s
  start_server "$main"
  start_server "$short"

  # A token that expires in 2 s, taken first so its wait overlaps the rest.
  local expiring exp
  expiring=$(register_login "$short" "expiring-$alg@example.com")
  exp=$(jwt_part "$expiring" payload exp)

  local token kid_a header_alg typ
  token=$(register_login "$main" "reader-$alg@example.com")
  kid_a=$(jwt_part "$token" header kid)
  header_alg=$(jwt_part "$token" header alg)
  typ=$(jwt_part "$token" header typ)
  if [ "$header_alg" = "$alg" ] && [ "$typ" = "at+jwt" ]; then
    pass "$alg: token header alg=$header_alg typ=$typ"
  else
    fail "$alg: token header alg=$header_alg typ=$typ (want $alg, at+jwt)"
  fi
  local tampered refresh
  tampered=$(python3 "$INTEROP/tamper.py" "$token")
  refresh=$(api "$main" POST /v1/sessions "{\"email\":\"reader-$alg@example.com\",\"password\":\"$PASSWORD\"}" | json_field refresh_token)

  for v in pyjwt jose; do
    expect_valid "$alg/$v: fresh access token verifies via discovery → jwks_uri" verify "$v" "$main" "$token"
    expect_rejected "$alg/$v: tampered claim (roles) with the original signature is rejected" signature verify "$v" "$main" "$tampered"
    expect_rejected "$alg/$v: token for audience 'portcullis' is rejected when 'other-api' is expected" audience verify "$v" "$main" "$token" other-api
    # A refresh token is HS256 under a key that is never published (and its
    # `aud` is `<issuer>/refresh`, its `typ` refresh+jwt): a resource server
    # refuses it at the first check, the algorithm it does not accept.
    expect_rejected "$alg/$v: refresh token (HS256, unpublished kid, typ refresh+jwt, aud <issuer>/refresh) is rejected as an access token" alg verify "$v" "$main" "$refresh"
  done

  # Expired: verifiers use no leeway; wait until 1 s past exp.
  local now
  now=$(date +%s)
  if [ "$now" -le $((exp + 1)) ]; then sleep $((exp + 2 - now)); fi
  for v in pyjwt jose; do
    expect_rejected "$alg/$v: token past exp (ACCESS_TTL=2s) is rejected" expired verify "$v" "$short" "$expiring"
  done
  stop_server "$short"

  # Rotation: key A stays published after `keys rotate`, new tokens use key B.
  local pems_a
  pems_a=$(cd "$WORK/$main/keys" && ls signing-*.pem)
  if ! out=$(portcullis "$main" keys rotate 2>&1); then
    fail "$alg: portcullis keys rotate" "$out"; stop_server "$main"; return 0
  fi
  stop_server "$main"
  start_server "$main"
  local token_b kid_b kids
  token_b=$(login "$main" "reader-$alg@example.com")
  kid_b=$(jwt_part "$token_b" header kid)
  kids=$(jwks_kids "$main")
  if [ "$kid_b" != "$kid_a" ] && [[ " $kids " == *" $kid_a "* ]] && [[ " $kids " == *" $kid_b "* ]]; then
    pass "$alg: after keys rotate the JWKS publishes old and new kid; new tokens use the new key"
  else
    fail "$alg: after keys rotate" "kid A=$kid_a kid B=$kid_b jwks kids=[$kids]"
  fi
  for v in pyjwt jose; do
    expect_valid "$alg/$v: token of the old key still verifies while the key is published" verify "$v" "$main" "$token"
  done

  # Retire key A: delete its PEM, restart on the same port.
  stop_server "$main"
  (cd "$WORK/$main/keys" && rm -f $pems_a)
  start_server "$main"
  kids=$(jwks_kids "$main")
  if [[ " $kids " != *" $kid_a "* ]] && [[ " $kids " == *" $kid_b "* ]]; then
    pass "$alg: after deleting key A's PEM and restarting, the JWKS no longer has kid A"
  else
    fail "$alg: JWKS after retiring key A" "kid A=$kid_a kid B=$kid_b jwks kids=[$kids]"
  fi
  for v in pyjwt jose; do
    expect_rejected "$alg/$v: token of the rotated-out key is rejected (kid unknown)" unknown-kid verify "$v" "$main" "$token"
    expect_valid "$alg/$v: token of the new key verifies" verify "$v" "$main" "$token_b"
  done
  stop_server "$main"
  log "jwt $alg took $((SECONDS - t0))s"
}

# run_phase NAME FUNCTION ARGS... : run a phase in a subshell with set -e; an
# unexpected error (a server that does not start, an API call that fails)
# ends that phase only, and counts as one failure.
run_phase() {
  local name=$1 rc; shift
  set +e
  ( set -e; "$@" )
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then fail "$name: phase aborted (exit $rc), see the output above"; fi
}

if wants jwt; then
  for alg in EdDSA ES256 RS256; do run_phase "jwt $alg" jwt_phase "$alg"; done
fi

# ---------------------------------------------------------------- 2. swagger
swagger_phase() {
  local t0=$SECONDS email=swagger@example.com token out rc=0
  log "--- swagger"
  new_server swagger EdDSA 15m
  start_server swagger
  token=$(register_login swagger "$email" "Swagger Interop")
  out=$(timeout 120 node "$INTEROP/swagger_me.mjs" --base "$(base swagger)" --token "$token" \
    --email "$email" --screenshot "$ARTIFACTS/swagger-me.png" --chromium "$CHROMIUM" 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then
    pass "swagger: /docs → Authorize (bearer) → GET /v1/me Try it out → Execute shows 200 and the email"
  else
    fail "swagger: /docs → Authorize → GET /v1/me in headless Chromium (exit $rc)" "$out"
  fi
  stop_server swagger
  log "swagger took $((SECONDS - t0))s (screenshot: interop/artifacts/swagger-me.png)"
}

# ---------------------------------------------------------------- 3. fuzz
# st_run LABEL ARGS... : one bounded, seeded schemathesis run.
st_run() {
  local label=$1 report="$ARTIFACTS/schemathesis-$1.txt" rc=0; shift
  (cd "$WORK/fuzz" && timeout 300 "$INTEROP/.venv/bin/schemathesis" --config-file "$INTEROP/schemathesis.toml" \
    run "$(base fuzz)/openapi.json" --checks all \
    --max-examples "$FUZZ_EXAMPLES" --seed "$FUZZ_SEED" --workers 1 \
    --generation-database none --request-timeout 10 --no-color \
    --report junit --report-junit-path "$ARTIFACTS/schemathesis-$label.junit.xml" \
    -H "Authorization: Bearer $FUZZ_TOKEN" "$@") >"$report" 2>&1 || rc=$?
  # The summary line, e.g. "9 failures, 2 warnings in 2.89s" or "42 passed in 3.1s".
  local summary
  summary=$(grep -E '^=+ .* in [0-9.]+s =+$' "$report" | tail -n 1 | sed -E 's/^=+ //; s/ =+$//')
  if [ "$rc" -eq 0 ]; then
    pass "schemathesis ($label): ${summary:-ok} (report: interop/artifacts/schemathesis-$label.txt)"
  else
    fail "schemathesis ($label): exit $rc, ${summary:-no summary} (report: interop/artifacts/schemathesis-$label.txt)" \
      "$(sed -n '/^=* FAILURES =*$/,$p' "$report" | grep -v '^[[:space:]]*$' | head -n 150)"
  fi
}
fuzz_phase() {
  local t0=$SECONDS
  log "--- fuzz (schemathesis, $FUZZ_EXAMPLES examples per operation, seed $FUZZ_SEED)"
  new_server fuzz EdDSA 15m
  start_server fuzz
  FUZZ_TOKEN=$(register_login fuzz fuzz@example.com)
  # No display_name: the fuzzed responses then carry the unset optional fields.
  # Every operation but logout: logging out revokes the token the others need.
  st_run main --exclude-operation-id logout
  # Then logout on its own (the first accepted call ends the session; the
  # rest must get a documented 401).
  st_run logout --include-operation-id logout
  if grep -qiE 'panicked|stack backtrace' "$WORK/fuzz/server.log"; then
    fail "fuzz: the server log shows a panic" "$(grep -iE -m 5 'panicked|stack backtrace' "$WORK/fuzz/server.log")"
  fi
  stop_server fuzz
  log "fuzz took $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- 4. reset
reset_phase() {
  local t0=$SECONDS email=reset@example.com new='a brand new passphrase 77' eml link out rc=0 i
  log "--- reset (built-in page, headless Chromium, JavaScript off)"
  new_server reset EdDSA 15m
  start_server reset
  register_login reset "$email" >/dev/null
  api reset POST /v1/password/forgot "{\"email\":\"$email\"}" >/dev/null
  # Outbox mode: the mail is an .eml file; wait for the reset mail.
  for i in $(seq 1 100); do
    eml=$(grep -l -s 'Reset your password' "$WORK/reset/data/outbox/"*.eml | head -n 1 || true)
    [ -n "$eml" ] && break
    sleep 0.1
  done
  if [ -z "$eml" ]; then fail "reset: no reset mail in the outbox"; stop_server reset; return 0; fi
  link=$(python3 - "$eml" <<'PYEOF'
import email, email.policy, re, sys
msg = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
text = msg.get_body(preferencelist=("plain",)).get_content()
print(re.search(r"https?://\S+token=\S+", text).group(0))
PYEOF
)
  out=$(timeout 120 node "$INTEROP/reset_page.mjs" --link "$link" --password "$new" \
    --screenshot "$ARTIFACTS/reset-page.png" --chromium "$CHROMIUM" 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then
    pass "reset: mail link → built-in page (no script, strict CSP) → new password → 'Password changed'"
  else
    fail "reset: built-in page in headless Chromium (exit $rc)" "$out"
  fi
  if api reset POST /v1/sessions "{\"email\":\"$email\",\"password\":\"$new\"}" >/dev/null 2>&1 \
    && ! api reset POST /v1/sessions "{\"email\":\"$email\",\"password\":\"$PASSWORD\"}" >/dev/null 2>&1; then
    pass "reset: signs in with the new password, not with the old one"
  else
    fail "reset: sign-in after the reset"
  fi
  stop_server reset
  log "reset took $((SECONDS - t0))s (screenshot: interop/artifacts/reset-page.png)"
}

# ---------------------------------------------------------------- 5. passkeys
passkeys_phase() {
  local t0=$SECONDS page_port port out rc=0
  log "--- passkeys"
  new_server passkeys EdDSA 15m
  page_port=$(free_port)
  port=${SRV_PORT[passkeys]}
  # WebAuthn needs a domain: the service is reached as localhost (RP id
  # `localhost`); the test page is an SPA on another origin.
  SRV_EXTRA[passkeys]="PORTCULLIS_PUBLIC_URL=http://localhost:$port
PORTCULLIS_ISSUER=http://localhost:$port
PORTCULLIS_WEBAUTHN_ORIGINS=http://localhost:$page_port
PORTCULLIS_CORS_ORIGINS=http://localhost:$page_port"
  start_server passkeys
  out=$(timeout 180 node "$INTEROP/passkeys.mjs" --base "http://localhost:$port" --page-port "$page_port" \
    --screenshot "$ARTIFACTS/passkeys.png" --chromium "$CHROMIUM" 2>&1) || rc=$?
  echo "$out" | sed 's/^/       /'
  if [ "$rc" -eq 0 ]; then
    pass "passkeys: Chromium virtual authenticator: register from an SPA origin, sign out, sign in without an email (amr hwk,user); passkey as second factor after a password with TOTP on (amr pwd,hwk; replays 401); DELETE /v1/me with a passkey proof"
  else
    fail "passkeys: browser ceremony in headless Chromium (exit $rc)" "$out"
  fi
  stop_server passkeys
  log "passkeys took $((SECONDS - t0))s (screenshots: interop/artifacts/passkeys.png, passkeys-mfa.png)"
}

# ---------------------------------------------------------------- 6. oauth
oauth_phase() {
  local t0=$SECONDS email=oauth@example.com refresh out rc=0
  log "--- oauth (oauth4webapi, discovery only)"
  new_server oauth EdDSA 15m
  start_server oauth
  api oauth POST /v1/users "{\"email\":\"$email\",\"password\":\"$PASSWORD\"}" >/dev/null
  refresh=$(api oauth POST /v1/sessions "{\"email\":\"$email\",\"password\":\"$PASSWORD\"}" | json_field refresh_token)
  out=$(timeout 60 node "$INTEROP/oauth_client.mjs" --issuer "$(issuer oauth)" \
    --refresh-token "$refresh" --introspection-token "$INTROSPECTION_TOKEN" 2>&1) || rc=$?
  printf '%s\n' "$out" | sed 's/^/       /'
  if [ "$rc" -eq 0 ]; then
    pass "oauth: oauth4webapi via discovery: refresh grant, userinfo, introspection, revocation"
  else
    fail "oauth: oauth4webapi via discovery (exit $rc)" "$out"
  fi
  stop_server oauth
  log "oauth took $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- 7. oidc
# Portcullis as an OpenID provider: openid-client (panva) with a
# confidential and a public client; the hosted pages in Chromium.
oidc_phase() {
  local t0=$SECONDS email=oidc@example.com conf_id conf_secret pub_id spa_id spa_port created out rc=0
  log "--- oidc (openid-client, hosted pages in Chromium)"
  new_server oidc EdDSA 15m
  # Clients are registered with the CLI before the server opens the store.
  created=$(cd "$WORK/oidc" && portcullis oidc clients create "Interop confidential" \
    --redirect-uri https://app.example/cb --post-logout-redirect-uri https://app.example/bye --confidential)
  conf_id=$(sed -n 1p <<<"$created"); conf_secret=$(sed -n 2p <<<"$created")
  pub_id=$(cd "$WORK/oidc" && portcullis oidc clients create "Interop SPA" --redirect-uri http://127.0.0.1/callback | sed -n 1p)
  spa_port=$(free_port)
  spa_id=$(cd "$WORK/oidc" && portcullis oidc clients create "Interop oidc-client-ts SPA" \
    --redirect-uri http://127.0.0.1/callback --redirect-uri http://127.0.0.1/silent \
    --post-logout-redirect-uri "http://127.0.0.1:$spa_port/" | sed -n 1p)
  SRV_EXTRA[oidc]="PORTCULLIS_CORS_ORIGINS=http://127.0.0.1:$spa_port"
  start_server oidc
  api oidc POST /v1/users "{\"email\":\"$email\",\"password\":\"$PASSWORD\"}" >/dev/null
  out=$(timeout 180 node "$INTEROP/oidc_client.mjs" --issuer "$(issuer oidc)" \
    --confidential-id "$conf_id" --confidential-secret "$conf_secret" --public-id "$pub_id" \
    --email "$email" --password "$PASSWORD" --chromium "$CHROMIUM" --artifacts "$ARTIFACTS" 2>&1) || rc=$?
  printf '%s\n' "$out" | sed 's/^/       /'
  if [ "$rc" -eq 0 ]; then
    pass "oidc: openid-client: confidential (basic) code flow + ID token + userinfo + refresh + replay revoked + RP logout; public client in Chromium on a loopback port, hosted login/consent, prompt=none silent"
  else
    fail "oidc: openid-client against the OpenID provider (exit $rc)" "$out"
  fi
  rc=0
  out=$(timeout 180 node "$INTEROP/oidc_spa.mjs" --issuer "$(issuer oidc)" --client-id "$spa_id" \
    --spa-port "$spa_port" --email "$email" --password "$PASSWORD" --chromium "$CHROMIUM" 2>&1) || rc=$?
  printf '%s\n' "$out" | sed 's/^/       /'
  if [ "$rc" -eq 0 ]; then
    pass "oidc: oidc-client-ts SPA in Chromium: signinRedirect (hosted login + consent), signinSilent (prompt=none iframe), signoutRedirect"
  else
    fail "oidc: oidc-client-ts SPA in Chromium (exit $rc)" "$out"
  fi
  rc=0
  out=$(timeout 120 node "$INTEROP/oidc_appauth.mjs" --issuer "$(issuer oidc)" --client-id "$pub_id" \
    --email "$email" --password "$PASSWORD" --chromium "$CHROMIUM" 2>&1) || rc=$?
  printf '%s\n' "$out" | sed 's/^/       /'
  if [ "$rc" -eq 0 ]; then
    pass "oidc: AppAuth-JS native-style client: its loopback listener on a random port, PKCE S256, code exchange and refresh"
  else
    fail "oidc: AppAuth-JS native-style client (exit $rc)" "$out"
  fi
  stop_server oidc
  log "oidc took $((SECONDS - t0))s (screenshots: interop/artifacts/oidc-*.png)"
}

if wants swagger; then run_phase swagger swagger_phase; fi
if wants reset; then run_phase reset reset_phase; fi
if wants fuzz; then run_phase fuzz fuzz_phase; fi
if wants passkeys; then run_phase passkeys passkeys_phase; fi
if wants oauth; then run_phase oauth oauth_phase; fi

# ---------------------------------------------------------------- 7. federation
# Redirect sign-in against panva's oidc-provider (certified OP, pinned in
# package-lock.json) as three issuers: Google-like (query), Apple-like
# (form_post, the minted client secret checked), generic (unverified email).
# The script starts its own Portcullis (the issuers' ports must be known
# first) and the issuers in one Node process.
federation_phase() {
  local t0=$SECONDS out rc=0
  log "--- federation (oidc-provider as three issuers)"
  out=$(timeout 120 node "$INTEROP/federation.mjs" "$BIN" 2>&1) || rc=$?
  printf '%s\n' "$out" | grep -E '^(ok|FAIL|       )' | sed 's/^/       /' || true
  if [ "$rc" -eq 0 ]; then
    pass "federation: oidc-provider issuers: google-like query, apple-like form_post with minted secret, unverified email refused"
  else
    fail "federation: oidc-provider redirect flows (exit $rc)" "$out"
  fi
  # The same flow in Chromium, the SPA using the TypeScript client: three
  # sites (127.0.0.2 SPA, 127.0.0.3 Portcullis, 127.0.0.4 provider).
  local js="$ROOT/clients/js"
  rc=0
  out=$( (cd "$js" && { [ -d node_modules ] || timeout 600 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error; } \
          && timeout 300 npm run --silent build) 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then fail "federation: build the TypeScript client" "$out"; return 0; fi
  out=$(timeout 120 node "$INTEROP/federation_browser.mjs" "$BIN" "$js/dist" 2>&1) || rc=$?
  printf '%s\n' "$out" | grep -E '^(ok|FAIL)' | sed 's/^/       /' || true
  if [ "$rc" -eq 0 ]; then
    pass "federation: Chromium, SPA + Portcullis + Apple-like provider on three sites, form_post, signed in through the TS client (interop/artifacts/federation.png)"
  else
    fail "federation: Chromium redirect flow (exit $rc)" "$out"
  fi
  log "federation took $((SECONDS - t0))s"
}
if wants federation; then run_phase federation federation_phase; fi
if wants oidc; then run_phase oidc oidc_phase; fi

# ---------------------------------------------------------------- 7. dpop
dpop_phase() {
  local t0=$SECONDS mode name email refresh out rc flag
  log "--- dpop (oauth4webapi with DPoP, nonce mode off and on; the TS client in Chromium)"
  for mode in false true; do
    name=dpop_$mode; email="dpop-$mode@example.com"; rc=0; flag=""
    new_server "$name" EdDSA 15m
    SRV_EXTRA[$name]="PORTCULLIS_DPOP_NONCE=$mode"
    start_server "$name"
    api "$name" POST /v1/users "{\"email\":\"$email\",\"password\":\"$PASSWORD\"}" >/dev/null
    refresh=$(api "$name" POST /v1/sessions "{\"email\":\"$email\",\"password\":\"$PASSWORD\"}" | json_field refresh_token)
    if [ "$mode" = true ]; then flag=--nonce; fi
    out=$(timeout 60 node "$INTEROP/dpop_client.mjs" --issuer "$(issuer "$name")" \
      --refresh-token "$refresh" --introspection-token "$INTROSPECTION_TOKEN" $flag 2>&1) || rc=$?
    printf '%s\n' "$out" | sed 's/^/       /'
    if [ "$rc" -eq 0 ]; then
      pass "dpop: oauth4webapi with DPoP via discovery (nonce mode $mode)"
    else
      fail "dpop: oauth4webapi with DPoP via discovery (nonce mode $mode, exit $rc)" "$out"
    fi
    stop_server "$name"
  done
  name=dpop_browser; rc=0
  local page_port; page_port=$(free_port)
  if [ ! -d "$ROOT/clients/js/node_modules" ]; then (cd "$ROOT/clients/js" && npm ci --silent); fi
  new_server "$name" EdDSA 15m
  SRV_EXTRA[$name]="PORTCULLIS_DPOP_NONCE=true
PORTCULLIS_CORS_ORIGINS=http://localhost:$page_port"
  start_server "$name"
  out=$(timeout 180 node "$INTEROP/dpop_browser.mjs" --base "$(base "$name")" --chromium "$CHROMIUM" \
    --page-port "$page_port" --client "$ROOT/clients/js" --screenshot "$ARTIFACTS/dpop.png" 2>&1) || rc=$?
  printf '%s\n' "$out" | sed 's/^/       /'
  if [ "$rc" -eq 0 ]; then
    pass "dpop: the TS client in Chromium (non-extractable key, reload, two tabs, stolen token refused)"
  else
    fail "dpop: the TS client in Chromium (exit $rc)" "$out"
  fi
  stop_server "$name"
  log "dpop took $((SECONDS - t0))s"
}
if wants dpop; then run_phase dpop dpop_phase; fi
