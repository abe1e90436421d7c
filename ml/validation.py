"""The evidence a model-validation team asks for, computed from a design and a fitted champion.

Baselines with nothing (or little) fitted, the leakage audit, population stability from training to the
test window, the label's sensitivity to its own choices, the band table, how customers with no history are
scored, and the effect of the time-of-day inputs the model may read. Pure functions over
:class:`ml.observations.Design`; the job logs and reports what they return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.inspection import partial_dependence
from sklearn.pipeline import Pipeline

from ml.evaluate import CustomerBootstrap, Interval, band_table, stability
from ml.observations import Design, Observations, customer_weights
from ml.schema import FEATURE_NAMES, TIME_COLUMN
from ml.target import compute_rfm, fit_proxy_label, outcome_rfm
from ml.train import (
    AUDIT_ROUTES,
    as_model_input,
    audit_columns,
    audit_model,
    baseline_logistic,
    no_model_baselines,
    out_of_fold,
    weighted_auc,
)


@dataclass(frozen=True)
class Comparator:
    """A baseline or audit route scored like the champion: in time (on training data) and on the test split."""

    name: str
    kind: str  # "no-model rule", "simple model", or an audit route
    in_time_auc: float  # per customer on the training split; a fitted comparator out of fold (grouped CV)
    test_auc: Interval  # per customer, with the bootstrap interval
    test_auc_per_transaction: float
    scores: np.ndarray  # on the test rows


def baselines(design: Design, bootstrap: CustomerBootstrap, folds: list, seed: int) -> list[Comparator]:
    """Days since the previous transaction and transaction count (rules), and a plain logistic regression."""
    train, test = design.train, design.test
    out = []
    train_rules, test_rules = no_model_baselines(train.history), no_model_baselines(test.history)
    for name, test_scores in test_rules.items():
        out.append(
            Comparator(
                name,
                "no-model rule",
                weighted_auc(train.y, train_rules[name], train.weights),
                bootstrap.auc(test_scores),
                weighted_auc(test.y, test_scores, None),
                test_scores,
            )
        )
    X_train, X_test = as_model_input(train.X), as_model_input(test.X)

    def fit(X, y, w):
        return baseline_logistic(X, y, w, seed)

    test_scores = fit(X_train, train.y, train.weights).predict_proba(X_test)[:, 1]
    in_time = out_of_fold(fit, X_train, train.y, train.weights, folds)
    out.append(
        Comparator(
            "logistic regression (default settings)",
            "simple model",
            weighted_auc(train.y, in_time, train.weights),
            bootstrap.auc(test_scores),
            weighted_auc(test.y, test_scores, None),
            test_scores,
        )
    )
    return out


def best_rule(comparators: list[Comparator]) -> Comparator:
    """The strongest no-model rule on the test split (per customer): the bar a champion must clear."""
    return max((c for c in comparators if c.kind == "no-model rule"), key=lambda c: c.test_auc.estimate)


@dataclass(frozen=True)
class AuditRoute:
    route: str
    columns: tuple[str, ...]
    comparator: Comparator
    ratio: float  # audit AUC / model AUC, per customer on the test split
    flagged: bool


def leakage_audit(
    design: Design,
    model_auc: float,
    bootstrap: CustomerBootstrap,
    folds: list,
    seed: int,
    flag_ratio: float = 0.95,
) -> list[AuditRoute]:
    """A flexible model fed only one route to the label: the label's own inputs (recency, frequency,
    Value-based monetary as known at the transaction) or the calendar. Flagged when a route reaches
    ``flag_ratio`` of the model's per-customer AUC: the label is then being re-read rather than predicted."""
    train, test = design.train, design.test
    routes = []

    def fit(X, y, w):
        return audit_model(seed).fit(X, y, sample_weight=w)

    for route, columns in AUDIT_ROUTES.items():
        X_train = audit_columns(train.X, train.history, route)
        scores = fit(X_train, train.y, train.weights).predict_proba(
            audit_columns(test.X, test.history, route)
        )[:, 1]
        in_time = out_of_fold(fit, X_train, train.y, train.weights, folds)
        comparator = Comparator(
            route,
            "leakage audit",
            weighted_auc(train.y, in_time, train.weights),
            bootstrap.auc(scores),
            weighted_auc(test.y, scores, None),
            scores,
        )
        ratio = comparator.test_auc.estimate / model_auc if model_auc > 0 else float("nan")
        routes.append(AuditRoute(route, tuple(columns), comparator, ratio, bool(ratio >= flag_ratio)))
    return routes


def population_stability(
    train: Observations,
    test: Observations,
    train_scores: np.ndarray,
    test_scores: np.ndarray,
    n_bins: int = 10,
) -> pd.DataFrame:
    """PSI from the training split to the test split, for the score and every feature (training deciles as
    bins, per transaction — how the predictor's drift gauges count)."""
    rows = [{"input": "score", "psi": stability(train_scores, test_scores, n_bins)}]
    X_train, X_test = as_model_input(train.X), as_model_input(test.X)
    for j, name in enumerate(FEATURE_NAMES):
        rows.append({"input": name, "psi": stability(X_train[:, j], X_test[:, j], n_bins)})
    frame = pd.DataFrame(rows)
    frame["level"] = pd.cut(
        frame["psi"],
        [-np.inf, 0.1, 0.25, np.inf],
        labels=["stable (< 0.1)", "watch (0.1–0.25)", "shift (> 0.25)"],
    )
    return frame


def label_sensitivity(
    design: Design,
    ks: list[int],
    horizons: list[int],
    default_k: int,
    default_horizon: int,
    seed: int,
    min_high_risk_share: float,
) -> pd.DataFrame:
    """Re-label the training examples with other choices (cluster count k; horizon, forward only) and compare
    with the default label: the customer-weighted share of examples labelled the same, and the high-risk
    share. A label that flips under small changes of its own definition is a fragile target."""
    train, tx = design.train, design.transactions
    rows = []
    variants = [(k, default_horizon) for k in ks]
    if design.mode == "forward":
        variants += [(default_k, h) for h in horizons if h != default_horizon]
    for k, horizon in variants:
        try:
            if design.mode == "forward":
                rfm = outcome_rfm(tx, horizon).iloc[train.rows]
                label = fit_proxy_label(rfm, customer_weights(train.customers), k, seed, min_high_risk_share)
                y = label.assign(rfm)
            else:
                snapshot = tx[TIME_COLUMN].max() + pd.Timedelta(days=1)
                rfm = compute_rfm(tx, snapshot)
                label = fit_proxy_label(rfm, None, k, seed, min_high_risk_share)
                y = pd.Series(label.assign(rfm), index=rfm.index).reindex(train.customers).to_numpy()
            agreement = float(np.average(y == train.y, weights=train.weights))
            share, note = float(np.average(y, weights=train.weights)), ""
        except Exception as exc:  # a variant that cannot be clustered is a finding, not a crash
            agreement, share, note = float("nan"), float("nan"), str(exc).split(".")[0]
        rows.append(
            {
                "k": k,
                "horizon_days": horizon if design.mode == "forward" else "whole period",
                "default": k == default_k and horizon == default_horizon,
                "agreement_with_default": agreement,
                "high_risk_share": share,
                "note": note,
            }
        )
    return pd.DataFrame(rows)


def first_history(
    test: Observations, scores: np.ndarray, low_below: float, high_above: float
) -> dict[str, object]:
    """How customers with no prior history (their first transaction in the data) are scored."""
    first = test.history["history_count"].to_numpy() == 1
    out: dict[str, object] = {
        "observations": int(first.sum()),
        "share_of_test_observations": float(first.mean()) if len(first) else 0.0,
        "customers": int(pd.unique(test.customers[first]).size),
    }
    if first.any():
        out["bands"] = band_table(
            test.y[first], scores[first], test.customers[first], low_below, high_above, test.weights[first]
        )
        out["observed_high_risk_rate"] = float(np.average(test.y[first], weights=test.weights[first]))
        out["mean_score"] = float(np.average(scores[first], weights=test.weights[first]))
        both = len(np.unique(test.y[first])) == 2
        out["roc_auc"] = weighted_auc(test.y[first], scores[first], test.weights[first]) if both else None
    return out


def time_of_day_effects(
    pipeline: Pipeline, X: np.ndarray, max_rows: int = 2_000, seed: int = 0
) -> pd.DataFrame:
    """Partial dependence of the score on the hour and the day of week (the time inputs the model may read):
    the mean score of the test rows with that input set to each value."""
    X = np.asarray(X, dtype=np.float32)
    if len(X) > max_rows:
        X = X[np.random.default_rng(seed).choice(len(X), max_rows, replace=False)]
    rows = []
    for name, values in (("transaction_hour", np.arange(24)), ("transaction_dayofweek", np.arange(7))):
        j = FEATURE_NAMES.index(name)
        result = partial_dependence(
            pipeline, X, [j], custom_values={j: values.astype(np.float32)}, kind="average"
        )
        for value, mean in zip(values, result["average"][0], strict=True):
            rows.append({"feature": name, "value": int(value), "mean_score": float(mean)})
    return pd.DataFrame(rows)
