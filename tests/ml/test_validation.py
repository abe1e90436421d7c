from __future__ import annotations

import pytest

from ml.evaluate import CustomerBootstrap
from ml.observations import build_design
from ml.schema import FEATURE_NAMES
from ml.synthetic import SyntheticSpec, generate_transactions
from ml.train import MODEL_SPECS, as_model_input, cv_folds, fit_weighted
from ml.validation import (
    baselines,
    best_rule,
    first_history,
    label_sensitivity,
    leakage_audit,
    population_stability,
    time_of_day_effects,
)


@pytest.fixture(scope="module")
def transactions():
    return generate_transactions(SyntheticSpec(rows=12_000, seed=7))


def _evidence(design):
    train, test = design.train, design.test
    folds = cv_folds(train.y, train.customers, 3, 0)
    pipeline = MODEL_SPECS["lightgbm"].build(0).set_params(model__num_leaves=4, model__learning_rate=0.03)
    model = fit_weighted(pipeline, as_model_input(train.X), train.y, train.weights)
    scores = model.predict_proba(as_model_input(test.X))[:, 1]
    boot = CustomerBootstrap(test.y, test.customers, test.weights, n_samples=100, seed=0)
    return model, scores, folds, boot


@pytest.fixture(scope="module")
def forward(transactions):
    design = build_design(transactions, "forward")
    return design, *_evidence(design)


def test_the_audit_flags_the_circular_label_and_not_the_forecast(transactions, forward) -> None:
    design, _, scores, folds, boot = forward
    model_auc = boot.auc(scores).estimate
    honest = leakage_audit(design, model_auc, boot, folds, seed=0)
    assert [r.route for r in honest] == [
        "label inputs (recency, frequency, Value)",
        "calendar (day, month, year, week)",
    ]
    assert not any(r.flagged for r in honest), [(r.route, r.ratio) for r in honest]
    calendar = honest[1]
    assert calendar.comparator.test_auc.estimate < 0.6, "out of time, the calendar predicts nothing"

    circular = build_design(transactions, "same-window")
    _, c_scores, c_folds, c_boot = _evidence(circular)
    routes = leakage_audit(circular, c_boot.auc(c_scores).estimate, c_boot, c_folds, seed=0)
    assert any(r.flagged for r in routes), [(r.route, r.ratio) for r in routes]
    for r in routes:
        assert r.flagged == (r.ratio >= 0.95)


def test_baselines_are_scored_in_time_and_on_the_test_split(forward) -> None:
    design, _, scores, folds, boot = forward
    comparators = baselines(design, boot, folds, seed=0)
    names = [c.name for c in comparators]
    assert names == [
        "days since previous transaction",
        "transaction count",
        "logistic regression (default settings)",
    ]
    for c in comparators:
        assert 0 < c.in_time_auc < 1 and c.test_auc.low <= c.test_auc.estimate <= c.test_auc.high
        assert len(c.scores) == len(design.test)
    rule = best_rule(comparators)
    assert rule.kind == "no-model rule"
    assert rule.test_auc.estimate == max(c.test_auc.estimate for c in comparators[:2])
    assert boot.auc(scores).estimate > rule.test_auc.estimate


def test_stability_covers_the_score_and_every_feature(forward) -> None:
    design, model, scores, _, _ = forward
    train_scores = model.predict_proba(as_model_input(design.train.X))[:, 1]
    table = population_stability(design.train, design.test, train_scores, scores).set_index("input")
    assert len(table) == 27 and table.index[0] == "score"
    assert table.loc["transaction_week", "psi"] > 1, "weeks of the test window are not in training"
    assert table.loc["CountryCode", "psi"] == 0.0


def test_label_sensitivity_compares_k_and_horizon_variants(forward) -> None:
    design = forward[0]
    table = label_sensitivity(design, [2, 3, 4, 5], [14, 30, 45], 3, 30, 0, 0.02)
    assert list(zip(table["k"], table["horizon_days"], strict=True)) == [
        (2, 30),
        (3, 30),
        (4, 30),
        (5, 30),
        (3, 14),
        (3, 45),
    ]
    default = table[table["default"]]
    assert len(default) == 1 and default["agreement_with_default"].iloc[0] == 1.0
    assert table["agreement_with_default"].between(0, 1).all()


def test_customers_with_no_history_are_reported(forward) -> None:
    design, _, scores, _, _ = forward
    report = first_history(design.test, scores, 0.3, 0.6)
    first = design.test.history["history_count"].to_numpy() == 1
    assert report["observations"] == int(first.sum()) > 0
    assert report["bands"]["observations"].sum() == report["observations"]


def test_time_of_day_effects_span_every_hour_and_weekday(forward) -> None:
    design, model, _, _, _ = forward
    rows = as_model_input(design.test.X)[:300]
    effects = time_of_day_effects(model, rows, max_rows=300)  # no sampling: all 300 rows
    assert effects.groupby("feature").size().to_dict() == {"transaction_dayofweek": 7, "transaction_hour": 24}
    at_three = rows.copy()
    at_three[:, FEATURE_NAMES.index("transaction_hour")] = 3.0
    expected = model.predict_proba(at_three)[:, 1].mean()
    got = effects.query("feature == 'transaction_hour' and value == 3")["mean_score"].iloc[0]
    assert got == pytest.approx(expected, abs=1e-6)
