#!/usr/bin/env bash
# The `dpop` scenario of bench/run.sh (sourced by it): GET /v1/me and
# refresh with DPoP-bound tokens beside the same with bearer tokens, on one
# server and one store, as A/B/A (bearer A1, DPoP B, bearer A2), so the
# ratio is DPoP's cost and nothing else. wrk cannot sign ES256: the proofs
# are signed just before each DPoP run by `portcullis bench dpop-proofs`
# (one key, in $TMP), each used once, so the server runs with
# PORTCULLIS_DPOP_MAX_AGE=10m (a proof must still be fresh when wrk sends it).
# In A/B mode (BENCH_BASELINE_BIN) each binary runs the DPoP rows on its own
# server (dpop_ab_run), A1 B A2 like every other scenario.
# shellcheck shell=bash disable=SC2034

DPOP_KEY=""
# Proofs per DPoP run: enough for DURATION seconds at DPOP_RATE req/s.
DPOP_RATE=${BENCH_DPOP_RATE:-6000}

# dpop_login_tokens N FIELD: N sign-ins of random users, each with its own
# proof (so each session is bound to the key); one jq field a line.
dpop_login_tokens() {
  local n=$1 field=$2
  pc "$TMP/unused" 4 bench dpop-proofs --key "$DPOP_KEY" --count "$n" --method POST --url "$URL/v1/sessions" |
    while read -r proof; do echo "$(((RANDOM * 32768 + RANDOM) % LOGIN_USERS)) $proof"; done |
    BENCH_PW=$PASSWORD BENCH_URL=$URL xargs -P 4 -L 1 sh -c \
      'curl -s --fail-with-body --max-time 30 -H "Content-Type: application/json" -H "DPoP: $1" -d "{\"email\":\"user$0@bench.test\",\"password\":\"$BENCH_PW\"}" "$BENCH_URL/v1/sessions"' |
    jq -r ".$field"
}

dpop_run() {
  local data load proofs tag
  DPOP_KEY="$TMP/dpop-client.p8"
  proofs=$((DURATION * DPOP_RATE + 1000))
  EXTRA_ENV+=(PORTCULLIS_DPOP_MAX_AGE=10m)
  data=$(fresh_data "dpop-c$REGISTER_COST" "$REGISTER_COST")
  start_server "$data" "$REGISTER_COST"
  export BENCH_USERS=$LOGIN_USERS
  login_tokens 32 "$LOGIN_USERS" access_token >"$TMP/me.tokens"
  dpop_login_tokens 32 access_token >"$TMP/dpop-me.tokens"
  for tag in A1 B A2; do
    load=$(loadavg)
    if [[ $tag == B ]]; then
      pc "$TMP/unused" 4 bench dpop-proofs --key "$DPOP_KEY" --count "$proofs" --url "$URL/v1/me" \
        --tokens "$TMP/dpop-me.tokens" >"$TMP/dpop-me.lines"
      export BENCH_TOKENS_FILE="$TMP/dpop-me.lines"
      run_wrk dpop-me me_dpop.lua "$CONNS" "$DURATION"
      row 9 "GET /v1/me, DPoP (B)" "$CONNS" "$load" "32 bound sessions; Authorization: DPoP + a proof (ES256, ath) each request; $proofs proofs signed before the run"
    else
      export BENCH_TOKENS_FILE="$TMP/me.tokens"
      run_wrk "dpop-me-bearer-$tag" me.lua "$CONNS" "$DURATION"
      row 9 "GET /v1/me, bearer ($tag)" "$CONNS" "$load" "32 users' bearer tokens, same server"
    fi
  done
  for tag in A1 B A2; do
    load=$(loadavg)
    if [[ $tag == B ]]; then
      dpop_login_tokens $((CONNS * 2)) refresh_token >"$TMP/dpop-refresh.tokens"
      pc "$TMP/unused" 4 bench dpop-proofs --key "$DPOP_KEY" --count "$proofs" --method POST \
        --url "$URL/v1/sessions/refresh" >"$TMP/dpop-refresh.proofs"
      export BENCH_TOKENS_FILE="$TMP/dpop-refresh.tokens" BENCH_PROOFS_FILE="$TMP/dpop-refresh.proofs"
      run_wrk dpop-refresh refresh_dpop.lua "$CONNS" "$DURATION"
      row 10 "POST /v1/sessions/refresh, DPoP (B)" "$CONNS" "$load" "bound sessions; a proof (ES256) each refresh; rotation"
    else
      login_tokens $((CONNS * 2)) "$LOGIN_USERS" refresh_token >"$TMP/refresh.tokens"
      export BENCH_TOKENS_FILE="$TMP/refresh.tokens"
      run_wrk "dpop-refresh-bearer-$tag" refresh.lua "$CONNS" "$DURATION"
      row 10 "POST /v1/sessions/refresh, bearer ($tag)" "$CONNS" "$load" "bearer sessions, same server; fallback sign-ins: ${R_FALLBACK}"
    fi
  done
  unset 'EXTRA_ENV[-1]'
}

# A/B mode: DPoP-bound GET /v1/me and refresh on a fresh server per binary
# (A1 baseline, B new, A2 baseline); bearer is in the me and refresh scenarios.
dpop_ab_run() {
  local data load proofs
  DPOP_KEY="$TMP/dpop-client.p8"
  proofs=$((DURATION * DPOP_RATE + 1000))
  EXTRA_ENV+=(PORTCULLIS_DPOP_MAX_AGE=10m)
  data=$(fresh_data "dpop-c$REGISTER_COST" "$REGISTER_COST")
  start_server "$data" "$REGISTER_COST"
  export BENCH_USERS=$LOGIN_USERS
  dpop_login_tokens 32 access_token >"$TMP/dpop-me.tokens"
  load=$(loadavg)
  pc "$TMP/unused" 4 bench dpop-proofs --key "$DPOP_KEY" --count "$proofs" --url "$URL/v1/me" \
    --tokens "$TMP/dpop-me.tokens" >"$TMP/dpop-me.lines"
  BENCH_TOKENS_FILE="$TMP/dpop-me.lines" run_wrk dpop-me me_dpop.lua "$CONNS" "$DURATION"
  row 9 "GET /v1/me, DPoP" "$CONNS" "$load" "32 bound sessions; a proof (ES256, ath) each request, $proofs signed before the run, each once"
  load=$(loadavg)
  dpop_login_tokens $((CONNS * 2)) refresh_token >"$TMP/dpop-refresh.tokens"
  pc "$TMP/unused" 4 bench dpop-proofs --key "$DPOP_KEY" --count "$proofs" --method POST \
    --url "$URL/v1/sessions/refresh" >"$TMP/dpop-refresh.proofs"
  BENCH_TOKENS_FILE="$TMP/dpop-refresh.tokens" BENCH_PROOFS_FILE="$TMP/dpop-refresh.proofs" \
    run_wrk dpop-refresh refresh_dpop.lua "$CONNS" "$DURATION"
  row 10 "POST /v1/sessions/refresh, DPoP" "$CONNS" "$load" "bound sessions; a proof (ES256) each refresh; rotation"
  unset 'EXTRA_ENV[-1]'
}

sc_dpop() {
  if [[ $AB == 1 ]]; then
    ab dpop_ab_run
    return 0
  fi
  dpop_run
  stop_server
}
