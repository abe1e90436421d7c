"""Evaluation primitives: discrimination, calibration and threshold metrics, customer bootstrap, PSI, bands.

Every metric takes optional ``weights``: with the customer weights of :mod:`ml.observations` each customer
counts once ("per customer"); without them each transaction does ("per transaction"). Intervals come from a
bootstrap over customers — a customer's examples are resampled together, because they are not independent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

PSI_FLOOR = 1e-4  # shares below this are floored before the log, as the predictor's drift gauges do


def ks_statistic(y: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Kolmogorov–Smirnov: the largest gap between the score CDFs of the two classes (max TPR − FPR)."""
    fpr, tpr, _ = roc_curve(y, score, sample_weight=weights)
    return float(np.max(tpr - fpr))


def classification_metrics(
    y: np.ndarray, score: np.ndarray, threshold: float = 0.5, weights: np.ndarray | None = None
) -> dict[str, float]:
    """ROC-AUC, Gini, KS, Brier and log-loss on the score; accuracy, precision, recall, F1 at ``threshold``."""
    y = np.asarray(y)
    score = np.asarray(score, dtype=np.float64)
    predicted = (score >= threshold).astype(int)
    auc = float(roc_auc_score(y, score, sample_weight=weights))
    w = {"sample_weight": weights}
    return {
        "roc_auc": auc,
        "gini": 2 * auc - 1,
        "ks": ks_statistic(y, score, weights),
        "accuracy": float(accuracy_score(y, predicted, **w)),
        "precision": float(precision_score(y, predicted, zero_division=0, **w)),
        "recall": float(recall_score(y, predicted, zero_division=0, **w)),
        "f1": float(f1_score(y, predicted, zero_division=0, **w)),
        "brier": float(brier_score_loss(y, score, **w)),
        "log_loss": float(log_loss(y, np.clip(score, 1e-7, 1 - 1e-7), labels=[0, 1], **w)),
        "positive_rate": float(np.average(y, weights=weights)),
        "rows": int(len(y)),
    }


def calibration_table(
    y: np.ndarray, score: np.ndarray, n_bins: int = 10, weights: np.ndarray | None = None
) -> pd.DataFrame:
    """Score deciles (1 = lowest): rows, weight share, score range, mean predicted vs observed high-risk rate.

    Deciles split the (weighted) population into equal shares; means are weighted the same way.
    """
    y = np.asarray(y, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    weights = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.lexsort((np.arange(len(score)), score))
    cumulative = np.cumsum(weights[order]) / weights.sum()
    decile = np.empty(len(score), dtype=np.int64)
    decile[order] = np.minimum((cumulative * n_bins - 1e-9).astype(np.int64), n_bins - 1) + 1
    frame = pd.DataFrame({"y": y, "score": score, "w": weights, "decile": decile})
    frame["wy"], frame["ws"] = frame["w"] * frame["y"], frame["w"] * frame["score"]
    table = frame.groupby("decile").agg(
        rows=("y", "size"),
        weight=("w", "sum"),
        min_score=("score", "min"),
        max_score=("score", "max"),
        wy=("wy", "sum"),
        ws=("ws", "sum"),
    )
    table["share"] = table.pop("weight") / weights.sum()
    table["mean_predicted"] = table.pop("ws") / (table["share"] * weights.sum())
    table["observed_rate"] = table.pop("wy") / (table["share"] * weights.sum())
    table["gap"] = table["mean_predicted"] - table["observed_rate"]
    return table


def band_table(
    y: np.ndarray,
    score: np.ndarray,
    customers: np.ndarray,
    low_below: float,
    high_above: float,
    weights: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per risk band (approve / review / reject): share of decisions and observed high-risk rate in each.

    With customer weights, shares and rates are per customer (each customer's decisions count once in all).
    """
    score = np.asarray(score, dtype=np.float64)
    weights = np.ones(len(score)) if weights is None else np.asarray(weights, dtype=np.float64)
    band = np.where(score < low_below, 0, np.where(score > high_above, 2, 1))
    rows = []
    for index, (name, decision) in enumerate((("low", "approve"), ("medium", "review"), ("high", "reject"))):
        mask = band == index
        share = weights[mask].sum() / weights.sum()
        rate = float(np.average(np.asarray(y)[mask], weights=weights[mask])) if mask.any() else float("nan")
        rows.append(
            {
                "band": name,
                "decision": decision,
                "share": share,
                "observed_high_risk_rate": rate,
                "observations": int(mask.sum()),
                "customers": int(pd.unique(customers[mask]).size),
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- bootstrap


def _weighted_auc_matrix(y: np.ndarray, score: np.ndarray, W: np.ndarray) -> np.ndarray:
    """ROC-AUC of ``score`` under each row of weights ``W`` ([B, n]): the same number as
    ``roc_auc_score(y, score, sample_weight=W[b])`` (ties count half), vectorised over the resamples."""
    order = np.argsort(score, kind="stable")
    s, positive = score[order], np.asarray(y)[order] == 1
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first row of each group of equal scores
    Ws = W[:, order]
    pos = np.add.reduceat(np.where(positive, Ws, 0.0), starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0.0, Ws), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    total = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (pos * (below + 0.5 * neg)).sum(axis=1) / total, np.nan)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval at ``level`` (e.g. 0.95)."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    def __str__(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "level": self.level}


class CustomerBootstrap:
    """Resample customers with replacement; per-customer ROC-AUC and paired differences with percentile
    intervals. Every score vector is evaluated on the same resamples, so differences are paired."""

    def __init__(
        self,
        y: np.ndarray,
        customers: np.ndarray,
        weights: np.ndarray,
        n_samples: int = 1000,
        confidence: float = 0.95,
        seed: int = 42,
        chunk: int = 100,
    ) -> None:
        self.y = np.asarray(y)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.codes = pd.factorize(np.asarray(customers))[0]
        self.n_samples, self.confidence, self.seed, self.chunk = n_samples, confidence, seed, chunk

    def _resampled_weights(self):
        """The same resamples on every call (a fresh generator from the seed): differences are paired."""
        rng = np.random.default_rng(self.seed)
        m = int(self.codes.max()) + 1 if len(self.codes) else 0
        for start in range(0, self.n_samples, self.chunk):
            size = min(self.chunk, self.n_samples - start)
            counts = rng.multinomial(m, np.full(m, 1.0 / m), size=size)  # [size, customers]
            yield counts[:, self.codes] * self.weights

    def aucs(self, score: np.ndarray) -> np.ndarray:
        """Per-customer ROC-AUC of ``score`` on every resample."""
        score = np.asarray(score, dtype=np.float64)
        return np.concatenate([_weighted_auc_matrix(self.y, score, W) for W in self._resampled_weights()])

    def _interval(self, estimate: float, samples: np.ndarray) -> Interval:
        samples = samples[np.isfinite(samples)]
        alpha = (1 - self.confidence) / 2
        low, high = np.quantile(samples, [alpha, 1 - alpha]) if len(samples) else (np.nan, np.nan)
        return Interval(float(estimate), float(low), float(high), self.confidence)

    def auc(self, score: np.ndarray) -> Interval:
        estimate = roc_auc_score(self.y, score, sample_weight=self.weights)
        return self._interval(estimate, self.aucs(score))

    def difference(self, score: np.ndarray, other: np.ndarray) -> Interval:
        """AUC(score) − AUC(other), paired over the same resampled customers."""
        estimate = roc_auc_score(self.y, score, sample_weight=self.weights) - roc_auc_score(
            self.y, other, sample_weight=self.weights
        )
        return self._interval(estimate, self.aucs(score) - self.aucs(other))

    def statistic(self, metric, score: np.ndarray) -> Interval:
        """Any ``metric(y, score, weights)`` with its interval over the same resamples (slower than
        :meth:`auc`: one call per resample)."""
        score = np.asarray(score, dtype=np.float64)
        samples = [metric(self.y, score, w) for W in self._resampled_weights() for w in W]
        return self._interval(metric(self.y, score, self.weights), np.asarray(samples, dtype=np.float64))

    def metrics(self, score: np.ndarray) -> dict[str, Interval]:
        """ROC-AUC, Gini, KS and Brier per customer, each with its interval."""
        auc = self.auc(score)
        return {
            "roc_auc": auc,
            "gini": Interval(2 * auc.estimate - 1, 2 * auc.low - 1, 2 * auc.high - 1, auc.level),
            "ks": self.statistic(ks_statistic, score),
            "brier": self.statistic(lambda y, s, w: brier_score_loss(y, s, sample_weight=w), score),
        }


# ---------------------------------------------------------------------------------------------- stability


def bin_edges(values: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Interior edges at the reference quantiles, as float32 values, deduplicated; none for a constant."""
    column = np.asarray(values, dtype=np.float32).astype(np.float64)
    quantiles = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    edges = np.unique(np.quantile(column, quantiles, method="lower").astype(np.float32)).astype(np.float64)
    return edges[edges < column.max()]  # an edge at the maximum would leave its last bin empty


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` per right-closed bin (``edges[i-1] < x <= edges[i]``, like Prometheus ``le``)."""
    bins = np.searchsorted(
        np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="left"
    )
    counts = np.bincount(bins, minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index ``Σ (a − e) · ln(a / e)`` over bin shares floored at ``PSI_FLOOR``."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def stability(reference: np.ndarray, current: np.ndarray, n_bins: int = 10) -> float:
    """PSI of ``current`` against ``reference`` on the reference's quantile bins."""
    edges = bin_edges(reference, n_bins)
    return psi(bin_shares(reference, edges), bin_shares(current, edges))
