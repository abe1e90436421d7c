from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import StandardScaler

from ml.errors import TargetError
from ml.observations import build_design
from ml.schema import CALENDAR_FEATURES, FEATURE_NAMES, MONOTONE_DIRECTIONS
from ml.train import (
    MODEL_SPECS,
    SEARCH_KINDS,
    Candidate,
    as_model_input,
    cv_folds,
    fit_weighted,
    linear_directions_ok,
    no_model_baselines,
    out_of_fold,
    refit,
    run_search,
    select_champion,
    transformed_names,
)


@pytest.fixture(scope="module")
def design():
    from ml.synthetic import SyntheticSpec, generate_transactions

    return build_design(generate_transactions(SyntheticSpec(rows=12_000, seed=7)), "forward")


@pytest.fixture(scope="module")
def training(design):
    t = design.train
    return as_model_input(t.X), t.y, t.weights, t.customers


def test_cv_folds_never_share_a_customer(training) -> None:
    X, y, _, customers = training
    folds = cv_folds(y, customers, 5, 42)
    assert len(folds) == 5
    for train, valid in folds:
        assert not set(customers[train]) & set(customers[valid])
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(len(y)))


def test_too_few_customers_of_a_class_is_a_clear_error() -> None:
    y = np.array([0] * 20 + [1] * 3)
    groups = np.array([f"c{i}" for i in range(20)] + ["p1", "p2", "p3"])
    with pytest.raises(TargetError, match="needs at least 5 customers of each class"):
        cv_folds(y, groups, 5, 0)


def test_no_pipeline_reads_the_calendar_and_only_the_linear_one_scales() -> None:
    for name, spec in MODEL_SPECS.items():
        pipeline = spec.build(0)
        scalers = [s for _, s in pipeline.steps if isinstance(s, StandardScaler)]
        first = pipeline.steps[0][1]
        assert isinstance(first, ColumnTransformer) and first.remainder == "drop"
        kept = {FEATURE_NAMES[i] for _, t, cols in first.transformers for i in cols if t != "drop"}
        assert kept == set(FEATURE_NAMES) - set(CALENDAR_FEATURES), name
        inner = [t for _, t, _ in first.transformers]
        assert (any(isinstance(t, StandardScaler) for t in inner) or bool(scalers)) == (
            name == "logistic_regression"
        )
    scaler = MODEL_SPECS["logistic_regression"].build(0).steps[0][1]
    scaled = {FEATURE_NAMES[i] for i in scaler.transformers[0][2]}
    assert "Amount" in scaled and "FraudResult" not in scaled and "ProductCategory_tv" not in scaled


@pytest.mark.parametrize("model_type", list(MODEL_SPECS))
@pytest.mark.parametrize("kind", SEARCH_KINDS)
def test_every_family_and_search_finds_signal(training, model_type: str, kind: str) -> None:
    X, y, weights, customers = training
    folds = cv_folds(y, customers, 3, 42)
    candidate = run_search(model_type, kind, X, y, weights, folds, n_iter=2, seed=42, n_jobs=1)
    assert candidate.model_type == model_type and candidate.search == kind and candidate.n_folds == 3
    expected = 2 if kind == "random" else np.prod([len(v) for v in MODEL_SPECS[model_type].grid.values()])
    assert candidate.n_candidates == expected
    assert 0.5 < candidate.cv_auc <= 1.0, "the planted relation is learnable"
    assert candidate.cv_results["mean_test_score"].max() == pytest.approx(candidate.cv_auc)
    proba = candidate.pipeline.predict_proba(X[:10])[:, 1]
    assert ((proba >= 0) & (proba <= 1)).all()
    again = refit(candidate, X, y, weights)
    assert again is not candidate.pipeline
    np.testing.assert_allclose(
        again.predict_proba(X)[:, 1], candidate.pipeline.predict_proba(X)[:, 1], atol=1e-6
    )


def test_cross_validation_scores_are_customer_weighted(training) -> None:
    """The CV score of a candidate is the weighted ROC-AUC of each validation fold (each customer once)."""
    from sklearn.metrics import roc_auc_score

    X, y, weights, customers = training
    folds = cv_folds(y, customers, 3, 42)
    candidate = run_search("logistic_regression", "grid", X, y, weights, folds, 1, 42, 1)
    best = candidate.best_params["C"]
    pipeline = MODEL_SPECS["logistic_regression"].build(42).set_params(model__C=best)
    by_hand = [
        roc_auc_score(y[v], fit_weighted(pipeline, X[t], y[t], weights[t]).predict_proba(X[v])[:, 1],
                      sample_weight=weights[v])
        for t, v in folds
    ]  # fmt: skip
    assert candidate.cv_auc == pytest.approx(np.mean(by_hand))


def test_training_weights_change_the_model(training) -> None:
    X, y, weights, _ = training
    pipeline = MODEL_SPECS["logistic_regression"].build(0)
    weighted = fit_weighted(pipeline, X, y, weights).predict_proba(X)[:, 1]
    plain = fit_weighted(pipeline, X, y, np.ones(len(y))).predict_proba(X)[:, 1]
    assert np.abs(weighted - plain).max() > 1e-3


@pytest.mark.parametrize("model_type", ["decision_tree", "random_forest", "xgboost", "lightgbm"])
def test_tree_families_hold_the_monotone_directions(training, model_type: str) -> None:
    X, y, weights, _ = training
    pipeline = fit_weighted(MODEL_SPECS[model_type].build(0), X, y, weights)
    rows = X[:100]
    for name, direction in MONOTONE_DIRECTIONS.items():
        j = FEATURE_NAMES.index(name)
        grid = np.quantile(X[:, j], np.linspace(0, 1, 15)).astype(np.float32)
        swept = np.repeat(rows, len(grid), axis=0)
        swept[:, j] = np.tile(grid, len(rows))
        curves = pipeline.predict_proba(swept)[:, 1].reshape(len(rows), len(grid))
        assert (np.diff(curves, axis=1) * direction >= -1e-12).all(), f"{model_type}: {name}"


def test_the_linear_model_is_checked_by_coefficient_sign(training) -> None:
    X, y, weights, _ = training
    pipeline = fit_weighted(MODEL_SPECS["logistic_regression"].build(0), X, y, weights)
    names = transformed_names(pipeline)
    coef = pipeline.steps[-1][1].coef_[0]
    expected = all(coef[names.index(f)] * d >= 0 for f, d in MONOTONE_DIRECTIONS.items())
    assert linear_directions_ok(pipeline) is expected
    pipeline.steps[-1][1].coef_[0][names.index("transaction_count")] = 5.0  # more activity, more risk
    assert not linear_directions_ok(pipeline)


def _candidate(model_type: str, auc: float, std: float = 0.02, ok: bool = True) -> Candidate:
    return Candidate(model_type, "grid", {}, auc, std, 4, 1, 0.0, pipeline=None, cv_results=pd.DataFrame(),
                     directions_ok=ok)  # fmt: skip


def test_selection_prefers_the_simpler_family_within_one_standard_error() -> None:
    # SE of the best = 0.02 / sqrt(4) = 0.01: the bar is 0.80 - 0.01 = 0.79.
    chosen, why = select_champion(
        [
            _candidate("xgboost", 0.80),
            _candidate("random_forest", 0.792),
            _candidate("logistic_regression", 0.785),
        ]
    )
    assert chosen.model_type == "random_forest" and "0.7900" in why
    chosen, _ = select_champion([_candidate("xgboost", 0.80), _candidate("logistic_regression", 0.791)])
    assert chosen.model_type == "logistic_regression"
    # Same complexity: the higher CV AUC.
    chosen, _ = select_champion([_candidate("xgboost", 0.795), _candidate("lightgbm", 0.80)])
    assert chosen.model_type == "lightgbm"


def test_selection_skips_candidates_that_break_a_direction() -> None:
    chosen, why = select_champion(
        [_candidate("logistic_regression", 0.85, ok=False), _candidate("xgboost", 0.80)]
    )
    assert chosen.model_type == "xgboost" and "logistic_regression/grid" in why
    with pytest.raises(TargetError, match="no candidate respects the monotone directions"):
        select_champion([_candidate("logistic_regression", 0.85, ok=False)])


def test_no_model_baselines_rank_the_riskier_higher() -> None:
    history = pd.DataFrame(
        {"days_since_previous": [np.nan, 1.0, 30.0], "history_count": [1, 5, 2], "history_value": [1, 2, 3]}
    )
    rules = no_model_baselines(history)
    gap = rules["days since previous transaction"]
    assert gap.tolist() == [31.0, 1.0, 30.0]  # a first transaction ranks as the longest gap
    assert (np.argsort(rules["transaction count"]) == [1, 2, 0]).all()  # fewer transactions: riskier


def test_out_of_fold_scores_never_come_from_a_model_that_saw_the_row(training) -> None:
    X, y, weights, customers = training
    folds = cv_folds(y, customers, 3, 0)

    class Recorder:  # scores every row with the number of rows it was fit on
        def __init__(self, rows: np.ndarray) -> None:
            self.rows = rows

        def predict_proba(self, Z: np.ndarray) -> np.ndarray:
            return np.column_stack([np.zeros(len(Z)), np.full(len(Z), len(self.rows))])

    scores = out_of_fold(lambda Xf, yf, wf: Recorder(Xf), X, y, weights, folds)
    for fit_rows, score_rows in folds:
        assert (scores[score_rows] == len(fit_rows)).all()
