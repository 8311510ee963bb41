#!/usr/bin/env python3
"""Run the book's shell walkthroughs against a real server and check their statuses.

A walkthrough is a fenced code block whose info string is `sh walkthrough`:

    ```sh walkthrough
    curl -s -X POST $B/v1/users -H 'content-type: application/json' \\
      -d '{"email":"ada@example.com","password":"correct horse battery staple"}'
    # expect: 201
    ```

Each page's walkthrough blocks run in order in one bash process (variables
carry over from block to block), against a fresh server of its own: the
built binary (`$PORTCULLIS_BIN`, default `target/debug/portcullis`) on the
embedded store, in a temporary data and keys directory, on a free port, in
developer mode when the binary has it (`serve --dev`), else with
`PORTCULLIS_RATE_LIMIT=off`. `http://127.0.0.1:8080` and
`http://localhost:8080` in a block become the server's address (the host
name kept: `localhost` is the passkeys' origin);
`PORTCULLIS_DATA_DIR` is exported, so `python3 scripts/mail.py` reads that
server's outbox. The working directory is the repository root.

A block marked `sh walkthrough setup` runs before that page's server starts
(command-line steps such as `portcullis admin create`, which need the
embedded store to themselves), with the same environment, in the temporary
directory;
`./target/release/portcullis` in it becomes the binary under test. Its
commands must succeed; it makes no requests.

Every `curl` is wrapped to record its HTTP status. A line `# expect: NNN`
asserts the status of the one `curl` since the previous `# expect:`; a
request without its expect line, or two requests before one, fail the page,
and so does any command that fails (`set -eo pipefail`).

Usage: tests/docs/walkthroughs.py [FILE.md ...]   (default: README.md and docs/**/*.md)
       tests/docs/walkthroughs.py --self-test
Exit status 0 when every page passed. `--self-test` proves the check can
fail: it runs README.md's tour against the same binary started with
`PORTCULLIS_REQUIRE_VERIFIED_EMAIL=true` (registration then answers 202, not
the documented 201) and exits 0 only if that run fails on that status.
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(\s*)```+\s*(\S.*)?$")
EXPECT = re.compile(r"^\s*#\s*expect:\s*(\d{3})\s*$")

PRELUDE = r"""
set -eo pipefail
__loc="?"
__asserted=0
: > "$WALK_STATUS"
curl() {
    local hdr rc st
    hdr=$(mktemp)
    rc=0
    command curl -D "$hdr" "$@" || rc=$?
    st=$(awk '/^HTTP\//{s=$2} END{print s}' "$hdr" | tr -d '\r')
    rm -f "$hdr"
    echo "${st:-000}" >> "$WALK_STATUS"
    return $rc
}
__expect() {
    local want=$1 where=$2 n got
    n=$(wc -l < "$WALK_STATUS")
    if [ "$n" -eq "$__asserted" ]; then
        echo "WALKTHROUGH FAIL $where: '# expect: $want' but no request since the previous expect" >&2; exit 97
    fi
    if [ "$n" -gt $((__asserted + 1)) ]; then
        echo "WALKTHROUGH FAIL $where: $((n - __asserted)) requests before one '# expect:' (one per request)" >&2; exit 97
    fi
    got=$(tail -n 1 "$WALK_STATUS")
    __asserted=$n
    if [ "$got" != "$want" ]; then
        echo "WALKTHROUGH FAIL $where: expected status $want, got $got" >&2; exit 98
    fi
    echo "  ok $where: $got"
}
__done() {
    local n
    n=$(wc -l < "$WALK_STATUS")
    if [ "$n" -ne "$__asserted" ]; then
        echo "WALKTHROUGH FAIL $__loc: the last request has no '# expect:' line" >&2; exit 97
    fi
}
trap 'rc=$?; if [ $rc -ne 0 ] && [ $rc -lt 97 ]; then echo "WALKTHROUGH FAIL $__loc: a command failed (exit $rc)" >&2; fi' EXIT
"""


def blocks(path: Path):
    """(line number, lines) of each `sh walkthrough` block of a Markdown file.

    Fences nest as in CommonMark: a block opened with N backticks closes at a
    line of at least N backticks, so an example inside a longer fence is text.
    """
    out, cur, start, indent, fence, kind = [], None, 0, "", None, "main"
    for i, line in enumerate(path.read_text().splitlines(), 1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                ticks = re.match(r"\s*(`+)", line).group(1)
                fence = ticks
                info = (m.group(2) or "").split()
                if info and info[0] in ("sh", "bash") and "walkthrough" in info:
                    cur, start, indent = [], i, m.group(1)
                    kind = "setup" if "setup" in info else "main"
            continue
        if m and not m.group(2) and line.strip().startswith(fence) and set(line.strip()) == {"`"}:
            if cur is not None:
                out.append((start, cur, kind))
            cur, fence = None, None
            continue
        if cur is not None:
            cur.append((i, line[len(indent):] if line.startswith(indent) else line))
    return out


def script_of(rel: str, page_blocks, base: str) -> str:
    lines = [PRELUDE]
    for start, body, kind in page_blocks:
        if kind != "main":
            continue
        lines.append(f"__loc='{rel}:{start}'")
        for n, line in body:
            m = EXPECT.match(line)
            if m:
                lines.append(f"__expect {m.group(1)} '{rel}:{n}'")
            else:
                line = line.replace("http://127.0.0.1:8080", base).replace(
                    "http://localhost:8080", base.replace("127.0.0.1", "localhost"))
                lines.append(line)
    lines.append("__done")
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_dev_mode(binary: str) -> bool:
    r = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True)
    return r.returncode == 0 and "--dev" in r.stdout


def run_page(binary: str, dev: bool, path: Path, page_blocks, extra_env=None) -> bool:
    rel = str(path.relative_to(ROOT))
    with tempfile.TemporaryDirectory(prefix="walkthrough-") as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
        env.update(
            PORTCULLIS_LISTEN=f"127.0.0.1:{port}",
            PORTCULLIS_DATA_DIR=f"{tmp}/data",
            PORTCULLIS_KEYS_DIR=f"{tmp}/keys",
            PORTCULLIS_LOG_FORMAT="json",
            PORTCULLIS_BCRYPT_COST="4",
        )
        if not dev:
            env["PORTCULLIS_RATE_LIMIT"] = "off"
        env.update(extra_env or {})
        for start, body, kind in page_blocks:
            if kind != "setup":
                continue
            setup = "set -eo pipefail\n" + "\n".join(
                line.replace("./target/release/portcullis", binary) for _, line in body)
            r = subprocess.run(["bash", "-c", setup], env=env, cwd=tmp, capture_output=True, text=True, timeout=120)
            print(r.stdout, end="")
            if r.returncode != 0:
                print(r.stderr[-3000:], end="")
                print(f"FAIL {rel}:{start}: the setup block failed (exit {r.returncode})")
                return False
            print(f"  ok {rel}:{start}: setup")
        log = open(f"{tmp}/server.log", "w")
        args = [binary, "serve"] + (["--dev"] if dev else [])
        server = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        print(f"FAIL {rel}: the server did not start")
                        print(open(f"{tmp}/server.log").read()[-3000:])
                        return False
                    time.sleep(0.1)
            script = script_of(rel, page_blocks, base)
            shell_env = dict(env, WALK_STATUS=f"{tmp}/statuses", B=base)
            r = subprocess.run(["bash", "-c", script], env=shell_env, cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
            print(r.stdout, end="")
            if r.returncode != 0:
                print(r.stderr[-4000:], end="")
                LAST_FAILURE[0] = r.stderr
                print(f"FAIL {rel} (server log: last lines)")
                print("".join(open(f"{tmp}/server.log").readlines()[-15:]))
                return False
            print(f"PASS {rel}: {len(page_blocks)} block(s)")
            return True
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()


LAST_FAILURE = [""]


def self_test(binary: str, dev: bool) -> int:
    """The README tour against a server whose registration answers 202 must fail."""
    readme = ROOT / "README.md"
    print("walkthroughs --self-test: README.md against a server with PORTCULLIS_REQUIRE_VERIFIED_EMAIL=true")
    if run_page(binary, dev, readme, blocks(readme), {"PORTCULLIS_REQUIRE_VERIFIED_EMAIL": "true"}):
        print("walkthroughs --self-test: FAIL: a changed status went unnoticed")
        return 1
    if "expected status 201, got 202" not in LAST_FAILURE[0]:
        print("walkthroughs --self-test: FAIL: the run failed, but not on the changed status")
        return 1
    print("walkthroughs --self-test: ok (the changed status failed the page)")
    return 0


def main(argv) -> int:
    binary = os.environ.get("PORTCULLIS_BIN", str(ROOT / "target/debug/portcullis"))
    if not os.access(binary, os.X_OK):
        print(f"walkthroughs: no binary at {binary} (cargo build, or set PORTCULLIS_BIN)")
        return 2
    if argv == ["--self-test"]:
        return self_test(binary, has_dev_mode(binary))
    files = [Path(a).resolve() for a in argv] or [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
    dev = has_dev_mode(binary)
    print(f"walkthroughs: {binary} ({'serve --dev' if dev else 'PORTCULLIS_RATE_LIMIT=off; no --dev in this binary'})")
    pages = [(f, b) for f in files if (b := blocks(f))]
    if not pages:
        print("walkthroughs: no `sh walkthrough` block found")
        return 1
    failed = [f for f, b in pages if not run_page(binary, dev, f, b)]
    total = sum(len(b) for _, b in pages)
    print(f"walkthroughs: {len(pages) - len(failed)} of {len(pages)} pages passed ({total} blocks)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
