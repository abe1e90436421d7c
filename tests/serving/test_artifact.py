from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import onnx
import pytest

from harness.predictor import TrainedModel
from serving.artifact import resolve
from serving.contract import ModelContract, Reference
from serving.errors import ModelLoadError


def _metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_card_reads_the_contract_written_by_training(trained: TrainedModel) -> None:
    contract = ModelContract.from_metadata(_metadata(trained.path))
    assert len(contract.feature_names) == 26 and contract.feature_names[0] == "CountryCode"
    assert (contract.name, contract.version, contract.model_type) == ("credit-risk", "1", "lightgbm")
    assert (contract.threshold, contract.low_below, contract.high_above) == (0.5, 0.3, 0.6)
    assert contract.score.labels == ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "+Inf")
    assert contract.score.count == len(trained.X_test)
    assert set(contract.features) == set(contract.feature_names)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("feature_names"), "lacks metadata feature_names"),
        (lambda m: m.update(risk_bands="{not json"), "'risk_bands' is not JSON"),
        (
            lambda m: m.update(risk_bands=json.dumps({"low_below": 0.7, "high_above": 0.6})),
            "0 < low_below < high_above",
        ),
        (lambda m: m.update(feature_names=json.dumps(["a", "a"])), "repeats a name"),
        (lambda m: m.update(feature_reference=json.dumps({})), "one reference per feature name"),
        (
            lambda m: m.update(
                score_reference=json.dumps({"edges": [0.5, 0.2], "proportions": [0.2, 0.3, 0.5]})
            ),
            "strictly increasing",
        ),
        (
            lambda m: m.update(score_reference=json.dumps({"edges": [0.5], "proportions": [0.2, 0.3]})),
            "sum to 1",
        ),
        (
            lambda m: m.update(score_reference=json.dumps({"edges": [0.5], "proportions": [1.0]})),
            "need 2 proportions",
        ),
    ],
)
def test_bad_metadata_is_refused_with_the_key_named(trained: TrainedModel, change, message: str) -> None:
    metadata = _metadata(trained.path)
    change(metadata)
    with pytest.raises(ModelLoadError, match=message):
        ModelContract.from_metadata(metadata)


def test_reference_bins_are_right_closed() -> None:
    ref = Reference(edges=np.array([0.1, 0.5]), proportions=np.array([0.2, 0.3, 0.5]))
    assert ref.bin_of(np.array([-1.0, 0.1, 0.10001, 0.5, 0.6])).tolist() == [0, 0, 1, 1, 2]
    assert ref.counts(np.array([0.0, 0.2, 0.3, 2.0])).tolist() == [1, 2, 1]
    assert ref.labels == ("0.1", "0.5", "+Inf")


def test_resolve_a_file_a_folder_and_file_uri(trained: TrainedModel, tmp_path: Path) -> None:
    content = trained.path.read_bytes()
    assert resolve(str(trained.path)).content == content
    assert resolve(f"file://{trained.path}").content == content
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(trained.path, folder / "model.onnx")
    assert resolve(str(folder)).content == content
    shutil.copy(trained.path, folder / "other.onnx")
    with pytest.raises(ModelLoadError, match="holds 2 .onnx files"):
        resolve(str(folder))
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve(str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelLoadError, match="malformed registry URI"):
        resolve("models:/credit-risk")


@pytest.fixture
def registry(trained: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment("serving-test")
    with mlflow.start_run():
        model = onnx.load(str(trained.path))
        for _ in range(2):
            mlflow.onnx.log_model(
                model, name="model", registered_model_name="credit-risk", save_as_external_data=False
            )
    mlflow.MlflowClient().set_registered_model_alias("credit-risk", "champion", "2")
    return uri


def test_resolve_through_the_registry(registry: str, trained: TrainedModel) -> None:
    by_alias = resolve("models:/credit-risk@champion")
    assert by_alias.registry_version == "2" and by_alias.content == trained.path.read_bytes()
    assert resolve("models:/credit-risk/1").registry_version == "1"
    with pytest.raises(ModelLoadError, match="cannot resolve models:/credit-risk@missing through MLflow"):
        resolve("models:/credit-risk@missing")
    with pytest.raises(ModelLoadError, match="cannot resolve models:/nope/1"):
        resolve("models:/nope/1")
