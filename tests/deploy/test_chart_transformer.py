"""The transformer in the chart (``transformer.enabled``), its feature store (``transformer.store`` or the
demo Redis of ``redis.deploy``) and who may reach what.

What KServe does with ``spec.transformer`` (read in its sources, the same from v0.15.2 to v0.20.0):

* ``CustomTransformer.Default`` renames ``containers[0]`` to ``kserve-container``; ``GetContainer``
  (pkg/apis/serving/v1beta1/transformer_custom.go) appends ``--model_name <InferenceService name>``,
  ``--predictor_host <name>-predictor.<namespace>`` (no port: HTTP on the predictor Service's 80) and
  ``--http_port 8080`` to the container's args unless an arg already starts with that flag
  (``utils.IncludesArg``), and ``--workers`` only with ``containerConcurrency``; the transformer reconciler
  (pkg/controller/v1beta1/inferenceservice/components/transformer.go) adds the env
  ``INFERENCE_SERVICE_NAME``. The same in Standard (RawDeployment) and Knative (Serverless) mode — only
  ModelMesh differs. ``kserve_transformer_container`` below is that algorithm.
* Standard mode makes the Service ``<name>-transformer`` from the container's ports with the rule of the
  predictor's (``createDefaultSvc``: the first port on 80, later ports keep their number, ``grpc``/``h2c``
  names get ``appProtocol: kubernetes.io/h2c``); the pods carry ``component: transformer`` and
  ``serving.kserve.io/inferenceservice: <name>`` besides the chart's ``spec.transformer.labels``.
* A component's annotations win over the InferenceService's (``utils.Union``), so the transformer's
  ``serving.kserve.io/autoscalerClass`` and ``prometheus.kserve.io/port`` are its own.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import (
    CHART,
    K8S,
    KSERVE_CRDS,
    KUBERNETES_VERSION,
    NAMESPACE,
    RELEASE,
    arg,
    by_kind,
    component,
    deep_merge,
    one,
    pod_specs,
    predictor_container,
    require_module,
    run_helm,
    transformer_container,
    transformer_pod,
    yaml_module,
)
from tests.deploy.test_chart import render_notes
from tests.deploy.test_chart_grpc import H2C, kserve_component_service
from tests.deploy.test_manifests import check_pod_security, isvc_errors, isvc_validator_for, strict_failures

PVC = {"model": {"volume": {"type": "pvc", "pvc": {"claimName": "credit-risk-models"}}}}
PRODUCERS = [{"namespaceSelector": {"matchLabels": {"team": "payments"}},
              "podSelector": {"matchLabels": {"app": "settlement-feed"}}}]  # fmt: skip
# The transformer with its store URL and token in Secrets (the production shape).
SECRETS = {"transformer": {"enabled": True,
                           "store": {"existingSecret": "feature-store", "key": "redis-url"},
                           "ingest": {"existingSecret": "ingest-token", "key": "bearer", "producers": PRODUCERS},
                           "networkPolicy": {"egressRules": [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                                                              "ports": [{"port": 6380, "protocol": "TCP"}]}]}}}  # fmt: skip
# The transformer with the chart's demo Redis and a token given in values (the kind shape).
DEMO = {"transformer": {"enabled": True, "ingest": {"token": "t0ken-given-in-values", "producers": PRODUCERS}},
        "redis": {"deploy": True}}  # fmt: skip
MODES = {
    "deployment": deep_merge(PVC, {"mode": "deployment"}),
    "standard": deep_merge(PVC, {"mode": "kserve", "kserve": {"deploymentMode": "Standard"}}),
    "knative": deep_merge(PVC, {"mode": "kserve", "kserve": {"deploymentMode": "Knative"}}),
}
STORES = {"secrets": SECRETS, "demo": DEMO}
ALL = [pytest.param(mode, store, id=f"{mode}-{store}") for mode in MODES for store in STORES]
NETPOL_MONITORING = {"networkPolicy": {"enabled": True},
                     "monitoring": {"serviceMonitor": {"enabled": True}, "checkCRDs": False}}  # fmt: skip
CORE_KINDS = {"Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
              "ServiceAccount", "NetworkPolicy", "Secret", "Pod"}  # fmt: skip


def values(mode: str, store: str, *extra: dict) -> dict:
    merged = deep_merge(deep_merge(MODES[mode], STORES[store]), NETPOL_MONITORING)
    for more in extra:
        merged = deep_merge(merged, more)
    return merged


@pytest.fixture(scope="module")
def kubernetes_validate() -> Any:
    return require_module("kubernetes_validate")


def named(objects: list[dict], kind: str, name: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


# ------------------------------------------------------------------------------------------ what KServe makes of it


def kserve_transformer_container(isvc: dict) -> dict:
    """The container KServe's controller runs for ``spec.transformer`` (see the module docstring)."""
    container = copy.deepcopy(isvc["spec"]["transformer"]["containers"][0])
    container["name"] = "kserve-container"
    args = container.setdefault("args", [])

    def includes(flag: str) -> bool:
        return any(a == flag or a.startswith(flag) for a in args)

    name = isvc["metadata"]["name"]
    for flag, value in (("--model_name", name), ("--predictor_host", f"{name}-predictor.{NAMESPACE}"),
                        ("--http_port", "8080")):  # fmt: skip
        if not includes(flag):
            args += [flag, value]
    container.setdefault("env", []).append({"name": "INFERENCE_SERVICE_NAME", "value": name})
    return container


# ------------------------------------------------------------------------------------------ render, lint, validate


@pytest.mark.parametrize(("mode", "store"), ALL)
def test_lint_strict(helm: str, write_values: Callable[[dict], Path], mode: str, store: str) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(write_values(values(mode, store))),
                      "--namespace", NAMESPACE, "--kube-version", KUBERNETES_VERSION)  # fmt: skip
    assert "0 chart(s) failed" in result.stdout, result.stdout


@pytest.mark.parametrize(("mode", "store"), ALL)
def test_every_object_validates_strictly(
    render: Callable[..., list[dict]], kubernetes_validate: Any, mode: str, store: str
) -> None:
    objects = render(values(mode, store))
    unknown = {o["kind"] for o in objects} - CORE_KINDS - {"InferenceService", "ServiceMonitor"}
    assert not unknown, f"no validation for {unknown}"
    failures = strict_failures(kubernetes_validate, objects, CORE_KINDS)
    assert not failures, "\n".join(failures)
    if mode != "deployment":  # what KServe makes of the transformer is a valid Service too
        isvc = one(objects, "InferenceService")
        kubernetes_validate.validate(
            kserve_component_service(isvc, "transformer"), KUBERNETES_VERSION, strict=True
        )


@pytest.mark.parametrize("kserve_version", sorted(KSERVE_CRDS))
@pytest.mark.parametrize("mode", ["standard", "knative"])
def test_inference_service_with_transformer_matches_every_crd(
    render: Callable[..., list[dict]], kserve_version: str, mode: str
) -> None:
    isvc = one(render(values(mode, "demo", {"kserve": {"version": kserve_version}})), "InferenceService")
    assert set(isvc["spec"]) == {"predictor", "transformer"}
    assert not isvc_errors(isvc_validator_for(kserve_version), isvc)
    broken = copy.deepcopy(isvc)
    broken["spec"]["transformer"]["containers"][0]["comand"] = [
        "python"
    ]  # a typo fails the strict CRD schema
    assert any("comand" in e for e in isvc_errors(isvc_validator_for(kserve_version), broken))


@pytest.mark.parametrize(("mode", "store"), ALL)
def test_pod_security(render: Callable[..., list[dict]], mode: str, store: str) -> None:
    """The transformer pods and both test pods under the chart's rules (non-root, read-only root, /tmp
    emptyDir, no capabilities, no token); the Redis pod is checked on its own below (its data claim is
    read-write by design)."""
    specs = [(n, p) for n, p in pod_specs(render(values(mode, store))) if not n.startswith("StatefulSet/")]
    names = sorted(n for n, _ in specs)
    expected = {"deployment": [f"Deployment/{RELEASE}", f"Deployment/{RELEASE}-transformer"],
                "standard": [f"InferenceService/{RELEASE}", f"InferenceService/{RELEASE}/transformer"],
                "knative": [f"InferenceService/{RELEASE}", f"InferenceService/{RELEASE}/transformer"]}[mode]  # fmt: skip
    assert names == sorted([*expected, f"Pod/{RELEASE}-test-infer", f"Pod/{RELEASE}-test-transformer"])
    problems = [p for name, pod in specs for p in check_pod_security(name, pod)]
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------ the transformer container


@pytest.mark.parametrize("mode", ["deployment", "standard", "knative"])
def test_transformer_command_args_and_env(render: Callable[..., list[dict]], mode: str) -> None:
    objects = render(values(mode, "secrets"))
    container = transformer_container(objects)
    assert container["name"] == ("transformer" if mode == "deployment" else "kserve-container")
    assert container["image"] == predictor_container(objects)["image"]  # one image, another command
    assert container["command"] == ["python", "-m", "serving.transformer"]
    args = container["args"]
    knative = mode == "knative"
    predictor = (f"{RELEASE}.{NAMESPACE}.svc.cluster.local:8080" if mode == "deployment"
                 else f"{RELEASE}-predictor.{NAMESPACE}.svc.cluster.local:80")  # fmt: skip
    expected = {
        "--model_name": "credit-risk", "--predictor_host": predictor, "--http_port": "8080",
        "--predictor-protocol": "v2", "--grpc-port": "0" if knative else "8081",
        "--ingest-port": "0" if knative else "8082", "--ingest-token-file": "/etc/credit-risk/ingest/token",
        "--store-timeout-seconds": "1", "--predictor-timeout-seconds": "5", "--grace-period-seconds": "30",
        "--header-timeout-seconds": "5", "--body-timeout-seconds": "10", "--keep-alive-seconds": "5",
        "--max-connections": "1000", "--max-request-bytes": "8388608", "--max-batch-rows": "1000",
    }  # fmt: skip
    assert {flag: arg(args, flag) for flag in expected} == expected
    assert len(args) == 2 * len(expected)  # nothing else, no TLS flags without ingest.tls
    # The store URL only through the env, from the Secret: never an argument.
    assert env_of(container)["CREDIT_RISK_TRANSFORMER_STORE"] == {
        "name": "CREDIT_RISK_TRANSFORMER_STORE",
        "valueFrom": {"secretKeyRef": {"name": "feature-store", "key": "redis-url"}}}  # fmt: skip
    assert not any("redis" in a for a in args)
    pod = transformer_pod(objects)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["ingest-token"]["secret"] == {"secretName": "ingest-token", "defaultMode": 0o440,
                                                 "items": [{"key": "bearer", "path": "token"}]}  # fmt: skip
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["ingest-token"] == {
        "name": "ingest-token",
        "mountPath": "/etc/credit-risk/ingest",
        "readOnly": True,
    }
    assert mounts["tmp"]["mountPath"] == "/tmp" and "emptyDir" in volumes["tmp"]
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("mode", ["standard", "knative"])
def test_kserve_injects_nothing_over_the_chart(render: Callable[..., list[dict]], mode: str) -> None:
    """KServe appends --model_name/--predictor_host/--http_port unless an arg starts with them: the chart
    writes all three in that spelling, so what runs is the chart's — model.name (not the InferenceService's
    name), the predictor with its port, the chart's HTTP port."""
    isvc = one(render(values(mode, "demo", {"model": {"name": "scorer"}, "transformer": {"httpPort": 9090}})),
               "InferenceService")  # fmt: skip
    container = isvc["spec"]["transformer"]["containers"][0]
    running = kserve_transformer_container(isvc)
    assert running["args"] == container["args"]
    assert arg(running["args"], "--model_name") == "scorer" and arg(running["args"], "--http_port") == "9090"
    assert env_of(running)["INFERENCE_SERVICE_NAME"]["value"] == RELEASE
    # The model check: with the flags spelled --model-name etc., KServe would append its own values.
    hyphens = copy.deepcopy(isvc)
    hyphens["spec"]["transformer"]["containers"][0]["args"] = [
        a.replace("_", "-") if a.startswith("--") else a for a in container["args"]]  # fmt: skip
    appended = kserve_transformer_container(hyphens)["args"][len(container["args"]) :]
    assert appended == ["--model_name", RELEASE, "--predictor_host", f"{RELEASE}-predictor.{NAMESPACE}",
                        "--http_port", "8080"]  # fmt: skip


@pytest.mark.parametrize("mode", ["deployment", "standard", "knative"])
def test_ports_and_probes(render: Callable[..., list[dict]], mode: str) -> None:
    objects = render(values(mode, "demo"))
    container = transformer_container(objects)
    http = "http" if mode == "deployment" else "http1"
    ports = [{"name": http, "containerPort": 8080, "protocol": "TCP"}]
    if mode != "knative":
        ports += [{"name": "grpc", "containerPort": 8081, "protocol": "TCP"},
                  {"name": "ingest", "containerPort": 8082, "protocol": "TCP"}]  # fmt: skip
    assert container["ports"] == ports
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    pod = transformer_pod(objects)
    if mode == "knative":  # Knative refuses startup probes and preStop hooks; no preStop sleep to count
        assert "startupProbe" not in container and "lifecycle" not in container
        assert pod["terminationGracePeriodSeconds"] == 30 + 5
    else:
        assert container["startupProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
        assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
        assert pod["terminationGracePeriodSeconds"] == 5 + 30 + 5
    if mode == "deployment":
        service = named(objects, "Service", f"{RELEASE}-transformer")
        assert service["spec"]["selector"] == {"app.kubernetes.io/name": "credit-risk",
                                               "app.kubernetes.io/instance": RELEASE,
                                               "app.kubernetes.io/component": "transformer"}  # fmt: skip
        assert service["spec"]["ports"] == [
            {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
            {"name": "grpc", "port": 8081, "targetPort": "grpc", "protocol": "TCP", "appProtocol": H2C},
            {"name": "ingest", "port": 8082, "targetPort": "ingest", "protocol": "TCP"},
        ]
    elif mode == "standard":
        ports = kserve_component_service(one(objects, "InferenceService"), "transformer")["spec"]["ports"]
        assert ports == [
            {"name": "http1", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "grpc", "port": 8081, "targetPort": 8081, "protocol": "TCP", "appProtocol": H2C},
            {"name": "ingest", "port": 8082, "targetPort": 8082, "protocol": "TCP"},
        ]


def test_transformer_values_become_flags(render: Callable[..., list[dict]]) -> None:
    objects = render(values("deployment", "demo", {"transformer": {
        "httpPort": 9000, "grpcPort": 0, "ingestPort": 0, "storeTimeoutSeconds": 0.25, "predictorTimeoutSeconds": 2,
        "gracePeriodSeconds": 12, "preStopSleepSeconds": 0, "terminationMarginSeconds": 3, "maxBatchRows": 50,
        "maxRequestBytes": 65536, "keepAliveSeconds": 75, "extraArgs": ["--max-batch-rows", "60"],
        "extraEnv": [{"name": "OMP_NUM_THREADS", "value": "1"}]}}))  # fmt: skip
    container = transformer_container(objects)
    args = container["args"]
    assert {f: arg(args, f) for f in ("--http_port", "--grpc-port", "--ingest-port", "--store-timeout-seconds",
                                      "--predictor-timeout-seconds", "--grace-period-seconds", "--max-batch-rows",
                                      "--max-request-bytes", "--keep-alive-seconds")} == {
        "--http_port": "9000", "--grpc-port": "0", "--ingest-port": "0", "--store-timeout-seconds": "0.25",
        "--predictor-timeout-seconds": "2", "--grace-period-seconds": "12", "--max-batch-rows": "50",
        "--max-request-bytes": "65536", "--keep-alive-seconds": "75"}  # fmt: skip
    assert args[-2:] == ["--max-batch-rows", "60"]  # extraArgs last: they win
    assert [e["name"] for e in container["env"]] == ["CREDIT_RISK_TRANSFORMER_STORE", "OMP_NUM_THREADS"]
    assert [p["name"] for p in container["ports"]] == ["http"]
    assert (
        transformer_pod(objects)["terminationGracePeriodSeconds"] == 12 + 3 and "lifecycle" not in container
    )
    service = named(objects, "Service", f"{RELEASE}-transformer")
    assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
    # The predictor is untouched by the transformer's values.
    assert arg(predictor_container(objects)["args"], "--http-port") == "8080"


@pytest.mark.parametrize("mode", ["deployment", "standard"])
def test_grpc_v2_to_the_predictor(render: Callable[..., list[dict]], mode: str) -> None:
    objects = render(values(mode, "demo", {"transformer": {"predictorProtocol": "grpc-v2"},
                                           "server": {"grpcPort": 9001}, "service": {"grpcPort": 50051}}))  # fmt: skip
    args = transformer_container(objects)["args"]
    assert arg(args, "--predictor-protocol") == "grpc-v2"
    # deployment: the chart's Service on its gRPC port; kserve: <name>-predictor keeps the container's number
    host = (f"{RELEASE}.{NAMESPACE}.svc.cluster.local:50051" if mode == "deployment"
            else f"{RELEASE}-predictor.{NAMESPACE}.svc.cluster.local:9001")  # fmt: skip
    assert arg(args, "--predictor_host") == host


# ------------------------------------------------------------------------------------------ store and ingestion


def test_store_sources(render: Callable[..., list[dict]]) -> None:
    base = deep_merge(MODES["deployment"], {"transformer": {"enabled": True}})
    url = transformer_container(
        render(deep_merge(base, {"transformer": {"store": {"url": "rediss://redis.cache:6380/2"}}}))
    )
    assert env_of(url)["CREDIT_RISK_TRANSFORMER_STORE"]["value"] == "rediss://redis.cache:6380/2"
    demo = render(deep_merge(base, {"redis": {"deploy": True}}))
    assert env_of(transformer_container(demo))["CREDIT_RISK_TRANSFORMER_STORE"]["value"] == (
        f"redis://{RELEASE}-redis.{NAMESPACE}.svc.cluster.local:6379/0")  # fmt: skip
    assert named(demo, "Service", f"{RELEASE}-redis")["spec"]["ports"][0]["port"] == 6379
    embedded = render(deep_merge(base, {"transformer": {"store": {"url": "sqlite:////tmp/features.db"},
                                                        "replicas": 1, "autoscaling": {"enabled": False}}}))  # fmt: skip
    assert (
        env_of(transformer_container(embedded))["CREDIT_RISK_TRANSFORMER_STORE"]["value"]
        == "sqlite:////tmp/features.db"
    )
    assert named(embedded, "Deployment", f"{RELEASE}-transformer")["spec"]["replicas"] == 1
    # No ingest token: no Secret, no file, no flag (ingestion answers 403).
    assert "--ingest-token-file" not in transformer_container(demo)["args"]
    assert not by_kind(demo, "Secret")
    assert "ingest-token" not in {v["name"] for v in transformer_pod(demo)["volumes"]}


def test_ingest_token_from_values_becomes_a_mounted_secret(render: Callable[..., list[dict]]) -> None:
    objects = render(values("standard", "demo"))
    secret = one(objects, "Secret")
    assert secret["metadata"]["name"] == f"{RELEASE}-transformer-ingest"
    assert secret["stringData"] == {"token": "t0ken-given-in-values"} and secret["type"] == "Opaque"
    pod = transformer_pod(objects)
    volume = {v["name"]: v for v in pod["volumes"]}["ingest-token"]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume["secret"]["items"] == [{"key": "token", "path": "token"}]
    container = pod["containers"][0]
    assert arg(container["args"], "--ingest-token-file") == "/etc/credit-risk/ingest/token"
    assert "t0ken-given-in-values" not in json.dumps(container)  # a file, never an arg or env value


def test_ingest_mtls(render: Callable[..., list[dict]]) -> None:
    tls = {
        "transformer": {
            "ingest": {"tls": {"enabled": True, "secretName": "ingest-mtls", "caKey": "clients.crt"}}
        }
    }
    objects = render(values("deployment", "secrets", tls))
    pod = transformer_pod(objects)
    args = pod["containers"][0]["args"]
    assert {f: arg(args, f) for f in ("--ingest-ssl-certfile", "--ingest-ssl-keyfile", "--ingest-ssl-ca-certs")} == {
        "--ingest-ssl-certfile": "/etc/credit-risk/ingest-tls/tls.crt",
        "--ingest-ssl-keyfile": "/etc/credit-risk/ingest-tls/tls.key",
        "--ingest-ssl-ca-certs": "/etc/credit-risk/ingest-tls/ca.crt"}  # fmt: skip
    volume = {v["name"]: v for v in pod["volumes"]}["ingest-tls"]["secret"]
    assert volume["secretName"] == "ingest-mtls" and volume["items"] == [
        {"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"},
        {"key": "clients.crt", "path": "ca.crt"}]  # fmt: skip
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["ingest-tls"] == {
        "name": "ingest-tls",
        "mountPath": "/etc/credit-risk/ingest-tls",
        "readOnly": True,
    }
    # the probes stay on the plain HTTP port
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["port"] == 8080


# ------------------------------------------------------------------------------------------ the demo Redis


def test_redis_statefulset_is_hardened_and_persistent(
    render: Callable[..., list[dict]], kubernetes_validate: Any
) -> None:
    objects = render(
        values("deployment", "demo", {"redis": {"persistence": {"size": "2Gi", "storageClassName": "fast"}}})
    )
    statefulset = one(objects, "StatefulSet")
    headless = named(objects, "Service", f"{RELEASE}-redis-headless")
    assert (
        statefulset["spec"]["serviceName"] == headless["metadata"]["name"]
        and headless["spec"]["clusterIP"] == "None"
    )
    assert statefulset["spec"]["replicas"] == 1
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "redis:7.2-alpine"
    command = container["command"]
    assert (
        command[0] == "redis-server"
        and arg(command, "--appendonly") == "yes"
        and arg(command, "--dir") == "/data"
    )
    assert arg(command, "--port") == "6379" and arg(command, "--save") == ""
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"] == ["sh", "-c", "redis-cli -p 6379 ping | grep -qx PONG"]
    context = {**pod["securityContext"], **container["securityContext"]}
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001 and context["fsGroup"] == 10001
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]} and context["seccompProfile"] == {
        "type": "RuntimeDefault"
    }
    assert pod["automountServiceAccountToken"] is False and not pod.get("hostNetwork")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/data": "data", "/tmp": "tmp"}
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                             "resources": {"requests": {"storage": "2Gi"}}}  # fmt: skip
    for obj in (statefulset, headless, named(objects, "Service", f"{RELEASE}-redis")):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    pinned = one(render(values("deployment", "demo", {"redis": {"image": {
        "repository": "registry.example/redis", "digest": "sha256:" + "a" * 64}}})), "StatefulSet")  # fmt: skip
    assert (
        pinned["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.example/redis@sha256:" + "a" * 64
    )


def test_no_redis_unless_asked(render: Callable[..., list[dict]]) -> None:
    objects = render(values("standard", "secrets"))
    assert not by_kind(objects, "StatefulSet")
    assert not [o for o in objects if "redis" in o["metadata"]["name"]]


# ------------------------------------------------------------------------------------------ NetworkPolicies


class Peer:
    """A pod as NetworkPolicy sees it: its labels and its namespace's labels."""

    def __init__(self, labels: dict[str, str], namespace: str = NAMESPACE) -> None:
        self.labels = labels
        self.namespace = namespace
        self.namespace_labels = {
            "kubernetes.io/metadata.name": namespace,
            **({"team": "payments"} if namespace == "payments" else {}),
        }


def selects(selector: dict, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"the evaluator knows matchLabels only: {selector}"
    return selector.get("matchLabels", {}).items() <= labels.items()


def peer_matches(peer: dict, pod: Peer) -> bool:
    if "ipBlock" in peer:
        return False  # no pod IP in these cases is in an ipBlock
    pods = selects(peer["podSelector"], pod.labels) if "podSelector" in peer else True
    namespaces = (
        selects(peer["namespaceSelector"], pod.namespace_labels)
        if "namespaceSelector" in peer
        else pod.namespace == NAMESPACE
    )
    return pods and namespaces


def allowed(policies: list[dict], source: Peer, destination: Peer, port: int) -> bool:
    """Kubernetes' NetworkPolicy semantics for one TCP connection: the destination's ingress and the
    source's egress must both allow it (a pod no policy of that direction selects allows everything)."""

    def direction(pod: Peer, kind: str, field: str, other: Peer) -> bool:
        applying = [p["spec"] for p in policies if pod.namespace == NAMESPACE and selects(p["spec"]["podSelector"], pod.labels)
                    and kind in p["spec"]["policyTypes"]]  # fmt: skip
        if not applying:
            return True
        return any(
            (not rule.get("ports") or any(p["port"] == port and p["protocol"] == "TCP" for p in rule["ports"]))
            and (field not in rule or any(peer_matches(peer, other) for peer in rule[field]))
            for spec in applying for rule in spec.get(kind.lower(), [])
        )  # fmt: skip

    return direction(destination, "Ingress", "from", source) and direction(
        source, "Egress", "to", destination
    )


def pods_of(objects: list[dict]) -> dict[str, Peer]:
    def labels(kind: str, name: str) -> dict[str, str]:
        if kind == "InferenceService":
            return one(objects, kind)["spec"][name]["labels"]
        if kind == "Pod":
            return named(objects, kind, name)["metadata"]["labels"]
        return named(objects, kind, name)["spec"]["template"]["metadata"]["labels"]

    kserve = bool(by_kind(objects, "InferenceService"))
    pods = {
        "predictor": Peer(labels("InferenceService", "predictor") if kserve else labels("Deployment", RELEASE)),
        "transformer": Peer(labels("InferenceService", "transformer") if kserve else labels("Deployment", f"{RELEASE}-transformer")),
        "test": Peer(labels("Pod", f"{RELEASE}-test-transformer")),
        "outsider": Peer({"app": "curious"}),
        "producer": Peer({"app": "settlement-feed"}, "payments"),
        "payments-other": Peer({"app": "reporting"}, "payments"),
        "prometheus": Peer({"app.kubernetes.io/name": "prometheus"}, "monitoring"),
    }  # fmt: skip
    if by_kind(objects, "StatefulSet"):
        pods["redis"] = Peer(labels("StatefulSet", f"{RELEASE}-redis"))
    return pods


@pytest.mark.parametrize("mode", ["deployment", "standard"])
def test_network_policies_who_reaches_what(render: Callable[..., list[dict]], mode: str) -> None:
    objects = render(values(mode, "demo"))
    policies = by_kind(objects, "NetworkPolicy")
    assert sorted(p["metadata"]["name"] for p in policies) == sorted(
        [RELEASE, f"{RELEASE}-transformer", f"{RELEASE}-redis"])  # fmt: skip
    pods = pods_of(objects)
    predictor, transformer, redis = {8080, 8081}, {8080, 8081, 8082}, {6379}
    want = {  # (source, destination): the ports it may open; every other port of the destination is closed
        ("transformer", "predictor"): {8080, 8081}, ("transformer", "redis"): {6379},
        ("outsider", "transformer"): {8080, 8081}, ("outsider", "predictor"): set(), ("outsider", "redis"): set(),
        ("producer", "transformer"): {8082}, ("producer", "predictor"): set(), ("producer", "redis"): set(),
        ("payments-other", "transformer"): set(),
        ("prometheus", "predictor"): {8080}, ("prometheus", "transformer"): {8080}, ("prometheus", "redis"): set(),
        ("test", "transformer"): {8080, 8081}, ("test", "predictor"): {8080, 8081}, ("test", "redis"): set(),
        ("predictor", "redis"): set(), ("predictor", "transformer"): set(),
        ("redis", "transformer"): set(), ("redis", "predictor"): set(),
    }  # fmt: skip
    ports = {"predictor": predictor, "transformer": transformer, "redis": redis}
    got = {
        (source, destination): {
            p for p in ports[destination] if allowed(policies, pods[source], pods[destination], p)
        }
        for source, destination in want
    }
    assert got == want
    # Redis talks to nobody; the transformer's egress is DNS, the predictor, Redis and nothing else.
    redis_policy = named(objects, "NetworkPolicy", f"{RELEASE}-redis")["spec"]
    assert redis_policy["egress"] == [] and redis_policy["policyTypes"] == ["Ingress", "Egress"]
    egress = named(objects, "NetworkPolicy", f"{RELEASE}-transformer")["spec"]["egress"]
    assert [sorted(p["port"] for p in rule["ports"]) for rule in egress] == [[53, 53], [8080, 8081], [6379]]


def test_network_policy_in_knative_mode_admits_producers_on_the_http_port(
    render: Callable[..., list[dict]],
) -> None:
    """One container port in Knative mode: ingestion shares the HTTP port, so the producers are admitted
    there (the bearer token still guards the route) and no ingest port exists."""
    objects = render(values("knative", "demo"))
    pods = pods_of(objects)
    policies = by_kind(objects, "NetworkPolicy")
    assert allowed(policies, pods["producer"], pods["transformer"], 8080)
    assert not allowed(policies, pods["payments-other"], pods["transformer"], 8080)
    assert not any(p["port"] in (8081, 8082) for rule in named(objects, "NetworkPolicy", f"{RELEASE}-transformer")["spec"]["ingress"]
                   for p in rule["ports"])  # fmt: skip


def test_network_policy_callers_and_external_store(render: Callable[..., list[dict]]) -> None:
    """networkPolicy.ingressFrom names the transformer's callers (the predictor's only caller is the
    transformer); an external store is reached through transformer.networkPolicy.egressRules."""
    callers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "payments"}}}]
    objects = render(values("deployment", "secrets", {"networkPolicy": {"ingressFrom": callers}}))
    pods, policies = pods_of(objects), by_kind(objects, "NetworkPolicy")
    assert allowed(policies, pods["payments-other"], pods["transformer"], 8080)
    assert not allowed(policies, pods["payments-other"], pods["predictor"], 8080)
    assert not allowed(policies, pods["outsider"], pods["transformer"], 8080)
    egress = named(objects, "NetworkPolicy", f"{RELEASE}-transformer")["spec"]["egress"]
    assert egress[-1] == SECRETS["transformer"]["networkPolicy"]["egressRules"][0]


def test_without_the_transformer_the_predictor_policy_is_unchanged(render: Callable[..., list[dict]]) -> None:
    objects = render(deep_merge(MODES["deployment"], {"networkPolicy": {"enabled": True}}))
    (policy,) = by_kind(objects, "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["from"][0] == {"podSelector": {}}


# ------------------------------------------------------------------------------------------ scaling, disruption, scraping


def test_deployment_mode_scaling_and_disruption(render: Callable[..., list[dict]]) -> None:
    objects = render(values("deployment", "demo"))
    deployment = named(objects, "Deployment", f"{RELEASE}-transformer")
    assert "replicas" not in deployment["spec"]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "100%", "maxUnavailable": 0}
    hpa = named(objects, "HorizontalPodAutoscaler", f"{RELEASE}-transformer")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    pdb = named(objects, "PodDisruptionBudget", f"{RELEASE}-transformer")
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
    }
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    fixed = render(values("deployment", "demo", {"transformer": {"replicas": 3, "autoscaling": {"enabled": False},
                                                                 "podDisruptionBudget": {"enabled": False}}}))  # fmt: skip
    assert named(fixed, "Deployment", f"{RELEASE}-transformer")["spec"]["replicas"] == 3
    assert [h["metadata"]["name"] for h in by_kind(fixed, "HorizontalPodAutoscaler")] == [RELEASE]
    assert [p["metadata"]["name"] for p in by_kind(fixed, "PodDisruptionBudget")] == [RELEASE]


def test_kserve_transformer_scales_on_its_own(render: Callable[..., list[dict]]) -> None:
    isvc = one(render(values("standard", "demo", {"autoscaling": {"enabled": False}})), "InferenceService")
    transformer = isvc["spec"]["transformer"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "none"  # the predictor's
    assert transformer["annotations"]["serving.kserve.io/autoscalerClass"] == "hpa"  # the transformer's own
    assert (transformer["minReplicas"], transformer["maxReplicas"]) == (2, 6)
    assert (transformer["scaleMetric"], transformer["scaleTarget"]) == ("cpu", 70)
    assert transformer["labels"]["app.kubernetes.io/component"] == "transformer"
    assert transformer["deploymentStrategy"]["rollingUpdate"] == {"maxSurge": "100%", "maxUnavailable": 0}
    knative = one(render(values("knative", "demo")), "InferenceService")["spec"]["transformer"]
    assert "scaleMetric" not in knative and "deploymentStrategy" not in knative
    assert "serving.kserve.io/autoscalerClass" not in knative.get("annotations", {})


@pytest.mark.parametrize("mode", ["deployment", "standard"])
def test_service_monitor_selects_the_transformer_service(
    render: Callable[..., list[dict]], mode: str
) -> None:
    objects = render(values(mode, "demo"))
    monitor = named(objects, "ServiceMonitor", f"{RELEASE}-transformer")
    labels = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and monitor["spec"]["namespaceSelector"] == {
        "matchNames": [NAMESPACE]
    }
    if mode == "deployment":
        service = named(objects, "Service", f"{RELEASE}-transformer")
        assert labels.items() <= service["metadata"]["labels"].items()
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        predictor_service = named(objects, "Service", RELEASE)
        assert not labels.items() <= predictor_service["metadata"]["labels"].items()  # only the transformer's
    else:
        service = kserve_component_service(one(objects, "InferenceService"), "transformer")
        assert labels == service["metadata"]["labels"]
        assert endpoint["port"] == service["spec"]["ports"][0]["name"] == "http1"


def test_scrape_annotations_without_service_monitor(render: Callable[..., list[dict]]) -> None:
    plain = {"monitoring": {"serviceMonitor": {"enabled": False}}, "transformer": {"httpPort": 9090}}
    deployment = named(render(values("deployment", "demo", plain)), "Deployment", f"{RELEASE}-transformer")
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}  # fmt: skip
    isvc = one(render(values("standard", "demo", plain)), "InferenceService")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/enable-prometheus-scraping"] == "true"
    assert isvc["metadata"]["annotations"]["prometheus.kserve.io/port"] == "8080"  # the predictor's
    assert isvc["spec"]["transformer"]["annotations"]["prometheus.kserve.io/port"] == "9090"  # its own


# ------------------------------------------------------------------------------------------ refused values

BAD_SCHEMA = [
    pytest.param({"transformer": {"enabled": "yes"}}, "transformer.enabled: Invalid type", id="enabled-string"),
    pytest.param({"transformer": {"replica": 2}}, "Additional property replica is not allowed", id="typo"),
    pytest.param({"transformer": {"predictorProtocol": "grpc"}}, "transformer.predictorProtocol", id="protocol"),
    pytest.param({"transformer": {"grpcPort": 80}}, "transformer.grpcPort", id="privileged-port"),
    pytest.param({"transformer": {"ingestPort": "8082"}}, "transformer.ingestPort: Invalid type", id="port-string"),
    pytest.param({"transformer": {"storeTimeoutSeconds": 0}}, "transformer.storeTimeoutSeconds", id="zero-timeout"),
    pytest.param({"transformer": {"store": {"url": "http://redis:6379"}}}, "transformer.store.url", id="store-scheme"),
    pytest.param({"transformer": {"ingest": {"token": "short"}}}, "transformer.ingest.token", id="short-token"),
    pytest.param({"transformer": {"ingest": {"producers": [{}]}}}, "transformer.ingest.producers.0", id="empty-peer"),
    pytest.param({"transformer": {"ingest": {"producers": [{"podSelectr": {}}]}}}, "Additional property podSelectr",
                 id="peer-typo"),
    pytest.param({"transformer": {"ingest": {"tls": {"enable": True}}}}, "Additional property enable", id="tls-typo"),
    pytest.param({"redis": {"image": {"pullPolicy": "Sometimes"}}}, "redis.image.pullPolicy", id="pull-policy"),
    pytest.param({"redis": {"persistence": {"size": "lots"}}}, "redis.persistence.size", id="size"),
    pytest.param({"redis": {"deploy": 1}}, "redis.deploy: Invalid type", id="deploy-int"),
]  # fmt: skip


@pytest.mark.parametrize(("bad", "message"), BAD_SCHEMA)
def test_bad_values_fail_the_schema(
    helm: str, write_values: Callable[[dict], Path], bad: dict, message: str
) -> None:
    path = write_values(deep_merge(values("deployment", "demo"), bad))
    result = run_helm(helm, "template", RELEASE, str(CHART), "-f", str(path), check=False)
    assert result.returncode != 0 and "don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


FAILING = [
    pytest.param({"transformer": {"enabled": True}}, "needs a feature store", id="no-store"),
    pytest.param({"transformer": {"enabled": True, "store": {"url": "redis://r:6379/0"}}, "redis": {"deploy": True}},
                 "transformer.store.url, redis.deploy are all set", id="two-stores"),
    pytest.param({"transformer": {"enabled": True, "store": {"url": "redis://:hunter2@r:6379/0"}}},
                 "carries a password", id="password-in-values"),
    pytest.param({"transformer": {"enabled": True, "store": {"url": "sqlite:////tmp/f.db"}}}, "an embedded store",
                 id="sqlite-many-pods"),
    pytest.param({"transformer": {"enabled": True, "predictorProtocol": "grpc-v2"}, "redis": {"deploy": True},
                  "server": {"grpcPort": 0}}, "server.grpcPort is 0", id="grpc-v2-without-grpc"),
    pytest.param({"transformer": {"enabled": True, "predictorProtocol": "grpc-v2"}, "redis": {"deploy": True},
                  "mode": "kserve", "kserve": {"deploymentMode": "Knative"}}, "Knative mode serves HTTP only",
                 id="grpc-v2-knative"),
    pytest.param({"transformer": {"enabled": True, "ingest": {"token": "x" * 20, "existingSecret": "s"}},
                  "redis": {"deploy": True}}, "keep one", id="two-tokens"),
    pytest.param({"transformer": {"enabled": True, "ingest": {"tls": {"enabled": True}}}, "redis": {"deploy": True}},
                 "set transformer.ingest.tls.secretName", id="tls-without-secret"),
    pytest.param({"transformer": {"enabled": True, "ingestPort": 0, "ingest": {"tls": {"enabled": True, "secretName": "t"}}},
                  "redis": {"deploy": True}}, "transformer.ingestPort is 0", id="tls-without-ingest-port"),
    pytest.param({"transformer": {"enabled": True, "ingest": {"tls": {"enabled": True, "secretName": "t"}}},
                  "redis": {"deploy": True}, "mode": "kserve", "kserve": {"deploymentMode": "Knative"}},
                 "Knative mode has one container port", id="tls-knative"),
    pytest.param({"transformer": {"enabled": True, "grpcPort": 8080}, "redis": {"deploy": True}},
                 "are both 8080", id="same-container-port"),
    pytest.param({"transformer": {"enabled": True, "service": {"ingestPort": 8080}}, "redis": {"deploy": True}},
                 "transformer's Service its own number", id="same-service-port"),
    pytest.param({"transformer": {"enabled": True, "store": {"url": "redis://r:6379/0"}}, "networkPolicy": {"enabled": True}},
                 "add transformer.networkPolicy.egressRules", id="external-store-behind-restricted-egress"),
    pytest.param({"transformer": {"enabled": True, "autoscaling": {"minReplicas": 4, "maxReplicas": 2}},
                  "redis": {"deploy": True}}, "is above", id="min-above-max"),
    pytest.param({"transformer": {"enabled": True, "podDisruptionBudget": {"minAvailable": 1}}, "redis": {"deploy": True}},
                 "exactly one of maxUnavailable and minAvailable", id="pdb-both-bounds"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "message"), FAILING)
def test_impossible_combinations_fail_with_the_fix(
    helm: str, write_values: Callable[[dict], Path], extra: dict, message: str
) -> None:
    path = write_values(deep_merge(MODES["deployment"], extra))
    result = run_helm(helm, "template", RELEASE, str(CHART), "-f", str(path), check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_decimal_seconds_from_set_are_accepted(helm: str, write_values: Callable[[dict], Path]) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), "-f", str(write_values(values("deployment", "demo"))),
                      "--set", "transformer.storeTimeoutSeconds=0.5")  # fmt: skip
    objects = [d for d in yaml_module().safe_load_all(result.stdout) if d]
    assert arg(transformer_container(objects)["args"], "--store-timeout-seconds") == "0.5"


# ------------------------------------------------------------------------------------------ kind values, NOTES


@pytest.mark.parametrize("mode", ["deployment", "kserve"])
def test_kind_transformer_values_render(render: Callable[..., list[dict]], mode: str) -> None:
    """k8s/e2e.sh's release: values-kind.yaml + values-transformer.yaml, in both modes."""
    yaml = yaml_module()
    merged = deep_merge(yaml.safe_load((K8S / "values-kind.yaml").read_text()),
                        yaml.safe_load((K8S / "values-transformer.yaml").read_text()))  # fmt: skip
    objects = render({**merged, "mode": mode})
    container = transformer_container(objects)
    assert container["image"] == "credit-risk-predictor:e2e" and container["imagePullPolicy"] == "Never"
    assert (
        one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["image"]
        == "redis:7.2-alpine"
    )
    volume = {v["name"]: v for v in transformer_pod(objects)["volumes"]}["ingest-token"]
    assert volume["secret"]["secretName"] == "credit-risk-ingest"  # made by k8s/e2e.sh
    assert arg(container["args"], "--ingest-port") == "8082"  # e2e.sh forwards it and probes it
    e2e = (K8S / "e2e.sh").read_text()
    assert "create secret generic credit-risk-ingest --from-file=token=" in e2e
    assert '-f "$HERE/values-kind.yaml" -f "$HERE/values-transformer.yaml"' in e2e
    producer = merged["transformer"]["ingest"]["producers"][0]["podSelector"]["matchLabels"]
    assert "probe np-producer " + ",".join(f"{k}={v}" for k, v in producer.items()) in e2e


@pytest.mark.parametrize("mode", ["deployment", "standard", "knative"])
def test_notes_give_the_first_score(
    helm: str, write_values: Callable[[dict], Path], tmp_path: Path, mode: str
) -> None:
    notes = render_notes(helm, write_values(values(mode, "demo")), tmp_path)
    # Local ports 9080/9082: the predictor's own port-forward in the NOTES takes 8080/8081.
    forward = {"deployment": f"service/{RELEASE}-transformer 9080:8080 9082:8082",
               "standard": f"service/{RELEASE}-transformer 9080:80 9082:8082",
               "knative": f"service/{RELEASE}-transformer 9080:80 &"}[mode]  # fmt: skip
    assert f"kubectl -n {NAMESPACE} port-forward {forward}" in notes
    assert "curl -s http://127.0.0.1:9080/score" in notes
    body = json.loads(notes.split("/score -H 'Content-Type: application/json' -d '", 1)[1].split("'", 1)[0])
    assert body["CustomerId"] and body["TransactionStartTime"].endswith("Z")
    assert "/v1/transactions" in notes and "Authorization: Bearer" in notes
    ingest = (
        "http://127.0.0.1:9080/v1/transactions"
        if mode == "knative"
        else "http://127.0.0.1:9082/v1/transactions"
    )
    assert ingest in notes
    assert "demo Redis" in notes and "WARNING" not in notes


# ------------------------------------------------------------------------------------------ the helm test pod, run

GOOD = {"transaction_id": "TransactionId_helm-test", "probability": 0.2, "risk_level": "low", "decision": "approve",
        "model_version": "1", "features": {f"f{i}": 0.0 for i in range(24)} | {"Amount": 1000.0, "CountryCode": 256}}  # fmt: skip


class _Transformer(BaseHTTPRequestHandler):
    answer: object = GOOD
    status = 200

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ok = self.path == "/score" and body.get("TransactionId") == "TransactionId_helm-test"
        data = json.dumps(type(self).answer if ok else {"error": "bad request"}).encode()
        self.send_response(type(self).status if ok else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_transformer() -> Iterator[type[_Transformer]]:
    handler = type("Handler", (_Transformer,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield handler
    server.shutdown()
    server.server_close()


def run_transformer_test_pod(render: Callable[..., list[dict]], url: str) -> subprocess.CompletedProcess:
    pod = named(render(values("standard", "demo")), "Pod", f"{RELEASE}-test-transformer")
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["python", "-c"] and component(pod) == "test"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["TRANSFORMER_URL"] == f"http://{RELEASE}-transformer.{NAMESPACE}.svc.cluster.local"
    env.update(TRANSFORMER_URL=url, TIMEOUT_SECONDS="3")
    return subprocess.run([sys.executable, "-c", container["args"][0]], capture_output=True, text=True,
                          timeout=60, env={**env, "PATH": "/usr/bin:/bin"})  # fmt: skip


def test_helm_test_pod_scores_through_the_transformer(
    render: Callable[..., list[dict]], fake_transformer: type[_Transformer]
) -> None:
    result = run_transformer_test_pod(render, fake_transformer.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(
        f"OK: {fake_transformer.url}/score -> TransactionId_helm-test: probability 0.200000"
    )
    fake_transformer.answer = [GOOD]  # a list of one is accepted too
    assert run_transformer_test_pod(render, fake_transformer.url).returncode == 0


@pytest.mark.parametrize(
    ("answer", "status", "message"),
    [
        ({k: v for k, v in GOOD.items() if k != "features"}, 200, "fields"),
        ({**GOOD, "probability": 1.5}, 200, "probability 1.5"),
        ({**GOOD, "decision": "maybe"}, 200, "decision 'maybe'"),
        ({**GOOD, "features": {"Amount": 1000.0}}, 200, "expected 26 named values"),
        ({**GOOD, "features": GOOD["features"] | {"Amount": 5.0}}, 200, "pass-through features Amount 5.0"),
        ({"error": "feature store unavailable"}, 503, "HTTP Error 503"),
    ],
    ids=["no-features", "probability", "decision", "few-features", "wrong-amount", "store-down"],
)
def test_helm_test_pod_fails_clearly(
    render: Callable[..., list[dict]],
    fake_transformer: type[_Transformer],
    answer: dict,
    status: int,
    message: str,
) -> None:
    fake_transformer.answer, fake_transformer.status = answer, status
    result = run_transformer_test_pod(render, fake_transformer.url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("FAIL: ") and f"{fake_transformer.url}/score" in result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
