"""The image's transformer, run the way the chart runs it, in front of the image's predictor.

The chart is rendered in deployment mode with the transformer on, its store URL and ingestion token in
Secrets (the production shape); both rendered containers — command/args, env (``secretKeyRef`` resolved
as the kubelet would), ports, probe paths, the /tmp emptyDir, the token file mounted from its Secret,
user, read-only root, dropped capabilities — are reproduced with ``docker run`` (``docker_run_args``, as
in test_container.py). The feature store is a real ``redis-server`` on the host; both containers use the
host network (everything on 127.0.0.1), the predictor's Service name resolving to 127.0.0.1 as the
cluster's DNS would resolve it to the Service. Then, through the transformer: ``k8s/smoke_transformer.py``
(the kind job's check: /score, V2 raw tensors and requested features, ingestion and its token, history,
metrics), V2 gRPC ModelInfer with raw tensors, ``python -m harness.parity`` (online features equal to the
offline ones on a synthetic stream), readiness following the store down and up, and SIGTERM within the
grace period with exit code 0.

Docker or redis-server missing: skipped on a developer machine, failed in CI (see conftest).
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.net import free_port, http
from tests.deploy.conftest import K8S, ROOT, arg, component, require_module, require_tool
from tests.deploy.test_container import (  # noqa: F401  (docker_ready, image, model_dir: fixtures)
    IMAGE_REPOSITORY,
    IMAGE_TAG,
    docker,
    docker_ready,
    docker_run_args,
    image,
    logs,
    model_dir,
    report,
    wait_ready,
)

TOKEN = "transformer-container-test-token"


class RedisServer:
    """Debian's redis-server on a free loopback port, no persistence; stop() and start() again on the same
    port (the store going down and coming back)."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not self.ping():
            assert self.process.poll() is None, f"redis-server exited with {self.process.returncode}"
            assert time.monotonic() < deadline, "redis-server did not answer PING within 20 s"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = require_tool("redis-server", "bash .ci/tools.sh installs it (Debian package redis-server)")
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


class Ports:
    def __init__(self) -> None:
        taken: set[int] = set()
        while len(taken) < 5:
            taken.add(free_port())
        self.predictor_http, self.predictor_grpc, self.http, self.grpc, self.ingest = sorted(taken)


@pytest.fixture(scope="module")
def ports() -> Ports:
    return Ports()


@pytest.fixture(scope="module")
def rendered(render: Callable[..., list[dict]], model_dir: Path, ports: Ports) -> dict[str, dict]:  # noqa: F811
    """The rendered predictor and transformer pods. Every listener on its own free port (the host network
    is shared), bound to 127.0.0.1 through the chart's extraArgs; Service ports = container ports, as the
    predictor address the chart derives must then reach the predictor container."""
    values = {
        "mode": "deployment",
        "image": {"repository": IMAGE_REPOSITORY, "tag": IMAGE_TAG},
        "model": {"volume": {"type": "hostPath", "hostPath": {"path": str(model_dir)}}},
        "server": {"httpPort": ports.predictor_http, "grpcPort": ports.predictor_grpc,
                   "extraArgs": ["--host", "127.0.0.1"]},
        "service": {"port": ports.predictor_http, "grpcPort": ports.predictor_grpc},
        "transformer": {
            "enabled": True, "httpPort": ports.http, "grpcPort": ports.grpc, "ingestPort": ports.ingest,
            "service": {"port": ports.http, "grpcPort": ports.grpc, "ingestPort": ports.ingest},
            "store": {"existingSecret": "feature-store", "key": "url"},
            "ingest": {"existingSecret": "ingest", "key": "token"},
            "extraArgs": ["--host", "127.0.0.1"],
        },
    }  # fmt: skip
    deployments = {component(d): d for d in render(values) if d["kind"] == "Deployment"}
    assert set(deployments) == {"predictor", "transformer"}
    return {name: d["spec"]["template"]["spec"] for name, d in deployments.items()}


@pytest.fixture(scope="module")
def token_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the kubelet mounts from the Secret `ingest`: its key `token` as the file `token`."""
    folder = tmp_path_factory.mktemp("ingest-token")
    (folder / "token").write_text(TOKEN)
    (folder / "token").chmod(0o644)
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def running(
    image: str,  # noqa: F811
    rendered: dict[str, dict],
    redis_server: RedisServer,
    token_dir: Path,
    ports: Ports,
) -> Iterator[dict[str, str]]:
    """The predictor, then the transformer, both running as rendered; their container names."""
    predictor_pod, transformer_pod = rendered["predictor"], rendered["transformer"]
    (predictor,), (transformer,) = predictor_pod["containers"], transformer_pod["containers"]
    predictor_host = arg(transformer["args"], "--predictor_host")
    host, port = predictor_host.rsplit(":", 1)
    assert host.endswith(".svc.cluster.local") and int(port) == ports.predictor_http
    names = {"predictor": f"credit-risk-transformer-test-predictor-{ports.http}",
             "transformer": f"credit-risk-transformer-test-{ports.http}"}  # fmt: skip
    try:
        docker(*docker_run_args(predictor_pod, predictor, image, name=names["predictor"],
                                extra=["--detach", "--network", "host"]))  # fmt: skip
        wait_ready(names["predictor"], f"http://127.0.0.1:{ports.predictor_http}/v2/health/ready")
        docker(*docker_run_args(
            transformer_pod, transformer, image, name=names["transformer"],
            volumes={"ingest-token": str(token_dir)},
            secrets={"feature-store": {"url": redis_server.url}, "ingest": {"token": TOKEN}},
            extra=["--detach", "--network", "host", "--add-host", f"{host}:127.0.0.1"],
        ))  # fmt: skip
        yield names
    finally:
        for name in names.values():
            docker("rm", "--force", name, check=False)


def test_transformer_container_is_rendered_hardened(rendered: dict[str, dict]) -> None:
    pod = rendered["transformer"]
    (container,) = pod["containers"]
    context = {**pod["securityContext"], **container["securityContext"]}
    assert context["runAsNonRoot"] and context["runAsUser"] == 10001 and context["readOnlyRootFilesystem"]
    assert context["capabilities"]["drop"] == ["ALL"] and context["allowPrivilegeEscalation"] is False
    assert container["command"] == ["python", "-m", "serving.transformer"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CREDIT_RISK_TRANSFORMER_STORE"]["valueFrom"]["secretKeyRef"] == {
        "name": "feature-store",
        "key": "url",
    }
    assert arg(container["args"], "--ingest-token-file") == "/etc/credit-risk/ingest/token"


def grpc_infer(target: str, transaction: dict, model: str) -> dict[str, list]:
    """V2 gRPC ModelInfer with the raw transaction tensors (kserve's generated messages); outputs by name."""
    grpc = require_module("grpc")
    pb = require_module("kserve.protocol.grpc.grpc_predict_v2_pb2")
    smoke = _smoke()
    tensor = pb.ModelInferRequest.InferInputTensor
    inputs = [tensor(name=n, datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[transaction[n].encode()]))
              for n in smoke.STRING_COLUMNS]  # fmt: skip
    inputs += [tensor(name=n, datatype="FP64", shape=[1], contents=pb.InferTensorContents(fp64_contents=[float(transaction[n])]))
               for n in smoke.FLOAT_COLUMNS]  # fmt: skip
    inputs += [tensor(name=n, datatype="INT64", shape=[1], contents=pb.InferTensorContents(int64_contents=[int(transaction[n])]))
               for n in smoke.INTEGER_COLUMNS]  # fmt: skip
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                   request_serializer=pb.ModelInferRequest.SerializeToString,
                                   response_deserializer=pb.ModelInferResponse.FromString)  # fmt: skip
        reply = stub(pb.ModelInferRequest(model_name=model, id="grpc-raw", inputs=inputs), timeout=30)
    assert reply.id == "grpc-raw", reply

    def values(i: int, out: object) -> list:
        if reply.raw_output_contents:
            raw = reply.raw_output_contents[i]
            if out.datatype == "BYTES":
                items, at = [], 0
                while at < len(raw):
                    (n,) = struct.unpack_from("<I", raw, at)
                    items.append(raw[at + 4 : at + 4 + n].decode())
                    at += 4 + n
                return items
            code, size = {"FP32": ("f", 4), "FP64": ("d", 8), "INT64": ("q", 8)}[out.datatype]
            return list(struct.unpack(f"<{len(raw) // size}{code}", raw))
        c = out.contents
        return {"FP32": list(c.fp32_contents), "FP64": list(c.fp64_contents), "INT64": list(c.int64_contents),
                "BYTES": [b.decode() for b in c.bytes_contents]}[out.datatype]  # fmt: skip

    return {out.name: values(i, out) for i, out in enumerate(reply.outputs)}


def _smoke():
    from tests.deploy.test_workflows import k8s_module

    return k8s_module("smoke_transformer")


def wait_for_status(url: str, status: int, timeout: float = 30) -> float:
    started = time.monotonic()
    last = None
    while time.monotonic() - started < timeout:
        try:
            last = http("GET", url, timeout=2)[0]
        except OSError as exc:
            last = repr(exc)
        if last == status:
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"GET {url} did not answer {status} within {timeout}s (last: {last})")


def test_transformer_runs_as_the_chart_runs_it(
    running: dict[str, str],
    rendered: dict[str, dict],
    redis_server: RedisServer,
    token_dir: Path,
    ports: Ports,
    capsys: pytest.CaptureFixture,
) -> None:
    name = running["transformer"]
    pod = rendered["transformer"]
    (container,) = pod["containers"]
    base, ingest = f"http://127.0.0.1:{ports.http}", f"http://127.0.0.1:{ports.ingest}"
    ready_after = wait_ready(name, base + container["readinessProbe"]["httpGet"]["path"])
    report(
        capsys,
        f"transformer ready on {container['readinessProbe']['httpGet']['path']} after {ready_after:.1f}s",
    )

    # The kind job's smoke test, against the container: /score, V2, features, ingestion, history, metrics.
    smoke = subprocess.run(
        [sys.executable, str(K8S / "smoke_transformer.py"), "--url", base, "--ingest-url", ingest,
         "--token-file", str(token_dir / "token"), "--wait", "30"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert smoke.returncode == 0, f"{smoke.stdout}\n{smoke.stderr}\ntransformer logs:\n{logs(name)}"
    assert "SMOKE OK" in smoke.stdout

    # V2 gRPC on the chart's gRPC port: raw tensors in, the same answer as /score for the same transaction.
    transaction, _ = _smoke().transactions(f"grpc-{ports.http}")
    scored = http("POST", base + "/score", transaction)
    assert scored[0] == 200, scored
    expected = json.loads(scored[2])
    outputs = grpc_infer(f"127.0.0.1:{ports.grpc}", transaction, arg(container["args"], "--model_name"))
    assert abs(outputs["probability"][0] - expected["probability"]) < 1e-6, (outputs, expected)
    assert outputs["decision"] == [expected["decision"]]

    # Online features equal the offline ones on a synthetic stream replayed score-then-ingest.
    parity = subprocess.run(
        [sys.executable, "-m", "harness.parity", "--score-url", base,
         "--ingest-url", ingest, "--token-file", str(token_dir / "token"),
         "--rows", "300", "--seed", "0"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert parity.returncode == 0, f"{parity.stdout}\n{parity.stderr}\ntransformer logs:\n{logs(name)}"
    report(capsys, "parity: " + " ".join(parity.stdout.split())[-300:])

    # The token reached the container as the mounted file only.
    inspected = docker("inspect", "--format", "{{json .Config}}", name).stdout
    assert TOKEN not in inspected
    probe = docker("exec", name, "python", "-c", "open('/probe', 'w')", check=False)
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr

    # Readiness follows the store: not ready while Redis is down (the pod leaves the Service), alive all along.
    ready, live = (
        base + container["readinessProbe"]["httpGet"]["path"],
        base + container["livenessProbe"]["httpGet"]["path"],
    )
    redis_server.stop()
    try:
        down_after = wait_for_status(ready, 503)
        assert http("GET", live)[0] == 200
    finally:
        redis_server.start()
    up_after = wait_for_status(ready, 200)
    report(capsys, f"store down: not ready after {down_after:.1f}s; back: ready after {up_after:.1f}s")

    grace = int(arg(container["args"], "--grace-period-seconds"))
    termination = pod["terminationGracePeriodSeconds"]
    started = time.monotonic()
    docker("stop", "--time", str(termination), name, timeout=termination + 30)
    stopped_after = time.monotonic() - started
    state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
    report(capsys, f"transformer stopped {stopped_after:.1f}s after SIGTERM, exit code {state['ExitCode']}")
    assert stopped_after < grace, f"took {stopped_after:.1f}s to stop:\n{logs(name)}"
    assert state["ExitCode"] == 0 and not state["OOMKilled"], f"exit {state['ExitCode']}:\n{logs(name)}"


def test_the_predictor_behind_it_ran_as_rendered(running: dict[str, str], rendered: dict[str, dict]) -> None:
    """The predictor container the transformer called is the chart's: its Deployment's args, bound where
    the transformer's --predictor_host pointed."""
    (predictor,) = rendered["predictor"]["containers"]
    args = json.loads(docker("inspect", "--format", "{{json .Args}}", running["predictor"]).stdout)
    assert args == ["-m", "serving", *predictor["args"]]  # the image's ENTRYPOINT, then the rendered args
    (transformer,) = rendered["transformer"]["containers"]
    assert arg(transformer["args"], "--predictor_host").endswith(f":{arg(predictor['args'], '--http-port')}")
