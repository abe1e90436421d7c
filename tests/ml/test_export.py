from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest

from ml import export
from ml.errors import ExportParityError
from ml.features import build_features
from ml.observations import build_design
from ml.schema import CALENDAR_FEATURES, FEATURE_NAMES
from ml.train import MODEL_SPECS, as_model_input, fit_weighted


@pytest.fixture(scope="module")
def design(small_transactions: pd.DataFrame):
    return build_design(small_transactions, "forward")


@pytest.fixture(scope="module")
def data(design) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return as_model_input(design.train.X), design.train.y, as_model_input(design.test.X), design.test.y


@pytest.fixture(scope="module")
def fitted(design, data) -> dict[str, tuple[object, object]]:
    """Every family fit with customer weights and exported: (pipeline, ONNX model)."""
    X_train, y_train, _, _ = data
    out = {}
    for name, spec in MODEL_SPECS.items():
        pipeline = fit_weighted(spec.build(42), X_train, y_train, design.train.weights)
        out[name] = (pipeline, export.to_onnx(pipeline))
    return out


@pytest.mark.parametrize("model_type", list(MODEL_SPECS))
def test_every_family_exports_to_one_graph_with_parity(data, fitted, model_type: str) -> None:
    _, _, X_test, _ = data
    pipeline, model = fitted[model_type]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    (out,) = sess.get_outputs()
    assert (inp.name, inp.type, inp.shape[1]) == ("features", "tensor(float)", 26)
    assert (out.name, out.type, len(out.shape)) == ("probability", "tensor(float)", 1)
    diff = export.check_parity(pipeline, model, X_test, tolerance=1e-5)
    assert diff <= 1e-5
    got = sess.run(None, {"features": X_test})[0]
    assert got.shape == (len(X_test),)
    np.testing.assert_allclose(got, pipeline.predict_proba(X_test)[:, 1], atol=1e-5)


def _redated(transactions: pd.DataFrame, days: int) -> pd.DataFrame:
    """The same transactions moved by ``days`` (a whole number of weeks: hour and weekday unchanged)."""
    moved = transactions.copy()
    moved["TransactionStartTime"] = moved["TransactionStartTime"] + pd.Timedelta(days=days)
    return moved


@pytest.mark.parametrize("model_type", list(MODEL_SPECS))
def test_redating_the_held_out_rows_changes_no_exported_score(design, fitted, model_type: str) -> None:
    """The validator's test: the same out-of-time transactions re-dated by months and years (whole weeks, so
    hour and day of week stay) get exactly the same scores from the exported graph."""
    _, model = fitted[model_type]
    rows = design.test.rows
    original = as_model_input(build_features(design.transactions).iloc[rows])
    base = export.onnx_scores(model, original)
    for days in (
        7 * 13,
        7 * 26,
        7 * 52,
        7 * 52 * 3 + 7 * 9,
    ):  # 3 months, 6 months, a year, 3 years and 2 months
        moved = as_model_input(build_features(_redated(design.transactions, days)).iloc[rows])
        changed = [FEATURE_NAMES[j] for j in np.flatnonzero((moved != original).any(axis=0))]
        assert set(changed) <= set(CALENDAR_FEATURES) and {"transaction_year", "transaction_month"} & set(
            changed
        )
        assert np.array_equal(export.onnx_scores(model, moved), base), f"{model_type}: {days} days later"
    assert export.check_ignored(model, original) == 0.0


def test_a_graph_that_reads_the_calendar_fails_the_export(data) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    X_train, _, X_test, _ = data
    late_in_the_month = (X_train[:, FEATURE_NAMES.index("transaction_day")] > 15).astype(int)
    tree = Pipeline([("model", DecisionTreeClassifier(max_depth=2, random_state=0))]).fit(
        X_train, late_in_the_month
    )
    with pytest.raises(ExportParityError, match="reads transaction_day, transaction_month"):
        export.check_ignored(export.to_onnx(tree), X_test)


@pytest.mark.parametrize("model_type", ["decision_tree", "random_forest", "xgboost", "lightgbm"])
def test_exported_trees_hold_the_monotone_directions(data, fitted, model_type: str) -> None:
    _, _, X_test, _ = data
    worst = export.check_directions(fitted[model_type][1], X_test[:200])
    assert worst == {"transaction_count": 0.0, "total_transaction_amount": 0.0}


def test_a_graph_against_a_direction_fails_the_export(data) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    X_train, _, X_test, _ = data
    count = X_train[:, FEATURE_NAMES.index("transaction_count")]
    more_activity_more_risk = (count > np.median(count)).astype(int)
    tree = Pipeline([("model", DecisionTreeClassifier(max_depth=2, random_state=0))]).fit(
        X_train, more_activity_more_risk
    )
    with pytest.raises(ExportParityError, match=r"breaks the monotone direction of transaction_count \(-1\)"):
        export.check_directions(export.to_onnx(tree), X_test[:100])


def test_parity_failure_stops_the_export(data) -> None:
    X_train, y_train, X_test, _ = data
    exported = MODEL_SPECS["decision_tree"].build(42).set_params(model__max_depth=3).fit(X_train, y_train)
    other = MODEL_SPECS["decision_tree"].build(42).set_params(model__max_depth=6).fit(X_train, y_train)
    with pytest.raises(
        ExportParityError, match=r"max \|diff\| .* > tolerance 1e-05 .*Nothing was registered"
    ):
        export.check_parity(other, export.to_onnx(exported), X_test)


def test_score_reference_uses_fixed_right_closed_bins() -> None:
    scores = np.array([0.0, 0.1, 0.1000001, 0.55, 0.95, 1.0])
    ref = export.score_reference(scores, n_bins=10)
    assert ref["edges"] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert len(ref["proportions"]) == 10 and sum(ref["proportions"]) == pytest.approx(1.0)
    assert ref["proportions"][0] == pytest.approx(2 / 6)  # 0.0 and 0.1 (an edge belongs to the bin below)
    assert ref["proportions"][1] == pytest.approx(1 / 6)
    assert ref["proportions"][-1] == pytest.approx(2 / 6)
    assert ref["count"] == 6


def test_feature_reference_covers_every_feature(data) -> None:
    _, _, X_test, _ = data
    ref = export.feature_reference(X_test, n_bins=10)
    assert list(ref) == list(FEATURE_NAMES)
    assert ref["CountryCode"] == {"edges": [], "proportions": [1.0]}  # constant: a single bin
    for name, entry in ref.items():
        assert entry["edges"] == sorted(set(entry["edges"])), name
        assert len(entry["proportions"]) == len(entry["edges"]) + 1
        assert sum(entry["proportions"]) == pytest.approx(1.0)
        assert min(entry["proportions"]) > 0, f"{name}: every reference bin holds data"
    amount = ref["Amount"]
    assert len(amount["edges"]) >= 5
    # Binning the reference rows again with the documented rule reproduces the proportions.
    column = X_test[:, FEATURE_NAMES.index("Amount")].astype(np.float64)
    bins = np.searchsorted(amount["edges"], column, side="left")
    assert np.bincount(bins, minlength=len(amount["edges"]) + 1) / len(column) == pytest.approx(
        amount["proportions"]
    )


def _metadata(version: str = "3") -> dict[str, object]:
    return {
        "feature_names": list(FEATURE_NAMES),
        "model_name": "credit-risk",
        "model_version": version,
        "model_type": "decision_tree",
        "target_mode": "forward",
        "data_digest": "abc",
        "trained_at": "2026-11-26T00:00:00+00:00",
        "threshold": 0.5,
        "risk_bands": {"low_below": 0.3, "high_above": 0.6},
        "metrics": {"heldout_roc_auc": 0.8},
        "score_reference": {"edges": [0.5], "proportions": [0.7, 0.3], "count": 10},
        "feature_reference": {"Amount": {"edges": [], "proportions": [1.0]}},
        "observation_design": "application-point-v2/horizon-30d/oot-14d/k3",
        "ignored_features": list(CALENDAR_FEATURES),
        "monotone_directions": {"transaction_count": -1, "total_transaction_amount": -1},
    }


def test_metadata_round_trips_through_a_saved_file(data, tmp_path: Path) -> None:
    X_train, y_train, _, _ = data
    model = export.to_onnx(MODEL_SPECS["decision_tree"].build(0).fit(X_train, y_train))
    export.attach_metadata(model, _metadata())
    path = export.save(model, tmp_path / "nested" / "m.onnx")
    loaded = onnx.load(str(path))
    assert export.read_metadata(loaded) == _metadata()
    assert loaded.model_version == 3
    # What the predictor reads: onnxruntime's custom metadata map, JSON per key.
    meta = (
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        .get_modelmeta()
        .custom_metadata_map
    )
    assert json.loads(meta["feature_names"]) == list(FEATURE_NAMES)
    assert json.loads(meta["risk_bands"]) == {"low_below": 0.3, "high_above": 0.6}
    assert not list(tmp_path.glob("**/*.tmp"))


def test_metadata_keys_are_checked(data) -> None:
    X_train, y_train, _, _ = data
    model = export.to_onnx(MODEL_SPECS["decision_tree"].build(0).fit(X_train, y_train))
    incomplete = _metadata()
    del incomplete["risk_bands"]
    with pytest.raises(ValueError, match=r"missing \['risk_bands'\]"):
        export.attach_metadata(model, incomplete)
