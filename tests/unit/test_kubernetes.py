"""deploy/kubernetes/ and deploy/Dockerfile, checked without a cluster or a Docker engine
(there is neither here): kustomize (inside kubectl, installed from its wheel) builds the
manifests, and every built-in resource is validated strictly against the Kubernetes 1.37
schemas that kubernetes-validate ships. The two custom resources (ServiceMonitor, KEDA's
ScaledObject) have no schema there: they are checked against the fields their CRDs
require and against the resources they name. The Dockerfile is parsed, not built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from qbsync.bootstrap import LOOP_GRACE_SECONDS
from qbsync.config import Settings
from qbsync.kafka import batches
from qbsync.kafka.topics import all_specs
from qbsync.runtime import STOP_STEP_SECONDS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES_VERSION = "1.37.0"
KUBECTL = Path(sys.executable).parent / "kubectl"
SERVICES = {
    "importer": "services.importer",
    "matcher": "services.matcher",
    "pusher": "services.pusher",
    "api": "services.api",
    "lag-exporter": "qbsync.lag_exporter",
}
CUSTOM_GROUPS = ("monitoring.coreos.com/", "keda.sh/")
# Settings of the API (CONTRACTS.md), served by services/api.
API_SETTINGS = {"QBSYNC_API_HOST", "QBSYNC_API_PORT", "QBSYNC_API_JWT_SECRET"}

# What the CRDs require (their openAPIV3Schema's `required` and types), for what is used.
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}},
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
            "additionalProperties": False,
        },
    },
}
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {
                    "type": "object",
                    "properties": {"matchLabels": {"type": "object"}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    """What `kubectl apply -k deploy/kubernetes` would send."""
    made = subprocess.run(
        [str(KUBECTL), "kustomize", str(DEPLOY / "kubernetes")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [doc for doc in yaml.safe_load_all(made.stdout) if doc]


def of_kind(built: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in built if doc["kind"] == kind}


def test_every_built_in_resource_passes_the_kubernetes_schemas(built: list[dict[str, Any]]) -> None:
    built_in = [d for d in built if not d["apiVersion"].startswith(CUSTOM_GROUPS)]
    assert {d["kind"] for d in built_in} == {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    }
    for doc in built_in:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "qbsync"


def test_a_broken_manifest_is_caught() -> None:
    """The validation above is not vacuous: a misspelt field fails it."""
    broken = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "x"},
        "spec": {"maxUnavailabel": 1, "selector": {"matchLabels": {"a": "b"}}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_one_deployment_per_service_with_probes_resources_and_a_long_enough_grace(
    built: list[dict[str, Any]],
) -> None:
    deployments = of_kind(built, "Deployment")
    assert set(deployments) == set(SERVICES)
    # The longest own stop: a consumer's grace and the background loops', then the
    # runtime's parts (HTTP server, producer, QuickBooks client, pool), each bounded.
    graces = batches.STOP_GRACE_SECONDS + LOOP_GRACE_SECONDS
    own_stop = graces + 4 * STOP_STEP_SECONDS
    for name, module in SERVICES.items():
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"].startswith("registry.example.com/qbsync:")
        assert container["command"] == ["python", "-m", module]
        ports = {port["name"] for port in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["port"] in ports
        resources = container["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
        assert pod["terminationGracePeriodSeconds"] > own_stop
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert sources == {"qbsync-environment", "qbsync-secrets"}


def test_the_environment_holds_only_settings_the_processes_read(
    built: list[dict[str, Any]],
) -> None:
    known = set(Settings.model_fields) | API_SETTINGS
    config = of_kind(built, "ConfigMap")["qbsync-environment"]["data"]
    secrets = of_kind(built, "Secret")["qbsync-secrets"]["stringData"]
    assert set(config) <= known and set(secrets) <= known
    assert {"DATABASE_URL", "QBSYNC_SECRET_KEY", "QBO_CLIENT_SECRET"} <= set(secrets)
    assert not {"DATABASE_URL", "QBSYNC_SECRET_KEY", "QBO_CLIENT_SECRET"} & set(config)
    assert config["QBSYNC_HTTP_PORT"] == "8000" and config["QBSYNC_HTTP_HOST"] == "0.0.0.0"


def test_a_disruption_budget_for_every_deployment(built: list[dict[str, Any]]) -> None:
    budgets = of_kind(built, "PodDisruptionBudget")
    for name, deployment in of_kind(built, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()


def test_the_service_monitor_scrapes_every_service_as_the_alerts_name_them(
    built: list[dict[str, Any]],
) -> None:
    (monitor,) = of_kind(built, "ServiceMonitor").values()
    jsonschema.validate(monitor, SERVICE_MONITOR)
    services = of_kind(built, "Service")
    assert set(services) == set(SERVICES)
    wanted = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    for name, service in services.items():
        assert wanted.items() <= service["metadata"]["labels"].items(), name
        assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
        assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == name
    alerts = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    assert 'job=~"importer|matcher|pusher|api|lag-exporter"' in alerts


def test_keda_scales_the_pusher_and_the_matcher_on_their_groups_lag(
    built: list[dict[str, Any]],
) -> None:
    scaled = of_kind(built, "ScaledObject")
    assert set(scaled) == {"pusher", "matcher"}
    partitions = {spec.name: spec.partitions for spec in all_specs()}
    deployments = of_kind(built, "Deployment")
    for name, scaler in scaled.items():
        jsonschema.validate(scaler, SCALED_OBJECT)
        spec = scaler["spec"]
        assert spec["scaleTargetRef"]["name"] == name and name in deployments
        for trigger in spec["triggers"]:
            meta = trigger["metadata"]
            assert trigger["type"] == "kafka"
            assert meta["consumerGroup"] == f"qbsync-{name}"  # streaming.group_of
            assert meta["topic"] in partitions
            assert spec["maxReplicaCount"] <= partitions[meta["topic"]]
            assert int(meta["lagThreshold"]) > 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**scaled["pusher"], "spec": {"triggers": []}}, SCALED_OBJECT)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = dockerfile.read_text().replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def test_the_dockerfile_builds_one_non_root_image_with_a_healthcheck() -> None:
    steps = instructions(DEPLOY / "Dockerfile")
    keywords = [keyword for keyword, _ in steps]
    assert keywords[0] == "FROM" and keywords.count("FROM") == 1
    users = [rest for keyword, rest in steps if keyword == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    (healthcheck,) = [rest for keyword, rest in steps if keyword == "HEALTHCHECK"]
    assert healthcheck.endswith('CMD ["python", "-m", "qbsync.healthcheck"]')
    for keyword, rest in steps:
        if keyword == "COPY":
            *sources, _ = rest.split()
            assert all((DEPLOY.parent / source).exists() for source in sources), rest
    env = " ".join(rest for keyword, rest in steps if keyword == "ENV")
    assert "QBSYNC_HTTP_HOST=0.0.0.0" in env and "QBSYNC_HTTP_PORT=8000" in env
    for module in SERVICES.values():
        top = module.split(".")[0]
        assert any(keyword == "COPY" and rest.startswith(f"{top} ") for keyword, rest in steps)
