#!/usr/bin/env bash
# Helpers of bench/run.sh, sourced by it (not run on its own): starting and
# stopping the server under test, seeding stores, and measuring with wrk
# (one results row per run). Kept apart so run.sh, which holds the options,
# the scenarios and the report, stays under the 800-line limit.
# shellcheck shell=bash disable=SC2034  # variables are read by run.sh

# --- server -----------------------------------------------------------------
# Settings of every portcullis process of the run, as `env` arguments.
# EXTRA_ENV adds settings (the MongoDB backend).
EXTRA_ENV=()
settings() { # data_dir cost
  ENVV=(PORTCULLIS_LISTEN="127.0.0.1:$PORT" PORTCULLIS_PUBLIC_URL="$URL"
    PORTCULLIS_DATA_DIR="$1" PORTCULLIS_KEYS_DIR="$KEYS"
    PORTCULLIS_BCRYPT_COST="$2" PORTCULLIS_RATE_LIMIT=off PORTCULLIS_LOG_FORMAT=json
    PORTCULLIS_CONFIG=/dev/null "${EXTRA_ENV[@]}")
}
pc() { # data_dir cost args... : runs the binary with those settings
  settings "$1" "$2"; shift 2
  env "${ENVV[@]}" "$BIN" "$@"
}

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Busy ticks of the whole machine (user nice system irq softirq steal).
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

STARTUP_MS=""
IDLE_RSS_MB=""
start_server() { # data_dir cost ; sets SERVER_PID STARTUP_MS IDLE_RSS_MB
  stop_server
  local t0 t1 code=""
  t0=$(date +%s%N)
  settings "$1" "$2"
  # SERVE_ARGS: `bench floor` for the floor scenario (bench/flows.sh).
  # shellcheck disable=SC2086 # one or two words
  (cd "$TMP" && exec env "${ENVV[@]}" "$BIN" ${SERVE_ARGS:-serve}) >>"$TMP/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 3000); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$URL/healthz" || true)
    [[ $code == 200 ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "server exited; see $TMP/server.log"
    sleep 0.002
  done
  t1=$(date +%s%N)
  [[ $code == 200 ]] || die "server did not answer /healthz"
  STARTUP_MS=$(((t1 - t0) / 1000000))
  sleep "$IDLE_WAIT"
  IDLE_RSS_MB=$(awk -v k="$(rss_kb "$SERVER_PID")" 'BEGIN{printf "%.1f", k/1024}')
}

stop_server() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

# Waits until the server has been (nearly) idle for 0.5 s: requests wrk
# abandoned at the end of a run (queued bcrypt work) must not leak into the
# next measurement.
settle() {
  local a b
  for _ in $(seq 1 60); do
    a=$(cpu_ticks "$SERVER_PID"); sleep 0.25; b=$(cpu_ticks "$SERVER_PID")
    (((b - a) * 100 / CLK_TCK < 5)) && return 0
  done
}

seed() { # data_dir cost start count
  pc "$1" "$2" bench seed --start "$3" --count "$4" >&2
}

bcrypt_secs() { # cost [parallel] ; ~BCRYPT_SECS of verifications (cost 10 ≈ 60 ms here)
  local iter
  iter=$(awk -v c="$1" -v s="$BCRYPT_SECS" 'BEGIN{i = int(s / (0.06 * 2^(c - 10))); print (i < 2 ? 2 : i)}')
  pc "$TMP/unused" "$1" bench bcrypt --cost "$1" --iterations "$iter" --parallel "${2:-1}"
}

# Signs in N random users in [0, users) in parallel; prints one jq field a line.
login_tokens() { # n users field
  local n=$1 users=$2 field=$3
  for _ in $(seq 1 "$n"); do echo $(((RANDOM * 32768 + RANDOM) % users)); done |
    xargs -P 4 -I{} curl -s --fail-with-body --max-time 30 -H 'Content-Type: application/json' \
      -d "{\"email\":\"user{}@bench.test\",\"password\":\"$PASSWORD\"}" "$URL/v1/sessions" |
    jq -r ".$field"
}

# --- measurement --------------------------------------------------------------
# run_wrk NAME SCRIPT CONNS SECONDS [THREADS] ; leaves BENCH_RESULT fields in R_*
# and the server's peak RSS / CPU% over the run in R_RSS_MB / R_CPU.
run_wrk() {
  local name=$1 script=$2 conns=$3 secs=$4 threads=${5:-$THREADS}
  local out="$OUT/${AB_TAG:+$AB_TAG-}$name.wrk.txt" samples="$TMP/$name.rss" t0 t1 c0 c1 b0 b1 sampler line wrk_s
  ((conns < threads)) && threads=$conns
  : >"$samples"
  (while kill -0 "$SERVER_PID" 2>/dev/null; do rss_kb "$SERVER_PID" >>"$samples"; sleep 0.25; done) &
  sampler=$!
  c0=$(cpu_ticks "$SERVER_PID"); b0=$(busy_ticks); t0=$(date +%s%N)
  BENCH_THREADS=$threads /usr/bin/time -f '%U %S' -o "$TMP/wrk.time" \
    wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 30s \
    -s "$BENCH_LUA_DIR/$script" "$URL" >"$out" 2>&1 || true
  t1=$(date +%s%N); c1=$(cpu_ticks "$SERVER_PID"); b1=$(busy_ticks)
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  line=$(grep '^BENCH_RESULT' "$out" | tail -1 || true)
  if [[ -z $line ]]; then
    log "$name: wrk produced no result; see $out"
    cat "$out" >&2
    R_OK=0; R_RPS=0; R_P50=0; R_P99=0; R_P999=0; R_ERR=1; R_FALLBACK=0; R_REQS=0; R_RANOUT=no
  else
    R_OK=1
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    R_RPS=$(field rps); R_P50=$(field p50_ms); R_P99=$(field p99_ms)
    R_P999=$(field p999_ms); R_ERR=$(field errors); R_FALLBACK=$(field fallback_logins)
    R_REQS=$(field requests); R_RANOUT=$(field ran_out); R_DUR=$(field duration_s)
  fi
  R_RSS_MB=$(sort -n "$samples" | tail -1 | awk '{printf "%.1f", $1/1024}')
  R_CPU=$(awk -v c="$((c1 - c0))" -v hz="$CLK_TCK" -v ns="$((t1 - t0))" 'BEGIN{printf "%.0f", c/hz/(ns/1e9)*100}')
  # Server CPU per request, ms: over the whole window, so it also holds for
  # runs whose single-use work ran out before -d ended (once.lua).
  R_CPU_MS=$(awk -v c="$((c1 - c0))" -v hz="$CLK_TCK" -v n="${R_REQS:-0}" 'BEGIN{if (n > 0) printf "%.3f", c/hz*1000/n; else print "-"}')
  wrk_s=$(awk '{print $1 + $2; exit}' "$TMP/wrk.time" 2>/dev/null || echo 0)
  R_WRK_CPU=$(awk -v s="$wrk_s" -v ns="$((t1 - t0))" 'BEGIN{printf "%.0f", s/(ns/1e9)*100}')
  R_OTHER_CPU=$(awk -v b="$((b1 - b0))" -v c="$((c1 - c0))" -v s="$wrk_s" -v hz="$CLK_TCK" -v ns="$((t1 - t0))" \
    'BEGIN{o = ((b - c)/hz - s)/(ns/1e9)*100; if (o < 0) o = 0; printf "%.0f", o}')
}

warmup() { # SCRIPT CONNS [THREADS]
  ((WARMUP > 0)) || return 0
  local threads=${3:-$THREADS}
  (($2 < threads)) && threads=$2
  BENCH_THREADS=$threads wrk -t"$threads" -c"$2" -d"${WARMUP}s" --timeout 30s \
    -s "$BENCH_LUA_DIR/$1" "$URL" >"$TMP/warmup.txt" 2>&1 || true
}

# In A/B mode every row is also kept for the A/B table: run, scenario, conns,
# req/s, p99 ms, fraction of the bcrypt limit (ROW_FRAC, login rows only),
# server CPU ms per request.
AB_TSV="$TMP/ab.tsv"
: >"$AB_TSV"
ROW_FRAC=""
ab_record() { # scenario conns rps p99 frac [cpu_ms]
  [[ $AB == 1 ]] || return 0
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$AB_TAG" "$1" "$2" "$3" "$4" "$5" "${6:--}" >>"$AB_TSV"
}
# True for the run whose figures feed the Targets section: the only run, or B.
reported_run() { [[ -z $AB_TAG || $AB_TAG == B ]]; }
tag_label() { # scenario label, prefixed with the run in A/B mode
  case $AB_TAG in
    A1 | A2) echo "**$AB_TAG** baseline: $1" ;;
    B) echo "**B** new: $1" ;;
    *) echo "$1" ;;
  esac
}

# row NUM SCENARIO CONNS LOAD NOTES ; from the last run_wrk
row() {
  local errs=$R_ERR
  [[ $R_OK == 1 ]] || errs="no result"
  if [[ $R_OK == 1 ]] && awk -v r="$R_RPS" 'BEGIN{exit !(r == 0)}'; then
    # Nothing completed in the window (a 1 s quick run at cost 12 on a busy
    # machine): no figure, rather than 0 req/s and a p99 of 0 ms.
    log "WARNING: ${AB_TAG:+$AB_TAG }$2: no request completed in the measured window"
    ab_record "$2" "$3" - - -
  else
    ab_record "$2" "$3" "$R_RPS" "$R_P99" "${ROW_FRAC:--}" "$R_CPU_MS"
  fi
  local notes=$5
  [[ ${R_RANOUT:-no} == yes ]] && notes="$notes; its single-use work ran out after $R_DUR s: req/s over that time, CPU % over the whole window"
  printf '| %s | %s | %s | %.1f | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
    "$1" "$(tag_label "$2")" "$3" "$R_RPS" "$R_P50" "$R_P99" "$R_P999" "$errs" "$R_RSS_MB" "$R_CPU" "$R_CPU_MS" "$R_WRK_CPU" "$R_OTHER_CPU" "$4" "$notes" >>"$RESULTS"
  if [[ $R_OK != 1 || $R_ERR != 0 || ${R_FALLBACK:-0} != 0 ]]; then
    FAILURES=$((FAILURES + 1))
    log "FAILED: ${AB_TAG:+$AB_TAG }$2 (errors=$errs, fallback logins=${R_FALLBACK:-0})"
  fi
  log "${AB_TAG:+$AB_TAG }$2: ${R_RPS} req/s p50 ${R_P50} ms p99 ${R_P99} ms p99.9 ${R_P999} ms errors ${errs}"
}
