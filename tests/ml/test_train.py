from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import StandardScaler

from ml.errors import TargetError
from ml.schema import FEATURE_NAMES
from ml.target import build_training_set
from ml.train import (
    MODEL_SPECS,
    SEARCH_KINDS,
    as_model_input,
    cv_folds,
    holdout_split,
    leakage_audit_auc,
    refit,
    run_search,
)


@pytest.fixture(scope="module")
def forward(small_transactions: pd.DataFrame):
    return build_training_set(small_transactions, "forward")


def test_holdout_split_is_grouped_stratified_and_reproducible(forward) -> None:
    split = holdout_split(forward.y, forward.customers, test_size=0.2, seed=42)
    train, test = set(forward.customers[split.train]), set(forward.customers[split.test])
    assert not train & test
    assert len(split.train) + len(split.test) == len(forward.y)
    assert 0.1 < len(split.test) / len(forward.y) < 0.3
    assert abs(forward.y[split.test].mean() - forward.y.mean()) < 0.1
    again = holdout_split(forward.y, forward.customers, test_size=0.2, seed=42)
    assert np.array_equal(split.test, again.test)


def test_cv_folds_never_share_a_customer(forward) -> None:
    folds = cv_folds(forward.y, forward.customers, 5, 42)
    assert len(folds) == 5
    for train, valid in folds:
        assert not set(forward.customers[train]) & set(forward.customers[valid])
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(len(forward.y)))


def test_too_few_customers_of_a_class_is_a_clear_error() -> None:
    y = np.array([0] * 20 + [1] * 3)
    groups = np.array([f"c{i}" for i in range(20)] + ["p1", "p2", "p3"])
    with pytest.raises(TargetError, match="at least 5 customers of each class"):
        holdout_split(y, groups)


def test_only_the_linear_pipeline_scales() -> None:
    for name, spec in MODEL_SPECS.items():
        pipeline = spec.build(0)
        scalers = [s for _, s in pipeline.steps if isinstance(s, ColumnTransformer | StandardScaler)]
        assert bool(scalers) == (name == "logistic_regression"), name
    scaler = MODEL_SPECS["logistic_regression"].build(0).steps[0][1]
    scaled = {FEATURE_NAMES[i] for i in scaler.transformers[0][2]}
    assert "Amount" in scaled and "FraudResult" not in scaled and "ProductCategory_tv" not in scaled


@pytest.mark.parametrize("model_type", list(MODEL_SPECS))
@pytest.mark.parametrize("kind", SEARCH_KINDS)
def test_every_family_and_search_finds_signal(forward, model_type: str, kind: str) -> None:
    X = as_model_input(forward.X)
    folds = cv_folds(forward.y, forward.customers, 3, 42)
    candidate = run_search(model_type, kind, X, forward.y, folds, n_iter=2, seed=42, n_jobs=1)
    assert candidate.model_type == model_type and candidate.search == kind
    expected = 2 if kind == "random" else np.prod([len(v) for v in MODEL_SPECS[model_type].grid.values()])
    assert candidate.n_candidates == expected
    assert 0.5 < candidate.cv_auc <= 1.0, "the planted relation is learnable"
    assert candidate.cv_results["mean_test_score"].max() == pytest.approx(candidate.cv_auc)
    proba = candidate.pipeline.predict_proba(X[:10])[:, 1]
    assert ((proba >= 0) & (proba <= 1)).all()
    clone = refit(candidate, X, forward.y)
    assert clone is not candidate.pipeline
    assert clone.get_params()["model"].get_params() == candidate.pipeline.get_params()["model"].get_params()


def test_as_model_input_orders_columns_and_casts(forward) -> None:
    shuffled = forward.X[list(reversed(FEATURE_NAMES))]
    X = as_model_input(shuffled)
    assert X.dtype == np.float32 and X.shape == (len(forward.X), 26)
    assert np.array_equal(X, forward.X.to_numpy(dtype=np.float32))


def test_leakage_audit_exposes_the_circular_label(small_transactions: pd.DataFrame) -> None:
    aucs = {}
    for mode in ("same-window", "forward"):
        ts = build_training_set(small_transactions, mode)
        split = holdout_split(ts.y, ts.customers)
        aucs[mode] = leakage_audit_auc(
            ts.X.iloc[split.train], ts.y[split.train], ts.X.iloc[split.test], ts.y[split.test], 42
        )
    assert aucs["same-window"] > aucs["forward"]
