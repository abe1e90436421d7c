"""V2 gRPC in the chart: which ports each mode declares and exposes (h2c), the predictor's connection flags,
the NetworkPolicy, the values that are refused, and the `helm test` pod's gRPC check run for real.

What KServe and Knative do with the declared ports (read in their sources, KServe v0.15.2 to v0.20.0):

* KServe Standard (RawDeployment) mode makes the Service ``<name>-predictor`` from the predictor container's
  ports (``createDefaultSvc`` in pkg/controller/v1beta1/inferenceservice/reconcilers/service/
  service_reconciler.go, the same port rule in every supported release; 0.20 adds a ``customizeService`` hook,
  a no-op in upstream builds): the first port becomes Service port 80,
  every later port keeps its own number, and a port whose name contains ``grpc`` or ``h2c`` gets
  ``appProtocol: kubernetes.io/h2c`` (``isGrpcPort``/``getAppProtocol``). ``kserve_component_service`` below
  is that algorithm, so the tests check what KServe will make of the rendered object.
* Knative (KServe Knative/Serverless mode) refuses a revision declaring more than one container port
  ("more than one container port is set", knative.dev/serving pkg/apis/serving/k8s_validation.go
  ``validateContainersPorts``) and names the one port ``h2c``, ``http1`` or nothing. So the chart declares
  HTTP alone there and turns gRPC off.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.net import free_port
from tests.deploy.conftest import (
    CHART,
    KSERVE_CRDS,
    KUBERNETES_VERSION,
    NAMESPACE,
    RELEASE,
    arg,
    by_kind,
    combo_values,
    deep_merge,
    one,
    predictor_container,
    require_module,
    run_helm,
    yaml_module,
)
from tests.deploy.test_chart import render_notes
from tests.deploy.test_manifests import isvc_errors, isvc_validator_for

PVC = {"model": {"volume": {"type": "pvc", "pvc": {"claimName": "credit-risk-models"}}}}
DEPLOYMENT = deep_merge(PVC, {"mode": "deployment"})
STANDARD = deep_merge(PVC, {"mode": "kserve", "kserve": {"deploymentMode": "Standard"}})
KNATIVE = deep_merge(PVC, {"mode": "kserve", "kserve": {"deploymentMode": "Knative"}})
H2C = "kubernetes.io/h2c"


@pytest.fixture(scope="module")
def kubernetes_validate() -> Any:
    return require_module("kubernetes_validate")


def validate_core(kubernetes_validate: Any, obj: dict) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def kserve_component_service(isvc: dict, part: str = "predictor") -> dict:
    """The Service KServe's controller makes for a component in Standard mode (see the module docstring:
    ``createDefaultSvc``/``getAppProtocol``): the first container port as 80, the others as themselves."""
    (container,) = isvc["spec"][part]["containers"]

    def service_port(port: dict, number: int) -> dict:
        out = {"name": port["name"], "port": number, "targetPort": port["containerPort"],
               "protocol": port.get("protocol") or "TCP"}  # fmt: skip
        if "grpc" in port["name"] or "h2c" in port["name"]:
            out["appProtocol"] = H2C
        return out

    first, *rest = container["ports"]
    ports = [service_port(first, 80)] + [service_port(p, p["containerPort"]) for p in rest]
    name = f"{isvc['metadata']['name']}-{part}"
    labels = {"serving.kserve.io/inferenceservice": isvc["metadata"]["name"], "component": part}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"selector": {"app": f"isvc.{name}"}, "ports": ports}}  # fmt: skip


def policy_rules(objects: list[dict]) -> list[tuple[list[dict], set[int]]]:
    policy = one(objects, "NetworkPolicy")
    return [(rule["from"], {p["port"] for p in rule["ports"]}) for rule in policy["spec"]["ingress"]]


def helm_test_pod(objects: list[dict]) -> dict:
    (pod,) = by_kind(objects, "Pod")
    return pod


# ------------------------------------------------------------------------------------------ ports per mode


def test_deployment_mode_exposes_grpc_as_h2c(
    render: Callable[..., list[dict]], kubernetes_validate: Any
) -> None:
    objects = render(DEPLOYMENT)
    container = predictor_container(objects)
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 8081, "protocol": "TCP"},
    ]
    assert arg(container["args"], "--grpc-port") == "8081"
    service = one(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
        {"name": "grpc", "port": 8081, "targetPort": "grpc", "protocol": "TCP", "appProtocol": H2C},
    ]
    for obj in objects:
        if obj["kind"] in ("Deployment", "Service"):
            validate_core(kubernetes_validate, obj)

    # The Service's port number is its own; the container port follows server.grpcPort.
    moved = render(deep_merge(DEPLOYMENT, {"server": {"grpcPort": 9001}, "service": {"grpcPort": 50051}}))
    assert predictor_container(moved)["ports"][1] == {
        "name": "grpc",
        "containerPort": 9001,
        "protocol": "TCP",
    }
    assert one(moved, "Service")["spec"]["ports"][1] == {
        "name": "grpc", "port": 50051, "targetPort": "grpc", "protocol": "TCP", "appProtocol": H2C}  # fmt: skip


@pytest.mark.parametrize("kserve_version", sorted(KSERVE_CRDS))
@pytest.mark.parametrize("mode", ["Standard", "RawDeployment"])
def test_kserve_standard_mode_declares_grpc_after_http(
    render: Callable[..., list[dict]], kubernetes_validate: Any, kserve_version: str, mode: str
) -> None:
    """HTTP first (KServe's port 80), gRPC second (kept as 8081, h2c): valid for every release's CRD, and
    the Service KServe makes from it is a valid Service with both."""
    isvc = one(
        render(deep_merge(STANDARD, {"kserve": {"version": kserve_version, "deploymentMode": mode}})),
        "InferenceService",
    )
    assert not isvc_errors(isvc_validator_for(kserve_version), isvc)
    (container,) = isvc["spec"]["predictor"]["containers"]
    assert container["ports"] == [
        {"name": "http1", "containerPort": 8080, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 8081, "protocol": "TCP"},
    ]
    assert arg(container["args"], "--grpc-port") == "8081"
    service = kserve_component_service(isvc)
    assert service["spec"]["ports"] == [
        {"name": "http1", "port": 80, "targetPort": 8080, "protocol": "TCP"},
        {"name": "grpc", "port": 8081, "targetPort": 8081, "protocol": "TCP", "appProtocol": H2C},
    ]
    validate_core(kubernetes_validate, service)


@pytest.mark.parametrize("kserve_version", sorted(KSERVE_CRDS))
@pytest.mark.parametrize("mode", ["Knative", "Serverless"])
def test_knative_mode_declares_http_only_and_turns_grpc_off(
    render: Callable[..., list[dict]], kserve_version: str, mode: str
) -> None:
    objects = render(deep_merge(KNATIVE, {"kserve": {"version": kserve_version, "deploymentMode": mode}}))
    isvc = one(objects, "InferenceService")
    assert not isvc_errors(isvc_validator_for(kserve_version), isvc)
    (container,) = isvc["spec"]["predictor"]["containers"]
    # Knative's own rules for the serving container: one port, named h2c, http1 or nothing.
    (port,) = container["ports"]
    assert port == {"name": "http1", "containerPort": 8080, "protocol": "TCP"}
    assert arg(container["args"], "--grpc-port") == "0"  # no listener that nothing routes to
    env = {e["name"] for e in helm_test_pod(objects)["spec"]["containers"][0]["env"]}
    assert "GRPC_TARGET" not in env


@pytest.mark.parametrize("values", [DEPLOYMENT, STANDARD], ids=["deployment", "kserve"])
def test_grpc_port_zero_renders_no_grpc_anywhere(render: Callable[..., list[dict]], values: dict) -> None:
    objects = render(deep_merge(values, {"server": {"grpcPort": 0}, "networkPolicy": {"enabled": True}}))
    container = predictor_container(objects)
    assert [p["name"] for p in container["ports"]] == [("http" if values is DEPLOYMENT else "http1")]
    assert arg(container["args"], "--grpc-port") == "0"
    for service in by_kind(objects, "Service"):
        assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
    if values is STANDARD:
        assert [
            p["port"] for p in kserve_component_service(one(objects, "InferenceService"))["spec"]["ports"]
        ] == [80]
    assert all(ports == {8080} for _, ports in policy_rules(objects))
    env = {e["name"] for e in helm_test_pod(objects)["spec"]["containers"][0]["env"]}
    assert "GRPC_TARGET" not in env


# ------------------------------------------------------------------------------------------ flags, policy, NOTES


@pytest.mark.parametrize("values", [DEPLOYMENT, STANDARD], ids=["deployment", "kserve"])
def test_connection_settings_become_flags(render: Callable[..., list[dict]], values: dict) -> None:
    defaults = predictor_container(render(values))["args"]
    assert {flag: arg(defaults, flag) for flag in (
        "--grpc-port", "--header-timeout-seconds", "--body-timeout-seconds", "--keep-alive-seconds",
        "--max-connections")} == {
        "--grpc-port": "8081", "--header-timeout-seconds": "5", "--body-timeout-seconds": "10",
        "--keep-alive-seconds": "5", "--max-connections": "1000"}  # fmt: skip
    container = predictor_container(render(deep_merge(values, {"server": {
        "grpcPort": 9001, "headerTimeoutSeconds": 2.5, "bodyTimeoutSeconds": 30, "keepAliveSeconds": 75,
        "maxConnections": 250, "extraArgs": ["--max-connections", "300"]}})))  # fmt: skip
    args = container["args"]
    assert {flag: arg(args, flag) for flag in (
        "--grpc-port", "--header-timeout-seconds", "--body-timeout-seconds", "--keep-alive-seconds",
        "--max-connections")} == {
        "--grpc-port": "9001", "--header-timeout-seconds": "2.5", "--body-timeout-seconds": "30",
        "--keep-alive-seconds": "75", "--max-connections": "250"}  # fmt: skip
    assert args[-2:] == ["--max-connections", "300"]  # extraArgs still last: they win
    assert container["ports"][1]["containerPort"] == 9001


def test_decimal_seconds_from_set_are_accepted(helm: str, write_values: Callable[[dict], Path]) -> None:
    """`--set server.headerTimeoutSeconds=2.5` passes a string (helm keeps decimals as strings)."""
    result = run_helm(helm, "template", RELEASE, str(CHART), "-f", str(write_values(DEPLOYMENT)),
                      "--set", "server.headerTimeoutSeconds=2.5", "--set", "server.keepAliveSeconds=0.5")  # fmt: skip
    args = predictor_container([d for d in yaml_module().safe_load_all(result.stdout) if d])["args"]
    assert (arg(args, "--header-timeout-seconds"), arg(args, "--keep-alive-seconds")) == ("2.5", "0.5")


@pytest.mark.parametrize("values", [DEPLOYMENT, STANDARD, KNATIVE], ids=["deployment", "kserve", "knative"])
def test_network_policy_admits_grpc_from_callers_only(
    render: Callable[..., list[dict]], kubernetes_validate: Any, values: dict
) -> None:
    objects = render(deep_merge(values, {"networkPolicy": {
        "enabled": True, "ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "payments"}}}]}}))  # fmt: skip
    validate_core(kubernetes_validate, one(objects, "NetworkPolicy"))
    (callers, caller_ports), (scrapers, scraper_ports) = policy_rules(objects)
    assert {"namespaceSelector": {"matchLabels": {"team": "payments"}}} in callers
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": RELEASE,
                                            "app.kubernetes.io/component": "test"}}} in callers  # fmt: skip
    assert caller_ports == ({8080} if values is KNATIVE else {8080, 8081})
    assert scrapers == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert scraper_ports == {8080}  # /metrics lives on HTTP: scrapers never reach gRPC


def test_every_combination_still_validates_with_grpc(
    render: Callable[..., list[dict]], kubernetes_validate: Any
) -> None:
    """The main combinations (monitoring, NetworkPolicy, each model source) with gRPC on: the core objects
    strictly valid, the InferenceService valid for the default KServe release, and gRPC declared."""
    validator = isvc_validator_for(
        yaml_module().safe_load((CHART / "values.yaml").read_text())["kserve"]["version"]
    )
    for mode in ("deployment", "kserve"):
        for source in ("uri", "storage", "hostPath", "pvc"):
            objects = render(combo_values(mode, True, True, source))
            assert [p["name"] for p in predictor_container(objects)["ports"]][1:] == ["grpc"]
            for obj in objects:
                if obj["kind"] == "InferenceService":
                    assert not isvc_errors(validator, obj)
                elif obj["kind"] in ("Deployment", "Service", "NetworkPolicy", "Pod"):
                    validate_core(kubernetes_validate, obj)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (DEPLOYMENT, f"port-forward service/{RELEASE} 8081:8081"),
        (STANDARD, f"port-forward service/{RELEASE}-predictor 8081:8081"),
        (KNATIVE, "no gRPC in KServe Knative mode"),
        (deep_merge(DEPLOYMENT, {"server": {"grpcPort": 0}}), None),
    ],
    ids=["deployment", "kserve", "knative", "off"],
)
def test_notes_say_where_grpc_is(
    helm: str, write_values: Callable[[dict], Path], tmp_path: Path, values: dict, expected: str | None
) -> None:
    notes = render_notes(helm, write_values(values), tmp_path)
    if expected is None:
        assert "gRPC" not in notes
    else:
        assert expected in notes
    assert "WARNING" not in notes


# ------------------------------------------------------------------------------------------ refused values

BAD_SCHEMA = [
    pytest.param({"server": {"grpcPort": 80}}, "server.grpcPort", id="privileged-grpc-port"),
    pytest.param({"server": {"grpcPort": 70000}}, "server.grpcPort", id="grpc-port-too-large"),
    pytest.param({"server": {"grpcPort": "8081"}}, "server.grpcPort: Invalid type", id="grpc-port-string"),
    pytest.param({"service": {"grpcPort": 0}}, "service.grpcPort", id="service-grpc-port-zero"),
    pytest.param({"server": {"headerTimeoutSeconds": 0}}, "server.headerTimeoutSeconds", id="zero-timeout"),
    pytest.param({"server": {"bodyTimeoutSeconds": "soon"}}, "server.bodyTimeoutSeconds", id="word-timeout"),
    pytest.param({"server": {"keepAliveSeconds": 7200}}, "server.keepAliveSeconds", id="keep-alive-too-long"),
    pytest.param({"server": {"maxConnections": 0}}, "server.maxConnections", id="no-connections"),
    pytest.param({"server": {"maxConnections": 1.5}}, "server.maxConnections", id="fractional-connections"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_SCHEMA)
def test_bad_grpc_and_connection_values_fail_the_schema(
    helm: str, write_values: Callable[[dict], Path], bad: dict, message: str
) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), "-f", str(write_values(deep_merge(DEPLOYMENT, bad))),
                      check=False)  # fmt: skip
    assert result.returncode != 0 and "don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            deep_merge(STANDARD, {"server": {"grpcPort": 8080}}),
            "server.grpcPort and server.httpPort are both 8080",
        ),
        (
            deep_merge(DEPLOYMENT, {"service": {"grpcPort": 8080}}),
            "service.grpcPort and service.port are both 8080",
        ),
    ],
    ids=["same-container-port", "same-service-port"],
)
def test_one_port_for_both_protocols_is_refused(
    helm: str, write_values: Callable[[dict], Path], values: dict, message: str
) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), "-f", str(write_values(values)), check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    # gRPC off: the ports cannot clash, so the same numbers are fine.
    run_helm(helm, "template", RELEASE, str(CHART), "-f",
             str(write_values(deep_merge(values, {"server": {"grpcPort": 0}}))))  # fmt: skip


# ------------------------------------------------------------------------------------------ the helm test pod, run

PROBABILITY = 0.123456
HTTP_ANSWER = {
    "id": "helm-test", "model_name": "credit-risk", "model_version": "1",
    "outputs": [
        {"name": "probability", "datatype": "FP32", "shape": [1], "data": [PROBABILITY]},
        {"name": "prediction", "datatype": "INT64", "shape": [1], "data": [0]},
        {"name": "risk_level", "datatype": "BYTES", "shape": [1], "data": ["low"]},
        {"name": "decision", "datatype": "BYTES", "shape": [1], "data": ["approve"]},
    ],
}  # fmt: skip


class _V2Http(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ok = self.path == "/v2/models/credit-risk/infer" and body["inputs"][0]["shape"] == [1, 26]
        data = json.dumps(HTTP_ANSWER if ok else {"error": "bad request"}).encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_predictor() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _V2Http)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def grpc_predictor(behaviour: str) -> tuple[Any, int]:
    """A V2 gRPC server (kserve's generated messages) answering the test pod's three calls; ``behaviour``:
    raw (tritonclient-style raw_output_contents), contents (typed contents), other-probability, not-found."""
    grpc = require_module("grpc")
    pb = require_module("kserve.protocol.grpc.grpc_predict_v2_pb2")

    def infer(request: Any, context: Any) -> Any:
        if behaviour == "not-found":
            context.abort(grpc.StatusCode.NOT_FOUND, f"model {request.model_name!r} is not served")
        (tensor,) = request.inputs
        assert (tensor.name, tensor.datatype, list(tensor.shape)) == ("features", "FP32", [1, 26])
        assert len(tensor.contents.fp32_contents) == 26
        p = 0.5 if behaviour == "other-probability" else PROBABILITY
        out = pb.ModelInferResponse.InferOutputTensor
        answer = pb.ModelInferResponse(model_name="credit-risk", model_version="1", id=request.id)
        if behaviour == "contents":
            answer.outputs.extend([
                out(name="probability", datatype="FP32", shape=[1], contents=pb.InferTensorContents(fp32_contents=[p])),
                out(name="prediction", datatype="INT64", shape=[1], contents=pb.InferTensorContents(int64_contents=[0])),
                out(name="risk_level", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[b"low"])),
                out(name="decision", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[b"approve"])),
            ])  # fmt: skip
        else:
            answer.outputs.extend([out(name=n, datatype=d, shape=[1]) for n, d in (
                ("probability", "FP32"), ("prediction", "INT64"), ("risk_level", "BYTES"), ("decision", "BYTES"))])  # fmt: skip
            answer.raw_output_contents.extend([struct.pack("<f", p), struct.pack("<q", 0),
                                               struct.pack("<I", 3) + b"low", struct.pack("<I", 7) + b"approve"])  # fmt: skip
        return answer

    def handler(fn: Callable, request_type: Any, response_type: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(
            fn,
            request_deserializer=request_type.FromString,
            response_serializer=response_type.SerializeToString,
        )

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ServerReady": handler(lambda r, c: pb.ServerReadyResponse(ready=True), pb.ServerReadyRequest, pb.ServerReadyResponse),
        "ModelReady": handler(lambda r, c: pb.ModelReadyResponse(ready=r.name == "credit-risk"), pb.ModelReadyRequest,
                              pb.ModelReadyResponse),
        "ModelInfer": handler(infer, pb.ModelInferRequest, pb.ModelInferResponse),
    }),))  # fmt: skip
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def run_test_pod(
    render: Callable[..., list[dict]], http_url: str, grpc_target: str | None
) -> tuple[int, str, str, int]:
    """The rendered test pod's script with its rendered environment, pointed at local servers: exit code,
    stdout, stderr, peak RSS in KiB (the script alone, measured by a launcher process)."""
    (container,) = helm_test_pod(render(DEPLOYMENT))["spec"]["containers"]
    assert container["command"] == ["python", "-c"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GRPC_TARGET"] == f"{RELEASE}.{NAMESPACE}.svc.cluster.local:8081"
    env.update(PREDICTOR_URL=http_url, TIMEOUT_SECONDS="5")
    if grpc_target is None:
        env.pop("GRPC_TARGET")
    else:
        env["GRPC_TARGET"] = grpc_target
    launcher = ("import resource, subprocess, sys\n"
                "r = subprocess.run([sys.executable, '-c', sys.argv[1]])\n"
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
                "sys.exit(r.returncode)\n")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", launcher, container["args"][0]], capture_output=True,
                            text=True, timeout=120, env={**env, "PATH": "/usr/bin:/bin"})  # fmt: skip
    *stderr, peak = result.stderr.rstrip("\n").split("\n")
    return result.returncode, result.stdout, "\n".join(stderr), int(peak)


@pytest.mark.parametrize("behaviour", ["raw", "contents"])
def test_helm_test_pod_checks_grpc_against_http(
    render: Callable[..., list[dict]], http_predictor: str, behaviour: str
) -> None:
    server, port = grpc_predictor(behaviour)
    try:
        code, out, err, peak_kib = run_test_pod(render, http_predictor, f"127.0.0.1:{port}")
    finally:
        server.stop(None)
    assert code == 0, out + err
    assert (
        f"OK: gRPC 127.0.0.1:{port} -> ready, model credit-risk v1, probability 0.123456, decision approve"
        in out
    )
    # The pod's memory limit must hold the gRPC client: kserve's messages are loaded without the kserve package.
    limit_mib = int(
        yaml_module()
        .safe_load((CHART / "values.yaml").read_text())["tests"]["resources"]["limits"]["memory"]
        .removesuffix("Mi")
    )
    assert peak_kib < limit_mib * 1024 * 0.75, (
        f"test script peaked at {peak_kib / 1024:.0f} MiB (limit {limit_mib} MiB)"
    )


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("other-probability", "probability [0.5], HTTP answered 0.123456"),
        ("not-found", "NOT_FOUND: model 'credit-risk' is not served"),
        ("nothing-listening", "no HTTP/2 connection"),
    ],
)
def test_helm_test_pod_fails_clearly_on_grpc(
    render: Callable[..., list[dict]], http_predictor: str, behaviour: str, message: str
) -> None:
    server = None
    if behaviour == "nothing-listening":
        target = f"127.0.0.1:{free_port()}"
    else:
        server, port = grpc_predictor(behaviour)
        target = f"127.0.0.1:{port}"
    try:
        code, out, err, _ = run_test_pod(render, http_predictor, target)
    finally:
        if server is not None:
            server.stop(None)
    assert code == 1, out + err
    assert err.startswith(f"FAIL: gRPC {target}: ") and message in err, err
    assert "Traceback" not in err
    assert out.startswith("OK: http://127.0.0.1:")  # HTTP was checked first and passed


def test_helm_test_pod_without_grpc_checks_http_only(
    render: Callable[..., list[dict]], http_predictor: str
) -> None:
    code, out, err, _ = run_test_pod(render, http_predictor, None)
    assert code == 0, out + err
    assert "gRPC" not in out
