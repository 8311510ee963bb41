#!/usr/bin/env bash
# The one test command: formatting, lints, unit and integration tests on the
# embedded store, the same suites on a MongoDB wire-protocol server, the
# compose-file check, and the outside-in interop suite when present.
#
# MongoDB: PORTCULLIS_TEST_MONGODB_URI (e.g. from `docker compose up mongo`)
# is used when set; otherwise FerretDB is built from the Go module proxy and
# started on a free port (scripts/ferretdb.sh). Without Go or a URI the
# MongoDB runs are skipped with a reason, except under CI=true, where they
# must run.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
failures=0
summary=()

step() { printf '\n==> %s\n' "$*"; }
record() { summary+=("$1: $2"); if [[ "$2" == FAIL* ]]; then failures=$((failures + 1)); fi; }

run_step() {
    local name=$1; shift
    step "$name"
    if "$@"; then record "$name" ok; else record "$name" FAIL; fi
}

run_step "cargo fmt --check" cargo fmt --all -- --check
run_step "cargo clippy -D warnings" cargo clippy --all-targets --locked -- -D warnings

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
run_step "tests (embedded store, unit tests)" cargo test --locked
if [[ -n "$mongo_uri" ]]; then
    run_step "HTTP tests (MongoDB backend)" env PORTCULLIS_TEST_BACKEND=mongo cargo test --locked --test api -- --show-output
elif [[ -n "$mongo_skip" ]]; then
    if [[ "${CI:-}" == "true" ]]; then
        record "tests (MongoDB backend)" "FAIL ($mongo_skip; required in CI)"
    else
        echo "SKIPPED: MongoDB backend tests: $mongo_skip"
        record "tests (MongoDB backend)" "skipped ($mongo_skip)"
    fi
fi
cleanup
ferret_dir=""

# --- Python checks (compose file structure) --------------------------------
venv=target/test-venv
step "compose file check"
if [[ ! -x "$venv/bin/pytest" ]]; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet -r tests/compose/requirements.txt
fi
if "$venv/bin/pytest" -q tests/compose; then record "compose check" ok; else record "compose check" FAIL; fi

# --- Outside-in suites -------------------------------------------------------
if [[ -x scripts/interop.sh ]]; then
    run_step "interop (PyJWT, jose, Swagger UI, schemathesis)" scripts/interop.sh
fi
if [[ -x bench/run.sh ]]; then
    # The smoke run uses the debug binary the tests built: CI skips a release build.
    run_step "benchmark smoke" env BENCH_QUICK=1 BENCH_BIN=target/debug/portcullis bench/run.sh
fi

step "summary"
printf '  %s\n' "${summary[@]}"
passed=$(( ${#summary[@]} - failures ))
echo "test.sh: ${passed} passed, ${failures} failed"
[[ $failures -eq 0 ]]
