#!/usr/bin/env bash
# Portcullis load benchmark: one command, `bench/run.sh`.
#
# Builds target/release/portcullis (a no-op when it is up to date), starts it
# on temporary data/keys dirs with PORTCULLIS_RATE_LIMIT=off, drives it with
# wrk (Debian's package; installed with apt-get when missing) and prints one
# row per scenario: req/s, p50/p99/p99.9 latency, errors, server peak RSS and
# CPU%, and the load average when the scenario started. See bench/README.md.
#
# Options (environment):
#   BENCH_SCENARIOS   comma list of startup,login,me,refresh,register,isolation,scale,backends
#                     (default: all)
#   BENCH_DURATION    seconds measured per scenario (default 10; login at cost 12: 2x)
#   BENCH_WARMUP      seconds of discarded warm-up before each measurement (default 3)
#   BENCH_CONNECTIONS connections for GET /v1/me, refresh, register (default 32)
#   BENCH_LOGIN_CONNECTIONS connections for POST /v1/sessions (default 8)
#   BENCH_THREADS     wrk threads (default 2)
#   BENCH_SCALE_SIZES users in the store for the scale scenario (default 10000,100000,1000000)
#   BENCH_SCALE_COST  bcrypt cost of the scale scenario's users (default 10)
#   BENCH_REGISTER_COST bcrypt cost of the server for POST /v1/users (default 10)
#   BENCH_PORT        port on 127.0.0.1 (default 18080)
#   BENCH_OUT         folder for the results (default: a temp dir, printed)
#   BENCH_KEEP=1      keep the temp data dirs
#   BENCH_BIN         use this binary instead of building target/release/portcullis
#   BENCH_MONGODB_URI MongoDB for the backends scenario (default: a FerretDB started
#                     with scripts/ferretdb.sh, built from the Go module proxy)
#   BENCH_QUICK=1     CI smoke run: 1 s per scenario, no warm-up, small stores;
#                     exits non-zero unless every scenario completed with zero errors
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
  DURATION=${BENCH_DURATION:-1}
  WARMUP=${BENCH_WARMUP:-0}
  SCALE_SIZES=${BENCH_SCALE_SIZES:-1000,5000}
  CONNS=${BENCH_CONNECTIONS:-8}
  LOGIN_CONNS=${BENCH_LOGIN_CONNECTIONS:-4}
  LOGIN_USERS=200
  BCRYPT_SECS=0.5 # seconds per bcrypt measurement
  STARTUPS=1
  IDLE_WAIT=0.5
  LONG=1 # login at cost 12 runs LONG x DURATION
else
  DURATION=${BENCH_DURATION:-10}
  WARMUP=${BENCH_WARMUP:-3}
  SCALE_SIZES=${BENCH_SCALE_SIZES:-10000,100000,1000000}
  CONNS=${BENCH_CONNECTIONS:-32}
  LOGIN_CONNS=${BENCH_LOGIN_CONNECTIONS:-8}
  LOGIN_USERS=1000
  BCRYPT_SECS=2
  STARTUPS=5
  IDLE_WAIT=1
  LONG=2
fi
SCENARIOS=${BENCH_SCENARIOS:-startup,login,me,refresh,register,isolation,scale,backends}
THREADS=${BENCH_THREADS:-2}
SCALE_COST=${BENCH_SCALE_COST:-10}
REGISTER_COST=${BENCH_REGISTER_COST:-10}
PORT=${BENCH_PORT:-18080}
URL="http://127.0.0.1:$PORT"
CORES=$(nproc)
CLK_TCK=$(getconf CLK_TCK)
export BENCH_LUA_DIR="$ROOT/bench/lua" BENCH_THREADS="$THREADS"
PASSWORD="correct horse battery staple 42"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
has_scenario() { [[ ",$SCENARIOS," == *",$1,"* ]]; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# --- tools and binary -------------------------------------------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk time >/dev/null
fi
for tool in curl jq awk /usr/bin/time; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
if [[ -n ${BENCH_BIN:-} ]]; then
  BIN=$(realpath "$BENCH_BIN")
else
  log "building the release binary (no-op when up to date)"
  (cd "$ROOT" && nice -n 10 cargo build --release --quiet --bin portcullis)
  BIN="$ROOT/target/release/portcullis"
fi
[[ -x $BIN ]] || die "no binary at $BIN"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench.XXXXXX")
OUT=${BENCH_OUT:-$TMP/out}
mkdir -p "$OUT"
KEYS="$TMP/keys"
SERVER_PID=""
FERRET_DIR=""
cleanup() {
  stop_server
  if [[ -n $FERRET_DIR ]]; then "$ROOT/scripts/ferretdb.sh" stop "$FERRET_DIR" >/dev/null 2>&1 || true; fi
  if [[ ${BENCH_KEEP:-0} != 1 ]]; then
    # Keep the results when they were written inside the temp dir.
    find "$TMP" -mindepth 1 -maxdepth 1 ! -name out -exec rm -rf {} +
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

curl -s -o /dev/null --max-time 1 "$URL/healthz" && die "something already listens on $URL (set BENCH_PORT)"

RESULTS="$OUT/results.md"
FAILURES=0
{
  echo "# Portcullis load benchmark"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- machine: $CORES cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr)"
  echo "- wrk: $(wrk --version 2>&1 | head -1 | awk '{print $1, $2}'), $THREADS threads, timeout 30 s; warm-up ${WARMUP} s, measured ${DURATION} s (login at cost 12: $((DURATION * LONG)) s)"
  echo "- CPU columns are % of one core over the measured window (${CORES} cores = $((CORES * 100)) %): the server, the measuring wrk, and everything else on the machine (other builds; the background wrk of scenario 5)"
  echo "- mode: $([[ $QUICK == 1 ]] && echo 'QUICK (smoke run; figures not meaningful)' || echo full)"
  echo
  echo "| # | scenario | conns | req/s | p50 ms | p99 ms | p99.9 ms | errors | server peak RSS MB | server CPU % | wrk CPU % | other CPU % | load avg at start | notes |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$RESULTS"

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
  (cd "$TMP" && exec env "${ENVV[@]}" "$BIN" serve) >>"$TMP/server.log" 2>&1 &
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
  local out="$OUT/$name.wrk.txt" samples="$TMP/$name.rss" t0 t1 c0 c1 b0 b1 sampler line wrk_s
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
    R_OK=0; R_RPS=0; R_P50=0; R_P99=0; R_P999=0; R_ERR=1; R_FALLBACK=0
  else
    R_OK=1
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    R_RPS=$(field rps); R_P50=$(field p50_ms); R_P99=$(field p99_ms)
    R_P999=$(field p999_ms); R_ERR=$(field errors); R_FALLBACK=$(field fallback_logins)
  fi
  R_RSS_MB=$(sort -n "$samples" | tail -1 | awk '{printf "%.1f", $1/1024}')
  R_CPU=$(awk -v c="$((c1 - c0))" -v hz="$CLK_TCK" -v ns="$((t1 - t0))" 'BEGIN{printf "%.0f", c/hz/(ns/1e9)*100}')
  wrk_s=$(awk '{print $1 + $2; exit}' "$TMP/wrk.time" 2>/dev/null || echo 0)
  R_WRK_CPU=$(awk -v s="$wrk_s" -v ns="$((t1 - t0))" 'BEGIN{printf "%.0f", s/(ns/1e9)*100}')
  R_OTHER_CPU=$(awk -v b="$((b1 - b0))" -v c="$((c1 - c0))" -v s="$wrk_s" -v hz="$CLK_TCK" -v ns="$((t1 - t0))" \
    'BEGIN{o = ((b - c)/hz - s)/(ns/1e9)*100; if (o < 0) o = 0; printf "%.0f", o}')
}

warmup() { # SCRIPT CONNS
  ((WARMUP > 0)) || return 0
  local threads=$THREADS
  (($2 < threads)) && threads=$2
  BENCH_THREADS=$threads wrk -t"$threads" -c"$2" -d"${WARMUP}s" --timeout 30s \
    -s "$BENCH_LUA_DIR/$1" "$URL" >"$TMP/warmup.txt" 2>&1 || true
}

# row NUM SCENARIO CONNS LOAD NOTES ; from the last run_wrk
row() {
  local errs=$R_ERR
  [[ $R_OK == 1 ]] || errs="no result"
  printf '| %s | %s | %s | %.1f | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s |\n' \
    "$1" "$2" "$3" "$R_RPS" "$R_P50" "$R_P99" "$R_P999" "$errs" "$R_RSS_MB" "$R_CPU" "$R_WRK_CPU" "$R_OTHER_CPU" "$4" "$5" >>"$RESULTS"
  if [[ $R_OK != 1 || $R_ERR != 0 || ${R_FALLBACK:-0} != 0 ]]; then
    FAILURES=$((FAILURES + 1))
    log "FAILED: $2 (errors=$errs, fallback logins=${R_FALLBACK:-0})"
  fi
  log "$2: ${R_RPS} req/s p50 ${R_P50} ms p99 ${R_P99} ms p99.9 ${R_P999} ms errors ${errs}"
}

# Lines that go under the table.
NOTES="$TMP/notes.md"
: >"$NOTES"
note() { echo "- $*" >>"$NOTES"; log "$*"; }

# --- scenarios ----------------------------------------------------------------
log "temp dir $TMP; results in $OUT"
pc "$TMP/unused" 12 keys generate >/dev/null

STARTUP_SAMPLES=()
if has_scenario startup; then
  load=$(loadavg)
  for _ in $(seq 1 "$STARTUPS"); do
    rm -rf "$TMP/empty"
    start_server "$TMP/empty" 12
    STARTUP_SAMPLES+=("$STARTUP_MS")
    rss=$IDLE_RSS_MB
    stop_server
  done
  med=$(printf '%s\n' "${STARTUP_SAMPLES[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  echo "$med" >"$TMP/startup_ms"; echo "$rss" >"$TMP/idle_rss"
  printf '| 7 | idle RSS / start-up (empty store) | - | - | - | - | - | - | %s (idle) | - | - | - | %s | process start to first 200 on /healthz: median %s ms of %s starts (%s ms) |\n' \
    "$rss" "$load" "$med" "$STARTUPS" "$(IFS=,; echo "${STARTUP_SAMPLES[*]}")" >>"$RESULTS"
  log "start-up median ${med} ms; idle RSS ${rss} MB"
fi

login_scenario() { # cost secs
  local cost=$1 secs=$2 data="$TMP/data-c$1" t t1 t2 tp limit par frac load
  if [[ ! -d $data ]]; then seed "$data" "$cost" 0 "$LOGIN_USERS"; fi
  start_server "$data" "$cost"
  load=$(loadavg)
  # One verify, timed before and after the run (the mean is used: the
  # machine's speed drifts by a few % from minute to minute), and what the
  # machine sustains with one verify per core at once (shared or SMT cores
  # may give less than cores x the serial rate).
  t1=$(bcrypt_secs "$cost")
  tp=$(bcrypt_secs "$cost" "$CORES")
  export BENCH_USERS=$LOGIN_USERS
  warmup login.lua "$LOGIN_CONNS"; settle
  run_wrk "login-c$cost" login.lua "$LOGIN_CONNS" "$secs"
  settle
  t2=$(bcrypt_secs "$cost")
  t=$(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.6f", (a + b) / 2}')
  limit=$(awk -v c="$CORES" -v t="$t" 'BEGIN{printf "%.2f", c/t}')
  par=$(awk -v c="$CORES" -v t="$tp" 'BEGIN{printf "%.2f", c/t}')
  frac=$(awk -v r="$R_RPS" -v l="$limit" 'BEGIN{printf "%.2f", r/l}')
  echo "$frac" >"$TMP/frac-c$cost"
  row 1 "POST /v1/sessions, cost $cost" "$LOGIN_CONNS" "$load" \
    "one verify $(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.1f ms (%.1f before, %.1f after)", (a+b)*500, a*1000, b*1000}') → bcrypt limit $CORES/t = $limit/s; **$frac × limit** ($CORES verifying at once, outside the server: $par/s)"
}

if has_scenario login; then
  login_scenario 12 $((DURATION * LONG))
  login_scenario 10 "$DURATION"
fi

if has_scenario me || has_scenario refresh || has_scenario register; then
  data="$TMP/data-c$REGISTER_COST"
  [[ -d $data ]] || seed "$data" "$REGISTER_COST" 0 "$LOGIN_USERS"
  start_server "$data" "$REGISTER_COST"
  export BENCH_USERS=$LOGIN_USERS
  if has_scenario me; then
    load=$(loadavg)
    login_tokens 32 "$LOGIN_USERS" access_token >"$TMP/me.tokens"
    export BENCH_TOKENS_FILE="$TMP/me.tokens"
    warmup me.lua "$CONNS"
    run_wrk me me.lua "$CONNS" "$DURATION"
    row 2 "GET /v1/me" "$CONNS" "$load" "32 users' access tokens, round robin"
  fi
  if has_scenario refresh; then
    load=$(loadavg)
    # Warm-up starts from sign-ins (fallback path); the measured run from
    # 2 fresh sessions per connection, so no sign-in happens inside it.
    export BENCH_TOKENS_FILE=/dev/null
    if ((WARMUP > 0)); then warmup refresh.lua "$CONNS"; settle; fi
    login_tokens $((CONNS * 2)) "$LOGIN_USERS" refresh_token >"$TMP/refresh.tokens"
    export BENCH_TOKENS_FILE="$TMP/refresh.tokens"
    run_wrk refresh refresh.lua "$CONNS" "$DURATION"
    row 3 "POST /v1/sessions/refresh" "$CONNS" "$load" "rotation; each token used once; fallback sign-ins: ${R_FALLBACK}"
  fi
  if has_scenario register; then
    load=$(loadavg)
    BENCH_RUN_ID="w$(date +%s)"; export BENCH_RUN_ID
    warmup register.lua "$CONNS"; settle
    BENCH_RUN_ID="m$(date +%s)"; export BENCH_RUN_ID
    run_wrk register register.lua "$CONNS" "$DURATION"
    settle
    row 4 "POST /v1/users, cost $REGISTER_COST" "$CONNS" "$load" "unique emails; zxcvbn + bcrypt hash at cost $REGISTER_COST + fsync'd insert"
  fi
fi

if has_scenario isolation; then
  data="$TMP/data-c12"
  [[ -d $data ]] || seed "$data" 12 0 "$LOGIN_USERS"
  start_server "$data" 12
  export BENCH_USERS=$LOGIN_USERS
  load=$(loadavg)
  login_tokens 4 "$LOGIN_USERS" access_token >"$TMP/iso.tokens"
  # Logins at cost 12 saturate the bcrypt pool for the whole window; GET
  # /v1/me runs inside it (2 connections, 1 thread), starting 2 s later.
  iso_secs=$((DURATION + 4))
  BENCH_THREADS=$THREADS wrk -t"$THREADS" -c"$LOGIN_CONNS" -d"${iso_secs}s" --timeout 30s \
    -s "$BENCH_LUA_DIR/login.lua" "$URL" >"$OUT/isolation-login.wrk.txt" 2>&1 &
  bg=$!
  sleep 2
  export BENCH_TOKENS_FILE="$TMP/iso.tokens"
  run_wrk isolation-me me.lua 2 "$DURATION" 1
  wait "$bg" || true
  iso_login=$(grep '^BENCH_RESULT' "$OUT/isolation-login.wrk.txt" | sed -n 's/.* rps=\([^ ]*\).* errors=\([^ ]*\).*/\1 req\/s, errors \2/p')
  [[ -n $iso_login ]] || { iso_login="no result"; FAILURES=$((FAILURES + 1)); }
  grep -q '^BENCH_RESULT.* errors=0 ' "$OUT/isolation-login.wrk.txt" || { FAILURES=$((FAILURES + 1)); log "FAILED: isolation logins"; }
  echo "$R_P99" >"$TMP/iso_p99"
  row 5 "GET /v1/me while logins (cost 12) saturate the CPU" 2 "$load" "concurrent logins: $LOGIN_CONNS conns, $iso_login"
  settle
fi

# Logins of random users, then GET /v1/me with 32 users' tokens, on the
# running server; p50/p99 of each kept in $TMP/NAME-login and $TMP/NAME-me.
# login_then_me NAME ROW USERS LOGIN_LABEL LOGIN_NOTE ME_LABEL ME_NOTE
login_then_me() {
  local name=$1 num=$2 users=$3 load
  export BENCH_USERS=$users
  load=$(loadavg)
  warmup login.lua "$LOGIN_CONNS"; settle
  run_wrk "$name-login" login.lua "$LOGIN_CONNS" "$DURATION"
  settle
  echo "$R_P50 $R_P99" >"$TMP/$name-login"
  row "$num" "$4" "$LOGIN_CONNS" "$load" "$5"
  load=$(loadavg)
  login_tokens 32 "$users" access_token >"$TMP/$name.tokens"
  export BENCH_TOKENS_FILE="$TMP/$name.tokens"
  warmup me.lua "$CONNS"
  run_wrk "$name-me" me.lua "$CONNS" "$DURATION"
  echo "$R_P50 $R_P99" >"$TMP/$name-me"
  row "$num" "$6" "$CONNS" "$load" "$7"
}

if has_scenario scale; then
  data="$TMP/data-scale"
  have=0
  IFS=, read -r -a sizes <<<"$SCALE_SIZES"
  for n in "${sizes[@]}"; do
    stop_server
    t0=$(date +%s%N)
    seed "$data" "$SCALE_COST" "$have" $((n - have))
    seed_s=$(awk -v ns="$(($(date +%s%N) - t0))" 'BEGIN{printf "%.1f", ns/1e9}')
    note "seeding users $have..$((n - 1)) (cost $SCALE_COST, batches of 10k, one fsync'd transaction each) took ${seed_s} s; store file $(du -m "$data/portcullis.redb" | cut -f1) MB"
    have=$n
    start_server "$data" "$SCALE_COST"
    note "with $n users: start-up to first 200 on /healthz ${STARTUP_MS} ms, idle RSS ${IDLE_RSS_MB} MB"
    login_then_me "scale-$n" 6 "$n" \
      "scale: POST /v1/sessions, $n users, cost $SCALE_COST" "random user of the $n per request" \
      "scale: GET /v1/me, $n users" "32 random users' tokens"
  done
  stop_server
fi

if has_scenario backends; then
  # Login and GET /v1/me on the embedded store and on MongoDB, same machine,
  # same run, same settings.
  MONGO_URI=${BENCH_MONGODB_URI:-}
  if [[ -z $MONGO_URI ]]; then
    FERRET_DIR="$TMP/ferretdb"
    mkdir -p "$FERRET_DIR"
    MONGO_URI=$("$ROOT/scripts/ferretdb.sh" start "$FERRET_DIR" | tail -n 1) || MONGO_URI=""
  fi
  for backend in embedded mongodb; do
    if [[ $backend == mongodb ]]; then
      if [[ -z $MONGO_URI ]]; then
        note "MongoDB backend skipped: no BENCH_MONGODB_URI and FerretDB did not start"
        FAILURES=$((FAILURES + 1))
        continue
      fi
      EXTRA_ENV=(PORTCULLIS_MONGODB_URI="$MONGO_URI" PORTCULLIS_MONGODB_DB="portcullis_bench_$(date +%s)")
    else
      EXTRA_ENV=()
    fi
    data="$TMP/data-backend-$backend"
    seed "$data" 10 0 "$LOGIN_USERS"
    start_server "$data" 10
    store=$(grep -o '"store":"[^"]*"' "$TMP/server.log" | tail -n 1 | cut -d'"' -f4)
    note "backend $backend: store \`$store\`"
    login_then_me "backend-$backend" 8 "$LOGIN_USERS" \
      "$backend store: POST /v1/sessions, cost 10" "$store" \
      "$backend store: GET /v1/me" "$store; token check reads the session"
    stop_server
  done
  EXTRA_ENV=()
fi

# --- targets ------------------------------------------------------------------
{
  echo
  cat "$NOTES"
  echo
  echo "## Targets"
  echo
  verdict() { if [[ $1 == 1 ]]; then echo "met"; else echo "**missed**"; fi; }
  for c in 12 10; do
    if [[ -f $TMP/frac-c$c ]]; then
      f=$(cat "$TMP/frac-c$c")
      echo "- login ≥ 0.95 × bcrypt limit (cost $c): $f × — $(verdict "$(awk -v f="$f" 'BEGIN{print (f >= 0.95)}')")"
    fi
  done
  if [[ -f $TMP/iso_p99 ]]; then
    p=$(cat "$TMP/iso_p99")
    echo "- GET /v1/me p99 < 10 ms while logins saturate the CPU: $p ms — $(verdict "$(awk -v p="$p" 'BEGIN{print (p < 10)}')")"
  fi
  if [[ -n ${sizes:-} ]] && ((${#sizes[@]} >= 2)); then
    small=${sizes[0]} big=${sizes[${#sizes[@]} - 1]}
    for kind in login me; do
      read -r s50 s99 <"$TMP/scale-$small-$kind"
      read -r b50 b99 <"$TMP/scale-$big-$kind"
      r50=$(awk -v a="$b50" -v b="$s50" 'BEGIN{printf "%.2f", a/b}')
      r99=$(awk -v a="$b99" -v b="$s99" 'BEGIN{printf "%.2f", a/b}')
      echo "- $kind latency at $big users within 20% of $small: p50 ratio $r50 (p99 ratio $r99) — $(verdict "$(awk -v r="$r50" 'BEGIN{print (r <= 1.2)}')") (judged on p50)"
    done
  fi
  if [[ -f $TMP/idle_rss ]]; then
    r=$(cat "$TMP/idle_rss") s=$(cat "$TMP/startup_ms")
    echo "- idle RSS < 30 MB: $r MB — $(verdict "$(awk -v r="$r" 'BEGIN{print (r < 30)}')")"
    echo "- start-up < 200 ms: $s ms — $(verdict "$(awk -v s="$s" 'BEGIN{print (s < 200)}')")"
  fi
  echo
  echo "Scenario failures (errors, missing results): $FAILURES"
} >>"$RESULTS"

cat "$RESULTS"
log "results: $RESULTS"
if ((FAILURES > 0)); then
  log "$FAILURES scenario(s) failed"
  exit 1
fi
