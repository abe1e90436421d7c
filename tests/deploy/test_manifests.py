"""Every rendered object validated against its schema, and the pod security rules of the chart.

* Core kinds: ``kubernetes-validate`` (strict: unknown fields fail) against Kubernetes 1.30.0.
* InferenceService: the KServe CRD's v1beta1 ``openAPIV3Schema`` of every supported KServe release
  (tests/fixtures/kserve/, KServe v0.15 to v0.20) with ``jsonschema``,
  made strict: a CRD schema leaves objects open unless they say otherwise, the API server prunes unknown
  fields silently, so every object with ``properties`` (and without ``x-kubernetes-preserve-unknown-fields``
  or its own ``additionalProperties``) gets ``additionalProperties: false`` — a misspelled field fails.
* ServiceMonitor / PrometheusRule: no raw schema of the Prometheus Operator CRDs is obtainable offline here
  (checked: no package ships them), so they are validated by structure in Python — apiVersion/kind,
  required fields, known field names, durations, selector matching the scraped Service, rule groups — and
  the rendered rules additionally by ``promtool check rules`` when promtool is installed.
"""

from __future__ import annotations

import copy
import functools
import gzip
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import (
    CHART,
    COMBOS,
    KSERVE_CRDS,
    KUBERNETES_VERSION,
    NAMESPACE,
    by_kind,
    combo_values,
    one,
    pod_specs,
    require_module,
    require_tool,
    yaml_module,
)

CORE_KINDS = {
    "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceAccount",
    "NetworkPolicy", "ConfigMap", "Pod",
}  # fmt: skip
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# ------------------------------------------------------------------------------------------ schemas


@pytest.fixture(scope="session")
def kubernetes_validate() -> Any:
    return require_module("kubernetes_validate")


def strict(schema: Any) -> Any:
    """The CRD schema with every closed-looking object closed (see the module docstring)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def isvc_validator_for(kserve_version: str) -> Any:
    """The strict v1beta1 schema of the InferenceService CRD of one KServe release (``kserve.version``)."""
    jsonschema = require_module("jsonschema")
    yaml = yaml_module()
    path = KSERVE_CRDS[kserve_version]
    if not path.is_file():
        pytest.fail(f"the KServe {kserve_version} CRD is missing at {path} (tests/fixtures/kserve/)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(gzip.decompress(path.read_bytes()), Loader=loader)
    assert crd["spec"]["names"]["kind"] == "InferenceService"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return jsonschema.Draft7Validator(strict(version["schema"]["openAPIV3Schema"]))


@pytest.fixture(scope="session")
def isvc_validator() -> Any:
    """The default kserve.version's CRD."""
    return isvc_validator_for(
        yaml_module().safe_load((CHART / "values.yaml").read_text())["kserve"]["version"]
    )


def isvc_errors(validator: Any, isvc: dict) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in sorted(validator.iter_errors(isvc), key=lambda e: list(e.absolute_path))
    ]


# ------------------------------------------------------------------------------------------ core kinds


def strict_failures(kubernetes_validate: Any, objects: list[dict], kinds: set[str]) -> list[str]:
    """What kubernetes-validate (strict: unknown fields are errors) says of every object of ``kinds``."""
    failures = []
    for obj in objects:
        if obj["kind"] in kinds:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {error}")
    return failures


@pytest.mark.parametrize("combo", COMBOS)
def test_core_objects_validate_strictly(
    render: Callable[..., list[dict]], kubernetes_validate: Any, combo: tuple
) -> None:
    objects = render(combo_values(*combo))
    unknown = {o["kind"] for o in objects} - CORE_KINDS - OPERATOR_KINDS - {"InferenceService"}
    assert not unknown, f"no validation for {unknown}"
    failures = strict_failures(kubernetes_validate, objects, CORE_KINDS)
    assert not failures, "\n".join(failures)


def test_kubernetes_validate_cli(render: Callable[..., list[dict]], tmp_path: Path) -> None:
    """The same check through the command line, on one file of every core kind (both modes)."""
    tool = require_tool("kubernetes-validate", "pip install kubernetes-validate")
    yaml = yaml_module()
    objects = render(combo_values("deployment", True, True, "pvc")) + render(
        combo_values("kserve", True, True, "uri")
    )
    core = [o for o in objects if o["kind"] in CORE_KINDS]
    assert {o["kind"] for o in core} == CORE_KINDS
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump_all(core))
    result = subprocess.run(
        [tool, "--strict", "-k", KUBERNETES_VERSION, str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_core_validation_catches_a_typo(
    render: Callable[..., list[dict]], kubernetes_validate: Any
) -> None:
    deployment = copy.deepcopy(one(render(combo_values("deployment", False, False, "pvc")), "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# ------------------------------------------------------------------------------------------ InferenceService


@pytest.mark.parametrize("combo", [c for c in COMBOS if c.values[0][0] == "kserve"])
def test_inference_service_matches_the_kserve_crd(
    render: Callable[..., list[dict]], isvc_validator: Any, combo: tuple
) -> None:
    isvc = one(render(combo_values(*combo)), "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert not isvc_errors(isvc_validator, isvc)


def test_serverless_and_fixed_replicas_match_the_crd(
    render: Callable[..., list[dict]], isvc_validator: Any
) -> None:
    pvc = {"model": {"volume": {"type": "pvc", "pvc": {"claimName": "models"}}}}
    for extra in ({"kserve": {"deploymentMode": "Serverless"}}, {"autoscaling": {"enabled": False}},
                  {"kserve": {"deploymentMode": "RawDeployment"}, "extraEnv": [
                      {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}):  # fmt: skip
        isvc = one(render({**pvc, **extra}), "InferenceService")
        assert not isvc_errors(isvc_validator, isvc), extra


@pytest.mark.parametrize("kserve_version", sorted(KSERVE_CRDS))
@pytest.mark.parametrize("mode", ["Standard", "Knative", "RawDeployment", "Serverless"])
def test_every_kserve_release_gets_its_own_mode_names_and_a_valid_object(
    render: Callable[..., list[dict]], kserve_version: str, mode: str
) -> None:
    """0.16 renamed RawDeployment/Serverless to Standard/Knative; 0.15 falls back to the cluster default
    on a name it does not know, so the chart writes the name the release expects, whichever was given."""
    serverless = mode in ("Knative", "Serverless")
    values = combo_values("kserve", True, False, "pvc" if serverless else "storage")
    isvc = one(
        render({**values, "kserve": {"version": kserve_version, "deploymentMode": mode}}), "InferenceService"
    )
    old = tuple(int(p) for p in kserve_version.split(".")) < (0, 16)
    expected = {(False, False): "Standard", (False, True): "Knative", (True, False): "RawDeployment",
                (True, True): "Serverless"}[(old, serverless)]  # fmt: skip
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == expected
    assert not isvc_errors(isvc_validator_for(kserve_version), isvc)


@pytest.mark.parametrize(
    ("where", "typo"),
    [
        (("spec", "predictor"), "minReplica"),
        (("spec", "predictor"), "scaleMetrics"),
        (("spec", "predictor", "containers", 0), "imagePullPolcy"),
        (("spec", "predictor", "containers", 0, "securityContext"), "readOnlyRootFileSystem"),
        (("spec",), "predicter"),
    ],
)
def test_strict_crd_schema_catches_a_misspelled_field(
    render: Callable[..., list[dict]], isvc_validator: Any, where: tuple, typo: str
) -> None:
    isvc = copy.deepcopy(one(render(combo_values("kserve", False, False, "pvc")), "InferenceService"))
    node = isvc
    for key in where:
        node = node[key]
    node[typo] = 1
    errors = isvc_errors(isvc_validator, isvc)
    assert any(typo in e for e in errors), errors


def test_crd_schema_checks_types(render: Callable[..., list[dict]], isvc_validator: Any) -> None:
    isvc = copy.deepcopy(one(render(combo_values("kserve", False, False, "pvc")), "InferenceService"))
    isvc["spec"]["predictor"]["minReplicas"] = "two"
    assert any("minReplicas" in e for e in isvc_errors(isvc_validator, isvc))


# ------------------------------------------------------------------------------------------ Prometheus Operator kinds

SERVICE_MONITOR_SPEC = {
    "selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels",
    "sampleLimit", "targetLimit", "attachMetadata", "scrapeProtocols", "labelLimit",
}  # fmt: skip
ENDPOINT_FIELDS = {
    "port", "targetPort", "path", "scheme", "interval", "scrapeTimeout", "params", "honorLabels",
    "honorTimestamps", "relabelings", "metricRelabelings", "tlsConfig", "bearerTokenSecret", "authorization",
    "basicAuth", "oauth2", "followRedirects", "enableHttp2", "proxyUrl", "filterRunning", "trackTimestampsStaleness",
}  # fmt: skip
RULE_FIELDS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
GROUP_FIELDS = {"name", "rules", "interval", "limit", "partial_response_strategy", "query_offset", "labels"}


def check_service_monitor(monitor: dict, objects: list[dict]) -> None:
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"]
    spec = monitor["spec"]
    assert set(spec) <= SERVICE_MONITOR_SPEC, set(spec) - SERVICE_MONITOR_SPEC
    labels = spec["selector"]["matchLabels"]
    assert labels and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert spec["endpoints"], "no endpoints"
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= ENDPOINT_FIELDS, set(endpoint) - ENDPOINT_FIELDS
        assert isinstance(endpoint["port"], str) and endpoint["path"] == "/metrics"
        assert endpoint["scheme"] in ("http", "https")
        for key in ("interval", "scrapeTimeout"):
            assert DURATION.match(endpoint[key]), f"{key} {endpoint[key]!r}"
    services = by_kind(objects, "Service")
    if services:  # deployment mode: it must select the chart's Service, on a port it has
        (service,) = services
        assert labels.items() <= service["metadata"]["labels"].items()
        assert {e["port"] for e in spec["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    else:  # kserve mode: the <name>-predictor Service KServe makes carries these labels and the port name
        isvc = one(objects, "InferenceService")
        assert labels == {
            "serving.kserve.io/inferenceservice": isvc["metadata"]["name"],
            "component": "predictor",
        }
        ports = {p["name"] for p in isvc["spec"]["predictor"]["containers"][0]["ports"]}
        assert {e["port"] for e in spec["endpoints"]} <= ports


def check_prometheus_rule(rule: dict) -> None:
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"]
    assert set(rule["spec"]) == {"groups"}
    groups = rule["spec"]["groups"]
    assert groups, "no rule groups"
    names = [g["name"] for g in groups]
    assert len(set(names)) == len(names), f"duplicate group names {names}"
    for group in groups:
        assert set(group) <= GROUP_FIELDS, set(group) - GROUP_FIELDS
        assert group["rules"], f"group {group['name']} has no rules"
        for r in group["rules"]:
            where = f"{group['name']}/{r.get('alert') or r.get('record')}"
            assert set(r) <= RULE_FIELDS, f"{where}: {set(r) - RULE_FIELDS}"
            assert isinstance(r.get("expr"), str) and r["expr"].strip(), f"{where}: no expr"
            assert ("alert" in r) != ("record" in r), f"{where}: needs exactly one of alert / record"
            if "record" in r:
                assert METRIC_NAME.match(r["record"]) and not set(r) & {"for", "annotations"}, where
            else:
                assert LABEL_NAME.match(r["alert"]), where
            for key in ("for", "keep_firing_for"):
                if key in r:
                    assert DURATION.match(str(r[key])), f"{where}: {key} {r[key]!r}"
            for key in ("labels", "annotations"):
                assert all(isinstance(k, str) and isinstance(v, str) for k, v in r.get(key, {}).items()), (
                    where
                )


@pytest.mark.parametrize("combo", [c for c in COMBOS if c.values[0][1]])
def test_operator_objects_by_structure(render: Callable[..., list[dict]], combo: tuple) -> None:
    objects = render(combo_values(*combo))
    check_service_monitor(one(objects, "ServiceMonitor"), objects)
    check_prometheus_rule(one(objects, "PrometheusRule"))


def test_structure_checks_catch_mistakes(render: Callable[..., list[dict]]) -> None:
    objects = render(combo_values("deployment", True, False, "pvc"))
    monitor = copy.deepcopy(one(objects, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["port"] = "metrics"  # no such Service port
    with pytest.raises(AssertionError):
        check_service_monitor(monitor, objects)
    rule = copy.deepcopy(one(objects, "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0].pop("expr")
    with pytest.raises(AssertionError):
        check_prometheus_rule(rule)


def test_rendered_rules_pass_promtool(render: Callable[..., list[dict]], tmp_path: Path) -> None:
    promtool = require_tool("promtool", "bash .ci/tools.sh installs it (Debian package prometheus)")
    rule = one(render(combo_values("kserve", True, False, "pvc")), "PrometheusRule")
    path = tmp_path / "rules.yml"
    path.write_text(yaml_module().safe_dump(rule["spec"], sort_keys=False))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------ security


def check_pod_security(name: str, pod: dict) -> list[str]:
    problems = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(f"{name}: {flag}")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{name}: the service account token is mounted")
    context = pod.get("securityContext", {})
    if context.get("runAsNonRoot") is not True or context.get("runAsUser", 0) == 0:
        problems.append(f"{name}: pod may run as root ({context})")
    if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{name}: no RuntimeDefault seccomp profile")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for volume in volumes.values():
        if "hostPath" in volume and volume["name"] != "model":
            problems.append(f"{name}: hostPath volume {volume['name']} (only the model volume may be one)")
    for container in pod.get("initContainers", []) + pod["containers"]:
        where = f"{name}/{container['name']}"
        sc = container.get("securityContext", {})
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: privilege escalation allowed")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: writable root filesystem")
        if sc.get("runAsNonRoot") is not True or sc.get("runAsUser", context.get("runAsUser", 0)) == 0:
            problems.append(f"{where}: may run as root")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []) or sc.get("capabilities", {}).get("add"):
            problems.append(f"{where}: capabilities not dropped ({sc.get('capabilities')})")
        if any("hostPort" in p for p in container.get("ports", [])):
            problems.append(f"{where}: hostPort")
        mounts = container.get("volumeMounts", [])
        if not any(m["mountPath"] == "/tmp" and "emptyDir" in volumes.get(m["name"], {}) for m in mounts):
            problems.append(f"{where}: no writable /tmp emptyDir")
        for mount in mounts:
            volume = volumes.get(mount["name"], {})
            if ("hostPath" in volume or "persistentVolumeClaim" in volume) and mount.get(
                "readOnly"
            ) is not True:
                problems.append(f"{where}: model volume {mount['name']} mounted read-write")
    return problems


@pytest.mark.parametrize("combo", COMBOS)
def test_pod_security(render: Callable[..., list[dict]], combo: tuple) -> None:
    objects = render(combo_values(*combo))
    specs = pod_specs(objects)
    assert len(specs) == 2, "expected the predictor and the helm test pod"
    problems = [p for name, pod in specs for p in check_pod_security(name, pod)]
    for account in by_kind(objects, "ServiceAccount"):
        if account.get("automountServiceAccountToken") is not False:
            problems.append(f"ServiceAccount/{account['metadata']['name']} mounts its token by default")
    assert not problems, "\n".join(problems)
    hostpaths = [v for _, pod in specs for v in pod.get("volumes", []) if "hostPath" in v]
    assert bool(hostpaths) == (combo[3] == "hostPath")


def test_security_check_catches_violations(render: Callable[..., list[dict]]) -> None:
    objects = render(combo_values("deployment", False, False, "hostPath"))
    name, pod = next((n, p) for n, p in pod_specs(objects) if n.startswith("Deployment"))
    for mutate, expected in (
        (lambda p: p.update(hostNetwork=True), "hostNetwork"),
        (lambda p: p["containers"][0]["securityContext"].update(privileged=True), "privileged"),
        (
            lambda p: p["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False),
            "writable root",
        ),
        (lambda p: p["containers"][0]["securityContext"]["capabilities"].update(drop=[]), "capabilities"),
        (lambda p: p["containers"][0]["volumeMounts"][1].update(readOnly=False), "read-write"),
        (
            lambda p: p["volumes"].append({"name": "docker", "hostPath": {"path": "/var/run"}}),
            "hostPath volume",
        ),
        (lambda p: p["securityContext"].update(runAsUser=0), "root"),
    ):
        broken = copy.deepcopy(pod)
        mutate(broken)
        assert any(expected in problem for problem in check_pod_security(name, broken)), expected
