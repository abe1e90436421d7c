from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from ml import export
from ml.errors import RegistryError
from ml.evaluate import CustomerBootstrap, Interval
from ml.gate import Challenger
from ml.observations import build_design
from ml.register import configure_tracking, log_and_register, next_version, promote
from ml.train import MODEL_SPECS, as_model_input

NAME = "credit-risk-test"
DESIGN = "application-point-v2/horizon-30d/oot-14d/k3"


@pytest.fixture(scope="module")
def data(small_transactions: pd.DataFrame):
    design = build_design(small_transactions, "forward")
    train, test = design.train, design.test
    return as_model_input(train.X), train.y, as_model_input(test.X), test.y, test.customers, test.weights


def _model(data, depth: int, flip_labels: bool = False):
    """A tree fit on train *and* test rows: its test AUC is ordered by depth (and below 0.5 flipped)."""
    X_train, y_train, X_test, y_test, _, _ = data
    X, y = np.vstack([X_train, X_test]), np.concatenate([y_train, y_test])
    pipeline = (
        MODEL_SPECS["decision_tree"]
        .build(0)
        .set_params(model__max_depth=depth, model__monotonic_cst=None)
        .fit(X, 1 - y if flip_labels else y)
    )
    return export.to_onnx(pipeline)


def _register(model, X_test, design: str = DESIGN, mode: str = "forward") -> str:
    version = next_version(MlflowClient(), NAME)
    with mlflow.start_run():
        log_and_register(
            model, NAME, X_test[:3], version, tags={"target_mode": mode, "observation_design": design}
        )
    return str(version)


def _promote(data, model, version: str, force: bool = False, mode: str = "forward", design: str = DESIGN):
    _, _, X_test, y_test, customers, weights = data
    bootstrap = CustomerBootstrap(y_test, customers, weights, n_samples=200, seed=0)
    scores = export.onnx_scores(model, X_test)
    challenger = Challenger(
        version, mode, design, bootstrap.auc(scores), "transaction count", Interval(0.5, 0.45, 0.55)
    )
    return promote(NAME, version, challenger, scores, X_test, bootstrap, force=force)


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


def test_champion_alias_moves_only_for_a_significantly_better_model(tracking: Path, data) -> None:
    configure_tracking(None, Path("mlruns"), "exp")
    X_test = data[2]
    medium, better = _model(data, depth=2), _model(data, depth=12)

    v1 = _register(medium, X_test)
    first = _promote(data, medium, v1)
    assert first.promoted and first.alias == "champion" and first.decision.rule == "first"
    assert _alias("champion") == "1"

    v2 = _register(medium, X_test)  # the same model again: no improvement, the interval is [0, 0]
    kept = _promote(data, medium, v2)
    assert not kept.promoted and kept.alias is None and kept.decision.rule == "not better"
    assert kept.decision.tags["gate.difference_interval"] == "[0.000000, 0.000000]"
    assert _alias("champion") == "1" and _alias("previous") is None

    v3 = _register(better, X_test)
    moved = _promote(data, better, v3)
    assert moved.promoted and moved.decision.rule == "better" and moved.previous_version == "1"
    assert float(moved.decision.tags["gate.difference_interval"].strip("[]").split(",")[0]) > 0
    assert _alias("champion") == "3" and _alias("previous") == "1"
    # The decision is on the model version, for an auditor.
    tags = MlflowClient().get_model_version(NAME, "3").tags
    assert tags["gate.decision"] == "promoted" and tags["gate.champion_version"] == "1"

    forced = _promote(data, medium, v2, force=True)
    assert forced.promoted and "forced with --force" in forced.reason
    assert _alias("champion") == "2" and _alias("previous") == "3"


def test_a_same_window_model_is_registered_but_never_champion(tracking: Path, data) -> None:
    configure_tracking(None, Path("mlruns"), "exp")
    X_test = data[2]
    model = _model(data, depth=12)
    v1 = _register(model, X_test)
    assert _promote(data, _model(data, depth=2), v1).promoted
    v2 = _register(model, X_test, design="same-window-v2/k3", mode="same-window")
    kept = _promote(data, model, v2, force=True, mode="same-window", design="same-window-v2/k3")
    assert not kept.promoted and kept.decision.rule == "diagnostic"
    assert _alias("champion") == "1"
    assert MlflowClient().get_model_version(NAME, v2).tags["gate.decision"] == "kept"


def test_a_champion_of_another_design_is_not_compared(tracking: Path, data) -> None:
    configure_tracking(None, Path("mlruns"), "exp")
    X_test = data[2]
    old = _model(data, depth=2)
    v1 = _register(old, X_test, design="cutoff-v1")  # an older observation design
    MlflowClient().set_registered_model_alias(NAME, "champion", v1)
    new = _model(data, depth=12)
    v2 = _register(new, X_test)
    kept = _promote(data, new, v2)
    assert not kept.promoted and kept.decision.rule == "not comparable" and "cutoff-v1" in kept.reason
    assert _alias("champion") == "1"


def test_registered_model_carries_signature_example_and_tags(tracking: Path, data) -> None:
    configure_tracking(None, Path("mlruns"), "exp")
    model = _model(data, depth=3)
    X_test = data[2]
    version = _register(model, X_test)
    mv = MlflowClient().get_model_version(NAME, version)
    assert mv.tags["observation_design"] == DESIGN
    info = mlflow.models.get_model_info(f"models:/{NAME}/{version}")
    inputs = info.signature.inputs.to_dict()
    assert inputs[0]["name"] == "features" and tuple(inputs[0]["tensor-spec"]["shape"]) == (-1, 26)
    assert info.signature.outputs.to_dict()[0]["name"] == "probability"
    reloaded = mlflow.onnx.load_model(f"models:/{NAME}/{version}")
    np.testing.assert_allclose(export.onnx_scores(reloaded, X_test), export.onnx_scores(model, X_test))


def test_version_mismatch_is_refused_and_flagged(tracking: Path, data) -> None:
    configure_tracking(None, Path("mlruns"), "exp")
    model = _model(data, depth=3)
    X_test = data[2]
    with mlflow.start_run(), pytest.raises(RegistryError, match="another registration ran concurrently"):
        log_and_register(model, NAME, X_test[:3], expected_version=7, tags={})
    assert MlflowClient().get_model_version(NAME, "1").tags["invalid"] == "metadata names another version"
    assert _alias("champion") is None


def test_a_champion_that_cannot_be_scored_is_kept_unless_forced(tracking: Path, data) -> None:
    """An old champion with another input shape (a broken contract) is reported, never silently replaced."""
    from skl2onnx import to_onnx
    from sklearn.tree import DecisionTreeClassifier

    configure_tracking(None, Path("mlruns"), "exp")
    X_train, y_train, X_test = data[0], data[1], data[2]
    odd = to_onnx(
        DecisionTreeClassifier(max_depth=2).fit(X_train[:, :5], y_train),
        X_train[:1, :5],
        options={"zipmap": False},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    with mlflow.start_run():
        mlflow.onnx.log_model(odd, name="model", registered_model_name=NAME)
    client = MlflowClient()
    client.set_model_version_tag(NAME, "1", "target_mode", "forward")
    client.set_model_version_tag(NAME, "1", "observation_design", DESIGN)
    client.set_registered_model_alias(NAME, "champion", "1")

    model = _model(data, depth=4)
    version = _register(model, X_test)
    kept = _promote(data, model, version)
    assert not kept.promoted and kept.decision.rule == "champion unscorable" and "--force" in kept.reason
    assert _alias("champion") == "1"
    forced = _promote(data, model, version, force=True)
    assert forced.promoted and _alias("champion") == "2" and _alias("previous") == "1"
