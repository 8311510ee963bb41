"""Offline checks of the plain Kubernetes manifests under deploy/k8s/.

Every document is validated (strict: unknown fields are errors) against the
Kubernetes 1.37 schemas that kubernetes-validate bundles, then held to the
recipe: a Deployment with startup, liveness and readiness probes on the real
routes, resources, a non-root read-only container, keys from a Secret; a
Service, PodDisruptionBudget and HorizontalPodAutoscaler that select or target
it; no secret values outside the example Secret.

    target/test-venv/bin/pip install -r tests/deploy/requirements.txt
    target/test-venv/bin/pytest tests/deploy
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(os.environ.get("PORTCULLIS_REPO_ROOT", Path(__file__).resolve().parents[2])).resolve()
K8S = ROOT / "deploy" / "k8s"
VERSION = "1.37.0"


def documents() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                out.append((path.name, doc))
    return out


def by_kind(kind: str) -> list[dict]:
    return [d for _, d in documents() if d.get("kind") == kind]


def one(kind: str) -> dict:
    found = by_kind(kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("name,doc", documents(), ids=lambda v: v if isinstance(v, str) else v.get("kind", "?"))
def test_valid_against_the_kubernetes_schema(name, doc):
    if doc.get("kind") == "Kustomization":
        assert set(doc["resources"]) <= {p.name for p in K8S.glob("*.yaml")}, "kustomization names a missing file"
        return
    try:
        kubernetes_validate.validate(doc, VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{name}: {e.message} at {list(e.path)}")


def test_deployment_recipe():
    dep = one("Deployment")
    labels = dep["spec"]["selector"]["matchLabels"]
    pod = dep["spec"]["template"]
    assert labels.items() <= pod["metadata"]["labels"].items(), "the selector does not match the pods"
    assert dep["spec"]["replicas"] >= 2
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    paths = {probe: container[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert paths["readinessProbe"] == "/readyz", "readiness must follow the store (/readyz)"
    assert paths["livenessProbe"] == "/healthz", "liveness must not depend on the store (/healthz)"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), f"resources.{kind}"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert container["ports"][0]["containerPort"] == 8080
    # Keys from a Secret, mounted where PORTCULLIS_KEYS_DIR points.
    keys_dir = one("ConfigMap")["data"]["PORTCULLIS_KEYS_DIR"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert keys_dir in mounts, "no volume at PORTCULLIS_KEYS_DIR"
    assert "secret" in volumes[mounts[keys_dir]["name"]], "the keys must come from a Secret"
    sources = [e.get("secretRef", {}).get("name") for e in container.get("envFrom", [])]
    assert any(sources), "the MongoDB URI must come from a Secret"
    # Grace for in-flight requests: longer than PORTCULLIS_SHUTDOWN_TIMEOUT (10s).
    assert spec["terminationGracePeriodSeconds"] > 10


def test_service_pdb_and_hpa_point_at_the_deployment():
    dep = one("Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    svc = one("Service")
    assert svc["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert all(p["targetPort"] in port_names or p["targetPort"] == 8080 for p in svc["spec"]["ports"])
    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"].get("minAvailable", 0) >= 1 or "maxUnavailable" in pdb["spec"]
    hpa = one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", dep["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2, "one replica leaves nothing during a disruption"
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


def test_no_secret_values_outside_the_example_secret():
    for name, doc in documents():
        if doc.get("kind") == "Secret":
            assert name.endswith(".example.yaml"), f"{name}: a Secret with values in the repository"
            assert "kustomization.yaml" not in name
            continue
        text = yaml.safe_dump(doc)
        assert not re.search(r"PORTCULLIS_(MONGODB_URI|SMTP_URL|WEBHOOK_SECRET|METRICS_TOKEN)\b", text), (
            f"{name}: a secret setting belongs in the Secret"
        )
    kustomization = one("Kustomization")
    assert "secret.example.yaml" not in kustomization["resources"], "the example Secret must not be applied"
