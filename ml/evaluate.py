"""Held-out evaluation: discrimination, calibration and threshold metrics, per transaction and per customer."""

from __future__ import annotations

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


def ks_statistic(y: np.ndarray, score: np.ndarray) -> float:
    """Kolmogorov–Smirnov: the largest gap between the score CDFs of the two classes (max TPR − FPR)."""
    fpr, tpr, _ = roc_curve(y, score)
    return float(np.max(tpr - fpr))


def classification_metrics(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """ROC-AUC, Gini, KS, Brier and log-loss on the score; accuracy, precision, recall, F1 at ``threshold``."""
    y = np.asarray(y)
    score = np.asarray(score, dtype=np.float64)
    predicted = (score >= threshold).astype(int)
    auc = float(roc_auc_score(y, score))
    return {
        "roc_auc": auc,
        "gini": 2 * auc - 1,
        "ks": ks_statistic(y, score),
        "accuracy": float(accuracy_score(y, predicted)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "brier": float(brier_score_loss(y, score)),
        "log_loss": float(log_loss(y, np.clip(score, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "positive_rate": float(y.mean()),
        "rows": int(len(y)),
    }


def calibration_table(y: np.ndarray, score: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Deciles of the score (1 = lowest): rows, score range, mean predicted vs observed high-risk rate."""
    frame = pd.DataFrame({"y": np.asarray(y), "score": np.asarray(score, dtype=np.float64)})
    ranks = frame["score"].rank(method="first")
    frame["decile"] = pd.qcut(ranks, q=min(n_bins, len(frame)), labels=False) + 1
    table = frame.groupby("decile").agg(
        rows=("y", "size"),
        min_score=("score", "min"),
        max_score=("score", "max"),
        mean_predicted=("score", "mean"),
        observed_rate=("y", "mean"),
    )
    table["gap"] = table["mean_predicted"] - table["observed_rate"]
    return table


def latest_per_customer(customers: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Row index of each customer's most recent transaction: the score a live system holds for them."""
    frame = pd.DataFrame({"customer": customers, "time": times, "row": np.arange(len(customers))})
    return frame.sort_values(["time", "row"]).groupby("customer", sort=False)["row"].last().to_numpy()


def customer_metrics(
    y: np.ndarray, score: np.ndarray, customers: np.ndarray, times: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """The same metrics with one row per customer: their latest transaction's score against their label."""
    rows = latest_per_customer(customers, times)
    return classification_metrics(np.asarray(y)[rows], np.asarray(score)[rows], threshold)
