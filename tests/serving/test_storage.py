"""Models from object storage, against real servers on loopback: S3 (moto's S3 server, TLS with a private
CA, path-style), GCS (gcp-storage-emulator), HTTPS (private CA), and a real ``mlflow server`` whose
artifact store is that S3, in both of its modes (``s3://`` locations handed out, or proxied)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import onnx
import pytest

from harness import ROOT
from harness.net import http
from harness.predictor import TrainedModel, running_server
from harness.servers import S3, gcs_server, https_server, mlflow_server, private_ca, s3_server
from serving import storage
from serving.artifact import find_onnx, resolve
from serving.errors import ModelLoadError


@pytest.fixture
def model_folder(trained: TrainedModel, tmp_path: Path) -> Path:
    """An MLflow-style model folder: the .onnx file beside other files."""
    folder = tmp_path / "upload"
    folder.mkdir()
    shutil.copy(trained.path, folder / "model.onnx")
    (folder / "README.txt").write_text("not a model")
    return folder


@pytest.fixture
def tls_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with s3_server(private_ca(tmp_path)) as s3:
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        yield s3


def _cli(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": "/tmp", **env},
    )  # fmt: skip


def test_s3_over_tls_with_a_private_ca(
    tls_s3: S3, model_folder: Path, trained: TrainedModel, tmp_path: Path
) -> None:
    uri = tls_s3.upload("models", model_folder, "credit-risk/7")
    folder = storage.download(uri, tmp_path / "out")
    assert sorted(p.name for p in folder.iterdir()) == ["README.txt", "model.onnx"]
    assert resolve(uri).content == trained.path.read_bytes()
    assert resolve(f"{uri}/model.onnx").content == trained.path.read_bytes()  # one object


def test_s3_refuses_an_endpoint_signed_by_an_unknown_ca(
    tls_s3: S3, model_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = tls_s3.upload("models", model_folder, "credit-risk/7")
    monkeypatch.delenv("AWS_CA_BUNDLE")
    with pytest.raises(ModelLoadError, match=f"cannot download {uri}: .*(SSL|certificate)"):
        storage.download(uri, tmp_path / "out")


def test_s3_missing_prefix_and_bucket_are_clear_errors(
    tls_s3: S3, model_folder: Path, tmp_path: Path
) -> None:
    tls_s3.upload("models", model_folder, "credit-risk/7")
    with pytest.raises(ModelLoadError, match="cannot download s3://models/credit-risk/8: .*No model found"):
        storage.download("s3://models/credit-risk/8", tmp_path / "a")
    with pytest.raises(ModelLoadError, match="cannot download s3://no-such-bucket/x"):
        storage.download("s3://no-such-bucket/x", tmp_path / "b")


def test_the_init_container_command_downloads_then_the_predictor_serves_the_folder(
    tls_s3: S3, model_folder: Path, tmp_path: Path
) -> None:
    """The chart's deployment mode: ``python -m serving.storage URI /mnt/models`` then ``--model-uri /mnt/models``."""
    uri = tls_s3.upload("models", model_folder, "credit-risk/7")
    out = tmp_path / "mnt-models"
    result = _cli("serving.storage", uri, str(out), env=tls_s3.env())
    assert result.returncode == 0, result.stderr
    assert (out / "model.onnx").is_file() and f"downloaded {uri}: 2 file(s)" in result.stderr
    with running_server("--model-uri", str(out), workdir=tmp_path) as server:
        status, _, body = http("GET", server.url + "/v2/models/credit-risk")
        assert status == 200 and json.loads(body)["versions"] == ["1"]
    failed = _cli("serving.storage", "s3://models/nothing-here", str(tmp_path / "x"), env=tls_s3.env())
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "cannot download s3://models/nothing-here" in failed.stderr
    assert _cli("serving.storage", uri, env={}).returncode == 2  # usage


def test_the_predictor_reads_s3_directly(tls_s3: S3, model_folder: Path, tmp_path: Path) -> None:
    uri = tls_s3.upload("models", model_folder, "credit-risk/7")
    with running_server("--model-uri", uri, env=tls_s3.env(), workdir=tmp_path) as server:
        assert http("GET", server.url + "/v2/health/ready")[0] == 200
        assert f"from {uri} (model.onnx)" in server.logs()


def test_gcs(
    model_folder: Path, trained: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    with gcs_server() as host:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
        client = gcs.Client(project="bati", credentials=AnonymousCredentials())
        bucket = client.create_bucket("bati-models")
        for path in model_folder.iterdir():
            bucket.blob(f"credit-risk/3/{path.name}").upload_from_filename(str(path))
        assert resolve("gs://bati-models/credit-risk/3").content == trained.path.read_bytes()
        with pytest.raises(ModelLoadError, match="cannot download gs://bati-models/credit-risk/4"):
            storage.download("gs://bati-models/credit-risk/4", tmp_path / "none")


def test_https_with_a_private_ca(
    model_folder: Path, trained: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = private_ca(tmp_path)
    with https_server(model_folder, ca) as base:
        with pytest.raises(ModelLoadError, match="cannot download"):
            storage.download(f"{base}/model.onnx", tmp_path / "untrusted")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.bundle))
        assert resolve(f"{base}/model.onnx").content == trained.path.read_bytes()
        with pytest.raises(ModelLoadError, match="cannot download"):
            storage.download(f"{base}/missing.onnx", tmp_path / "missing")


def test_pvc_and_unknown_schemes_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="Kubernetes mounts it"):
        resolve("pvc://models/credit-risk")
    with pytest.raises(ModelLoadError, match="not a storage URI"):
        storage.download("ftp://host/model.onnx", tmp_path)


def test_the_folder_rule(trained: TrainedModel, tmp_path: Path) -> None:
    """One .onnx anywhere in the folder; an MLflow model folder's MLmodel decides; several is an error
    that names them and the fix; Kubernetes' hidden ..data folders do not count."""
    folder = tmp_path / "m"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(trained.path, folder / "nested" / "credit-risk-v1.onnx")
    (folder / "..2026_12_02").mkdir()
    shutil.copy(trained.path, folder / "..2026_12_02" / "credit-risk-v1.onnx")
    assert find_onnx(folder) == folder / "nested" / "credit-risk-v1.onnx"
    shutil.copy(trained.path, folder / "credit-risk-v2.onnx")
    with pytest.raises(
        ModelLoadError,
        match=r"holds 2 \.onnx files \(credit-risk-v2\.onnx, nested/credit-risk-v1\.onnx\).*model\.file",
    ):
        find_onnx(folder)
    (folder / "MLmodel").write_text("flavors:\n  onnx:\n    data: credit-risk-v2.onnx\n")
    assert find_onnx(folder) == folder / "credit-risk-v2.onnx"
    (folder / "MLmodel").write_text("flavors:\n  onnx:\n    data: gone.onnx\n")
    with pytest.raises(ModelLoadError, match="names gone.onnx as its ONNX model"):
        find_onnx(folder)


def _register(tracking: str, trained: TrainedModel, versions: int) -> None:
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    mlflow.set_experiment("storage")
    with mlflow.start_run():
        for _ in range(versions):
            mlflow.onnx.log_model(onnx.load(str(trained.path)), name="model", registered_model_name="credit-risk",
                                  save_as_external_data=False)  # fmt: skip
    mlflow.MlflowClient().set_registered_model_alias("credit-risk", "champion", "2")


@pytest.fixture
def plain_s3(monkeypatch: pytest.MonkeyPatch):
    with s3_server() as s3:
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        yield s3


def test_registry_with_an_s3_artifact_root_hands_out_s3_locations(
    plain_s3: S3, trained: TrainedModel, tmp_path: Path
) -> None:
    """``--default-artifact-root s3://… --no-serve-artifacts``: the resolved version names its bucket
    location; the storage initializer can fetch it, and the predictor can serve models:/ itself."""
    with mlflow_server(tmp_path, plain_s3, proxied=False) as tracking:
        _register(tracking, trained, versions=2)
        env = {"MLFLOW_TRACKING_URI": tracking, **plain_s3.env()}
        result = _cli("serving.registry", "resolve", "models:/credit-risk@champion", env=env)
        assert result.returncode == 0, result.stderr
        resolved = json.loads(result.stdout)
        assert resolved["version"] == "2" and resolved["model_uri"] == "models:/credit-risk/2"
        assert resolved["alias"] == "champion" and resolved["storage_uri"].startswith("s3://mlflow/direct/")
        # The storage initializer's path: the location alone, no MLflow involved.
        assert resolve(resolved["storage_uri"]).content == trained.path.read_bytes()
        # The predictor's path: models:/ through MLflow, reading the bucket with its own credentials.
        with running_server("--model-uri", "models:/credit-risk/2", env=env, workdir=tmp_path) as server:
            status, _, body = http("GET", server.url + "/v2/models/credit-risk")
            assert status == 200 and json.loads(body)["versions"] == ["2"]
        # Without bucket credentials the predictor exits with one line saying what is missing, not a
        # botocore traceback and a crash loop of unexplained restarts.
        no_keys = {
            k: v for k, v in env.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")
        }
        no_keys |= {
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        failed = _cli("serving", "--model-uri", "models:/credit-risk/1", env=no_keys)
        assert failed.returncode == 1 and "Traceback" not in failed.stderr
        assert (
            "cannot download models:/credit-risk/1" in failed.stderr and "AWS_* credentials" in failed.stderr
        )


def test_registry_proxying_artifacts_needs_no_bucket_credentials(
    plain_s3: S3, trained: TrainedModel, tmp_path: Path
) -> None:
    """``--artifacts-destination s3://…``: no storage location to hand out (storage_uri null); the
    predictor downloads through the server and holds no S3 credentials at all."""
    with mlflow_server(tmp_path, plain_s3, proxied=True) as tracking:
        _register(tracking, trained, versions=2)
        env = {"MLFLOW_TRACKING_URI": tracking}
        result = _cli("serving.registry", "resolve", "models:/credit-risk/1", env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["storage_uri"] is None
        with running_server(
            "--model-uri", "models:/credit-risk@champion", env=env, workdir=tmp_path
        ) as server:
            status, _, body = http("GET", server.url + "/v2/models/credit-risk")
            assert status == 200 and json.loads(body)["versions"] == ["2"]
        missing = _cli("serving.registry", "resolve", "models:/credit-risk@nope", env=env)
        assert missing.returncode == 1 and missing.stderr.startswith(
            "error: cannot resolve models:/credit-risk@nope"
        )
        assert "Traceback" not in missing.stderr
