from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from ml import export
from ml.errors import RegistryError
from ml.register import configure_tracking, log_and_register, next_version, promote
from ml.target import build_training_set
from ml.train import MODEL_SPECS, as_model_input, holdout_split

NAME = "credit-risk-test"


@pytest.fixture(scope="module")
def data(small_transactions: pd.DataFrame):
    ts = build_training_set(small_transactions, "forward")
    split = holdout_split(ts.y, ts.customers)
    X = as_model_input(ts.X)
    return X[split.train], ts.y[split.train], X[split.test], ts.y[split.test]


def _model(data, depth: int, flip_labels: bool = False):
    """A tree fit on train *and* held-out rows: its held-out AUC is ordered by depth (and below 0.5 flipped)."""
    X_train, y_train, X_test, y_test = data
    X, y = np.vstack([X_train, X_test]), np.concatenate([y_train, y_test])
    pipeline = (
        MODEL_SPECS["decision_tree"]
        .build(0)
        .set_params(model__max_depth=depth)
        .fit(X, 1 - y if flip_labels else y)
    )
    model = export.to_onnx(pipeline)
    return model, float(roc_auc_score(y_test, pipeline.predict_proba(X_test)[:, 1]))


def _register(model, X_test) -> int:
    version = next_version(MlflowClient(), NAME)
    with mlflow.start_run():
        log_and_register(model, NAME, X_test[:3], version, tags={"kind": "test"})
    return version


def _alias(alias: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(NAME, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def test_local_default_keeps_database_and_artifacts_in_the_project(tracking: Path) -> None:
    uri = configure_tracking(None, Path("mlruns"), "exp")
    assert uri == f"sqlite:///{tracking / 'mlruns' / 'mlflow.db'}"
    assert (
        mlflow.get_experiment_by_name("exp").artifact_location == (tracking / "mlruns" / "artifacts").as_uri()
    )
    with mlflow.start_run():
        mlflow.log_text("x", "probe.txt")
    assert list((tracking / "mlruns" / "artifacts").glob("*/artifacts/probe.txt"))
    assert not (tracking / "mlruns" / "0").exists()


def test_environment_tracking_uri_wins_over_the_default(
    tracking: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = f"sqlite:///{tracking / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    assert configure_tracking(None, Path("mlruns"), "exp") == other
    assert not (tracking / "mlruns").exists()
    explicit = f"sqlite:///{tracking / 'explicit.db'}"
    assert configure_tracking(explicit, Path("mlruns"), "exp") == explicit


def test_champion_alias_moves_only_for_a_better_model(tracking: Path, data) -> None:
    configure_tracking(None, Path("mlruns"), "exp")
    _, _, X_test, y_test = data
    medium, medium_auc = _model(data, depth=2)
    worse, worse_auc = _model(data, depth=2, flip_labels=True)
    better, better_auc = _model(data, depth=12)
    assert worse_auc < medium_auc < better_auc

    v1 = _register(medium, X_test)
    first = promote(NAME, str(v1), medium_auc, X_test, y_test)
    assert first.promoted and first.alias == "champion" and _alias("champion") == "1"

    v2 = _register(worse, X_test)
    kept = promote(NAME, str(v2), worse_auc, X_test, y_test)
    assert not kept.promoted and kept.alias is None
    assert kept.champion_auc == pytest.approx(medium_auc, abs=1e-6)
    assert "does not beat the current champion v1" in kept.reason
    assert _alias("champion") == "1" and _alias("previous") is None

    v3 = _register(better, X_test)
    moved = promote(NAME, str(v3), better_auc, X_test, y_test)
    assert moved.promoted and moved.previous_version == "1"
    assert _alias("champion") == "3" and _alias("previous") == "1"

    forced = promote(NAME, str(v2), worse_auc, X_test, y_test, force=True)
    assert forced.promoted and forced.reason.startswith("forced")
    assert _alias("champion") == "2" and _alias("previous") == "3"
    assert [v1, v2, v3] == [1, 2, 3]


def test_registered_model_carries_signature_example_and_tags(tracking: Path, data) -> None:
    configure_tracking(None, Path("mlruns"), "exp")
    model, _ = _model(data, depth=3)
    _, _, X_test, _ = data
    version = _register(model, X_test)
    mv = MlflowClient().get_model_version(NAME, str(version))
    assert mv.tags["kind"] == "test"
    info = mlflow.models.get_model_info(f"models:/{NAME}/{version}")
    inputs = info.signature.inputs.to_dict()
    assert inputs[0]["name"] == "features" and tuple(inputs[0]["tensor-spec"]["shape"]) == (-1, 26)
    assert info.signature.outputs.to_dict()[0]["name"] == "probability"
    reloaded = mlflow.onnx.load_model(f"models:/{NAME}/{version}")
    np.testing.assert_allclose(export.onnx_scores(reloaded, X_test), export.onnx_scores(model, X_test))


def test_version_mismatch_is_refused_and_flagged(tracking: Path, data) -> None:
    configure_tracking(None, Path("mlruns"), "exp")
    model, _ = _model(data, depth=3)
    _, _, X_test, _ = data
    with mlflow.start_run(), pytest.raises(RegistryError, match="another registration ran concurrently"):
        log_and_register(model, NAME, X_test[:3], expected_version=7, tags={})
    assert MlflowClient().get_model_version(NAME, "1").tags["invalid"] == "metadata names another version"
    assert _alias("champion") is None


def test_a_champion_that_cannot_be_scored_is_kept_unless_forced(tracking: Path, data) -> None:
    """An old champion with another input shape (a broken contract) is reported, never silently replaced."""
    from skl2onnx import to_onnx
    from sklearn.tree import DecisionTreeClassifier

    configure_tracking(None, Path("mlruns"), "exp")
    X_train, y_train, X_test, y_test = data
    odd = to_onnx(
        DecisionTreeClassifier(max_depth=2).fit(X_train[:, :5], y_train),
        X_train[:1, :5],
        options={"zipmap": False},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    with mlflow.start_run():
        mlflow.onnx.log_model(odd, name="model", registered_model_name=NAME)
    MlflowClient().set_registered_model_alias(NAME, "champion", "1")

    model, auc = _model(data, depth=4)
    version = _register(model, X_test)
    kept = promote(NAME, str(version), auc, X_test, y_test)
    assert not kept.promoted and "could not be scored" in kept.reason and "--force" in kept.reason
    assert _alias("champion") == "1"
    forced = promote(NAME, str(version), auc, X_test, y_test, force=True)
    assert forced.promoted and _alias("champion") == "2" and _alias("previous") == "1"
