#!/usr/bin/env bash
# Build, start and stop a local FerretDB (SQLite backend) for the MongoDB
# backend tests (FerretDB speaks the MongoDB wire protocol; the README's
# "Storage" section says which backend does what).
#
#   scripts/ferretdb.sh build             build (or reuse) the cached binary; prints its path
#   scripts/ferretdb.sh start DIR [PORT]  start in DIR on 127.0.0.1:PORT (free port if omitted);
#                                         prints mongodb://127.0.0.1:PORT/
#   scripts/ferretdb.sh stop DIR          stop the server started in DIR (no-op if not running)
#
# Only stdout's last line is meant for callers; all progress goes to stderr.
# FerretDB is built from the Go module proxy (pure Go, CGO_ENABLED=0). Its
# build/version package embeds build/version/version.txt, which the module
# zip does not ship, so we build from a writable copy with that file written.
#
# Environment:
#   PORTCULLIS_CACHE_DIR   where the binary is cached (default ~/.cache/portcullis)
#   FERRETDB_START_TIMEOUT seconds to wait for the port (default 30)
set -euo pipefail

readonly FERRETDB_MODULE="github.com/FerretDB/FerretDB"
readonly FERRETDB_VERSION="v1.24.2"
readonly CACHE_DIR="${PORTCULLIS_CACHE_DIR:-${HOME}/.cache/portcullis}"
readonly FERRETDB_BIN="${CACHE_DIR}/ferretdb-${FERRETDB_VERSION}"

log() { printf 'ferretdb.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    cat >&2 <<'EOF'
usage: scripts/ferretdb.sh build
       scripts/ferretdb.sh start DIR [PORT]
       scripts/ferretdb.sh stop DIR
EOF
    exit 2
}

binary_works() {
    [[ -x "${FERRETDB_BIN}" ]] && "${FERRETDB_BIN}" --version >/dev/null 2>&1
}

cmd_build() {
    if binary_works; then
        log "using cached ${FERRETDB_BIN}"
        printf '%s\n' "${FERRETDB_BIN}"
        return 0
    fi

    command -v go >/dev/null 2>&1 || die "go is not installed"
    mkdir -p "${CACHE_DIR}"

    log "downloading ${FERRETDB_MODULE}@${FERRETDB_VERSION} from the Go module proxy"
    local json src
    json="$(cd "${CACHE_DIR}" && go mod download -json "${FERRETDB_MODULE}@${FERRETDB_VERSION}")" \
        || die "go mod download failed"
    src="$(printf '%s\n' "${json}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n 1)"
    [[ -n "${src}" && -d "${src}" ]] || die "could not find module source dir in: ${json}"

    local work
    work="$(mktemp -d "${TMPDIR:-/tmp}/ferretdb-build.XXXXXX")"
    # shellcheck disable=SC2064  # expand now: $work is local
    trap "rm -rf '${work}'" EXIT

    # The module cache is read-only; build from a writable copy.
    cp -R "${src}/." "${work}/src"
    chmod -R u+w "${work}/src"

    # build/version/version.go: version.txt is required and must start with "v"
    # (git-describe style); commit.txt, branch.txt and package.txt are optional.
    printf '%s\n' "${FERRETDB_VERSION}" >"${work}/src/build/version/version.txt"
    printf '%s\n' "module-proxy" >"${work}/src/build/version/package.txt"

    log "building ${FERRETDB_VERSION} (CGO_ENABLED=0; this takes a few minutes)"
    local tmp_bin="${FERRETDB_BIN}.tmp.$$"
    (
        cd "${work}/src"
        CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -buildvcs=false \
            -o "${tmp_bin}" ./cmd/ferretdb
    ) || { rm -f "${tmp_bin}"; die "go build failed"; }

    "${tmp_bin}" --version >&2 || { rm -f "${tmp_bin}"; die "built binary does not run"; }
    mv -f "${tmp_bin}" "${FERRETDB_BIN}"

    rm -rf "${work}"
    trap - EXIT
    log "built ${FERRETDB_BIN}"
    printf '%s\n' "${FERRETDB_BIN}"
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
        return 0
    fi
    # Fallback: a random high port nothing answers on.
    local port i
    for ((i = 0; i < 100; i++)); do
        port=$((20000 + RANDOM % 40000))
        if ! port_open "${port}"; then
            printf '%s\n' "${port}"
            return 0
        fi
    done
    die "could not find a free port"
}

port_open() {
    # Subshell so the fd is closed at once; timeout guards against hangs.
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" >/dev/null 2>&1
}

# True if $1 is a live (non-zombie) FerretDB process. Checking the command
# line guards against killing an unrelated process that reused a stale pid.
pid_alive() {
    local pid="$1" state=""
    [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null || return 1
    if [[ -r "/proc/${pid}/stat" ]]; then
        state="$(sed 's/^.*) \([A-Za-z]\).*$/\1/' "/proc/${pid}/stat" 2>/dev/null || true)"
        [[ "${state}" != "Z" ]] || return 1
        tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -q ferretdb || return 1
    fi
    return 0
}

read_pid() {
    local pidfile="$1/ferretdb.pid" pid=""
    if [[ -f "${pidfile}" ]]; then
        pid="$(tr -dc '0-9' <"${pidfile}")"
    fi
    printf '%s' "${pid}"
}

abs_dir() {
    mkdir -p "$1"
    (cd "$1" && pwd -P)
}

cmd_start() {
    [[ $# -ge 1 && $# -le 2 ]] || usage
    local dir port
    dir="$(abs_dir "$1")"
    port="${2:-}"
    case "${dir}" in
        *'?'* | *'#'* | *'%'* | *' '*) die "DIR must not contain '?', '#', '%' or spaces: ${dir}" ;;
        *) ;;
    esac
    if [[ -n "${port}" && ! "${port}" =~ ^[0-9]+$ ]]; then
        die "PORT must be a number: ${port}"
    fi

    local old_pid
    old_pid="$(read_pid "${dir}")"
    if pid_alive "${old_pid}"; then
        die "FerretDB already running in ${dir} (pid ${old_pid}); stop it first"
    fi

    local bin
    bin="$(cmd_build | tail -n 1)"
    [[ -x "${bin}" ]] || die "build did not produce a binary"

    if [[ -z "${port}" ]]; then
        port="$(free_port)"
    elif port_open "${port}"; then
        die "port ${port} is already in use"
    fi

    mkdir -p "${dir}/sqlite" "${dir}/state"
    local logfile="${dir}/ferretdb.log"

    log "starting FerretDB on 127.0.0.1:${port} (data ${dir}/sqlite, log ${logfile})"
    # setsid (when present) detaches it from the caller's process group, so
    # the server outlives this script and a Ctrl-C in the caller's terminal.
    local -a launcher=()
    if command -v setsid >/dev/null 2>&1; then
        launcher=(setsid)
    fi
    DO_NOT_TRACK=1 nohup "${launcher[@]}" "${bin}" \
        --handler=sqlite \
        --sqlite-url="file:${dir}/sqlite/" \
        --listen-addr="127.0.0.1:${port}" \
        --state-dir="${dir}/state" \
        --debug-addr=- \
        --telemetry=disable \
        --log-level=warn \
        </dev/null >>"${logfile}" 2>&1 &
    local pid=$!
    printf '%s\n' "${pid}" >"${dir}/ferretdb.pid"
    printf '%s\n' "${port}" >"${dir}/ferretdb.port"

    local timeout="${FERRETDB_START_TIMEOUT:-30}" deadline
    deadline=$((SECONDS + timeout))
    until port_open "${port}"; do
        if ! pid_alive "${pid}"; then
            tail -n 20 "${logfile}" >&2 || true
            rm -f "${dir}/ferretdb.pid"
            die "FerretDB exited during start-up (log: ${logfile})"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "${logfile}" >&2 || true
            kill -KILL "${pid}" 2>/dev/null || true
            rm -f "${dir}/ferretdb.pid"
            die "FerretDB did not accept connections on 127.0.0.1:${port} within ${timeout}s (log: ${logfile})"
        fi
        sleep 0.2
    done

    log "FerretDB is up (pid ${pid})"
    printf 'mongodb://127.0.0.1:%s/\n' "${port}"
}

cmd_stop() {
    [[ $# -eq 1 ]] || usage
    local dir="$1" pid
    pid="$(read_pid "${dir}")"
    if ! pid_alive "${pid}"; then
        log "FerretDB in ${dir} is not running"
        rm -f "${dir}/ferretdb.pid"
        return 0
    fi

    log "stopping FerretDB (pid ${pid})"
    kill -TERM "${pid}" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
        pid_alive "${pid}" || break
        sleep 0.1
    done
    if pid_alive "${pid}"; then
        log "pid ${pid} still alive after 5s; sending KILL"
        kill -KILL "${pid}" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
            pid_alive "${pid}" || break
            sleep 0.1
        done
    fi
    rm -f "${dir}/ferretdb.pid"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    case "${cmd}" in
        build) [[ $# -eq 0 ]] || usage; cmd_build ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
