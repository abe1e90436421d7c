from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from ml.evaluate import (
    calibration_table,
    classification_metrics,
    customer_metrics,
    ks_statistic,
    latest_per_customer,
)


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2_000)
    score = np.clip(0.3 * y + rng.uniform(0, 0.7, 2_000), 0, 1)
    return y, score


def test_metrics_agree_with_their_definitions(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, score = scored
    m = classification_metrics(y, score, threshold=0.5)
    assert m["gini"] == pytest.approx(2 * m["roc_auc"] - 1)
    assert m["ks"] == pytest.approx(ks_2samp(score[y == 1], score[y == 0]).statistic, abs=1e-9)
    predicted = score >= 0.5
    tp = int((predicted & (y == 1)).sum())
    assert m["precision"] == pytest.approx(tp / predicted.sum())
    assert m["recall"] == pytest.approx(tp / (y == 1).sum())
    assert m["accuracy"] == pytest.approx((predicted == y).mean())
    assert m["brier"] == pytest.approx(np.mean((score - y) ** 2))
    assert m["rows"] == 2_000


def test_perfect_and_random_scores() -> None:
    y = np.array([0, 0, 1, 1])
    assert classification_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]))["roc_auc"] == 1.0
    assert ks_statistic(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert classification_metrics(y, np.array([0.5, 0.5, 0.5, 0.5]))["gini"] == 0.0


def test_calibration_table_has_ten_equal_deciles(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, score = scored
    table = calibration_table(y, score)
    assert table.index.tolist() == list(range(1, 11))
    assert (table["rows"] == 200).all()
    assert table["mean_predicted"].is_monotonic_increasing
    assert table["observed_rate"].iloc[-1] > table["observed_rate"].iloc[0]
    assert (table["rows"] * table["observed_rate"]).sum() == pytest.approx(y.sum())


def test_customer_metrics_use_each_customers_latest_row() -> None:
    customers = np.array(["a", "a", "b", "b", "c"])
    times = pd.to_datetime(["2019-01-02", "2019-01-01", "2019-01-01", "2019-01-03", "2019-01-01"]).to_numpy()
    assert sorted(latest_per_customer(customers, times).tolist()) == [0, 3, 4]
    y = np.array([1, 1, 0, 0, 1])
    score = np.array([0.9, 0.1, 0.8, 0.2, 0.7])  # latest rows: a 0.9, b 0.2, c 0.7 → perfectly ranked
    assert customer_metrics(y, score, customers, times)["roc_auc"] == 1.0
