#!/usr/bin/env bash
# The one test command: formatting, lints, unit and integration tests on the
# embedded store, the same suites on a MongoDB wire-protocol server, the
# compose-file check, and the outside-in interop suite when present.
#
# `scripts/test.sh --quick` runs the inner loop only: formatting, lints, the
# size check and `cargo test` (unit tests and the HTTP suite on the embedded
# store); no MongoDB/FerretDB, cargo deny, compose check, interop, TypeScript
# client or benchmark. The full run (no argument) is what CI runs.
#
# Size check: no hand-written source file (src/ and tests/ Rust, the
# TypeScript client outside generated/, scripts/*.sh, bench/*.sh, interop
# scripts) may pass 800 lines; generated files and lock files are exempt.
#
# Skipped tests are counted, never silent: a test that does not apply to the
# current backend prints `SKIPPED: reason`; each cargo test step runs with
# `--show-output` and the summary gives the count and reasons per step.
#
# MongoDB: PORTCULLIS_TEST_MONGODB_URI (e.g. from `docker compose up mongo`)
# is used when set; otherwise FerretDB is built from the Go module proxy and
# started on a free port (scripts/ferretdb.sh). Without Go or a URI the
# MongoDB runs are skipped with a reason, except under CI=true, where they
# must run.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
case "${1:-}" in
    --quick) quick=true ;;
    "") ;;
    *) echo "usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
esac
started=$SECONDS

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
failures=0
skipped_total=0
summary=()

step() { printf '\n==> %s\n' "$*"; }
record() { summary+=("$1: $2"); if [[ "$2" == FAIL* ]]; then failures=$((failures + 1)); fi; }

# A failed step's telling lines (failed checks and tests, panics, thrown
# errors, timeouts), kept for the summary: CI shows the end of the output,
# where a long step's own lines may be cut away.
details=()
keep_details() {
    local name=$1 log=$2 lines
    # Colour codes (vitest's) stripped first; passing tests whose names
    # merely contain a word such as "timeout" are left out.
    lines=$(sed -E 's/\x1b\[[0-9;]*m//g' "$log" |
        grep -a -E '(^|[[:space:]])(FAIL|FAILED|not ok)([[:space:]:-]|$)|panicked at|^[[:space:]]*(Error|TypeError|AssertionError|RangeError)\b|[Tt]imed? ?out|did not answer|exited with' |
        grep -a -v -E '^[[:space:]]*ok |[.][.][.] ok$|✓' | cut -c1-300 | tail -n 25 || true)
    if [[ -z $lines ]]; then lines=$(tail -n 15 "$log" | cut -c1-300); fi
    details+=("--- $name" "$lines")
}

run_step() {
    local name=$1; shift
    step "$name"
    local log
    log=$(mktemp)
    if "$@" 2>&1 | tee "$log"; then
        record "$name" ok
    else
        record "$name" FAIL
        keep_details "$name" "$log"
    fi
    rm -f "$log"
}

# Runs a cargo test step with its output copied to a log, then counts the
# `SKIPPED: reason` lines the tests printed (libtest shows the output of
# passing tests with --show-output) and records them with the step.
run_test_step() {
    local name=$1; shift
    step "$name"
    local log status=ok n reasons
    log=$(mktemp)
    if ! "$@" 2>&1 | tee "$log"; then status=FAIL; keep_details "$name" "$log"; fi
    n=$(grep -c 'SKIPPED: ' "$log" || true)
    if [[ $n -gt 0 ]]; then
        # "what (why)" counts under its why: one reason per kind of skip.
        reasons=$(grep -o 'SKIPPED: .*' "$log" | sed -E 's/^SKIPPED: //; s/^.* \(([^()]*)\)$/\1/' | sort | uniq -c |
            awk '{c=$1; sub(/^ *[0-9]+ /, ""); printf "%s%s%s", (NR>1 ? "; " : ""), $0, (c>1 ? " x" c : "")}')
        record "$name" "$status, $n skipped ($reasons)"
    else
        record "$name" "$status, 0 skipped"
    fi
    skipped_total=$((skipped_total + n))
    rm -f "$log"
}

# Hand-written source files the size check covers (generated files, lock
# files and openapi/openapi.json are not among them).
hand_written_files() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files --cached --others --exclude-standard
    else
        find . -type f -not -path './target/*' -not -path '*/node_modules/*' | sed 's|^\./||'
    fi | grep -E '^(src/.*\.rs|tests/.*\.rs|clients/js/src/.*\.ts|scripts/[^/]*\.sh|bench/[^/]*\.sh|interop/[^/]*\.(mjs|py))$' |
        grep -v '^clients/js/src/generated/' | sort -u
}

# Fails, naming each file, when a hand-written source file passes the limit.
size_check() {
    local limit=800 over=0 file lines
    while IFS= read -r file; do
        [[ -f "$file" ]] || continue
        lines=$(wc -l <"$file")
        if [[ $lines -gt $limit ]]; then
            echo "size check: $file has $lines lines (over $limit: split it by sub-capability)"
            over=$((over + 1))
        fi
    done < <(hand_written_files)
    # An `impl Core` block (the use cases of one capability) over 300
    # lines fails too, unless the line above it names the exception:
    # `// size-check: impl Core over 300 lines: <why>`.
    local blocks
    blocks=$(hand_written_files | grep '^src/.*\.rs$' | while IFS= read -r file; do
        [[ -f "$file" ]] || continue
        awk -v f="$file" '
            /^impl Core \{/ { start = NR; allowed = (prev ~ /size-check: impl Core over 300 lines:/) }
            start && /^\}/ {
                if (NR - start + 1 > 300 && !allowed)
                    printf "size check: %s:%d has an impl Core block of %d lines (over 300: split it by step, or name the exception above it)\n", f, start, NR - start + 1
                start = 0
            }
            { prev = $0 }' "$file"
    done)
    if [[ -n $blocks ]]; then
        echo "$blocks"
        over=$((over + $(wc -l <<<"$blocks")))
    fi
    if [[ $over -gt 0 ]]; then return 1; fi
    echo "size check: no hand-written source file over $limit lines, no impl Core block over 300"
}

run_step "cargo fmt --check" cargo fmt --all -- --check
run_step "cargo clippy -D warnings" cargo clippy --all-targets --locked -- -D warnings
run_step "size check (800 lines per hand-written file, 300 per impl Core)" size_check

# The summary: one line per step, the skipped tests, the wall time, and the
# last line CI reads (`test.sh: N passed, N failed`).
finish() {
    if [[ ${#details[@]} -gt 0 ]]; then
        step "what failed (the telling lines of each failed step)"
        printf '%s\n' "${details[@]}"
    fi
    step "summary"
    printf '  %s\n' "${summary[@]}"
    if $quick; then
        echo "  (quick run: no MongoDB backend, cargo deny, compose check, interop, TypeScript client or benchmark)"
    fi
    echo "test.sh: ${skipped_total} tests skipped (SKIPPED lines; reasons per step above)"
    local mode=full
    if $quick; then mode=quick; fi
    echo "test.sh: wall time $((SECONDS - started)) s (${mode} run)"
    local passed=$(( ${#summary[@]} - failures ))
    echo "test.sh: ${passed} passed, ${failures} failed"
    [[ $failures -eq 0 ]]
}

if $quick; then
    # The embedded store only, whatever the environment says.
    unset PORTCULLIS_TEST_MONGODB_URI PORTCULLIS_TEST_BACKEND
    run_test_step "tests (embedded store: unit tests and the HTTP suite)" cargo test --locked -- --show-output
    finish
    exit $?
fi

# Dependency policy: banned crates (a second crypto library), licenses, and
# sources. `cargo deny check advisories` needs the RustSec database from
# GitHub, unreachable here: run it where the network allows.
deny_check() {
    if ! command -v cargo-deny >/dev/null 2>&1; then
        echo "installing cargo-deny from crates.io (once per machine)"
        cargo install cargo-deny --locked --quiet || return 1
    fi
    cargo deny check bans licenses sources
}
run_step "cargo deny (bans, licenses, sources)" deny_check

# --- MongoDB backend -------------------------------------------------------
ferret_dir=""
cleanup() {
    if [[ -n "$ferret_dir" ]]; then
        scripts/ferretdb.sh stop "$ferret_dir" >/dev/null 2>&1 || true
        rm -rf "$ferret_dir"
    fi
}
trap cleanup EXIT

mongo_uri="${PORTCULLIS_TEST_MONGODB_URI:-}"
mongo_skip=""
if [[ -z "$mongo_uri" ]]; then
    if command -v go >/dev/null 2>&1; then
        step "starting FerretDB (built from the Go module proxy on first use)"
        ferret_dir=$(mktemp -d)
        if mongo_uri=$(scripts/ferretdb.sh start "$ferret_dir" | tail -n 1); then
            export PORTCULLIS_TEST_FERRETDB_DIR="$ferret_dir"
        else
            mongo_uri=""
            record "FerretDB start" FAIL
        fi
    else
        mongo_skip="no Go toolchain to build FerretDB and no PORTCULLIS_TEST_MONGODB_URI"
    fi
fi
# Unit tests (the MongoDB store's conformance test among them, when a URI
# is set) and the HTTP suite on the embedded store.
if [[ -n "$mongo_uri" ]]; then export PORTCULLIS_TEST_MONGODB_URI="$mongo_uri"; fi
run_test_step "tests (embedded store, unit tests)" cargo test --locked -- --show-output
if [[ -n "$mongo_uri" ]]; then
    run_test_step "HTTP tests (MongoDB backend)" env PORTCULLIS_TEST_BACKEND=mongo cargo test --locked --test api -- --show-output
elif [[ -n "$mongo_skip" ]]; then
    if [[ "${CI:-}" == "true" ]]; then
        record "tests (MongoDB backend)" "FAIL ($mongo_skip; required in CI)"
    else
        echo "SKIPPED: MongoDB backend tests: $mongo_skip"
        record "tests (MongoDB backend)" "skipped ($mongo_skip)"
    fi
fi
# The FerretDB started above stops here: later steps that want a MongoDB
# (the TypeScript client's live suites) start their own unless the caller
# gave a URI.
if [[ -n "$ferret_dir" ]]; then unset PORTCULLIS_TEST_MONGODB_URI PORTCULLIS_TEST_FERRETDB_DIR; fi
cleanup
ferret_dir=""

# --- Python checks (compose file structure) --------------------------------
venv=target/test-venv
step "compose file check"
if [[ ! -x "$venv/bin/pytest" ]]; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet -r tests/compose/requirements.txt
fi
if "$venv/bin/pytest" -q tests/compose; then record "compose check" ok; else record "compose check" FAIL; fi

# --- The book (docs/) ----------------------------------------------------------
# Its `sh walkthrough` blocks run against the debug binary the tests built
# (a fresh server per page; each `# expect: NNN` asserts a status), the
# runner's self-test shows a changed status fails, and its links resolve.
# The generated references are checked by `cargo test` (docs_reference).
run_step "book walkthroughs (docs/, README.md)" env PORTCULLIS_BIN="$PWD/target/debug/portcullis" python3 tests/docs/walkthroughs.py
run_step "book walkthroughs self-test (a changed status fails)" env PORTCULLIS_BIN="$PWD/target/debug/portcullis" python3 tests/docs/walkthroughs.py --self-test
run_step "book links" python3 tests/docs/links.py
# --- Kubernetes manifests (deploy/k8s), offline -----------------------------
step "Kubernetes manifest check"
if ! "$venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
    "$venv/bin/pip" install --quiet -r tests/deploy/requirements.txt
fi
if "$venv/bin/pytest" -q tests/deploy; then record "k8s manifests" ok; else record "k8s manifests" FAIL; fi

# --- Outside-in suites -------------------------------------------------------
if [[ -x scripts/interop.sh ]]; then
    run_step "interop (PyJWT, jose, Swagger UI, schemathesis)" scripts/interop.sh
fi
run_step "TypeScript client (clients/js: unit + drift, every method on a live server in Node and Chromium on both stores, 50 clients, 5 Chromium tabs, npm pack, publint/attw)" env PORTCULLIS_BIN="$PWD/target/debug/portcullis" clients/js/scripts/test.sh
if [[ -x bench/run.sh ]]; then
    # The smoke run uses the debug binary the tests built: CI skips a release build.
    run_step "benchmark smoke" env BENCH_QUICK=1 BENCH_BIN=target/debug/portcullis bench/run.sh
fi

finish
