#!/usr/bin/env bash
# The `soak` scenario of bench/run.sh (sourced by it): BENCH_SOAK_SECONDS
# (default 600; quick: 6) of mixed load on the embedded store, all at once,
# one wrk each: GET /v1/me (8 connections), refresh (8), sign-in at cost
# REGISTER_COST (1). Every BENCH_SOAK_EVERY seconds (30; quick: 2) the
# server's RSS, the redb file's size and the server's CPU are written to
# soak.csv beside results.md; results.md shows the series and whether it
# levels off (growth in the last third of the run against the first).
# shellcheck shell=bash disable=SC2034

SOAK_SECONDS=${BENCH_SOAK_SECONDS:-$([[ $QUICK == 1 ]] && echo 6 || echo 600)}
SOAK_EVERY=${BENCH_SOAK_EVERY:-$([[ $QUICK == 1 ]] && echo 2 || echo 30)}

soak_run() {
  local data load csv t0 now c_prev c_now t_prev elapsed p rss store cpu
  csv="$OUT/${AB_TAG:+$AB_TAG-}soak.csv"
  data=$(fresh_data "soak-c$REGISTER_COST" "$REGISTER_COST")
  start_server "$data" "$REGISTER_COST"
  export BENCH_USERS=$LOGIN_USERS
  login_tokens 32 "$LOGIN_USERS" access_token >"$TMP/soak-me.tokens"
  login_tokens 16 "$LOGIN_USERS" refresh_token >"$TMP/soak-refresh.tokens"
  load=$(loadavg)
  echo "seconds,rss_mb,redb_mb,server_cpu_pct,load1" >"$csv"
  BG_PIDS=()
  BENCH_TOKENS_FILE="$TMP/soak-me.tokens" bg_wrk soak-me me.lua 8 "$SOAK_SECONDS" "$URL"
  BENCH_TOKENS_FILE="$TMP/soak-refresh.tokens" bg_wrk soak-refresh refresh.lua 8 "$SOAK_SECONDS" "$URL"
  BENCH_TOKENS_FILE=/dev/null bg_wrk soak-login login.lua 1 "$SOAK_SECONDS" "$URL"
  t0=$(date +%s%N); t_prev=$t0; c_prev=$(cpu_ticks "$SERVER_PID")
  sample() {
    now=$(date +%s%N); c_now=$(cpu_ticks "$SERVER_PID")
    elapsed=$(awk -v ns="$((now - t0))" 'BEGIN{printf "%.0f", ns/1e9}')
    rss=$(awk -v k="$(rss_kb "$SERVER_PID")" 'BEGIN{printf "%.1f", k/1024}')
    store=$(awk -v b="$(stat -c %s "$data/portcullis.redb" 2>/dev/null || echo 0)" 'BEGIN{printf "%.1f", b/1048576}')
    cpu=$(awk -v c="$((c_now - c_prev))" -v hz="$CLK_TCK" -v ns="$((now - t_prev))" 'BEGIN{printf "%.0f", (ns > 0 ? c/hz/(ns/1e9)*100 : 0)}')
    echo "$elapsed,$rss,$store,$cpu,$(cut -d' ' -f1 /proc/loadavg)" >>"$csv"
    t_prev=$now; c_prev=$c_now
  }
  sample
  while :; do
    sleep "$SOAK_EVERY"
    sample
    # the wrks end on their own after SOAK_SECONDS
    kill -0 "${BG_PIDS[0]}" 2>/dev/null || break
  done
  for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bg_row 18 soak-me "soak: GET /v1/me" 8 "$load" "${SOAK_SECONDS} s, beside the two rows below; series in $(basename "$csv")"
  bg_row 18 soak-refresh "soak: POST /v1/sessions/refresh" 8 "$load" "${SOAK_SECONDS} s; rotation, each token once"
  bg_row 18 soak-login "soak: POST /v1/sessions, cost $REGISTER_COST" 1 "$load" "${SOAK_SECONDS} s; a new session each"
  # Levelling off: growth per minute in the last third against the first third.
  note "${AB_TAG:+$AB_TAG: }soak (${SOAK_SECONDS} s, a sample every ${SOAK_EVERY} s, $(basename "$csv")): $(awk -F, '
    NR > 1 { t[++n] = $1; r[n] = $2; s[n] = $3 }
    function rate(a, i, j) { return (t[j] > t[i]) ? (a[j] - a[i]) / (t[j] - t[i]) * 60 : 0 }
    END {
      if (n < 4) { print "too few samples"; exit }
      a = int(n / 3); b = n - a + 1
      printf "RSS %.1f → %.1f MB (peak %.1f), +%.1f MB/min in the first third, +%.1f MB/min in the last; redb file %.1f → %.1f MB, +%.1f MB/min first, +%.1f MB/min last",
        r[1], r[n], max(r), rate(r, 1, a), rate(r, b, n), s[1], s[n], rate(s, 1, a), rate(s, b, n)
    }
    function max(a,   i, m) { for (i = 1; i <= n; i++) if (a[i] > m) m = a[i]; return m }' "$csv")"
  {
    echo
    echo "### Soak series${AB_TAG:+ ($AB_TAG)}: \`$(basename "$csv")\`"
    echo
    echo "| s | RSS MB | redb file MB | server CPU % | load (1 min) |"
    echo "|---|---|---|---|---|"
    tail -n +2 "$csv" | tr ',' '|' | sed 's/^/| /; s/$/ |/'
  } >>"$TMP/soak.md"
}

sc_soak() { ab soak_run; }
