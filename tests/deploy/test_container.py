"""The image, run the way the chart runs it.

Builds the image from the repository's Dockerfile, renders the chart in deployment mode, and reads the
rendered Deployment's predictor container — command/args, env, port, probe paths, the model volume's
mount path, the /tmp emptyDir, the security context, the termination grace period — instead of restating
them. Then ``docker run`` with exactly those settings: ``--read-only`` root with a tmpfs where the emptyDir
is, ``--user`` from the securityContext, ``--cap-drop ALL``, no new privileges, the model folder (made
by ``k8s/make_model.py``, the script the kind e2e uses) mounted read-only at the rendered path, the
container port published on 127.0.0.1. Waits on the rendered readiness path, runs ``k8s/smoke.py``
(the same smoke test as the kind job), checks the liveness path, stops the container and checks it
exited cleanly within the grace period.

Docker missing: skipped on a developer machine, failed in CI (see conftest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.net import free_port, http
from harness.triton_grpc import run_triton_grpc
from tests.deploy.conftest import K8S, ROOT, combo_values, deep_merge, one, require_tool, unavailable

BASE_IMAGE = "python:3.11-slim-bookworm"
IMAGE_REPOSITORY, IMAGE_TAG = "credit-risk-predictor", "test"
IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
IMAGE_SIZE_BUDGET = 500_000_000  # bytes; the serve extra only (kserve, onnxruntime, mlflow-skinny)
IMAGE_STATS = pytest.StashKey[tuple]()  # (build seconds, image bytes), for the report line


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args[:3])} ... failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    return result


def report(capsys: pytest.CaptureFixture, line: str) -> None:
    with capsys.disabled():
        print(f"\n[deploy] {line}", flush=True)


@pytest.fixture(scope="module")
def docker_ready() -> None:
    require_tool("docker", "bash .ci/docker.sh installs and starts it")
    if os.geteuid() == 0:
        # Idempotent (~2 s when all is in place): starts dockerd, makes the local base image.
        result = subprocess.run(["bash", str(ROOT / ".ci" / "docker.sh")], capture_output=True, text=True,
                                timeout=1800)  # fmt: skip
        if result.returncode != 0:
            unavailable(f".ci/docker.sh failed:\n{result.stderr[-3000:]}")
    if docker("info", check=False, timeout=30).returncode != 0:
        unavailable("the docker engine does not answer (docker info)")
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        unavailable(f"base image {BASE_IMAGE} missing (bash .ci/docker.sh, or docker pull it)")


@pytest.fixture(scope="module")
def image(docker_ready: None, request: pytest.FixtureRequest) -> str:
    started = time.monotonic()
    result = docker("build", "-t", IMAGE, str(ROOT), timeout=1800, check=False)
    assert result.returncode == 0, f"docker build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    seconds = time.monotonic() - started
    size = int(docker("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    request.config.stash[IMAGE_STATS] = (seconds, size)
    return IMAGE


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model and its expected answers, made by k8s/make_model.py (as in the kind e2e)."""
    folder = tmp_path_factory.mktemp("model") / "credit-risk-model"
    result = subprocess.run(
        [sys.executable, str(K8S / "make_model.py"), "--out", str(folder), "--rows", "6000"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    made = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(made["onnx"]).parent == folder and (folder / "expected.json").is_file()
    return folder


class Rendered:
    """What the chart says about the predictor container, read from the rendered Deployment."""

    def __init__(self, deployment: dict) -> None:
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        self.pod, self.container = pod, container
        self.command: list[str] = container.get("command", [])
        self.args: list[str] = container.get("args", [])
        self.env: dict[str, str] = {}
        for var in container.get("env", []):
            assert "value" in var, f"env {var['name']} uses valueFrom: cannot be reproduced with docker run"
            self.env[var["name"]] = var["value"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert set(ports) == {"http", "grpc"}, ports
        self.port: int = ports["http"]
        self.grpc_port: int = ports["grpc"]
        assert self.args[self.args.index("--grpc-port") + 1] == str(self.grpc_port)
        self.readiness = container["readinessProbe"]["httpGet"]
        self.liveness = container["livenessProbe"]["httpGet"]
        assert self.readiness["port"] in (self.port, "http") and self.liveness["port"] in (self.port, "http")
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        (model,) = [name for name, v in volumes.items() if "hostPath" in v]
        self.model_host_path: str = volumes[model]["hostPath"]["path"]
        self.model_mount: str = mounts[model]["mountPath"]
        self.model_read_only: bool = mounts[model].get("readOnly", False)
        (tmp,) = [name for name, v in volumes.items() if "emptyDir" in v]
        self.tmp_mount: str = mounts[tmp]["mountPath"]
        self.tmp_size: str = volumes[tmp]["emptyDir"].get("sizeLimit", "64Mi")
        context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
        self.user = f"{context['runAsUser']}:{context['runAsGroup']}"
        self.read_only_root: bool = context.get("readOnlyRootFilesystem", False)
        self.drop_all: bool = "ALL" in context.get("capabilities", {}).get("drop", [])
        self.no_new_privileges: bool = context.get("allowPrivilegeEscalation") is False
        self.termination_grace: int = pod["terminationGracePeriodSeconds"]
        self.grace_period = int(self.args[self.args.index("--grace-period-seconds") + 1])
        self.model_name = self.args[self.args.index("--model-name") + 1]

    def docker_run_args(self, name: str, host_port: int, image: str, grpc_host_port: int) -> list[str]:
        return docker_run_args(self.pod, self.container, image, name=name,
                               extra=["--detach", "--publish", f"127.0.0.1:{host_port}:{self.port}",
                                      "--publish", f"127.0.0.1:{grpc_host_port}:{self.grpc_port}"])  # fmt: skip


def docker_run_args(
    pod: dict, container: dict, image: str, *, name: str, volumes: dict[str, str] | None = None,
    secrets: dict[str, dict[str, str]] | None = None, extra: list[str] | tuple[str, ...] = (),
) -> list[str]:  # fmt: skip
    """``docker run`` arguments that reproduce one container of a rendered pod spec, as the kubelet would
    run it: user and group, read-only root, dropped capabilities, no new privileges; every volumeMount
    (an emptyDir as a tmpfs unless ``volumes`` maps it to a docker volume shared with another container, a
    hostPath as a bind mount, a configMap/secret from ``volumes``, subPath and readOnly honoured); env with
    ``secretKeyRef`` resolved from ``secrets`` (what the kubelet reads from the Secret); command/args."""
    volumes, secrets = volumes or {}, secrets or {}
    context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    args = ["run", "--name", name, "--user", f"{context['runAsUser']}:{context['runAsGroup']}", *extra]
    if context.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if "ALL" in context.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", "ALL"]
    if context.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    pod_volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume, mode = pod_volumes[mount["name"]], "ro" if mount.get("readOnly") else "rw"
        if "emptyDir" in volume and mount["name"] not in volumes:
            size = volume["emptyDir"].get("sizeLimit", "64Mi").replace("Mi", "m").replace("Gi", "g")
            args += ["--tmpfs", f"{mount['mountPath']}:rw,exec,nosuid,nodev,size={size}"]
            continue
        source = volumes.get(mount["name"]) or volume["hostPath"]["path"]
        if mount.get("subPath"):
            source = f"{source}/{mount['subPath']}"
        args += ["--volume", f"{source}:{mount['mountPath']}:{mode}"]
    for var in container.get("env", []):
        if "value" in var:
            value = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            value = secrets.get(ref["name"], {}).get(ref["key"])
            if value is None:
                assert ref.get("optional"), (
                    f"env {var['name']}: Secret {ref['name']} key {ref['key']} missing"
                )
                continue
        args += ["--env", f"{var['name']}={value}"]
    command = container.get("command", [])
    if command:  # Kubernetes `command` replaces the image's ENTRYPOINT, `args` its CMD
        return [*args, "--entrypoint", command[0], image, *command[1:], *container.get("args", [])]
    return [*args, image, *container.get("args", [])]


@pytest.fixture(scope="module")
def rendered(render: Callable[..., list[dict]], model_dir: Path) -> Rendered:
    values = deep_merge(combo_values("deployment", False, False, "hostPath"), {
        "image": {"repository": IMAGE_REPOSITORY, "tag": IMAGE_TAG},
        "model": {"volume": {"hostPath": {"path": str(model_dir)}}},
    })  # fmt: skip
    return Rendered(one(render(values), "Deployment"))


@pytest.fixture
def container(image: str, rendered: Rendered) -> Iterator[tuple[str, str]]:
    host_port, grpc_host_port = free_port(), free_port()
    name = f"credit-risk-deploy-test-{host_port}"
    docker("run", *rendered.docker_run_args(name, host_port, image, grpc_host_port)[1:])
    try:
        yield name, f"http://127.0.0.1:{host_port}", f"127.0.0.1:{grpc_host_port}"
    finally:
        docker("rm", "--force", name, check=False)


def logs(name: str) -> str:
    result = docker("logs", name, check=False)
    return (result.stdout + result.stderr)[-4000:]


def wait_ready(name: str, url: str, timeout: float = 120) -> float:
    started = time.monotonic()
    while True:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
        if not state["Running"]:
            pytest.fail(f"the container exited with {state['ExitCode']} before it was ready:\n{logs(name)}")
        try:
            if http("GET", url, timeout=2)[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > timeout:
            pytest.fail(f"{url} not ready after {timeout}s:\n{logs(name)}")
        time.sleep(0.25)


def test_rendered_container_is_hardened(rendered: Rendered) -> None:
    assert rendered.read_only_root and rendered.drop_all and rendered.no_new_privileges
    assert rendered.user == "10001:10001" and rendered.model_read_only
    assert rendered.termination_grace > rendered.grace_period
    assert rendered.args[rendered.args.index("--model-uri") + 1] == rendered.model_mount


def test_image_runs_as_the_chart_runs_it(
    container: tuple[str, str, str], rendered: Rendered, model_dir: Path, capsys: pytest.CaptureFixture,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    name, base, grpc_target = container
    build_seconds, size = request.config.stash[IMAGE_STATS]
    report(capsys, f"image {IMAGE}: {size / 1e6:.1f} MB (docker build {build_seconds:.1f}s)")
    assert size < IMAGE_SIZE_BUDGET, (
        f"image {size / 1e6:.0f} MB is over the {IMAGE_SIZE_BUDGET / 1e6:.0f} MB budget"
    )
    user = docker("inspect", "--format", "{{.Config.User}}", IMAGE).stdout.strip()
    assert user and not user.startswith("0"), f"the image runs as {user!r}"

    ready_after = wait_ready(name, base + rendered.readiness["path"])
    report(capsys, f"ready on {rendered.readiness['path']} after {ready_after:.1f}s")

    smoke = subprocess.run(
        [sys.executable, str(K8S / "smoke.py"), "--url", base, "--expected", str(model_dir / "expected.json"),
         "--model-name", rendered.model_name, "--wait", "30"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert smoke.returncode == 0, (
        f"smoke failed:\n{smoke.stdout}\n{smoke.stderr}\ncontainer logs:\n{logs(name)}"
    )
    assert "SMOKE OK" in smoke.stdout
    # V2 over gRPC on the chart's gRPC port, with Triton's own client: the same scores as over HTTP.
    expected = json.loads((model_dir / "expected.json").read_text())
    answer = run_triton_grpc(
        grpc_target, np.asarray(expected["rows"], dtype=np.float32), model=rendered.model_name
    )
    assert answer["ready"] and answer["model_ready"], answer
    for way in ("infer_raw", "infer_contents"):
        probabilities = answer[way]["outputs"]["probability"]["data"]
        np.testing.assert_allclose(probabilities, expected["probabilities"], atol=expected["tolerance"])

    status, _, body = http("GET", base + rendered.liveness["path"])
    assert status == 200, body
    # The root filesystem really is read-only for the predictor, /tmp is not.
    probe = docker("exec", name, "python", "-c", "open('/probe', 'w')", check=False)
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr
    docker("exec", name, "python", "-c", f"open('{rendered.tmp_mount}/probe', 'w').write('x')")

    started = time.monotonic()
    docker("stop", "--time", str(rendered.termination_grace), name, timeout=rendered.termination_grace + 30)
    stopped_after = time.monotonic() - started
    state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
    report(capsys, f"stopped {stopped_after:.1f}s after SIGTERM, exit code {state['ExitCode']} "
                   f"(grace period {rendered.grace_period}s, pod termination {rendered.termination_grace}s)")  # fmt: skip
    assert stopped_after < rendered.grace_period, f"took {stopped_after:.1f}s to stop:\n{logs(name)}"
    assert state["ExitCode"] == 0 and not state["OOMKilled"], f"exit {state['ExitCode']}:\n{logs(name)}"


def test_image_holds_the_predictor_only(image: str) -> None:
    """No training libraries, no MLflow server, no compilers, no pickle loaders for models, no pip or
    setuptools (nothing can install code at run time); non-root."""
    probe = (
        "import importlib.util as u, shutil, os;"
        "mods = ['sklearn', 'xgboost', 'lightgbm', 'skl2onnx', 'onnxmltools', 'ml', 'flask', 'gunicorn', 'sqlalchemy',"
        " 'matplotlib', 'joblib', 'pip', 'setuptools', 'pkg_resources', 'wheel', 'grpc_tools', 'azure',"
        " 'huggingface_hub'];"
        "print(sorted(m for m in mods if u.find_spec(m)));"
        "print(sorted(c for c in ('gcc', 'cc', 'g++', 'make', 'ld') if shutil.which(c)));"
        "print(os.getuid())"
    )
    result = docker("run", "--rm", "--entrypoint", "python", image, "-c", probe)
    present, compilers, uid = result.stdout.strip().splitlines()
    assert present == "[]", f"training, server or installer libraries in the image: {present}"
    assert compilers == "[]", f"build tools in the image: {compilers}"
    assert uid != "0"


def test_image_carries_oci_labels(image: str) -> None:
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", image).stdout)
    for key in ("title", "description", "version", "revision", "created", "source", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label org.opencontainers.image.{key} missing"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


def test_a_read_only_root_without_tmp_fails_with_one_line(image: str, model_dir: Path) -> None:
    """--read-only and no writable /tmp (an emptyDir forgotten): one line naming the fix, exit 2."""
    result = docker(
        "run", "--rm", "--read-only", "--volume", f"{model_dir}:/models:ro", image, "--model-uri", "/models",
        check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "mount an emptyDir at /tmp" in result.stderr and "Traceback" not in result.stderr


def test_storage_uri_init_container_then_predictor(
    image: str,
    render: Callable[..., list[dict]],
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    """Deployment mode with ``model.storageUri``: the rendered init container (the same image, KServe's
    downloader) fetches the model from an S3 endpoint behind TLS with a private CA, with the credentials
    the kubelet takes from the Secret, into the shared volume; then the rendered predictor serves it from
    that volume, read-only, and passes the smoke test. Both run exactly as rendered (see docker_run_args)."""
    from harness.servers import KEY_ID, SECRET, private_ca, s3_server

    ca_dir = tmp_path / "storage-ca"
    ca_dir.mkdir(mode=0o755)
    ca = private_ca(tmp_path)
    (ca_dir / "ca.crt").write_bytes(ca.bundle.read_bytes())
    (ca_dir / "ca.crt").chmod(0o644)
    ca_dir.chmod(0o755)
    http_port = free_port()
    volume = f"credit-risk-model-store-{http_port}"
    with s3_server(ca) as s3:
        uri = s3.upload("models", model_dir, "credit-risk/1")
        values = {"mode": "deployment", "image": {"repository": IMAGE_REPOSITORY, "tag": IMAGE_TAG},
                  "server": {"httpPort": http_port},
                  "model": {"storageUri": uri, "storage": {"secretName": "s3-credentials", "s3": {
                      "endpoint": s3.endpoint, "caBundleConfigMap": "storage-ca", "caBundleKey": "ca.crt"}}}}  # fmt: skip
        pod = one(render(values), "Deployment")["spec"]["template"]["spec"]
        (init,), (predictor,) = pod["initContainers"], pod["containers"]
        docker("volume", "create", volume)
        names = [f"{volume}-init", f"{volume}-predictor"]
        try:
            # An emptyDir is writable by the pod's fsGroup; a fresh docker volume is root's: hand it over.
            group = pod["securityContext"]["fsGroup"]
            docker("run", "--rm", "--user", "0", "--volume", f"{volume}:/v", "--entrypoint", "chown", image,
                   f"{init['securityContext']['runAsUser']}:{group}", "/v")  # fmt: skip
            started = time.monotonic()
            result = docker(*docker_run_args(
                pod, init, image, name=names[0], volumes={"model-store": volume, "storage-ca": str(ca_dir)},
                secrets={"s3-credentials": {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}},
                extra=["--network", "host"],
            ), timeout=300, check=False)  # fmt: skip
            assert result.returncode == 0, (
                f"storage initializer failed:\n{result.stdout}\n{result.stderr[-4000:]}"
            )
            report(capsys, f"storage initializer: {uri} over TLS in {time.monotonic() - started:.1f}s")
            docker(*docker_run_args(pod, predictor, image, name=names[1], volumes={"model-store": volume},
                                    extra=["--detach", "--publish", f"127.0.0.1:{http_port}:{http_port}"]))  # fmt: skip
            base = f"http://127.0.0.1:{http_port}"
            wait_ready(names[1], base + predictor["readinessProbe"]["httpGet"]["path"])
            smoke = subprocess.run(
                [sys.executable, str(K8S / "smoke.py"), "--url", base, "--expected", str(model_dir / "expected.json"),
                 "--wait", "30"], capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            assert smoke.returncode == 0, f"{smoke.stdout}\n{smoke.stderr}\n{logs(names[1])}"
            # The predictor got the model, not the credentials.
            env = docker("exec", names[1], "env").stdout
            assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_ACCESS_KEY_ID" not in env
            probe = docker("exec", names[1], "python", "-c", "open('/mnt/models/x', 'w')", check=False)
            assert probe.returncode != 0 and "Read-only file system" in probe.stderr
        finally:
            for name in names:
                docker("rm", "--force", name, check=False)
            docker("volume", "rm", "--force", volume, check=False)
