"""Candidate models, grouped splits and hyper-parameter searches.

Every candidate is a scikit-learn ``Pipeline`` from the 26 features to P(high risk), so the fitted object
is exactly what :mod:`ml.export` turns into one ONNX graph. Only the linear model scales its inputs: tree
pipelines see raw values, because a float64 scaler in front of float32 tree thresholds breaks ONNX parity.
Features are cast to float32 before fitting, the precision the served model receives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb
from scipy.stats import loguniform, randint, uniform
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from ml.errors import TargetError
from ml.schema import BINARY_FEATURES, FEATURE_NAMES, LABEL_DEFINING_FEATURES

log = logging.getLogger(__name__)

SEARCH_KINDS = ("grid", "random")


def as_model_input(X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """The model input: the 26 features in contract order as float32, what the ONNX graph receives."""
    if isinstance(X, pd.DataFrame):
        X = X.loc[:, list(FEATURE_NAMES)].to_numpy()
    return np.ascontiguousarray(X, dtype=np.float32)


# ---------------------------------------------------------------------------------------------- models


def _logistic_regression(seed: int) -> Pipeline:
    numeric = [i for i, name in enumerate(FEATURE_NAMES) if name not in BINARY_FEATURES]
    scale = ColumnTransformer([("scale", StandardScaler(), numeric)], remainder="passthrough")
    return Pipeline([("scale", scale), ("model", LogisticRegression(max_iter=2_000, random_state=seed))])


def _decision_tree(seed: int) -> Pipeline:
    return Pipeline([("model", DecisionTreeClassifier(random_state=seed))])


def _random_forest(seed: int) -> Pipeline:
    forest = RandomForestClassifier(n_estimators=100, max_samples=0.3, n_jobs=1, random_state=seed)
    return Pipeline([("model", forest)])


def _xgboost(seed: int) -> Pipeline:
    booster = xgb.XGBClassifier(
        n_estimators=200, tree_method="hist", n_jobs=1, random_state=seed, eval_metric="logloss"
    )
    return Pipeline([("model", booster)])


def _lightgbm(seed: int) -> Pipeline:
    booster = lgb.LGBMClassifier(n_estimators=200, n_jobs=1, random_state=seed, verbose=-1)
    return Pipeline([("model", booster)])


@dataclass(frozen=True)
class ModelSpec:
    """A model family: how to build its pipeline and where its two searches look."""

    name: str
    build: Callable[[int], Pipeline]
    grid: dict[str, list]
    distributions: dict[str, object]


MODEL_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "logistic_regression",
            _logistic_regression,
            grid={"model__C": [0.01, 0.1, 1.0, 10.0]},
            distributions={"model__C": loguniform(1e-3, 1e2)},
        ),
        ModelSpec(
            "decision_tree",
            _decision_tree,
            grid={"model__max_depth": [4, 8], "model__min_samples_leaf": [20, 100]},
            distributions={
                "model__max_depth": randint(3, 13),
                "model__min_samples_leaf": randint(5, 300),
                "model__criterion": ["gini", "entropy"],
            },
        ),
        ModelSpec(
            "random_forest",
            _random_forest,
            grid={"model__max_depth": [8, 14], "model__min_samples_leaf": [5, 50]},
            distributions={
                "model__n_estimators": randint(50, 121),
                "model__max_depth": randint(4, 17),
                "model__min_samples_leaf": randint(2, 100),
                "model__max_features": ["sqrt", 0.3],
            },
        ),
        ModelSpec(
            "xgboost",
            _xgboost,
            grid={"model__max_depth": [3, 6], "model__learning_rate": [0.05, 0.15]},
            distributions={
                "model__n_estimators": randint(100, 301),
                "model__max_depth": randint(2, 8),
                "model__learning_rate": loguniform(0.02, 0.3),
                "model__subsample": uniform(0.6, 0.4),
                "model__colsample_bytree": uniform(0.6, 0.4),
                "model__min_child_weight": loguniform(1, 50),
            },
        ),
        ModelSpec(
            "lightgbm",
            _lightgbm,
            grid={"model__num_leaves": [15, 63], "model__learning_rate": [0.05, 0.15]},
            distributions={
                "model__n_estimators": randint(100, 301),
                "model__num_leaves": randint(7, 96),
                "model__learning_rate": loguniform(0.02, 0.3),
                "model__subsample": uniform(0.6, 0.4),
                "model__subsample_freq": [1],
                "model__colsample_bytree": uniform(0.6, 0.4),
                "model__min_child_samples": randint(10, 200),
            },
        ),
    )
}


# ---------------------------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class Split:
    """Row indices of the grouped, stratified train / held-out split."""

    train: np.ndarray
    test: np.ndarray


def holdout_split(y: np.ndarray, groups: np.ndarray, test_size: float = 0.2, seed: int = 42) -> Split:
    """Hold out ``test_size`` of customers, stratified by label; no customer is on both sides.

    Implemented as the first fold of ``StratifiedGroupKFold(n_splits=round(1 / test_size))``.
    """
    n_splits = max(2, round(1 / test_size))
    _check_groups(y, groups, n_splits, "the held-out split")
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train, test = next(folds.split(np.zeros(len(y)), y, groups))
    return Split(train=train, test=test)


def cv_folds(
    y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped, stratified cross-validation folds (materialised so every search sees the same ones)."""
    _check_groups(y, groups, n_splits, "cross-validation")
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(folds.split(np.zeros(len(y)), y, groups))


def _check_groups(y: np.ndarray, groups: np.ndarray, n_splits: int, what: str) -> None:
    per_class = pd.Series(groups).groupby(y).nunique()
    if len(per_class) < 2 or per_class.min() < n_splits:
        counts = ", ".join(f"class {k}: {v} customers" for k, v in per_class.items())
        raise TargetError(
            f"{what} needs at least {n_splits} customers of each class, got {counts or 'no rows'}. "
            "Use more data."
        )


# ---------------------------------------------------------------------------------------------- search


@dataclass
class Candidate:
    """The best pipeline one search found, refit on the whole training split."""

    model_type: str
    search: str
    best_params: dict[str, object]
    cv_auc: float
    cv_auc_std: float
    n_candidates: int
    fit_seconds: float
    pipeline: Pipeline = field(repr=False)
    cv_results: pd.DataFrame = field(repr=False)

    @property
    def key(self) -> str:
        return f"{self.model_type}/{self.search}"


def run_search(
    model_type: str,
    kind: str,
    X: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    n_iter: int,
    seed: int,
    n_jobs: int,
) -> Candidate:
    """Grid or random search of one model family, scored by ROC-AUC on the given grouped folds."""
    spec = MODEL_SPECS[model_type]
    common = {"scoring": "roc_auc", "cv": folds, "n_jobs": n_jobs, "refit": True, "error_score": "raise"}
    if kind == "grid":
        search = GridSearchCV(spec.build(seed), spec.grid, **common)
    elif kind == "random":
        search = RandomizedSearchCV(
            spec.build(seed), spec.distributions, n_iter=n_iter, random_state=seed, **common
        )
    else:
        raise ValueError(f"unknown search {kind!r}: use one of {SEARCH_KINDS}")
    started = time.perf_counter()
    search.fit(X, y)
    best = search.best_index_
    results = pd.DataFrame(search.cv_results_)
    return Candidate(
        model_type=model_type,
        search=kind,
        best_params={k.removeprefix("model__"): _plain(v) for k, v in search.best_params_.items()},
        cv_auc=float(results.loc[best, "mean_test_score"]),
        cv_auc_std=float(results.loc[best, "std_test_score"]),
        n_candidates=len(results),
        fit_seconds=time.perf_counter() - started,
        pipeline=search.best_estimator_,
        cv_results=results,
    )


def refit(candidate: Candidate, X: np.ndarray, y: np.ndarray) -> Pipeline:
    """The candidate's configuration (family and best parameters) fit afresh on other data."""
    return clone(candidate.pipeline).fit(X, y)


def leakage_audit_auc(
    X_train: pd.DataFrame, y_train: np.ndarray, X_test: pd.DataFrame, y_test: np.ndarray, seed: int
) -> float:
    """Held-out AUC of a model fed only the aggregates that re-state the RFM label's inputs."""
    columns = list(LABEL_DEFINING_FEATURES)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    model.fit(X_train[columns].to_numpy(), y_train)
    return float(roc_auc_score(y_test, model.predict_proba(X_test[columns].to_numpy())[:, 1]))


def _plain(value: object) -> object:
    """numpy scalars → Python scalars, so parameters serialise to JSON and MLflow cleanly."""
    return value.item() if isinstance(value, np.generic) else value
