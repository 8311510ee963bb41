#!/usr/bin/env bash
# Run the OpenID Foundation conformance suite's Basic OP plan
# (oidcc-basic-certification-test-plan) against a local Portcullis.
# See docs/internals/oidc-conformance.md for what it needs, and the last result.
#
#   PORTCULLIS_BIN=target/debug/portcullis scripts/oidc-conformance.sh
#
# It builds the suite (or reuses its jar), starts an in-memory MongoDB
# (mongo-java-server; FerretDB cannot hold the suite's documents), the suite
# itself (dev mode: no login to its UI, HTTPS with a throw-away self-signed
# certificate), and Portcullis on a temporary data dir
# with one registered confidential client and one test user, then runs the
# plan with the suite's own scripts/run-test-plan.py and prints a per-module
# table. Everything it starts is stopped at exit.
#
# Environment:
#   PORTCULLIS_BIN   the portcullis binary to test (required; needs the
#                    `clients create` command and the hosted /login pages)
#   OIDF_SRC         a checkout of the conformance suite (github
#                    openid-certification/conformance-suite). Nothing here
#                    downloads it: only package registries are reachable.
#                    Default: ${PORTCULLIS_CACHE_DIR:-~/.cache/portcullis}/oidf/src
#   OIDF_JAVA_HOME   a JDK >= 21 (the suite's pom says <java.version>21); by
#                    default $JAVA_HOME if >= 21, else the newest such JDK in /usr/lib/jvm
#   OIDF_REBUILD=1   rebuild the jar even if target/fapi-test-suite.jar exists
#   OIDF_PLAN        plan name with variants; default
#                    oidcc-basic-certification-test-plan[server_metadata=discovery][client_registration=static_client]
#   OIDF_MODULES     optional space-separated module names to run alone
#                    (e.g. "oidcc-server oidcc-userinfo-get")
#   OIDF_OUT         where logs, the config and the exported results go
#                    (default: a new temporary directory, printed at the end)
#   OIDF_SUITE_PORT  HTTPS port of the suite (default 8443; its redirect URIs
#                    and the client registration use https://localhost:PORT)
#   OIDF_ALWAYS_PKCE=1  diagnostic, not a certification run: patch the suite so
#                    that every module sends PKCE (S256), which Portcullis
#                    requires of every client; the plan sends it in one module
#   OIDF_KEEP=1      leave everything running at the end (prints the PIDs)
set -euo pipefail

log() { printf 'oidc-conformance: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PORTCULLIS_CACHE_DIR:-${HOME}/.cache/portcullis}"
src="${OIDF_SRC:-${cache}/oidf/src}"
plan="${OIDF_PLAN:-oidcc-basic-certification-test-plan[server_metadata=discovery][client_registration=static_client]}"
suite_port="${OIDF_SUITE_PORT:-8443}"
mtls_port=$((suite_port + 1))
out="${OIDF_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/oidc-conformance.XXXXXX")}"
mkdir -p "${out}"
out="$(cd "${out}" && pwd)"

[[ -n "${PORTCULLIS_BIN:-}" ]] || die "set PORTCULLIS_BIN to the portcullis binary"
[[ -x "${PORTCULLIS_BIN}" ]] || die "PORTCULLIS_BIN=${PORTCULLIS_BIN} is not executable"
PORTCULLIS_BIN="$(cd "$(dirname "${PORTCULLIS_BIN}")" && pwd)/$(basename "${PORTCULLIS_BIN}")"
"${PORTCULLIS_BIN}" clients --help >/dev/null 2>&1 \
    || die "${PORTCULLIS_BIN} has no 'clients' command (build a branch with the OpenID provider)"
[[ -f "${src}/pom.xml" ]] || die "no conformance suite checkout at ${src} (set OIDF_SRC)"

# ---------------------------------------------------------------- Java 21+
java_major() { "$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1; }
find_jdk() {
    if [[ -n "${OIDF_JAVA_HOME:-}" ]]; then printf '%s\n' "${OIDF_JAVA_HOME}"; return; fi
    if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/javac" && "$(java_major "${JAVA_HOME}")" -ge 21 ]]; then
        printf '%s\n' "${JAVA_HOME}"; return
    fi
    local d best="" best_v=0 v
    for d in /usr/lib/jvm/*; do
        [[ -x "${d}/bin/javac" ]] || continue
        v="$(java_major "${d}")"
        [[ -n "${v}" && "${v}" -ge 21 && "${v}" -gt "${best_v}" ]] && { best="${d}"; best_v="${v}"; }
    done
    printf '%s\n' "${best}"
}
jdk="$(find_jdk)"
[[ -n "${jdk}" ]] || die "no JDK >= 21 found (set OIDF_JAVA_HOME); the suite targets Java 21"
log "using JDK ${jdk} (Java $(java_major "${jdk}"))"

# ---------------------------------------------------------------- build
jar="${src}/target/fapi-test-suite.jar"
if [[ ! -f "${jar}" || "${OIDF_REBUILD:-0}" == 1 ]]; then
    command -v mvn >/dev/null || die "mvn (Maven) is not installed"
    # org.multipaz:*-jvm:0.99.0 (pinned by the suite since June 2026) is not on
    # Maven Central; 0.101.0 is, and only the VCI/mdoc modules use it.
    if grep -A1 '<artifactId>multipaz-jvm</artifactId>' "${src}/pom.xml" | grep -q '0\.99\.0'; then
        log "pom.xml pins org.multipaz 0.99.0, which Maven Central lacks: using 0.101.0"
        sed -i 's#<version>0\.99\.0</version>#<version>0.101.0</version>#' "${src}/pom.xml"
    fi
    log "building the suite (Maven, tests skipped; ~10 min, a first build downloads ~400 MB into ~/.m2)"
    (cd "${src}" && JAVA_HOME="${jdk}" nice -n 19 mvn -B -T 1 -DskipTests -Djacoco.skip=true \
        -Dpmd.skip=true -Dcpd.skip=true -Dcheckstyle.skip=true package) >"${out}/mvn.log" 2>&1 \
        || { tail -n 40 "${out}/mvn.log" >&2; die "Maven build failed (log: ${out}/mvn.log)"; }
fi
[[ -f "${jar}" && -d "${src}/target/classes" ]] || die "no ${jar} after the build"

# The suite runs exploded (target/classes + the jar's libraries), so that the
# small patches below need only their own files recompiled, not a 10-minute build.
libdir="${src}/target/oidf-lib"
if [[ ! -d "${libdir}/BOOT-INF/lib" || "${jar}" -nt "${libdir}/BOOT-INF" ]]; then
    rm -rf "${libdir}" && mkdir -p "${libdir}"
    (cd "${libdir}" && unzip -q "${jar}" 'BOOT-INF/lib/*')
fi
classpath="${src}/target/classes:${libdir}/BOOT-INF/lib/*"

# patch NAME WANTED: apply (1) or revert (0) scripts/oidc-conformance/NAME.patch
# in the checkout, then recompile the files it touches.
patch_suite() {
    local p="${here}/oidc-conformance/$1.patch" files f
    files="$(sed -n 's#^+++ b/##p' "${p}")"
    if [[ "$2" == 1 ]] && (cd "${src}" && git apply --check "${p}" 2>/dev/null); then
        log "applying $1.patch to the suite"
        (cd "${src}" && git apply "${p}")
    elif [[ "$2" == 0 ]] && (cd "${src}" && git apply -R --check "${p}" 2>/dev/null); then
        log "reverting $1.patch in the suite"
        (cd "${src}" && git apply -R "${p}")
    fi
    for f in ${files}; do
        local cls="${src}/target/classes/${f#src/main/java/}"
        cls="${cls%.java}.class"
        if [[ "${src}/${f}" -nt "${cls}" ]]; then
            log "recompiling ${f}"
            (cd "${src}" && nice -n 19 "${jdk}/bin/javac" --release 21 -proc:none -nowarn \
                -cp "${classpath}" -d target/classes "${f}") || die "javac ${f} failed"
        fi
    done
}
# mongo-java-server has neither text indexes (the suite makes two, for its UI search
# box) nor getParameter (the suite reads featureCompatibilityVersion at start).
patch_suite mongo-compat 1
# Diagnostic: PKCE in every module (Portcullis requires it; the plan sends it once).
patch_suite always-pkce "${OIDF_ALWAYS_PKCE:-0}"

# ---------------------------------------------------------------- python for run-test-plan.py
venv="${cache}/oidf/venv"
if ! "${venv}/bin/python" -c 'import httpx, pyparsing' 2>/dev/null; then
    log "creating ${venv} (httpx, pyparsing from PyPI)"
    python3 -m venv "${venv}"
    "${venv}/bin/pip" install -q -r "${src}/scripts/requirements.txt"
fi

# ---------------------------------------------------------------- clean-up
work="$(mktemp -d "${TMPDIR:-/tmp}/oidc-conformance-run.XXXXXX")"
suite_pid="" pc_pid="" mongo_pid=""
cleanup() {
    local rc=$?
    if [[ "${OIDF_KEEP:-0}" == 1 ]]; then
        log "left running: suite pid ${suite_pid}, portcullis pid ${pc_pid}, mongo pid ${mongo_pid}"
        return "${rc}"
    fi
    [[ -n "${pc_pid}" ]] && kill "${pc_pid}" 2>/dev/null || true
    [[ -n "${suite_pid}" ]] && kill "${suite_pid}" 2>/dev/null || true
    [[ -n "${mongo_pid}" ]] && kill "${mongo_pid}" 2>/dev/null || true
    [[ -n "${suite_pid}" ]] && wait "${suite_pid}" 2>/dev/null || true
    [[ -n "${pc_pid}" ]] && wait "${pc_pid}" 2>/dev/null || true
    [[ -n "${mongo_pid}" ]] && wait "${mongo_pid}" 2>/dev/null || true
    rm -rf "${work}"
    return "${rc}"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # URL SECONDS
    local i
    for ((i = 0; i < $2; i++)); do
        curl -ksf -o /dev/null "$1" && return 0
        sleep 1
    done
    return 1
}

# ---------------------------------------------------------------- MongoDB + suite
# The suite stores its configurations (with nested arrays: the browser
# commands) in MongoDB. FerretDB 1.x refuses nested arrays, so an in-memory
# mongo-java-server (Maven Central) serves instead.
mongo_dir="${here}/oidc-conformance/mongo"
mongo_cp="${cache}/oidf/mongo-classpath.txt"
if [[ ! -s "${mongo_cp}" ]]; then
    mkdir -p "$(dirname "${mongo_cp}")"
    (cd "${mongo_dir}" && JAVA_HOME="${jdk}" mvn -B -q dependency:build-classpath \
        -Dmdep.outputFile="${mongo_cp}") >"${out}/mongo-mvn.log" 2>&1 \
        || die "resolving mongo-java-server failed (log: ${out}/mongo-mvn.log)"
fi
mongo_classes="${cache}/oidf/mongo-classes"
if [[ ! -f "${mongo_classes}/MongoServerMain.class" || "${mongo_dir}/MongoServerMain.java" -nt "${mongo_classes}/MongoServerMain.class" ]]; then
    "${jdk}/bin/javac" -cp "$(cat "${mongo_cp}")" -d "${mongo_classes}" "${mongo_dir}/MongoServerMain.java" \
        || die "javac MongoServerMain.java failed"
fi
mongo_port="$(free_port)"
nice -n 19 "${jdk}/bin/java" -Xmx768m -cp "${mongo_classes}:$(cat "${mongo_cp}")" MongoServerMain \
    "${mongo_port}" >"${out}/mongo.log" 2>&1 &
mongo_pid=$!
for ((i = 0; i < 180; i++)); do
    grep -q '^mongodb://' "${out}/mongo.log" 2>/dev/null && break
    kill -0 "${mongo_pid}" 2>/dev/null || break
    sleep 1
done
mongo_uri="mongodb://127.0.0.1:${mongo_port}/"
grep -q '^mongodb://' "${out}/mongo.log" || die "mongo-java-server did not start (log: ${out}/mongo.log)"
log "in-memory MongoDB at ${mongo_uri}"

keytool="${jdk}/bin/keytool"
"${keytool}" -genkeypair -alias suite -keyalg RSA -keysize 2048 -validity 7 -dname CN=localhost \
    -ext san=dns:localhost,ip:127.0.0.1 -storetype PKCS12 -keystore "${work}/suite-tls.p12" \
    -storepass changeit >/dev/null 2>&1

suite_url="https://localhost:${suite_port}"
log "starting the suite on ${suite_url} (log: ${out}/suite.log)"
(cd "${src}" && exec nice -n 19 "${jdk}/bin/java" -Xmx1536m -Djdk.tls.maxHandshakeMessageSize=65536 \
    -cp "${classpath}" net.openid.conformance.Application \
    --fintechlabs.devmode=true \
    --fintechlabs.startredir=false \
    --spring.mongodb.uri="${mongo_uri%/}/test_suite" \
    --openid.mongodb.targetFeatureCompatibilityVersion= \
    --fintechlabs.base_url="${suite_url}" \
    --fintechlabs.base_mtls_url="https://localhost:${mtls_port}" \
    --server.port="${suite_port}" \
    --server.ssl.key-store="${work}/suite-tls.p12" \
    --server.ssl.key-store-password=changeit \
    --server.ssl.key-store-type=PKCS12) >"${out}/suite.log" 2>&1 &
suite_pid=$!

# ---------------------------------------------------------------- Portcullis
pc_port="$(free_port)"
pc_url="http://localhost:${pc_port}"
export PORTCULLIS_LISTEN="127.0.0.1:${pc_port}"
export PORTCULLIS_PUBLIC_URL="${pc_url}"
export PORTCULLIS_ISSUER="${pc_url}"
export PORTCULLIS_DATA_DIR="${work}/pc-data"
export PORTCULLIS_KEYS_DIR="${work}/pc-keys"
export PORTCULLIS_BCRYPT_COST=4
export PORTCULLIS_RATE_LIMIT=off
export PORTCULLIS_CAPTCHA=off
export PORTCULLIS_LOG_FORMAT=json
unset PORTCULLIS_MONGODB_URI PORTCULLIS_CONFIG
mkdir -p "${PORTCULLIS_DATA_DIR}" "${PORTCULLIS_KEYS_DIR}"

alias_name="portcullis"
redirect="${suite_url}/test/a/${alias_name}/callback"
create_client() { # NAME -> "id secret"
    (cd "${work}" && "${PORTCULLIS_BIN}" clients create "$1" --redirect-uri "${redirect}" \
        --post-logout-redirect-uri "${suite_url}/test/a/${alias_name}/post_logout_redirect" \
        --confidential 2>>"${out}/portcullis.log") | head -n 2 | tr '\n' ' '
}
read -r client_id client_secret <<<"$(create_client "OIDF conformance client")"
read -r client2_id client2_secret <<<"$(create_client "OIDF conformance client 2")"
[[ -n "${client_id}" && -n "${client_secret}" ]] || die "'portcullis clients create' printed no id and secret"
log "registered clients ${client_id} and ${client2_id}"

log "starting Portcullis on ${pc_url} (log: ${out}/portcullis.log)"
(cd "${work}" && exec "${PORTCULLIS_BIN}" serve) >>"${out}/portcullis.log" 2>&1 &
pc_pid=$!
wait_http "${pc_url}/.well-known/openid-configuration" 60 || die "Portcullis did not answer"

user_email="oidf-test@example.com"
user_password="correct-horse-battery-staple-oidf-42"
code="$(curl -s -o "${out}/register.json" -w '%{http_code}' -H 'content-type: application/json' \
    -d "{\"email\":\"${user_email}\",\"password\":\"${user_password}\",\"display_name\":\"OIDF Tester\"}" \
    "${pc_url}/v1/users")"
[[ "${code}" == 201 || "${code}" == 200 || "${code}" == 202 ]] \
    || die "registering the test user answered ${code}: $(cat "${out}/register.json")"

log "waiting for the suite (first start takes a minute or two)"
wait_http "${suite_url}/api/runner/available" 300 \
    || { tail -n 40 "${out}/suite.log" >&2; die "the suite did not come up (log: ${out}/suite.log)"; }

# ---------------------------------------------------------------- plan config
"${venv}/bin/python" - "${out}/portcullis-oidcc.json" <<EOF
import json, sys
pc = "${pc_url}"
login = {
    "task": "Login",
    "optional": True,
    "match": pc + "/login*",
    "commands": [
        ["text", "id", "email", "${user_email}", "optional"],
        ["text", "id", "password", "${user_password}", "optional"],
        ["click", "css", "form[action='/login'] button[type=submit]"],
    ],
}
consent = {
    "task": "Consent",
    "optional": True,
    "match": pc + "/consent*",
    "commands": [["click", "css", "button[value=allow]"]],
}
done = {
    "task": "Verify Complete",
    "match": "*/test/*/callback*",
    "commands": [["wait", "id", "submission_complete", 10]],
}
def flow(first_wait=None):
    l = json.loads(json.dumps(login))
    if first_wait:
        l["commands"].insert(0, ["wait", "xpath", "//*", 10, "Sign in", first_wait])
    return [{"match": pc + "/oauth/authorize*", "tasks": [l, consent, done]}]
error_page = [{
    "comment": "expect an error page from Portcullis, not a redirect",
    "match": pc + "/oauth/authorize*",
    "tasks": [{
        "task": "Expect an error page",
        "match": pc + "/oauth/authorize*",
        "commands": [["wait", "xpath", "//*", 10, ".", "update-image-placeholder"]],
    }],
}]
config = {
    "alias": "${alias_name}",
    "description": "Portcullis (local)",
    "server": {"discoveryUrl": pc + "/.well-known/openid-configuration"},
    "client": {"client_id": "${client_id}", "client_secret": "${client_secret}"},
    "client_secret_post": {"client_id": "${client_id}", "client_secret": "${client_secret}"},
    "client2": {"client_id": "${client2_id}", "client_secret": "${client2_secret}"},
    "browser": flow(),
    "override": {
        "oidcc-prompt-login": {"browser": flow("update-image-placeholder-optional")},
        "oidcc-max-age-1": {"browser": flow("update-image-placeholder-optional")},
        "oidcc-ensure-registered-redirect-uri": {"browser": error_page},
        # Portcullis has no request objects, so it sees only the unregistered
        # redirect_uri of the query: an error page is one of the two answers
        # this module accepts (with a screenshot).
        "oidcc-ensure-request-object-with-redirect-uri": {"browser": error_page},
    },
}
json.dump(config, open(sys.argv[1], "w"), indent=2)
EOF

# ---------------------------------------------------------------- run
log "running ${plan} (this takes 5-15 minutes; oidcc-codereuse-30seconds waits 30 s)"
args=(--export-dir "${out}/export" --verbose)
plan_arg="${plan}"
if [[ -n "${OIDF_MODULES:-}" ]]; then
    plan_arg="${plan}:${OIDF_MODULES// /,}"
fi
mkdir -p "${out}/export"
set +e
(cd "${src}" && CONFORMANCE_SERVER="${suite_url}/" CONFORMANCE_SERVER_MTLS="https://localhost:${mtls_port}/" \
    CONFORMANCE_DEV_MODE=1 CONFORMANCE_MAX_CONSECUTIVE_FAILURES=1000 "${venv}/bin/python" scripts/run-test-plan.py "${args[@]}" \
    "${plan_arg}" "${out}/portcullis-oidcc.json") 2>&1 | tee "${out}/run-test-plan.log"
rc=${PIPESTATUS[0]}
set -e

# ---------------------------------------------------------------- summary
"${venv}/bin/python" - "${suite_url}" "${out}/summary.tsv" <<'EOF' || true
import json, ssl, sys, urllib.request
base, dest = sys.argv[1], sys.argv[2]
ctx = ssl._create_unverified_context()
def get(path):
    with urllib.request.urlopen(base + path, context=ctx, timeout=30) as r:
        return json.load(r)
rows = []
plans = get("/api/plan?length=50")
for p in plans.get("data", []):
    for m in p.get("modules", []):
        for tid in m.get("instances", []) or []:
            info = get("/api/info/" + tid)
            rows.append((m["testModule"], info.get("status", "?"), info.get("result") or "-", tid))
with open(dest, "w") as f:
    f.write("module\tstatus\tresult\ttest_id\n")
    for r in rows:
        f.write("\t".join(r) + "\n")
for r in rows:
    print("%-62s %-12s %s" % r[:3])
EOF
log "results in ${out} (summary.tsv, run-test-plan.log, export/, suite.log, portcullis.log)"
exit "${rc}"
