"""Candidate models, customer-weighted grouped searches, selection, baselines and the leakage audit.

Every candidate is a scikit-learn ``Pipeline`` from the 26 contract features to P(high risk), so the fitted
object is exactly what :mod:`ml.export` turns into one ONNX graph. Its first step selects the model features:
the four calendar columns (day, month, year, ISO week) are dropped, so no fitted model can read the absolute
date, though the graph keeps all 26 inputs. Only the linear model scales (a float64 scaler in front of
float32 tree thresholds breaks ONNX parity). The tree families carry the monotone constraints of
:data:`ml.schema.MONOTONE_DIRECTIONS`; the linear model is checked for them instead. Features are cast to
float32 before fitting, the precision the served model receives.

Training, cross-validation scoring and refits all use the customer weights (``sample_weight``, routed with
scikit-learn's metadata routing), so each customer counts once however many transactions they make.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
import sklearn
import xgboost as xgb
from scipy.stats import loguniform, randint, uniform
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer, roc_auc_score
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from ml.errors import TargetError
from ml.features import HISTORY_COLUMNS
from ml.schema import BINARY_FEATURES, CALENDAR_FEATURES, FEATURE_NAMES, MODEL_FEATURES, MONOTONE_DIRECTIONS

log = logging.getLogger(__name__)

SEARCH_KINDS = ("grid", "random")
MODEL_COLUMNS = [FEATURE_NAMES.index(f) for f in MODEL_FEATURES]  # what the select step keeps
MONOTONE = [MONOTONE_DIRECTIONS.get(f, 0) for f in MODEL_FEATURES]  # per model feature, in order


def as_model_input(X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """The model input: the 26 features in contract order as float32, what the ONNX graph receives."""
    if isinstance(X, pd.DataFrame):
        X = X.loc[:, list(FEATURE_NAMES)].to_numpy()
    return np.ascontiguousarray(X, dtype=np.float32)


# ---------------------------------------------------------------------------------------------- models


def _select() -> ColumnTransformer:
    """Keep the model features (contract minus the calendar), unchanged."""
    return ColumnTransformer([("model_features", "passthrough", MODEL_COLUMNS)], remainder="drop")


def _logistic_regression(seed: int) -> Pipeline:
    numeric = [i for i in MODEL_COLUMNS if FEATURE_NAMES[i] not in BINARY_FEATURES]
    binary = [i for i in MODEL_COLUMNS if FEATURE_NAMES[i] in BINARY_FEATURES]
    scale = ColumnTransformer(
        [("scale", StandardScaler(), numeric), ("indicators", "passthrough", binary)], remainder="drop"
    )
    return Pipeline([("scale", scale), ("model", LogisticRegression(max_iter=2_000, random_state=seed))])


def _decision_tree(seed: int) -> Pipeline:
    tree = DecisionTreeClassifier(random_state=seed, monotonic_cst=MONOTONE)
    return Pipeline([("select", _select()), ("model", tree)])


def _random_forest(seed: int) -> Pipeline:
    forest = RandomForestClassifier(
        n_estimators=100, max_samples=0.3, n_jobs=1, random_state=seed, monotonic_cst=MONOTONE
    )
    return Pipeline([("select", _select()), ("model", forest)])


def _xgboost(seed: int) -> Pipeline:
    booster = xgb.XGBClassifier(
        n_estimators=200,
        tree_method="hist",
        n_jobs=1,
        random_state=seed,
        eval_metric="logloss",
        monotone_constraints=tuple(MONOTONE),
    )
    return Pipeline([("select", _select()), ("model", booster)])


def _lightgbm(seed: int) -> Pipeline:
    booster = lgb.LGBMClassifier(
        n_estimators=200, n_jobs=1, random_state=seed, verbose=-1, monotone_constraints=list(MONOTONE)
    )
    return Pipeline([("select", _select()), ("model", booster)])


@dataclass(frozen=True)
class ModelSpec:
    """A model family: how to build its pipeline, where its two searches look, and how complex it is
    (selection prefers the lower rank when scores are within one standard error)."""

    name: str
    build: Callable[[int], Pipeline]
    grid: dict[str, list]
    distributions: dict[str, object]
    complexity: int


MODEL_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "logistic_regression",
            _logistic_regression,
            grid={"model__C": [0.01, 0.1, 1.0, 10.0]},
            distributions={"model__C": loguniform(1e-3, 1e2)},
            complexity=1,
        ),
        ModelSpec(
            "decision_tree",
            _decision_tree,
            grid={"model__max_depth": [3, 6], "model__min_samples_leaf": [20, 100]},
            distributions={
                "model__max_depth": randint(2, 9),
                "model__min_samples_leaf": randint(10, 300),
                "model__criterion": ["gini", "entropy"],
            },
            complexity=2,
        ),
        ModelSpec(
            "random_forest",
            _random_forest,
            grid={"model__max_depth": [6, 12], "model__min_samples_leaf": [10, 50]},
            distributions={
                "model__n_estimators": randint(50, 121),
                "model__max_depth": randint(4, 15),
                "model__min_samples_leaf": randint(2, 50),
                "model__max_features": ["sqrt", 0.3],
            },
            complexity=3,
        ),
        ModelSpec(
            "xgboost",
            _xgboost,
            grid={"model__max_depth": [2, 4], "model__learning_rate": [0.03, 0.1]},
            distributions={
                "model__n_estimators": randint(100, 301),
                "model__max_depth": randint(2, 6),
                "model__learning_rate": loguniform(0.02, 0.2),
                "model__subsample": uniform(0.6, 0.4),
                "model__colsample_bytree": uniform(0.6, 0.4),
                "model__min_child_weight": loguniform(1, 50),
            },
            complexity=4,
        ),
        ModelSpec(
            "lightgbm",
            _lightgbm,
            grid={"model__num_leaves": [4, 15], "model__learning_rate": [0.03, 0.1]},
            distributions={
                "model__n_estimators": randint(100, 301),
                "model__num_leaves": randint(3, 32),
                "model__learning_rate": loguniform(0.02, 0.2),
                "model__subsample": uniform(0.6, 0.4),
                "model__subsample_freq": [1],
                "model__colsample_bytree": uniform(0.6, 0.4),
                "model__min_child_samples": randint(20, 200),
            },
            complexity=4,
        ),
    )
}


def _weighted(pipeline: Pipeline) -> Pipeline:
    """Ask every step that can use ``sample_weight`` in ``fit`` for it (metadata routing must be on)."""
    for _, step in pipeline.steps:
        estimators = [t for _, t, _ in step.transformers] if isinstance(step, ColumnTransformer) else [step]
        for estimator in estimators:
            if hasattr(estimator, "set_fit_request"):
                estimator.set_fit_request(sample_weight=True)
    return pipeline


def fit_weighted(pipeline: Pipeline, X: np.ndarray, y: np.ndarray, weights: np.ndarray) -> Pipeline:
    """Fit a (fresh copy of a) pipeline with customer weights on every step that takes them."""
    with sklearn.config_context(enable_metadata_routing=True):
        return _weighted(clone(pipeline)).fit(X, y, sample_weight=weights)


def out_of_fold(
    fit: Callable[[np.ndarray, np.ndarray, np.ndarray], object],
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Out-of-fold P(high risk): each row scored by a model ``fit(X, y, weights)`` on the other folds — the
    in-time number of a comparator, on the same grouped folds as the candidates' cross-validation."""
    scores = np.empty(len(y))
    for fit_rows, score_rows in folds:
        model = fit(X[fit_rows], y[fit_rows], weights[fit_rows])
        scores[score_rows] = model.predict_proba(X[score_rows])[:, 1]
    return scores


def weighted_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray | None) -> float:
    return float(roc_auc_score(y, score, sample_weight=weights))


# ---------------------------------------------------------------------------------------------- folds


def cv_folds(
    y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped, stratified cross-validation folds (materialised so every search sees the same ones)."""
    return list(
        grouped_folds(
            y,
            groups,
            n_splits,
            seed,
            f"{n_splits}-fold cross-validation",
            "Use more data or fewer --cv-folds.",
        )
    )


def grouped_folds(
    y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int, what: str, fix: str
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``StratifiedGroupKFold`` splits (no customer on both sides), after checking every class has at least
    ``n_splits`` customers; otherwise :class:`TargetError` saying ``what`` needs them and how to ``fix`` it."""
    per_class = pd.Series(groups).groupby(y).nunique()
    if len(per_class) < 2 or per_class.min() < n_splits:
        counts = ", ".join(f"class {k}: {v} customers" for k, v in per_class.items())
        raise TargetError(
            f"{what} needs at least {n_splits} customers of each class, got {counts or 'no rows'}. {fix}"
        )
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return folds.split(np.zeros(len(y)), y, groups)


# ---------------------------------------------------------------------------------------------- search


@dataclass
class Candidate:
    """The best pipeline one search found, refit (weighted) on the whole training split."""

    model_type: str
    search: str
    best_params: dict[str, object]
    cv_auc: float  # mean customer-weighted ROC-AUC over the folds
    cv_auc_std: float
    n_folds: int
    n_candidates: int
    fit_seconds: float
    pipeline: Pipeline = field(repr=False)
    cv_results: pd.DataFrame = field(repr=False)
    directions_ok: bool = True  # monotone directions hold (enforced for trees, checked for the linear model)

    @property
    def key(self) -> str:
        return f"{self.model_type}/{self.search}"

    @property
    def cv_auc_se(self) -> float:
        return self.cv_auc_std / np.sqrt(self.n_folds)

    @property
    def complexity(self) -> int:
        return MODEL_SPECS[self.model_type].complexity


def run_search(
    model_type: str,
    kind: str,
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    n_iter: int,
    seed: int,
    n_jobs: int,
) -> Candidate:
    """Grid or random search of one family: fit and score with customer weights on the grouped folds."""
    spec = MODEL_SPECS[model_type]
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(roc_auc_score, response_method="predict_proba").set_score_request(
            sample_weight=True
        )
        common = {"scoring": scorer, "cv": folds, "n_jobs": n_jobs, "refit": True, "error_score": "raise"}
        pipeline = _weighted(spec.build(seed))
        if kind == "grid":
            search = GridSearchCV(pipeline, spec.grid, **common)
        elif kind == "random":
            search = RandomizedSearchCV(
                pipeline, spec.distributions, n_iter=n_iter, random_state=seed, **common
            )
        else:
            raise ValueError(f"unknown search {kind!r}: use one of {SEARCH_KINDS}")
        started = time.perf_counter()
        search.fit(X, y, sample_weight=weights)
    best = search.best_index_
    results = pd.DataFrame(search.cv_results_)
    return Candidate(
        model_type=model_type,
        search=kind,
        best_params={k.removeprefix("model__"): _plain(v) for k, v in search.best_params_.items()},
        cv_auc=float(results.loc[best, "mean_test_score"]),
        cv_auc_std=float(results.loc[best, "std_test_score"]),
        n_folds=len(folds),
        n_candidates=len(results),
        fit_seconds=time.perf_counter() - started,
        pipeline=search.best_estimator_,
        cv_results=results,
        directions_ok=linear_directions_ok(search.best_estimator_),
    )


def linear_directions_ok(pipeline: Pipeline) -> bool:
    """For the linear model, the monotone directions are the signs of its coefficients (the tree families
    are constrained while they fit, and every exported champion is checked on its ONNX graph)."""
    model = pipeline.steps[-1][1]
    if not hasattr(model, "coef_"):
        return True
    names = transformed_names(pipeline)
    coef = dict(zip(names, np.asarray(model.coef_[0], dtype=float), strict=True))
    return all(coef[f] * d >= 0 for f, d in MONOTONE_DIRECTIONS.items())


def transformed_names(pipeline: Pipeline) -> list[str]:
    """Names of the columns the final estimator sees, in its order."""
    first = pipeline.steps[0][1]
    columns: list[int] = []
    for _, transformer, selected in first.transformers_:
        if not (isinstance(transformer, str) and transformer == "drop") and isinstance(
            selected, list | np.ndarray
        ):
            columns.extend(int(i) for i in selected)
    return [FEATURE_NAMES[i] for i in columns]


def select_champion(candidates: list[Candidate]) -> tuple[Candidate, str]:
    """One-standard-error rule: among candidates whose directions hold, the best CV AUC sets a bar (its mean
    minus its standard error); the simplest family above the bar wins, the higher CV AUC breaking ties."""
    eligible = [c for c in candidates if c.directions_ok]
    if not eligible:
        raise TargetError(
            "no candidate respects the monotone directions "
            f"({', '.join(f'{f}: {d:+d}' for f, d in MONOTONE_DIRECTIONS.items())}); nothing can be exported."
        )
    best = max(eligible, key=lambda c: c.cv_auc)
    bar = best.cv_auc - best.cv_auc_se
    within = [c for c in eligible if c.cv_auc >= bar]
    chosen = min(within, key=lambda c: (c.complexity, -c.cv_auc))
    excluded = [c.key for c in candidates if not c.directions_ok]
    why = (
        f"best CV ROC-AUC {best.cv_auc:.4f} ({best.key}) minus one standard error {best.cv_auc_se:.4f} gives "
        f"{bar:.4f}; {len(within)} candidate(s) reach it; the simplest is {chosen.key} (CV {chosen.cv_auc:.4f})"
    )
    if excluded:
        why += f"; excluded for breaking a monotone direction: {', '.join(excluded)}"
    return chosen, why


def refit(candidate: Candidate, X: np.ndarray, y: np.ndarray, weights: np.ndarray) -> Pipeline:
    """The candidate's configuration (family and best parameters) fit afresh on other data."""
    return fit_weighted(candidate.pipeline, X, y, weights)


# ---------------------------------------------------------------------------------------------- baselines


def no_model_baselines(history: pd.DataFrame) -> dict[str, np.ndarray]:
    """Rules with nothing fitted, each a score where higher means riskier.

    ``days since previous transaction`` (a first transaction ranks as the longest gap: no engagement shown
    yet) and ``transaction count`` (fewer is riskier).
    """
    gap = history["days_since_previous"].to_numpy(dtype=np.float64)
    longest = np.nanmax(gap) if np.isfinite(gap).any() else 0.0
    return {
        "days since previous transaction": np.where(np.isnan(gap), longest + 1.0, gap),
        "transaction count": -history["history_count"].to_numpy(dtype=np.float64),
    }


def baseline_logistic(X: np.ndarray, y: np.ndarray, weights: np.ndarray, seed: int) -> Pipeline:
    """The simple-model baseline: logistic regression with default regularisation on the model features."""
    return fit_weighted(_logistic_regression(seed), X, y, weights)


# ---------------------------------------------------------------------------------------------- audit

AUDIT_ROUTES: dict[str, tuple[str, ...]] = {
    # The label's own inputs as a live system knows them at the transaction: recency (days since the previous
    # transaction), frequency (count so far) and Value-based monetary (Value so far).
    "label inputs (recency, frequency, Value)": HISTORY_COLUMNS,
    # The calendar route: the absolute date stands in for "how long before the end of the data".
    "calendar (day, month, year, week)": CALENDAR_FEATURES,
}


def audit_columns(X: pd.DataFrame, history: pd.DataFrame, route: str) -> np.ndarray:
    columns = AUDIT_ROUTES[route]
    source = history if columns == HISTORY_COLUMNS else X
    return source.loc[:, list(columns)].to_numpy(dtype=np.float64)


def audit_model(seed: int) -> HistGradientBoostingClassifier:
    """A flexible learner (NaN-aware, for a first transaction's missing recency) for the audit routes."""
    return HistGradientBoostingClassifier(max_iter=100, random_state=seed)


def _plain(value: object) -> object:
    """numpy scalars → Python scalars, so parameters serialise to JSON and MLflow cleanly."""
    return value.item() if isinstance(value, np.generic) else value
