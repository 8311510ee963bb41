#!/usr/bin/env bash
# What each request of the mixed load costs MongoDB, counted rather than
# read from the code: FerretDB's per-command counters
# (ferretdb_client_requests_total on its debug address), read before and
# after N requests of one kind sent one after another, minus what the idle
# server sends in the same time (background jobs). Prints one Markdown row
# per route: commands per request by command (find, insert, update,
# findAndModify, delete, aggregate, ...). bench/README.md ("MongoDB on
# paper") uses it. Not part of run.sh: run it alone.
#
#   BENCH_BIN=target/release/portcullis bench/mongo_ops.sh [N]   (N = 100)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-100}
BIN=$(realpath "${BENCH_BIN:-$ROOT/target/release/portcullis}")
PORT=${BENCH_PORT:-18090}
URL="http://127.0.0.1:$PORT"
PASSWORD="correct horse battery staple 42"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-mongo-ops.XXXXXX")
FERRET=$("$ROOT/scripts/ferretdb.sh" build | tail -n 1)
FPORT=$((PORT + 1)) DPORT=$((PORT + 2))
SERVER_PID="" FPID=""
cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  [[ -n $FPID ]] && kill "$FPID" 2>/dev/null && wait "$FPID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$TMP/sqlite" "$TMP/state"
DO_NOT_TRACK=1 "$FERRET" --handler=sqlite --sqlite-url="file:$TMP/sqlite/" --listen-addr="127.0.0.1:$FPORT" \
  --state-dir="$TMP/state" --debug-addr="127.0.0.1:$DPORT" --telemetry=disable --log-level=warn >"$TMP/ferretdb.log" 2>&1 &
FPID=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$DPORT/debug/metrics" && break; sleep 0.1; done
export PORTCULLIS_MONGODB_URI="mongodb://127.0.0.1:$FPORT/" PORTCULLIS_MONGODB_DB=ops PORTCULLIS_LISTEN="127.0.0.1:$PORT" \
  PORTCULLIS_PUBLIC_URL="$URL" PORTCULLIS_DATA_DIR="$TMP/data" PORTCULLIS_KEYS_DIR="$TMP/keys" PORTCULLIS_RATE_LIMIT=off \
  PORTCULLIS_LOG_FORMAT=json PORTCULLIS_CONFIG=/dev/null PORTCULLIS_BCRYPT_COST=4
"$BIN" keys generate >/dev/null
"$BIN" bench seed --count 100 >/dev/null
"$BIN" serve >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do curl -s -o /dev/null "$URL/healthz" && break; sleep 0.1; done

counters() { # command count, one a line
  curl -s "http://127.0.0.1:$DPORT/debug/metrics" |
    sed -n 's/^ferretdb_client_requests_total{command="\([^"]*\)",opcode="OP_MSG"} \([0-9]*\)$/\1 \2/p' | sort
}
# diff BEFORE AFTER IDLE_BEFORE IDLE_AFTER: commands per request, idle subtracted
per_request() {
  awk -v n="$N" '
    FILENAME == ARGV[1] { b[$1] = $2; next } FILENAME == ARGV[2] { a[$1] = $2; next }
    FILENAME == ARGV[3] { ib[$1] = $2; next } { ia[$1] = $2 }
    END {
      split("find insert update findAndModify delete aggregate count", order, " ")
      for (i = 1; i <= 7; i++) { c = order[i]; d = (a[c] - b[c]) - (ia[c] - ib[c]); if (d < 0) d = 0; t += d; printf " %.2f |", d / n }
      for (c in a) if (c !~ /^(find|insert|update|findAndModify|delete|aggregate|count)$/) { d = (a[c] - b[c]) - (ia[c] - ib[c]); if (d > 0) { o = o sprintf("%s %.2f ", c, d / n); t += d } }
      printf " %.2f | %s\n", t / n, o
    }' "$1" "$2" "$3" "$4"
}
measure() { # label command...
  local t0 t1 secs
  counters >"$TMP/b"; t0=$(date +%s%N)
  "${@:2}"
  t1=$(date +%s%N); counters >"$TMP/a"
  secs=$(awk -v ns="$((t1 - t0))" 'BEGIN{printf "%.2f", ns/1e9}')
  counters >"$TMP/ib"; sleep "$secs"; counters >"$TMP/ia"
  printf '| %s |%s\n' "$1" "$(per_request "$TMP/b" "$TMP/a" "$TMP/ib" "$TMP/ia")"
}
sign_ins() {
  local i
  for ((i = 0; i < N; i++)); do
    curl -s -H 'Content-Type: application/json' -d "{\"email\":\"user$((i % 100))@bench.test\",\"password\":\"$PASSWORD\"}" "$URL/v1/sessions"
    echo
  done >"$TMP/sessions.json"
}
mes() {
  local i tok
  tok=$(head -n 1 "$TMP/sessions.json" | jq -r .access_token)
  for ((i = 0; i < N; i++)); do curl -s -o /dev/null -H "Authorization: Bearer $tok" "$URL/v1/me"; done
}
refreshes() {
  local i tok
  tok=$(sed -n 2p "$TMP/sessions.json" | jq -r .refresh_token)
  for ((i = 0; i < N; i++)); do
    tok=$(curl -s -H 'Content-Type: application/json' -d "{\"refresh_token\":\"$tok\"}" "$URL/v1/sessions/refresh" | jq -r .refresh_token)
  done
}
revokes() {
  local tok
  jq -r .access_token "$TMP/sessions.json" | while read -r tok; do
    curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $tok" "$URL/v1/sessions"
  done
}
echo "MongoDB commands per request ($N sequential requests each, $(basename "$BIN") $("$BIN" --version 2>/dev/null | head -n 1), FerretDB counters):"
echo
echo "| request | find | insert | update | findAndModify | delete | aggregate | count | total | other |"
echo "|---|---|---|---|---|---|---|---|---|---|"
measure "POST /v1/sessions (sign-in)" sign_ins
measure "GET /v1/me" mes
measure "POST /v1/sessions/refresh" refreshes
measure "DELETE /v1/sessions (sign-out; $N sessions)" revokes
