"""Fixtures of the deployment tests: the helm binary, rendered charts (once per values combination) and
the CI rule for missing tools.

CI rule: these tests must really run in CI. A missing tool (helm, docker, actionlint, a Python package)
fails the test when the environment variable ``CI`` is set (``.ci/run`` and GitHub Actions set it), and
skips it with the reason on a developer machine.
"""

from __future__ import annotations

import importlib
import itertools
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import ROOT

CHART = ROOT / "helm" / "credit-risk"
K8S = ROOT / "k8s"
# KServe's InferenceService CRD per release the chart supports (kserve.version); 0.17 to 0.19 ship the
# same CRD (identical bytes), kept once as v0.19.0. Source and licence: tests/fixtures/README.md.
KSERVE_CRD_DIR = ROOT / "tests" / "fixtures" / "kserve"
KSERVE_CRDS = {
    version: KSERVE_CRD_DIR / f"inferenceservices-{tag}.yaml.gz"
    for version, tag in {
        "0.15": "v0.15.2", "0.16": "v0.16.0", "0.17": "v0.19.0", "0.18": "v0.19.0", "0.19": "v0.19.0",
        "0.20": "v0.20.0",
    }.items()
}  # fmt: skip
RELEASE = "credit-risk"
NAMESPACE = "scoring"
KUBERNETES_VERSION = "1.30.0"
MONITORING_API = "monitoring.coreos.com/v1"


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def unavailable(reason: str) -> None:
    """Fail in CI, skip (visibly) elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} — required in CI (the CI environment variable is set)")
    pytest.skip(reason)


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"`{name}` is not on PATH ({hint})")
    return path


def require_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(f"Python package for `{name}` is not installed (pip install it into .venv)")


def yaml_module() -> Any:
    return require_module("yaml")


# ------------------------------------------------------------------------------------------ value combos

# The model sources the chart supports, as values.
MODEL_SOURCES: dict[str, dict] = {
    "uri": {
        "model": {"uri": "models:/credit-risk/3"},
        "mlflow": {"trackingUri": "http://mlflow.mlflow:5000"},
    },
    "storage": {
        "model": {"storageUri": "s3://models/credit-risk/3", "storage": {"secretName": "s3-credentials"}}
    },
    "hostPath": {
        "model": {"volume": {"type": "hostPath", "hostPath": {"path": "/var/local/credit-risk-model"}}}
    },
    "pvc": {"model": {"volume": {"type": "pvc", "pvc": {"claimName": "credit-risk-models"}}}},
}


def deep_merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def combo_values(mode: str, monitoring: bool, network_policy: bool, source: str) -> dict:
    values = deep_merge({"mode": mode}, MODEL_SOURCES[source])
    if monitoring:
        values = deep_merge(values, {"monitoring": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            "prometheusRule": {"enabled": True},
            "dashboards": {"enabled": True},
        }})  # fmt: skip
    if network_policy:
        values = deep_merge(values, {"networkPolicy": {"enabled": True}})
        if source in ("uri", "storage"):  # the chart refuses a DNS-only egress when the model is remote
            values = deep_merge(values, {"networkPolicy": {"egress": {"extraRules": [
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mlflow"}}}],
                 "ports": [{"port": 5000, "protocol": "TCP"}]},
            ]}}})  # fmt: skip
    return values


COMBOS = [
    pytest.param((mode, monitoring, netpol, source), id=f"{mode}-{'mon' if monitoring else 'nomon'}-"
                 f"{'netpol' if netpol else 'nonetpol'}-{source}")
    for mode, monitoring, netpol, source in itertools.product(
        ("kserve", "deployment"), (True, False), (True, False), tuple(MODEL_SOURCES)
    )
]  # fmt: skip


# ------------------------------------------------------------------------------------------ helm


@pytest.fixture(scope="session")
def helm() -> str:
    path = require_tool("helm", "bash .ci/tools.sh installs helm v3.17.2")
    version = subprocess.run([path, "version", "--short"], capture_output=True, text=True).stdout
    if not version.startswith("v3."):
        pytest.fail(f"the chart is tested with helm 3; {path} is {version.strip()}")
    return path


def run_helm(helm: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([helm, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{_helm_stderr(result)}")
    return result


def _helm_stderr(result: subprocess.CompletedProcess) -> str:
    # helm reports every followed symlink (files/ -> monitoring/) on stderr: noise here.
    return "\n".join(line for line in result.stderr.splitlines() if "found symbolic link in path" not in line)


@pytest.fixture(scope="session")
def values_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("values")


@pytest.fixture(scope="session")
def write_values(values_dir: Path) -> Callable[[dict], Path]:
    yaml = yaml_module()
    counter = itertools.count()

    def write(values: dict) -> Path:
        path = values_dir / f"values-{next(counter)}.yaml"
        path.write_text(yaml.safe_dump(values, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def render(helm: str, write_values: Callable[[dict], Path]) -> Callable[..., list[dict]]:
    """``render(values, monitoring_crds=True)`` -> the rendered objects; cached per combination."""
    yaml = yaml_module()
    cache: dict[str, list[dict]] = {}

    def _render(values: dict, monitoring_crds: bool = True, extra: tuple[str, ...] = ()) -> list[dict]:
        key = repr((sorted_repr(values), monitoring_crds, extra))
        if key not in cache:
            args = [
                "template",
                RELEASE,
                str(CHART),
                "--namespace",
                NAMESPACE,
                "-f",
                str(write_values(values)),
            ]
            if monitoring_crds:
                args += ["--api-versions", MONITORING_API]
            output = run_helm(helm, *args, *extra).stdout
            cache[key] = [doc for doc in yaml.safe_load_all(output) if doc]
        return cache[key]

    return _render


def sorted_repr(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, sorted_repr(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(sorted_repr(v) for v in value)
    return value


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind]


def one(objects: list[dict], kind: str) -> dict:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}: {[o['kind'] for o in objects]}"
    return found[0]


def pod_specs(objects: list[dict]) -> list[tuple[str, dict]]:
    """Every pod spec the chart renders: Deployment and StatefulSet templates, the InferenceService's
    predictor and transformer, test Pods."""
    specs = []
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in ("Deployment", "StatefulSet"):
            specs.append((name, obj["spec"]["template"]["spec"]))
        elif obj["kind"] == "InferenceService":
            specs.append((name, obj["spec"]["predictor"]))
            if "transformer" in obj["spec"]:
                specs.append((f"{name}/transformer", obj["spec"]["transformer"]))
        elif obj["kind"] == "Pod":
            specs.append((name, obj["spec"]))
    return specs


def arg(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from the container args {args}"
    return args[args.index(flag) + 1]


def component(obj: dict) -> str | None:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def transformer_pod(objects: list[dict]) -> dict:
    """The transformer's pod spec: its Deployment's template (deployment mode) or spec.transformer (kserve)."""
    deployments = [o for o in by_kind(objects, "Deployment") if component(o) == "transformer"]
    isvcs = [o for o in by_kind(objects, "InferenceService") if "transformer" in o["spec"]]
    assert len(deployments) + len(isvcs) == 1, [f"{o['kind']}/{o['metadata']['name']}" for o in objects]
    return deployments[0]["spec"]["template"]["spec"] if deployments else isvcs[0]["spec"]["transformer"]


def transformer_container(objects: list[dict]) -> dict:
    (container,) = transformer_pod(objects)["containers"]
    return container


def predictor_container(objects: list[dict]) -> dict:
    workloads = [o for o in by_kind(objects, "Deployment") if component(o) == "predictor"]
    workloads += by_kind(objects, "InferenceService")
    assert len(workloads) == 1, [o["kind"] for o in objects]
    workload = workloads[0]
    spec = (
        workload["spec"]["template"]["spec"]
        if workload["kind"] == "Deployment"
        else workload["spec"]["predictor"]
    )
    (container,) = spec["containers"]
    return container
