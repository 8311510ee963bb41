#!/usr/bin/env bash
# Every test of the TypeScript client (@portcullis/client), as CI runs it:
#
#   clients/js/scripts/test.sh
#
#   1. npm ci (when node_modules is missing or package-lock.json changed)
#   2. Debian's chromium (apt-get, as root, when /usr/bin/chromium is missing)
#   3. the portcullis binary: $PORTCULLIS_BIN, else `cargo build --bin portcullis`
#   4. type-check and build the package and the example SPA (tsc)
#   5. drift check: types regenerated from openapi/openapi.json must equal
#      src/generated/openapi.ts, and every operation of the spec has a method
#      (test/operations.mjs)
#   6. unit tests (vitest): one per method against recorded server answers,
#      events, storage, error typing, retry and refresh rules, lock steal,
#      auto refresh, step-up retry, claims; the gzip size budget
#   6a. @portcullis/client/react: the hooks in jsdom (react-dom) with real
#      clients, hydration, server rendering in plain Node
#   6b. @portcullis/client/native: the SecureStore adapter (2048-byte limit,
#      killed at every step), AppState auto refresh, native passkeys
#   7. 50 concurrent Node clients on one memoryStorage: one refresh chain,
#      no reuse (real Portcullis, 2 s access tokens)
#   8. every method once against a live Portcullis: Node and Chromium, on the
#      embedded store and on MongoDB (FerretDB: $PORTCULLIS_TEST_MONGODB_URI,
#      else one started with scripts/ferretdb.sh)
#   9. the example SPA in headless Chromium: 5 tabs for $JS_CLIENT_SECONDS
#      (default 60) seconds, sign-out propagation, a tab paused holding the
#      refresh lock (real Portcullis with CORS, 2 s access tokens)
#   9b. the example's account pages in Chromium: passkeys added and removed,
#      two-step sign-in, picture, email change, activity, federated sign-in
#      through a fake OpenID provider (screenshots in artifacts/); embedded
#      store and MongoDB
#  10. npm pack, the README's install line with the tarball, import it;
#      publint and arethetypeswrong on the package
#
# The last line is `js client: N passed, M failed`; non-zero exit on failure.
# Artifacts (screenshot): clients/js/artifacts/.
set -uo pipefail
PKG=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=$(cd "$PKG/../.." && pwd)
CHROMIUM=/usr/bin/chromium
SECONDS_BROWSER=${JS_CLIENT_SECONDS:-60}
cd "$PKG"

passed=0; failed=0; results=()
step() {
  local name=$1; shift
  local t0=$SECONDS
  echo "==> js client: $name"
  local rc=0
  "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); results+=("ok   $name ($((SECONDS - t0))s)")
  else
    # The exit code says how it failed: 124 is `timeout` killing the step.
    local why="exit $rc"
    [ "$rc" -eq 124 ] && why="timed out: killed by timeout"
    failed=$((failed + 1)); results+=("FAIL $name ($((SECONDS - t0))s, $why)")
  fi
}
finish() {
  printf '  %s\n' "${results[@]}"
  echo "js client: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

install_npm() {
  local stamp=node_modules/.package-lock.stamp want
  want="$(node --version) $(sha256sum package-lock.json | cut -d' ' -f1)"
  if [ -d node_modules ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "node_modules: up to date"; return 0
  fi
  # A registry hiccup is retried once; a real error fails twice.
  timeout 600 npm ci --no-audit --no-fund --loglevel=error ||
    { echo "npm ci failed; once more in 10 s"; sleep 10; timeout 600 npm ci --no-audit --no-fund --loglevel=error; } || return 1
  echo "$want" >"$stamp"
}
install_chromium() {
  if [ -x "$CHROMIUM" ]; then "$CHROMIUM" --version 2>/dev/null; return 0; fi
  if [ "$(id -u)" -ne 0 ]; then echo "$CHROMIUM is missing and this is not root: apt-get install chromium" >&2; return 1; fi
  # Up to three tries, each with a fresh package list: a mirror in the
  # middle of publishing a new Chromium answers with missing files or
  # mismatched hashes for a while.
  local try
  for try in 1 2 3; do
    if timeout 300 apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq chromium >/dev/null; then
      break
    fi
    echo "installing chromium failed (try $try of 3)" >&2
    [ "$try" -lt 3 ] && sleep 20
  done
  [ -x "$CHROMIUM" ]
}
portcullis_bin() {
  if [ -n "${PORTCULLIS_BIN:-}" ]; then
    case "$PORTCULLIS_BIN" in /*) ;; *) PORTCULLIS_BIN="$PWD/$PORTCULLIS_BIN" ;; esac
    [ -x "$PORTCULLIS_BIN" ] || { echo "PORTCULLIS_BIN=$PORTCULLIS_BIN is not executable" >&2; return 1; }
  else
    (cd "$ROOT" && cargo build --locked --bin portcullis) || return 1
    PORTCULLIS_BIN="$ROOT/target/debug/portcullis"
  fi
  export PORTCULLIS_BIN
  echo "portcullis: $PORTCULLIS_BIN"
}
build() {
  npx tsc -p tsconfig.json && npx tsc -p test/tsconfig.json && npx tsc -p example/tsconfig.json
}
MONGO_URI=${PORTCULLIS_TEST_MONGODB_URI:-}
FERRET_DIR=""
start_mongo() {
  if [ -n "$MONGO_URI" ]; then echo "MongoDB: $MONGO_URI"; return 0; fi
  FERRET_DIR=$(mktemp -d)
  MONGO_URI=$("$ROOT/scripts/ferretdb.sh" start "$FERRET_DIR" | tail -n 1) || return 1
  echo "FerretDB: $MONGO_URI"
}
stop_mongo() {
  if [ -n "$FERRET_DIR" ]; then "$ROOT/scripts/ferretdb.sh" stop "$FERRET_DIR" >/dev/null 2>&1 || true; rm -rf "$FERRET_DIR"; fi
}
trap stop_mongo EXIT

step "npm ci" install_npm || true
if [ "$failed" -ne 0 ]; then finish; fi
step "chromium" install_chromium
step "portcullis binary" portcullis_bin
step "tsc: package, tests, example" build
step "generated types match openapi/openapi.json" node scripts/check-generated.mjs
step "unit tests (vitest, fake server)" timeout 300 npx vitest run --exclude 'test/react/**' --exclude 'test/native/**'
if [ -n "${PORTCULLIS_BIN:-}" ]; then
  step "@portcullis/client/react: hooks in jsdom with real clients, server rendering (real Portcullis)" \
    timeout 180 npx vitest run test/react
  step "@portcullis/client/native: SecureStore chunks killed at every step, AppState, native passkeys (real Portcullis)" \
    timeout 180 npx vitest run test/native
  step "50 Node clients, one refresh chain (real Portcullis)" timeout 120 node test/e2e/fifty-clients.mjs
  step "CAPTCHA: solveCaptcha() against PORTCULLIS_CAPTCHA=always (real Portcullis)" timeout 300 node test/e2e/captcha.mjs
  step "every method, live server: Node, embedded store" timeout 300 node test/e2e/all-methods.mjs
  step "MongoDB for the live-server suites (FerretDB)" start_mongo
  if [ -n "$MONGO_URI" ]; then
    step "every method, live server: Node, MongoDB" timeout 300 node test/e2e/all-methods.mjs --mongodb-uri "$MONGO_URI"
  fi
  if [ -x "$CHROMIUM" ]; then
    step "every method, live server: Chromium, embedded store" timeout 300 node test/e2e/all-methods.mjs --chromium "$CHROMIUM"
    if [ -n "$MONGO_URI" ]; then
      step "every method, live server: Chromium, MongoDB" timeout 300 node test/e2e/all-methods.mjs --chromium "$CHROMIUM" --mongodb-uri "$MONGO_URI"
    fi
    step "example SPA in Chromium: 5 tabs ${SECONDS_BROWSER}s, sign-out, frozen tab (real Portcullis)" \
      timeout $((SECONDS_BROWSER + 180)) node test/e2e/browser.mjs --seconds "$SECONDS_BROWSER" --chromium "$CHROMIUM"
    step "example SPA on localhost: CAPTCHA step, add a passkey, turn on two-step sign-in (real Portcullis --dev)" \
      timeout 240 node test/e2e/example-features.mjs --chromium "$CHROMIUM"
    step "example SPA account pages: passkeys, two-step sign-in, picture, email change, activity, a provider's round trip (real Portcullis --dev, fake IdP)" \
      timeout 240 node test/e2e/example-account.mjs --chromium "$CHROMIUM"
    if [ -n "$MONGO_URI" ]; then
      step "example SPA account pages, MongoDB" \
        timeout 240 node test/e2e/example-account.mjs --chromium "$CHROMIUM" --mongodb-uri "$MONGO_URI"
    fi
  else
    failed=$((failed + 1)); results+=("FAIL browser tests (no chromium)")
  fi
else
  failed=$((failed + 1)); results+=("FAIL end-to-end tests (no portcullis binary)")
fi
step "npm pack: the README's install line with the tarball, import it" timeout 300 scripts/pack-check.sh
step "publint --strict and arethetypeswrong (esm-only)" timeout 300 npm run --silent check:package
finish
