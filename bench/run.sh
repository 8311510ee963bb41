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
#   BENCH_SCENARIOS   comma list of startup,floor,login,me,refresh,register,isolation,scale,
#                     backends,dpop,fed,oauth,email,mongo2,soak (default: all; bench/README.md)
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
#   BENCH_BASELINE_BIN A/B mode: every server start of a scenario runs three times in a
#                     row, each on a fresh server and a freshly seeded store: this baseline binary (A1),
#                     the new one (B: BENCH_BIN or target/release/portcullis), the
#                     baseline again (A2); results.md gains a table of new vs the mean
#                     of A1 and A2 (ratios), with a warning where A1 and A2 differ > 10 %
#   BENCH_STANDARD=0  drop the wrk -t1 -c16 rows of GET /v1/me and refresh (the one
#                     method of published comparisons); on by default, quick run too
#   BENCH_PROFILE=me  after the scenarios, GET /v1/me under valgrind --tool=callgrind:
#                     instructions per request and the top functions (both binaries in
#                     A/B mode); BENCH_SCENARIOS=none runs the profile alone
#   BENCH_PROFILE_REQUESTS requests of the profile (default 2000; quick: 200)
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
  ISO_LEAD=1 # isolation: seconds of logins before GET /v1/me starts (and after it ends)
  PROFILE_REQUESTS=${BENCH_PROFILE_REQUESTS:-200}
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
  ISO_LEAD=2
  PROFILE_REQUESTS=${BENCH_PROFILE_REQUESTS:-2000}
fi
STANDARD=${BENCH_STANDARD:-1}
PROFILE=${BENCH_PROFILE:-}
SCENARIOS=${BENCH_SCENARIOS:-startup,floor,login,me,refresh,register,isolation,scale,backends,dpop,fed,oauth,email,mongo2,soak}
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
NEW_BIN=$BIN
BASE_BIN=""
AB=0
if [[ -n ${BENCH_BASELINE_BIN:-} ]]; then
  BASE_BIN=$(realpath "$BENCH_BASELINE_BIN")
  [[ -x $BASE_BIN ]] || die "no baseline binary at $BASE_BIN"
  AB=1
fi
case $PROFILE in
  "" | me) ;;
  floor | me,floor | floor,me) ;; # floor: GET /bench/floor of `bench floor`
  *) die "BENCH_PROFILE=$PROFILE: 'me', 'floor' or 'me,floor'" ;;
esac
if [[ -n $PROFILE ]]; then
  for tool in valgrind callgrind_control; do
    command -v "$tool" >/dev/null || die "$tool is required for BENCH_PROFILE (apt-get install valgrind)"
  done
fi
# Run tag: "" normally; A1, B, A2 in A/B mode (set by ab).
AB_TAG=""
bin_id() { # path: short sha256 and mtime, to tell binaries apart in results.md
  # shellcheck disable=SC2016 # the backticks are Markdown
  printf '`%s` (sha256 %s, built %s)' "$1" "$(sha256sum "$1" | cut -c1-12)" "$(date -u -r "$1" '+%Y-%m-%d %H:%M UTC')"
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench.XXXXXX")
OUT=${BENCH_OUT:-$TMP/out}
mkdir -p "$OUT"
KEYS="$TMP/keys"
SERVER_PID=""
FERRET_DIR=""
cleanup() {
  stop_server
  if declare -F mongo_stop_replicas >/dev/null; then mongo_stop_replicas; fi
  if [[ -n ${IDP_PID:-} ]]; then kill "$IDP_PID" 2>/dev/null || true; fi
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
  if [[ $AB == 1 ]]; then
    echo "- A/B: baseline (A1, A2) $(bin_id "$BASE_BIN"); new (B) $(bin_id "$NEW_BIN")"
    echo "- A/B: each unit of a scenario (one server start) runs A1, B, A2 in a row, each on a fresh server and a freshly seeded store (same recipe); rows below are tagged with their run"
  else
    echo "- binary: $(bin_id "$BIN")"
  fi
  echo
  echo "| # | scenario | conns | req/s | p50 ms | p99 ms | p99.9 ms | errors | server peak RSS MB | server CPU % | server CPU ms/req | wrk CPU % | other CPU % | load avg at start | notes |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$RESULTS"

# The server and measurement helpers (settings, start/stop, seeding, wrk runs, rows).
# shellcheck source=bench/helpers.sh
source "$ROOT/bench/helpers.sh"
# shellcheck source=bench/dpop.sh
source "$ROOT/bench/dpop.sh"
# The floor and the single-use sign-in flows; MongoDB with two replicas; the soak.
# shellcheck source=bench/flows.sh
source "$ROOT/bench/flows.sh"
# shellcheck source=bench/mongo.sh
source "$ROOT/bench/mongo.sh"
# shellcheck source=bench/soak.sh
source "$ROOT/bench/soak.sh"

# Lines that go under the table.
NOTES="$TMP/notes.md"
: >"$NOTES"
note() { echo "- $*" >>"$NOTES"; log "$*"; }

# --- scenarios ----------------------------------------------------------------
# Each scenario sc_NAME runs one or more units (functions that start their own
# server with $BIN) through `ab`: in A/B mode each unit runs three times in a
# row (A1 baseline, B new, A2 baseline), so A1 and A2 bracket B closely.
ab() { # unit args...
  if [[ $AB == 1 ]]; then
    for AB_TAG in A1 B A2; do
      if [[ $AB_TAG == B ]]; then BIN=$NEW_BIN; else BIN=$BASE_BIN; fi
      log "run $AB_TAG of $1 ($BIN)"
      "$@"
      stop_server
    done
    AB_TAG=""
    BIN=$NEW_BIN
  else
    "$@"
    stop_server
  fi
}
log "temp dir $TMP; results in $OUT"
KEYGEN_BIN=$BIN
[[ $AB == 1 ]] && KEYGEN_BIN=$BASE_BIN # the older binary writes keys both can read
settings "$TMP/unused" 12
env "${ENVV[@]}" "$KEYGEN_BIN" keys generate >/dev/null

# data_dir NAME COST [USERS]: the store NAME of this run (per A/B tag), seeded
# with USERS (default LOGIN_USERS) users at COST when it does not exist yet.
data_dir() {
  local d="$TMP/data${AB_TAG:+-$AB_TAG}-$1"
  [[ -d $d ]] || seed "$d" "$2" 0 "${3:-$LOGIN_USERS}"
  echo "$d"
}
fresh_data() { # NAME COST [USERS]: the same, always freshly seeded
  rm -rf "$TMP/data${AB_TAG:+-$AB_TAG}-$1"
  data_dir "$@"
}

startup_run() {
  local load rss="" med samples=()
  load=$(loadavg)
  for _ in $(seq 1 "$STARTUPS"); do
    rm -rf "$TMP/empty"
    start_server "$TMP/empty" 12
    samples+=("$STARTUP_MS")
    rss=$IDLE_RSS_MB
    stop_server
  done
  med=$(printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  if reported_run; then echo "$med" >"$TMP/startup_ms"; echo "$rss" >"$TMP/idle_rss"; fi
  ab_record "start-up to first 200, ms (median; in the p99 columns)" - - "$med" -
  printf '| 7 | %s | - | - | - | - | - | - | %s (idle) | - | - | - | - | %s | process start to first 200 on /healthz: median %s ms of %s starts (%s ms) |\n' \
    "$(tag_label "idle RSS / start-up (empty store)")" "$rss" "$load" "$med" "$STARTUPS" "$(IFS=,; echo "${samples[*]}")" >>"$RESULTS"
  log "${AB_TAG:+$AB_TAG }start-up median ${med} ms; idle RSS ${rss} MB"
}

# login_run COST SECS CONNS THREADS LABEL: POST /v1/sessions on a fresh server,
# compared with the bcrypt limit measured just before and after.
login_run() {
  local cost=$1 secs=$2 conns=$3 threads=$4 label=$5 data t t1 t2 tp limit par frac load
  data=$(data_dir "c$cost" "$cost")
  start_server "$data" "$cost"
  load=$(loadavg)
  # One verify, timed before and after the run (the mean is used: the
  # machine's speed drifts by a few % from minute to minute), and what the
  # machine sustains with one verify per core at once (shared or SMT cores
  # may give less than cores x the serial rate).
  t1=$(bcrypt_secs "$cost")
  tp=$(bcrypt_secs "$cost" "$CORES")
  export BENCH_USERS=$LOGIN_USERS
  warmup login.lua "$conns" "$threads"; settle
  run_wrk "login-c$cost-n$conns" login.lua "$conns" "$secs" "$threads"
  settle
  t2=$(bcrypt_secs "$cost")
  t=$(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.6f", (a + b) / 2}')
  limit=$(awk -v c="$CORES" -v t="$t" 'BEGIN{printf "%.2f", c/t}')
  par=$(awk -v c="$CORES" -v t="$tp" 'BEGIN{printf "%.2f", c/t}')
  frac=$(awk -v r="$R_RPS" -v l="$limit" 'BEGIN{printf "%.3f", r/l}')
  if reported_run; then echo "$frac" >"$TMP/frac-c$cost-n$conns"; fi
  ROW_FRAC=$frac
  row 1 "$label" "$conns" "$load" \
    "wrk -t$((conns < threads ? conns : threads)); one verify $(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.1f ms (%.1f before, %.1f after)", (a+b)*500, a*1000, b*1000}') → bcrypt limit $CORES/t = $limit/s; **$frac × limit** ($CORES verifying at once, outside the server: $par/s)"
  ROW_FRAC=""
}

sc_startup() { ab startup_run; }
sc_login() {
  ab login_run 12 $((DURATION * LONG)) "$LOGIN_CONNS" "$THREADS" "POST /v1/sessions, cost 12"
  ab login_run 10 "$DURATION" "$LOGIN_CONNS" "$THREADS" "POST /v1/sessions, cost 10"
  # Issue 16's target: cost 10 at 2 and at 16 connections, one wrk thread.
  ab login_run 10 "$DURATION" 2 1 "POST /v1/sessions, cost 10, wrk -t1"
  ab login_run 10 "$DURATION" 16 1 "POST /v1/sessions, cost 10, wrk -t1"
}

me_run() {
  local data load
  data=$(fresh_data "${FUNCNAME[0]%_run}-c$REGISTER_COST" "$REGISTER_COST")
  start_server "$data" "$REGISTER_COST"
  export BENCH_USERS=$LOGIN_USERS
  load=$(loadavg)
  login_tokens 32 "$LOGIN_USERS" access_token >"$TMP/me.tokens"
  export BENCH_TOKENS_FILE="$TMP/me.tokens"
  warmup me.lua "$CONNS"
  run_wrk me me.lua "$CONNS" "$DURATION"
  row 2 "GET /v1/me" "$CONNS" "$load" "32 users' access tokens, round robin; wrk -t$THREADS"
  if [[ $STANDARD == 1 ]]; then
    load=$(loadavg)
    warmup me.lua 16 1
    run_wrk me-t1c16 me.lua 16 "$DURATION" 1
    row 2 "GET /v1/me, wrk -t1" 16 "$load" "the published method: wrk -t1, 16 keep-alive connections; same tokens"
  fi
}

refresh_run() {
  local data load
  data=$(fresh_data "${FUNCNAME[0]%_run}-c$REGISTER_COST" "$REGISTER_COST")
  start_server "$data" "$REGISTER_COST"
  export BENCH_USERS=$LOGIN_USERS
  load=$(loadavg)
  # Warm-up starts from sign-ins (fallback path); the measured run from
  # 2 fresh sessions per connection, so no sign-in happens inside it.
  export BENCH_TOKENS_FILE=/dev/null
  if ((WARMUP > 0)); then warmup refresh.lua "$CONNS"; settle; fi
  login_tokens $((CONNS * 2)) "$LOGIN_USERS" refresh_token >"$TMP/refresh.tokens"
  export BENCH_TOKENS_FILE="$TMP/refresh.tokens"
  run_wrk refresh refresh.lua "$CONNS" "$DURATION"
  row 3 "POST /v1/sessions/refresh" "$CONNS" "$load" "rotation; each token used once; wrk -t$THREADS; fallback sign-ins: ${R_FALLBACK}"
  if [[ $STANDARD == 1 ]]; then
    load=$(loadavg)
    login_tokens 32 "$LOGIN_USERS" refresh_token >"$TMP/refresh.tokens"
    run_wrk refresh-t1c16 refresh.lua 16 "$DURATION" 1
    row 3 "POST /v1/sessions/refresh, wrk -t1" 16 "$load" "the published method: wrk -t1, 16 keep-alive connections; fallback sign-ins: ${R_FALLBACK}"
  fi
}

register_run() {
  local data load
  data=$(fresh_data "${FUNCNAME[0]%_run}-c$REGISTER_COST" "$REGISTER_COST")
  start_server "$data" "$REGISTER_COST"
  export BENCH_USERS=$LOGIN_USERS
  load=$(loadavg)
  BENCH_RUN_ID="w$(date +%s)"; export BENCH_RUN_ID
  warmup register.lua "$CONNS"; settle
  BENCH_RUN_ID="m$(date +%s)"; export BENCH_RUN_ID
  run_wrk register register.lua "$CONNS" "$DURATION"
  settle
  row 4 "POST /v1/users, cost $REGISTER_COST" "$CONNS" "$load" "unique emails; zxcvbn + bcrypt hash at cost $REGISTER_COST + fsync'd insert"
}

# iso_run COST LOGIN_CONNS LOGIN_THREADS LABEL: logins saturate the bcrypt pool
# for the whole window; GET /v1/me runs inside it (2 connections, 1 thread),
# starting ISO_LEAD s later and ending ISO_LEAD s before the logins stop.
iso_run() {
  local cost=$1 lconns=$2 lthreads=$3 label=$4 data load bg iso_login iso_secs lout
  data=$(data_dir "c$cost" "$cost")
  start_server "$data" "$cost"
  export BENCH_USERS=$LOGIN_USERS
  load=$(loadavg)
  login_tokens 4 "$LOGIN_USERS" access_token >"$TMP/iso.tokens"
  iso_secs=$((DURATION + 2 * ISO_LEAD))
  lout="$OUT/${AB_TAG:+$AB_TAG-}isolation-c$cost-login.wrk.txt"
  BENCH_THREADS=$lthreads wrk -t"$lthreads" -c"$lconns" -d"${iso_secs}s" --timeout 30s \
    -s "$BENCH_LUA_DIR/login.lua" "$URL" >"$lout" 2>&1 &
  bg=$!
  sleep "$ISO_LEAD"
  export BENCH_TOKENS_FILE="$TMP/iso.tokens"
  run_wrk "isolation-c$cost-me" me.lua 2 "$DURATION" 1
  wait "$bg" || true
  iso_login=$(grep '^BENCH_RESULT' "$lout" | sed -n 's/.* rps=\([^ ]*\).* errors=\([^ ]*\).*/\1 req\/s, errors \2/p')
  [[ -n $iso_login ]] || { iso_login="no result"; FAILURES=$((FAILURES + 1)); }
  grep -q '^BENCH_RESULT.* errors=0 ' "$lout" || { FAILURES=$((FAILURES + 1)); log "FAILED: ${AB_TAG:+$AB_TAG }isolation logins (cost $cost)"; }
  if reported_run; then echo "$R_P99" >"$TMP/iso_p99-c$cost"; fi
  row 5 "$label" 2 "$load" "concurrent logins: $lconns conns (wrk -t$lthreads), $iso_login"
  settle
}

sc_me() { ab me_run; }
sc_refresh() { ab refresh_run; }
sc_register() { ab register_run; }
sc_isolation() {
  ab iso_run 12 "$LOGIN_CONNS" "$THREADS" "GET /v1/me while logins (cost 12) saturate the CPU"
  # Issue 16's target: GET /v1/me p99 during a cost-10 sign-in storm (16 conns).
  ab iso_run 10 16 1 "GET /v1/me during a sign-in storm (cost 10, 16 conns)"
}

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
  if reported_run; then echo "$R_P50 $R_P99" >"$TMP/$name-login"; fi
  row "$num" "$4" "$LOGIN_CONNS" "$load" "$5"
  load=$(loadavg)
  login_tokens 32 "$users" access_token >"$TMP/$name.tokens"
  export BENCH_TOKENS_FILE="$TMP/$name.tokens"
  warmup me.lua "$CONNS"
  run_wrk "$name-me" me.lua "$CONNS" "$DURATION"
  if reported_run; then echo "$R_P50 $R_P99" >"$TMP/$name-me"; fi
  row "$num" "$6" "$CONNS" "$load" "$7"
}

sizes=()
scale_run() {
  local data have=0 n t0 seed_s
  data="$TMP/data${AB_TAG:+-$AB_TAG}-scale"
  rm -rf "$data"
  IFS=, read -r -a sizes <<<"$SCALE_SIZES"
  for n in "${sizes[@]}"; do
    stop_server
    t0=$(date +%s%N)
    seed "$data" "$SCALE_COST" "$have" $((n - have))
    seed_s=$(awk -v ns="$(($(date +%s%N) - t0))" 'BEGIN{printf "%.1f", ns/1e9}')
    note "${AB_TAG:+$AB_TAG: }seeding users $have..$((n - 1)) (cost $SCALE_COST, batches of 10k, one fsync'd transaction each) took ${seed_s} s; store file $(du -m "$data/portcullis.redb" | cut -f1) MB"
    have=$n
    start_server "$data" "$SCALE_COST"
    note "${AB_TAG:+$AB_TAG: }with $n users: start-up to first 200 on /healthz ${STARTUP_MS} ms, idle RSS ${IDLE_RSS_MB} MB"
    login_then_me "scale-$n" 6 "$n" \
      "scale: POST /v1/sessions, $n users, cost $SCALE_COST" "random user of the $n per request" \
      "scale: GET /v1/me, $n users" "32 random users' tokens"
  done
  stop_server
}

MONGO_URI=${BENCH_MONGODB_URI:-}
backends_run() {
  # Login and GET /v1/me on the embedded store and on MongoDB, same machine,
  # same run, same settings.
  local backend data store
  if [[ -z $MONGO_URI && -z $FERRET_DIR ]]; then
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
      EXTRA_ENV=(PORTCULLIS_MONGODB_URI="$MONGO_URI" PORTCULLIS_MONGODB_DB="portcullis_bench_${AB_TAG:-x}_$(date +%s)")
    else
      EXTRA_ENV=()
    fi
    data="$TMP/data${AB_TAG:+-$AB_TAG}-backend-$backend"
    rm -rf "$data"
    seed "$data" 10 0 "$LOGIN_USERS"
    start_server "$data" 10
    store=$(grep -o '"store":"[^"]*"' "$TMP/server.log" | tail -n 1 | cut -d'"' -f4)
    note "${AB_TAG:+$AB_TAG: }backend $backend: store \`$store\`"
    login_then_me "backend-$backend" 8 "$LOGIN_USERS" \
      "$backend store: POST /v1/sessions, cost 10" "$store" \
      "$backend store: GET /v1/me" "$store; token check reads the session"
    stop_server
  done
  EXTRA_ENV=()
}

sc_scale() { ab scale_run; }
sc_backends() { ab backends_run; }

# --- profile ------------------------------------------------------------------
# profile_me LABEL: GET /v1/me under valgrind --tool=callgrind with $BIN.
# Tokens come from sign-ins at cost 4 under valgrind (cheap there). Then the
# counters are zeroed, PROFILE_IDLE_S of idle is dumped (the idle baseline), and
# PROFILE_REQUESTS sequential requests on one keep-alive connection (curl) are
# dumped. Instructions per request = (load Ir − idle Ir/s × load s) / requests.
# Leaves PROF_IPR (Ir per request) and appends a section to $PROFILE_MD.
PROFILE_MD="$TMP/profile.md"
: >"$PROFILE_MD"
PROFILE_IDLE_S=2
cg_total() { awk '/^totals:/{print $2; exit}' "$1"; }
# Self Ir per function of a callgrind dump, highest first: "Ir percent name".
# (callgrind_annotate 3.19's self view puts the inclusive cost of the frames on
# the stack, e.g. clone and the tokio worker loop, at the top for these Rust
# binaries; summing the cost lines that do not follow a calls= line is exact:
# the sum equals the dump's totals.)
cg_self() { # file
  awk '
    function nm(s,   id) {
      if (match(s, /^\([0-9]+\)/)) {
        id = substr(s, 1, RLENGTH); s = substr(s, RLENGTH + 2)
        if (s != "") names[id] = s
        return names[id]
      }
      return s
    }
    /^fn=/ { cur = nm(substr($0, 4)); next }
    /^cfn=/ { nm(substr($0, 5)); next }
    /^calls=/ { skip = 1; next }
    /^[0-9+*-]/ { if (skip) { skip = 0; next } self[cur] += $NF; tot += $NF; next }
    END { for (f in self) printf "%d %.2f%% %s\n", self[f], self[f] / tot * 100, substr(f, 1, 160) }' "$1" |
    sort -k1,1nr
}
me_curl_config() { # n file: curl config of n GET /v1/me, tokens from $toks round robin
  local j
  : >"$2"
  for ((j = 0; j < $1; j++)); do
    ((j > 0)) && echo "next" >>"$2"
    printf 'url = "%s'"${PROFILE_PATH:-/v1/me}"'"\nheader = "Authorization: Bearer %s"\noutput = "/dev/null"\nwrite-out = "%%{http_code} %%{num_connects}\\n"\nsilent\n' \
      "$URL" "${toks[j % 32]}" >>"$2"
  done
}
profile_me() {
  local label=$1 data="$TMP/data-profile-$1" prefix="$OUT/callgrind-me-$1" cfg="$TMP/profile-$1.curl"
  local code="" ok idle_ir load_ir t0 t1 load_s ipr pid
  rm -rf "$data" "$prefix".*
  seed "$data" 4 0 32
  stop_server
  settings "$data" 4
  # shellcheck disable=SC2086 # PROFILE_SERVE is one or two words
  (cd "$TMP" && exec env "${ENVV[@]}" valgrind --tool=callgrind --callgrind-out-file="$prefix.%p" \
    "$BIN" ${PROFILE_SERVE:-serve}) >>"$TMP/server.log" 2>"$TMP/valgrind-$label.log" &
  SERVER_PID=$!
  pid=$SERVER_PID
  for _ in $(seq 1 600); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/healthz" || true)
    [[ $code == 200 ]] && break
    kill -0 "$pid" 2>/dev/null || die "server under valgrind exited; see $TMP/valgrind-$label.log"
    sleep 0.2
  done
  [[ $code == 200 ]] || die "server under valgrind did not answer /healthz in 120 s"
  BENCH_USERS=32 login_tokens 32 32 access_token >"$TMP/profile.tokens"
  mapfile -t toks <"$TMP/profile.tokens"
  ((${#toks[@]} == 32)) || die "profile: sign-ins under valgrind failed"
  # One curl, one connection: each URL with its own token (round robin over 32 users).
  me_curl_config "$PROFILE_REQUESTS" "$cfg"
  # One round of the 32 tokens first, so one-time work (first use of each
  # token, lazy statics, caches) stays outside the count.
  me_curl_config 32 "$cfg.warm"
  curl -K "$cfg.warm" >/dev/null 2>&1 || true
  callgrind_control -z "$pid" >/dev/null 2>&1
  sleep "$PROFILE_IDLE_S"
  callgrind_control -d "$pid" >/dev/null 2>&1 # dump 1: idle
  t0=$(date +%s%N)
  curl -K "$cfg" >"$TMP/profile-$label.codes" 2>&1 || true
  t1=$(date +%s%N)
  callgrind_control -d "$pid" >/dev/null 2>&1 # dump 2: load
  stop_server
  ok=$(grep -c '^200 ' "$TMP/profile-$label.codes" || true)
  local conns
  conns=$(awk '{s += $2} END{print s + 0}' "$TMP/profile-$label.codes")
  if ((ok != PROFILE_REQUESTS)); then
    FAILURES=$((FAILURES + 1))
    log "FAILED: profile $label: $ok of $PROFILE_REQUESTS requests answered 200"
  fi
  idle_ir=$(cg_total "$prefix.$pid.1")
  load_ir=$(cg_total "$prefix.$pid.2")
  load_s=$(awk -v ns="$((t1 - t0))" 'BEGIN{printf "%.3f", ns/1e9}')
  ipr=$(awk -v l="$load_ir" -v i="$idle_ir" -v is="$PROFILE_IDLE_S" -v s="$load_s" -v n="$PROFILE_REQUESTS" \
    'BEGIN{printf "%.0f", (l - i / is * s) / n}')
  PROF_IPR=$ipr
  cg_self "$prefix.$pid.2" >"$OUT/profile-me-$label-self.txt"
  {
    echo "### $label: $(bin_id "$BIN")"
    echo
    echo "- $PROFILE_REQUESTS × \`GET ${PROFILE_PATH:-/v1/me}\` (32 users' tokens, round robin) on one keep-alive connection (curl; $conns new connection(s)), $ok answered 200, in $load_s s under callgrind"
    echo "- Ir during the load: $load_ir; idle: $idle_ir in ${PROFILE_IDLE_S} s (subtracted pro rata: $(awk -v i="$idle_ir" -v is="$PROFILE_IDLE_S" -v s="$load_s" 'BEGIN{printf "%.0f", i / is * s}'))"
    echo "- **$ipr instructions per request** (all server threads)"
    echo "- top functions by self Ir (Ir, % of the load, function; whole list: \`profile-me-$label-self.txt\`; the call graph: \`$(basename "$prefix").$pid.2\` in kcachegrind or \`callgrind_annotate --tree=caller\`):"
    echo
    echo '```'
    head -n 20 "$OUT/profile-me-$label-self.txt"
    echo '```'
    echo
  } >>"$PROFILE_MD"
  log "profile $label: $ipr instructions per GET ${PROFILE_PATH:-/v1/me} ($ok/$PROFILE_REQUESTS answered 200)"
}

# --- main loop ----------------------------------------------------------------
for s in startup floor login me refresh register isolation scale backends dpop fed oauth email mongo2 soak; do
  if has_scenario "$s"; then "sc_$s"; fi
done

for route in ${PROFILE//,/ }; do
  PROFILE_PATH=/v1/me PROFILE_SERVE=serve
  [[ $route == floor ]] && PROFILE_PATH=/bench/floor PROFILE_SERVE="bench floor"
  base=$BASE_BIN
  [[ $route == floor && -n $FLOOR_BASE_BIN ]] && base=$(realpath "$FLOOR_BASE_BIN")
  if [[ $AB == 1 ]] && { [[ $route == me ]] || BIN=$base bin_has floor; }; then
    BIN=$base; profile_me "baseline-$route"; base_ipr=$PROF_IPR
    BIN=$NEW_BIN; profile_me "new-$route"; new_ipr=$PROF_IPR
    {
      echo "- **new / baseline: $(awk -v n="$new_ipr" -v b="$base_ipr" 'BEGIN{printf "%.3f", n/b}')** instructions per request ($new_ipr vs $base_ipr)"
      echo
    } >>"$PROFILE_MD"
  else
    BIN=$NEW_BIN; profile_me "$(basename "$BIN")-$route"
  fi
done

# --- A/B table ----------------------------------------------------------------
AB_WARN="$TMP/ab_warn"
: >"$AB_WARN"
if [[ $AB == 1 && -s $AB_TSV ]]; then
  {
    echo
    echo "## A/B: new (B) vs baseline (mean of A1 and A2)"
    echo
    echo "Ratios are new / baseline: above 1 is better for req/s and × limit, below 1 is better for p99 and server CPU ms per request. \"A1↔A2\" is |A1 − A2| / their mean; above 10 % (⚠) the machine was too noisy for that figure."
    echo
    echo "| scenario | conns | req/s new | req/s baseline (A1, A2) | req/s ratio | p99 ms new | p99 ms baseline (A1, A2) | p99 ratio | server CPU ms/req new | CPU ms/req baseline (A1, A2) | CPU ratio | × bcrypt limit new | × limit baseline (A1, A2) | A1↔A2 |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' -v warnf="$AB_WARN" '
      function isnum(x) { return x ~ /^[0-9]+(\.[0-9]*)?$/ }
      function f(x) { return x >= 100 ? sprintf("%.0f", x) : (x >= 10 ? sprintf("%.1f", x) : (x >= 1 ? sprintf("%.2f", x) : sprintf("%.3f", x))) }
      # cells for one figure: new | baseline (A1, A2) [| ratio]; adds to spread
      function cells(b, a1, a2, what, with_ratio,   base, d, out) {
        if (!(isnum(b) && isnum(a1) && isnum(a2))) return with_ratio ? "– | – | –" : "– | –"
        base = (a1 + a2) / 2
        out = f(b) " | " f(base) " (" f(a1) ", " f(a2) ")"
        if (with_ratio) out = out " | " (base > 0 ? sprintf("**%.2f×**", b / base) : "–")
        d = base > 0 ? (a1 > a2 ? a1 - a2 : a2 - a1) / base * 100 : 0
        spread = spread (spread == "" ? "" : ", ") sprintf("%s %.0f %%%s", what, d, d > 10 ? " ⚠" : "")
        if (d > 10) printf "%s%s: %s of A1 and A2 differ by %.0f %%\n", name[k], conns[k] == "-" ? "" : " (" conns[k] " conns)", what, d >> warnf
        return out
      }
      { k = $2 SUBSEP $3
        if (!(k in seen)) { seen[k] = 1; order[++n] = k; name[k] = $2; conns[k] = $3 }
        rps[k, $1] = $4; p99[k, $1] = $5; frac[k, $1] = $6; cpu[k, $1] = $7 }
      END {
        for (i = 1; i <= n; i++) {
          k = order[i]; spread = ""
          # rows with no req/s in some run (start-up has none by design: conns "-")
          incomplete = conns[k] != "-" && (!isnum(rps[k, "A1"]) || !isnum(rps[k, "B"]) || !isnum(rps[k, "A2"]))
          r = cells(rps[k, "B"], rps[k, "A1"], rps[k, "A2"], "req/s", 1)
          p = cells(p99[k, "B"], p99[k, "A1"], p99[k, "A2"], "p99", 1)
          c = cells(cpu[k, "B"], cpu[k, "A1"], cpu[k, "A2"], "CPU/req", 1)
          l = cells(frac[k, "B"], frac[k, "A1"], frac[k, "A2"], "× limit", 0)
          if (incomplete) spread = spread (spread == "" ? "" : ", ") "a run completed no request"
          printf "| %s | %s | %s | %s | %s | %s | %s |\n", name[k], conns[k], r, p, c, l, spread
        }
      }' "$AB_TSV"
  } >>"$RESULTS"
  while IFS= read -r w; do log "WARNING (noisy machine): $w"; done <"$AB_WARN"
fi

# --- targets ------------------------------------------------------------------
{
  echo
  cat "$NOTES"
  if [[ -s $AB_WARN ]]; then
    echo
    echo "**Warning: the two baseline runs differ by more than 10 % (noisy machine); those ratios are not reliable:**"
    echo
    sed 's/^/- /' "$AB_WARN"
  fi
  if [[ -s $TMP/soak.md ]]; then cat "$TMP/soak.md"; fi
  if [[ -s $PROFILE_MD ]]; then
    echo
    echo "## Profile under callgrind (BENCH_PROFILE=$PROFILE)"
    echo
    cat "$PROFILE_MD"
  fi
  echo
  echo "## Targets"
  echo
  [[ $AB == 1 ]] && echo "(figures of the new binary, run B)" && echo
  verdict() { if [[ $1 == 1 ]]; then echo "met"; else echo "**missed**"; fi; }
  for c in 12 10; do
    if [[ -f $TMP/frac-c$c-n$LOGIN_CONNS ]]; then
      f=$(cat "$TMP/frac-c$c-n$LOGIN_CONNS")
      echo "- login ≥ 0.95 × bcrypt limit (cost $c, $LOGIN_CONNS conns): $f × — $(verdict "$(awk -v f="$f" 'BEGIN{print (f >= 0.95)}')")"
    fi
  done
  for n in 2 16; do
    if [[ -f $TMP/frac-c10-n$n ]]; then
      f=$(cat "$TMP/frac-c10-n$n")
      echo "- round one: sign-in at cost 10 ≥ 0.97 × bcrypt limit at $n connections (wrk -t1): $f × — $(verdict "$(awk -v f="$f" 'BEGIN{print (f >= 0.97)}')")"
    fi
  done
  if [[ -f $TMP/iso_p99-c12 ]]; then
    p=$(cat "$TMP/iso_p99-c12")
    echo "- GET /v1/me p99 < 10 ms while logins (cost 12, $LOGIN_CONNS conns) saturate the CPU: $p ms — $(verdict "$(awk -v p="$p" 'BEGIN{print (p < 10)}')")"
  fi
  if [[ -f $TMP/iso_p99-c10 ]]; then
    p=$(cat "$TMP/iso_p99-c10")
    echo "- round one: GET /v1/me p99 < 10 ms during a sign-in storm (cost 10, 16 conns): $p ms — $(verdict "$(awk -v p="$p" 'BEGIN{print (p < 10)}')")"
  fi
  if ((${#sizes[@]} >= 2)); then
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
