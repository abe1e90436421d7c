"""``python -m serving`` as an operator runs it: start-up from a file or the registry, failures that
exit with a clear line, and a predictor that stays free of the training package."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import onnx
import pytest

from harness import ROOT
from harness.net import http
from harness.predictor import TrainedModel, running_server


def _run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", *args], capture_output=True, text=True, timeout=timeout,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})},
    )  # fmt: skip


def test_a_missing_model_exits_1_with_one_clear_line(tmp_path: Path) -> None:
    result = _run("--model-uri", str(tmp_path / "nope.onnx"), "--http-port", "1")
    assert result.returncode == 1
    assert (
        f"cannot serve {tmp_path / 'nope.onnx'}: model file {tmp_path / 'nope.onnx'} does not exist"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_no_writable_metrics_folder_exits_2_with_one_line(model_path: Path) -> None:
    """A read-only root filesystem without the /tmp emptyDir: one line saying what to mount, no traceback."""
    result = _run("--model-uri", str(model_path), "--metrics-dir", "/proc/1/credit-risk-metrics")
    assert result.returncode == 2, result.stderr
    assert "error: cannot prepare the metrics folder" in result.stderr
    assert "mount an emptyDir at /tmp" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    result = _run("--http-port", "8080")
    assert result.returncode == 2 and "--model-uri" in result.stderr
    result = _run("--model-uri", "x.onnx", "--workers", "0")
    assert result.returncode == 2 and "--workers: Input should be greater than or equal to 1" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ssl-certfile", "/etc/hostname"], "error: TLS needs both --ssl-certfile and --ssl-keyfile"),
        (
            ["--ssl-certfile", "/nope.pem", "--ssl-keyfile", "/nope.key"],
            "error: TLS file /nope.pem does not exist",
        ),
        (["--http-port", "9000", "--grpc-port", "9000"], "error: --grpc-port and --http-port are both 9000"),
        (["--header-timeout-seconds", "0"], "--header-timeout-seconds: Input should be greater than 0"),
    ],
)
def test_inconsistent_settings_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = _run("--model-uri", "x.onnx", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_port_in_use_exits_1_with_one_clear_line(model_path: Path) -> None:
    from serving.server import bind

    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        for flag in ("--http-port", "--grpc-port"):
            other = "--grpc-port" if flag == "--http-port" else "--http-port"
            result = _run(
                "--model-uri", str(model_path), "--host", "127.0.0.1", flag, str(port), other, str(port + 1)
            )
            assert (
                result.returncode == 1
                and "cannot listen on 127.0.0.1: Address already in use" in result.stderr
            )
            assert "Traceback" not in result.stderr
    finally:
        taken.close()


def test_serves_the_champion_from_the_registry(trained: TrainedModel, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.create_experiment("serve", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment("serve")
    with mlflow.start_run():
        for _ in range(3):
            mlflow.onnx.log_model(onnx.load(str(trained.path)), name="model", registered_model_name="credit-risk",
                                  save_as_external_data=False)  # fmt: skip
    mlflow.MlflowClient().set_registered_model_alias("credit-risk", "champion", "3")
    with running_server(
        "--model-uri", "models:/credit-risk@champion", env={"MLFLOW_TRACKING_URI": uri}, workdir=tmp_path
    ) as server:
        status, _, body = http("GET", server.url + "/v2/models/credit-risk")
        assert status == 200 and json.loads(body)["versions"] == ["3"]  # the registry's version
        status, _, body = http("POST", server.url + "/predict", {"features": trained.X_test[0].tolist()})
        assert status == 200 and json.loads(body)["model_version"] == "3"
        assert "registry version 3 differs from the version in the model's metadata (1)" in server.logs()


def test_an_unknown_alias_exits_1(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = _run("--model-uri", "models:/credit-risk@champion", env={"MLFLOW_TRACKING_URI": uri})
    assert result.returncode == 1
    assert (
        "cannot serve models:/credit-risk@champion: cannot resolve models:/credit-risk@champion through MLflow"
        in result.stderr
    )


SERVING = ROOT / "serving"
FORBIDDEN = {"ml", "sklearn", "xgboost", "lightgbm", "skl2onnx", "onnxmltools", "pickle", "joblib", "pandas"}


def test_serving_never_imports_the_training_package() -> None:
    """Statically: no serving module imports ml, a training library, or a pickle loader."""
    for path in SERVING.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.relative_to(ROOT)} imports {name}"


def test_a_started_predictor_has_not_loaded_the_training_package(
    trained: TrainedModel, tmp_path: Path
) -> None:
    """At run time too: the modules the server process holds once it has answered a request."""
    code = (
        "import sys, runpy; from serving.model import CreditRiskModel; from serving.server import worker; from serving.workers import Supervisor; from serving.protocol import grpc;"
        "from serving.settings import ServingSettings; import numpy as np;"
        f"m = CreditRiskModel(ServingSettings(model_uri={str(trained.path)!r})); m.load(); m.score(np.ones((1, 26), np.float32));"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in {'ml', 'sklearn', 'xgboost', 'lightgbm', 'skl2onnx'});"
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("option", ["--help"])
def test_help_lists_the_settings(option: str) -> None:
    result = _run(option)
    assert result.returncode == 0
    for flag in (
        "--model-uri",
        "--model-name",
        "--http-port",
        "--workers",
        "--max-batch-rows",
        "--drift-window-seconds",
        "--grpc-port",
        "--header-timeout-seconds",
        "--body-timeout-seconds",
        "--max-connections",
        "--ssl-certfile",
    ):
        assert flag in result.stdout


def test_sigterm_right_after_start_exits_promptly_and_cleans_up(
    trained: TrainedModel, tmp_path: Path
) -> None:
    """SIGTERM to the whole process group while the second worker may still be starting (as when a pod is
    deleted at once): the server stops within seconds, exits 0 and leaves no temporary files behind."""
    import glob
    import time

    from harness.net import stop

    before = set(glob.glob("/tmp/credit-risk-*"))
    for _ in range(2):
        with running_server("--model-uri", str(trained.path), "--workers", "2", workdir=tmp_path) as server:
            started = time.monotonic()
            code = stop(server.process, timeout=15)
            assert code == 0 and time.monotonic() - started < 10, server.logs()[-2000:]
    assert set(glob.glob("/tmp/credit-risk-*")) <= before


def _narrow_model(trained: TrainedModel, path: Path) -> Path:
    """An ONNX model with our metadata but an input of 5 features instead of 26."""
    from skl2onnx import to_onnx
    from sklearn.tree import DecisionTreeClassifier

    narrow = to_onnx(
        DecisionTreeClassifier(max_depth=2).fit(trained.X_train[:, :5], trained.y_train),
        trained.X_train[:1, :5],
        options={"zipmap": False},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    narrow.metadata_props.extend(onnx.load(str(trained.path)).metadata_props)
    onnx.save(narrow, str(path))
    return path


def _written(content: bytes, path: Path) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t, p: _written(b"\x08garbage", p), "is not a loadable ONNX model"),
        (lambda t, p: _written(t.path.read_bytes()[:5_000], p), "is not a loadable ONNX model"),
        (_narrow_model, "must take one float tensor [N, 26]"),
    ],
    ids=["corrupt", "truncated", "wrong-input-shape"],
)
def test_a_bad_model_file_exits_1_with_one_clear_line(
    trained: TrainedModel, tmp_path: Path, make, message: str
) -> None:
    path = make(trained, tmp_path / "model.onnx")
    result = _run("--model-uri", str(path))
    assert result.returncode == 1
    assert re.search(rf"ERROR \d+ serving: cannot serve {re.escape(str(path))}: ", result.stderr), (
        result.stderr
    )
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_registry_exits_1_quickly(tmp_path: Path) -> None:
    import time

    started = time.monotonic()
    result = _run("--model-uri", "models:/credit-risk@champion", "--registry-retries", "1",
                  env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})  # fmt: skip
    assert result.returncode == 1
    assert "cannot resolve models:/credit-risk@champion through MLflow at http://127.0.0.1:9" in result.stderr
    assert time.monotonic() - started < 60
