#!/usr/bin/env bash
# The `mongo2` scenario of bench/run.sh (sourced by it): two Portcullis
# replicas (A on BENCH_PORT, B on BENCH_PORT+1, one public URL, one keys dir)
# on one MongoDB (BENCH_MONGODB_URI, else FerretDB from scripts/ferretdb.sh)
# under a mixed load, all at once for DURATION seconds, one wrk each:
#   sign-in on A (login.lua), GET /v1/me on A and on B (me.lua), refresh on B
#   (refresh.lua), sign-outs on A (once.lua, revoke: sessions signed in before)
# and, during it, the revocation probe: sign in on A, GET /v1/me on B (200),
# DELETE /v1/sessions on A (204), then at once GET /v1/me on B, which must be
# 401 (a failure otherwise); repeated BENCH_MONGO2_PROBES times.
# Users are seeded at BENCH_MONGO2_COST (default 4) so that the database,
# not bcrypt, is what the sign-ins load.
# shellcheck shell=bash disable=SC2034

MONGO2_COST=${BENCH_MONGO2_COST:-4}
MONGO2_PROBES=${BENCH_MONGO2_PROBES:-$([[ $QUICK == 1 ]] && echo 3 || echo 20)}
MONGO2_REVOKES=${BENCH_MONGO2_REVOKES:-$([[ $QUICK == 1 ]] && echo 20 || echo 200)}
MONGO_REPLICA_PIDS=()
PORT_B=$((PORT + 1))
URL_B="http://127.0.0.1:$PORT_B"

mongo_stop_replicas() {
  local p
  for p in "${MONGO_REPLICA_PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  MONGO_REPLICA_PIDS=()
}

mongo_uri() { # sets MONGO_URI (a FerretDB of this run when none is given)
  if [[ -z $MONGO_URI && -z $FERRET_DIR ]]; then
    FERRET_DIR="$TMP/ferretdb"
    mkdir -p "$FERRET_DIR"
    MONGO_URI=$("$ROOT/scripts/ferretdb.sh" start "$FERRET_DIR" | tail -n 1) || MONGO_URI=""
  fi
}

# A wrk in the background against URL (its pid appended to BG_PIDS); its
# BENCH_RESULT is read by bg_row.
BG_PIDS=()
bg_wrk() { # name script conns secs url
  BENCH_THREADS=1 wrk -t1 -c"$3" -d"$4s" --timeout 30s -s "$BENCH_LUA_DIR/$2" "$5" \
    >"$OUT/${AB_TAG:+$AB_TAG-}$1.wrk.txt" 2>&1 &
  BG_PIDS+=($!)
}
bg_row() { # num name label conns load notes
  local num=$1; shift
  local line out="$OUT/${AB_TAG:+$AB_TAG-}$1.wrk.txt"
  line=$(grep '^BENCH_RESULT' "$out" | tail -1 || true)
  if [[ -z $line ]]; then
    FAILURES=$((FAILURES + 1)); log "FAILED: $2: no result; see $out"
    return 0
  fi
  f() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
  ab_record "$2" "$3" "$(f rps)" "$(f p99_ms)" - -
  printf '| %s | %s | %s | %.1f | %.2f | %.2f | %.2f | %s | - | - | - | - | - | %s | %s |\n' "$num" "$(tag_label "$2")" "$3" \
    "$(f rps)" "$(f p50_ms)" "$(f p99_ms)" "$(f p999_ms)" "$(f errors)" "$4" "$5" >>"$RESULTS"
  if [[ $(f errors) != 0 || $(f fallback_logins) != 0 ]]; then
    FAILURES=$((FAILURES + 1)); log "FAILED: ${AB_TAG:+$AB_TAG }$2 (errors=$(f errors))"
  fi
  log "${AB_TAG:+$AB_TAG }$2: $(f rps) req/s p99 $(f p99_ms) ms errors $(f errors)"
}

# The revocation probe (see the top); prints "probes failures max_ms".
revocation_probe() {
  local k tok before code t1 t2 fails=0 worst=0 ms
  for k in $(seq 1 "$MONGO2_PROBES"); do
    tok=$(curl -s --max-time 30 -H 'Content-Type: application/json' \
      -d "{\"email\":\"user$((k % LOGIN_USERS))@bench.test\",\"password\":\"$PASSWORD\"}" "$URL/v1/sessions" | jq -r .access_token)
    before=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $tok" "$URL_B/v1/me")
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -X DELETE -H "Authorization: Bearer $tok" "$URL/v1/sessions")
    t1=$(date +%s%N)
    if [[ $before != 200 || $code != 204 ]]; then
      fails=$((fails + 1)); log "revocation probe $k: B answered $before before, A's sign-out $code"; continue
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $tok" "$URL_B/v1/me")
    t2=$(date +%s%N)
    ms=$(((t2 - t1) / 1000000))
    ((ms > worst)) && worst=$ms
    if [[ $code != 401 ]]; then fails=$((fails + 1)); log "revocation probe $k: B answered $code right after A's sign-out"; fi
  done
  echo "$MONGO2_PROBES $fails $worst"
}

mongo2_run() {
  local db data load p c0a c0b c0f c1a c1b c1f t0 t1 fpid="" probe secs
  mongo_uri
  if [[ -z $MONGO_URI ]]; then
    note "mongo2 skipped: no BENCH_MONGODB_URI and FerretDB did not start"; FAILURES=$((FAILURES + 1)); return 0
  fi
  db="portcullis_bench2_${AB_TAG:-x}_$(date +%s)"
  EXTRA_ENV=(PORTCULLIS_MONGODB_URI="$MONGO_URI" PORTCULLIS_MONGODB_DB="$db")
  data="$TMP/data${AB_TAG:+-$AB_TAG}-mongo2"
  rm -rf "$data" "$data-b"
  seed "$data" "$MONGO2_COST" 0 "$LOGIN_USERS"
  start_server "$data" "$MONGO2_COST"
  settings "$data-b" "$MONGO2_COST"
  (cd "$TMP" && exec env "${ENVV[@]}" PORTCULLIS_LISTEN="127.0.0.1:$PORT_B" "$BIN" serve) >>"$TMP/server-b.log" 2>&1 &
  MONGO_REPLICA_PIDS+=($!)
  for _ in $(seq 1 300); do curl -s -o /dev/null --max-time 1 "$URL_B/healthz" && break; sleep 0.1; done
  export BENCH_USERS=$LOGIN_USERS
  login_tokens 8 "$LOGIN_USERS" access_token >"$TMP/mongo2-me.tokens"
  login_tokens 8 "$LOGIN_USERS" refresh_token >"$TMP/mongo2-refresh.tokens"
  login_tokens "$MONGO2_REVOKES" "$LOGIN_USERS" access_token >"$TMP/mongo2-revoke.lines"
  [[ -n $FERRET_DIR && -f $FERRET_DIR/ferretdb.pid ]] && fpid=$(cat "$FERRET_DIR/ferretdb.pid")
  load=$(loadavg)
  secs=$((DURATION < 3 ? 3 : DURATION)) # the probe needs the load around it
  c0a=$(cpu_ticks "$SERVER_PID"); c0b=$(cpu_ticks "${MONGO_REPLICA_PIDS[0]}"); c0f=$(cpu_ticks "${fpid:-0}"); t0=$(date +%s%N)
  BG_PIDS=()
  BENCH_TOKENS_FILE=/dev/null bg_wrk mongo2-login login.lua 2 "$secs" "$URL"
  BENCH_TOKENS_FILE="$TMP/mongo2-me.tokens" bg_wrk mongo2-me-a me.lua 4 "$secs" "$URL"
  BENCH_TOKENS_FILE="$TMP/mongo2-me.tokens" bg_wrk mongo2-me-b me.lua 4 "$secs" "$URL_B"
  BENCH_TOKENS_FILE="$TMP/mongo2-refresh.tokens" bg_wrk mongo2-refresh refresh.lua 4 "$secs" "$URL_B"
  BENCH_ONCE_KIND=revoke BENCH_LINES_FILE="$TMP/mongo2-revoke.lines" bg_wrk mongo2-revoke once.lua 2 "$secs" "$URL"
  sleep 1
  probe=$(revocation_probe)
  for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  t1=$(date +%s%N)
  c1a=$(cpu_ticks "$SERVER_PID"); c1b=$(cpu_ticks "${MONGO_REPLICA_PIDS[0]}"); c1f=$(cpu_ticks "${fpid:-0}")
  local pct
  pct() { awk -v c="$1" -v hz="$CLK_TCK" -v ns="$((t1 - t0))" 'BEGIN{printf "%.0f", c/hz/(ns/1e9)*100}'; }
  local cpu
  cpu="replica A $(pct $((c1a - c0a))) %, B $(pct $((c1b - c0b))) %, FerretDB $([[ -n $fpid ]] && echo "$(pct $((c1f - c0f))) %" || echo "not measured (external)")"
  bg_row 17 mongo2-login "MongoDB, 2 replicas: POST /v1/sessions on A (cost $MONGO2_COST)" 2 "$load" "mixed load, all rows at once; CPU: $cpu"
  bg_row 17 mongo2-me-a "MongoDB, 2 replicas: GET /v1/me on A" 4 "$load" "8 users' tokens (signed in on A)"
  bg_row 17 mongo2-me-b "MongoDB, 2 replicas: GET /v1/me on B" 4 "$load" "the same tokens, on B"
  bg_row 17 mongo2-refresh "MongoDB, 2 replicas: refresh on B" 4 "$load" "rotation, each token once"
  bg_row 17 mongo2-revoke "MongoDB, 2 replicas: DELETE /v1/sessions on A" 2 "$load" "sign-outs of $MONGO2_REVOKES sessions signed in before the run, each once"
  local n fails worst
  read -r n fails worst <<<"$probe"
  note "${AB_TAG:+$AB_TAG: }mongo2 revocation probe under the mixed load: $n sign-outs on A, each followed at once by GET /v1/me on B with the signed-out token: **$fails not refused** (the slowest refusal came ${worst} ms after A's 204); CPU over the window: $cpu"
  ((fails == 0)) || FAILURES=$((FAILURES + 1))
  mongo_stop_replicas
  EXTRA_ENV=()
}

sc_mongo2() { ab mongo2_run; }
