"""Structural checks of the container files: docker-compose.yml, Dockerfile,
.env.example (and their agreement with the keys the service reads, and with
DESIGN.md's configuration table).

No Docker engine is needed: the files are parsed, not run.

    python3 -m venv .venv && .venv/bin/pip install -r tests/compose/requirements.txt
    .venv/bin/pytest tests/compose

PORTCULLIS_REPO_ROOT overrides the repository root (default: two levels up).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(
    os.environ.get("PORTCULLIS_REPO_ROOT", Path(__file__).resolve().parents[2])
).resolve()
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DESIGN = ROOT.parent / "shared" / "DESIGN.md"

# Keys that .env.example documents beyond DESIGN.md's configuration table.
EXTRA_KEYS = {
    "PORTCULLIS_BCRYPT_CONCURRENCY",
    "PORTCULLIS_CONFIG",
    "PORTCULLIS_MAX_BODY_BYTES",
    "PORTCULLIS_MONGODB_TIMEOUT",
    "PORTCULLIS_PASSWORD_MIN_SCORE",
    # Security activity.
    "PORTCULLIS_DETECT_ACCOUNT_FAILURES",
    "PORTCULLIS_DETECT_STUFFING_ACCOUNTS",
    "PORTCULLIS_DETECT_STUFFING_WINDOW",
    "PORTCULLIS_DETECT_BURST_NETWORKS",
    "PORTCULLIS_DETECT_BURST_WINDOW",
    "PORTCULLIS_KNOWN_DEVICES",
    "PORTCULLIS_NOT_ME_TTL",
    "PORTCULLIS_SHUTDOWN_TIMEOUT",
    "PORTCULLIS_CAPTCHA_DIFFICULTY",
    # Named in DESIGN.md's prose under the table, not in it.
    "PORTCULLIS_HTTP_TIMEOUT",
    "PORTCULLIS_IDLE_TIMEOUT",
    # Named in DESIGN.md's CLI paragraph (`portcullis admin create`).
    "PORTCULLIS_ADMIN_PASSWORD",
    # The hosted pages' theme ("themable by CSS and a logo from
    # configuration", the OpenID-provider issue; DESIGN names no key).
    "PORTCULLIS_PAGES_CSS",
    "PORTCULLIS_PAGES_LOGO_URL",
    # Performance round two: which key signs refresh tokens (DESIGN "Tokens"
    # allows an HMAC key of their own), what a refresh stores in the audit
    # log, and the bound of redb's page cache.
    "PORTCULLIS_REFRESH_SIGNING",
    "PORTCULLIS_AUDIT_REFRESH",
    "PORTCULLIS_REDB_CACHE_SIZE",
}

# `${VAR}`, `${VAR:-x}`, `${VAR-x}`, `${VAR:?err}`, `$VAR`; `$$` is an escape.
INTERPOLATION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
ENV_KEY_LINE = re.compile(r"^\s*#?\s*(PORTCULLIS_[A-Z0-9_]+)\s*=", re.MULTILINE)


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose_text() -> str:
    assert COMPOSE.is_file(), f"missing {COMPOSE}"
    return COMPOSE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict:
    doc = yaml.safe_load(compose_text)
    assert isinstance(doc, dict), "docker-compose.yml is not a mapping"
    assert isinstance(doc.get("services"), dict), "no services mapping"
    return doc


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def env_keys() -> list[str]:
    assert ENV_EXAMPLE.is_file(), f"missing {ENV_EXAMPLE}"
    return ENV_KEY_LINE.findall(ENV_EXAMPLE.read_text(encoding="utf-8"))


def environment(service: dict) -> dict[str, str]:
    """A service's `environment:` as a dict, whether written as map or list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: dict) -> dict[str, dict]:
    """`depends_on:` in long form; the short (list) form has no conditions."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {} for name in deps}
    return {name: (spec or {}) for name, spec in deps.items()}


def assert_healthcheck(name: str, service: dict) -> None:
    hc = service.get("healthcheck")
    assert isinstance(hc, dict), f"{name}: no healthcheck"
    assert not hc.get("disable"), f"{name}: healthcheck disabled"
    test = hc.get("test")
    assert test, f"{name}: healthcheck has no test"
    if isinstance(test, list):
        assert test[0] in {"CMD", "CMD-SHELL"}, f"{name}: healthcheck test must start with CMD or CMD-SHELL"
        assert len(test) > 1, f"{name}: empty healthcheck command"
    for key in ("interval", "retries"):
        assert key in hc, f"{name}: healthcheck lacks {key}"


def container_ports(service: dict) -> set[int]:
    """Container-side ports of `ports:` entries (short or long syntax)."""
    out = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            out.add(int(entry["target"]))
        else:
            target = str(entry).split("/")[0].rsplit(":", 1)[-1]
            out.add(int(target.split("-")[0]))
    return out


def named_volumes_used(service: dict) -> set[str]:
    out = set()
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            if entry.get("type", "volume") == "volume" and entry.get("source"):
                out.add(entry["source"])
        else:
            source = str(entry).split(":")[0]
            if source and not source.startswith((".", "/", "~", "$")):
                out.add(source)
    return out


def design_config_keys() -> set[str]:
    """PORTCULLIS_* keys of DESIGN.md: its Configuration table's first column and the keys Stage 3 names."""
    text = DESIGN.read_text(encoding="utf-8")
    match = re.search(r"^## Configuration.*?$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, "DESIGN.md has no '## Configuration' section"
    keys = set()
    for line in match.group(1).splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1]
            keys.update(re.findall(r"PORTCULLIS_[A-Z0-9_]+", first_cell))
    assert keys, "no keys found in DESIGN.md's configuration table"
    # Stage 3 names its keys in prose (step-up, federation, DPoP, ...).
    stage3 = re.search(r"^# Stage 3.*", text, re.MULTILINE | re.DOTALL)
    if stage3:
        keys.update(re.findall(r"PORTCULLIS_[A-Z0-9_]*[A-Z0-9]", stage3.group(0)))
    return keys


# --------------------------------------------------------------------------- compose


def test_services_exist(services):
    for name in ("mongo", "portcullis", "mailpit"):
        assert name in services, f"service {name!r} missing"


def test_mongo_service(compose, services):
    mongo = services["mongo"]
    assert str(mongo.get("image", "")).startswith("mongo:"), "mongo must use the official mongo:<tag> image"
    assert_healthcheck("mongo", mongo)
    used = named_volumes_used(mongo)
    assert used, "mongo stores /data/db on no named volume"
    declared = compose.get("volumes") or {}
    for volume in used:
        assert volume in declared, f"volume {volume!r} not declared at top level"
    assert any(
        str(v).split(":")[1:2] == ["/data/db"] or (isinstance(v, dict) and v.get("target") == "/data/db")
        for v in mongo.get("volumes") or []
    ), "mongo's /data/db is not on a volume"


def test_every_used_named_volume_is_declared(compose, services):
    declared = set((compose.get("volumes") or {}).keys())
    for name, service in services.items():
        missing = named_volumes_used(service) - declared
        assert not missing, f"{name}: volumes {sorted(missing)} not declared at top level"


def test_portcullis_service(services):
    svc = services["portcullis"]
    assert "build" in svc, "portcullis must be built from this repository"

    deps = depends_on(svc)
    assert "mongo" in deps, "portcullis must depend on mongo"
    assert deps["mongo"].get("condition") == "service_healthy", "portcullis must wait for a healthy mongo"
    assert "mailpit" in deps, "portcullis must depend on mailpit"

    env = environment(svc)
    uri = env.get("PORTCULLIS_MONGODB_URI", "")
    assert re.match(r"^mongodb://([^@/]*@)?mongo(:\d+)?(/|$)", uri), f"PORTCULLIS_MONGODB_URI must point at host 'mongo', got {uri!r}"
    assert env.get("PORTCULLIS_SMTP_URL", "").startswith("smtp://mailpit:"), "SMTP must go to mailpit"
    listen = env.get("PORTCULLIS_LISTEN", "0.0.0.0:8080")
    assert listen.startswith("0.0.0.0:"), "inside a container the server must listen on 0.0.0.0"

    assert 8080 in container_ports(svc), "portcullis must publish container port 8080"
    assert_healthcheck("portcullis", svc)


def test_mailpit_service(services):
    assert "mailpit" in str(services["mailpit"].get("image", "")), "mailpit must use the mailpit image"


def test_interpolated_variables_are_documented(compose_text, env_keys):
    # Only YAML content counts, not comments.
    content = "\n".join(line.split(" #", 1)[0] for line in compose_text.splitlines() if not line.lstrip().startswith("#"))
    used = {a or b for a, b in INTERPOLATION.findall(content)}
    missing = used - set(env_keys)
    assert not missing, f"interpolated in docker-compose.yml but absent from .env.example: {sorted(missing)}"


# Keys compose fixes for the container (its addresses and paths); every
# other documented key comes from `.env` untouched.
COMPOSE_INTERNAL = {
    "PORTCULLIS_LISTEN",
    "PORTCULLIS_MONGODB_URI",
    "PORTCULLIS_SMTP_URL",
    "PORTCULLIS_DATA_DIR",
    "PORTCULLIS_KEYS_DIR",
}


def env_files(service: dict) -> list[str]:
    """The paths of a service's `env_file:` (string, list, or long form)."""
    entries = service.get("env_file") or []
    if isinstance(entries, (str, dict)):
        entries = [entries]
    out = []
    for entry in entries:
        path = entry.get("path", "") if isinstance(entry, dict) else str(entry)
        out.append(os.path.normpath(path))
    return out


def dropped_keys(service: dict, keys: list[str]) -> list[str]:
    """Documented keys a `.env` sets that would not reach the container as
    written: no `env_file: .env`, or an `environment:` entry that overrides
    the key with a fixed value (environment wins over env_file)."""
    loads_env = ".env" in env_files(service)
    env = environment(service)
    dropped = []
    for key in keys:
        if key in env:
            value = env[key]
            passes = key in COMPOSE_INTERNAL or re.search(r"\$\{?" + key + r"\b", value)
        else:
            passes = loads_env
        if not passes:
            dropped.append(key)
    return sorted(set(dropped))


def test_every_documented_key_reaches_the_container(services, env_keys):
    dropped = dropped_keys(services["portcullis"], env_keys)
    assert not dropped, f"keys of .env.example a `.env` cannot set in the container: {dropped}"


def test_compose_internal_keys_are_fixed(services):
    env = environment(services["portcullis"])
    for key in sorted(COMPOSE_INTERNAL):
        assert key in env, f"{key} must be fixed in `environment:` (a host .env would point elsewhere)"
        assert "$" not in env[key], f"{key} must not come from .env"
    assert env["PORTCULLIS_DATA_DIR"].startswith("/var/lib/portcullis"), "data must stay on its volume"
    assert env["PORTCULLIS_KEYS_DIR"].startswith("/var/lib/portcullis"), "keys must stay on their volume"


def test_the_key_check_catches_a_dropped_key(services, env_keys):
    """The check above fails when the env_file goes, or when a key is pinned."""
    svc = dict(services["portcullis"])
    svc.pop("env_file", None)
    assert "PORTCULLIS_CORS_ORIGINS" in dropped_keys(svc, env_keys)
    pinned = dict(services["portcullis"])
    pinned["environment"] = {**environment(pinned), "PORTCULLIS_CORS_ORIGINS": "http://x"}
    assert dropped_keys(pinned, env_keys) == ["PORTCULLIS_CORS_ORIGINS"]


# --------------------------------------------------------------------------- .env.example


def test_env_example_has_no_duplicates(env_keys):
    dupes = sorted({k for k in env_keys if env_keys.count(k) > 1})
    assert not dupes, f"keys listed twice in .env.example: {dupes}"


def test_env_example_every_key_has_a_comment():
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if ENV_KEY_LINE.match(line):
            previous = lines[i - 1].strip() if i else ""
            assert previous.startswith("#") and not ENV_KEY_LINE.match(previous), f"{line.strip()}: no explanatory comment above it"


def service_config_keys() -> set[str]:
    """The keys the service reads: the KNOWN_KEYS list of src/config/keys.rs."""
    text = (ROOT / "src" / "config" / "keys.rs").read_text(encoding="utf-8")
    match = re.search(r"pub const KNOWN_KEYS: &\[&str\] = &\[(.*?)\];", text, re.DOTALL)
    assert match, "src/config/keys.rs has no KNOWN_KEYS list"
    return set(re.findall(r'"(PORTCULLIS_[A-Z0-9_]+)"', match.group(1)))


def test_env_example_documents_exactly_the_keys_the_service_reads():
    known = service_config_keys()
    keys = set(ENV_KEY_LINE.findall(ENV_EXAMPLE.read_text(encoding="utf-8")))
    assert not keys - known, f".env.example keys the service does not read: {sorted(keys - known)}"
    assert not known - keys, f"keys the service reads missing from .env.example: {sorted(known - keys)}"


def test_service_keys_come_from_the_design():
    if not DESIGN.is_file():
        pytest.skip(f"{DESIGN} not present")
    design = design_config_keys()
    invented = service_config_keys() - design - EXTRA_KEYS
    assert not invented, f"keys in neither DESIGN.md nor the known extras: {sorted(invented)}"
    # Keys of the contract not read yet belong to features still to land.
    pending = sorted(design - service_config_keys())
    if pending:
        print(f"DESIGN.md keys not implemented yet: {pending}")


# --------------------------------------------------------------------------- Dockerfile


@pytest.fixture(scope="module")
def dockerfile_instructions() -> list[tuple[str, str]]:
    assert DOCKERFILE.is_file(), f"missing {DOCKERFILE}"
    text = DOCKERFILE.read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_is_multi_stage(dockerfile_instructions):
    froms = [rest for word, rest in dockerfile_instructions if word == "FROM"]
    assert len(froms) >= 2, "Dockerfile must be multi-stage (a builder and a runtime FROM)"
    assert any(rest.startswith("rust:") for rest in froms), "the builder should be a rust: image"


def test_dockerfile_runs_as_non_root(dockerfile_instructions):
    last_from = max(i for i, (word, _) in enumerate(dockerfile_instructions) if word == "FROM")
    users = [rest for word, rest in dockerfile_instructions[last_from:] if word == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0", ""}, f"runtime USER is root ({users[-1]!r})"


def test_dockerfile_exposes_8080(dockerfile_instructions):
    exposed = " ".join(rest for word, rest in dockerfile_instructions if word == "EXPOSE").split()
    assert any(p.split("/")[0] == "8080" for p in exposed), "Dockerfile must EXPOSE 8080"


def test_dockerfile_builds_locked_release(dockerfile_instructions):
    runs = " ".join(rest for word, rest in dockerfile_instructions if word == "RUN")
    assert "cargo build --release --locked" in runs, "release build must use --locked"


# --------------------------------------------------------------------------- scale profile


def test_scale_profile_replica_set_two_replicas_and_a_proxy(services):
    scale = {name: svc for name, svc in services.items() if "scale" in (svc.get("profiles") or [])}
    mongos = sorted(n for n, s in scale.items() if str(s.get("image", "")).startswith("mongo:"))
    assert len(mongos) == 3, f"the scale profile needs a three-member replica set, got {mongos}"
    for name in mongos:
        command = " ".join(map(str, scale[name].get("command") or []))
        assert "--replSet rs0" in command, f"{name} is not a replica-set member"
        assert_healthcheck(name, scale[name])
    replicas = sorted(n for n, s in scale.items() if "build" in s)
    assert len(replicas) == 2, f"two Portcullis replicas expected, got {replicas}"
    keys_volumes = set()
    for name in replicas:
        svc = scale[name]
        env = environment(svc)
        uri = env.get("PORTCULLIS_MONGODB_URI", "")
        assert all(m in uri for m in mongos) and "replicaSet=rs0" in uri, f"{name}: {uri}"
        assert env.get("PORTCULLIS_PUBLIC_URL"), f"{name}: replicas share one fixed public URL"
        assert ".env" in env_files(svc), f"{name}: .env must reach the replica"
        keys_volumes |= {str(v).split(":")[0] for v in svc.get("volumes") or [] if str(v).endswith("/keys")}
        assert_healthcheck(name, svc)
    assert len(keys_volumes) == 1, f"the replicas must share one keys volume, got {keys_volumes}"
    envs = [environment(scale[n]) for n in replicas]
    assert envs[0]["PORTCULLIS_PUBLIC_URL"] == envs[1]["PORTCULLIS_PUBLIC_URL"]
    proxies = [n for n, s in scale.items() if n not in mongos and n not in replicas]
    assert proxies, "no proxy in front of the replicas"
    proxy = scale[proxies[0]]
    deps = depends_on(proxy)
    assert set(replicas) <= set(deps), "the proxy must wait for both replicas"
    command = " ".join(map(str, proxy.get("command") or []))
    for name in replicas:
        assert name in command, f"the proxy does not send to {name}"
