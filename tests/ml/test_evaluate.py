from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from ml.evaluate import (
    CustomerBootstrap,
    band_table,
    bin_edges,
    bin_shares,
    calibration_table,
    classification_metrics,
    ks_statistic,
    psi,
    stability,
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


def test_weights_make_each_customer_count_once() -> None:
    """Customer a has 3 rows, b one: with weights 1/3 and 1 the metrics equal one row per customer."""
    y = np.array([1, 1, 1, 0, 0])
    score = np.array([0.9, 0.9, 0.9, 0.2, 0.95])
    weights = np.array([1 / 3, 1 / 3, 1 / 3, 1.0, 1.0])
    weighted = classification_metrics(y, score, 0.5, weights)
    once = classification_metrics(np.array([1, 0, 0]), np.array([0.9, 0.2, 0.95]), 0.5)
    for key in ("roc_auc", "ks", "brier", "log_loss", "accuracy", "precision", "recall", "positive_rate"):
        assert weighted[key] == pytest.approx(once[key]), key


def test_weighted_calibration_deciles_split_the_weight_evenly(scored) -> None:
    y, score = scored
    weights = np.where(np.arange(len(y)) % 2 == 0, 3.0, 1.0)
    table = calibration_table(y, score, weights=weights)
    assert table["share"].to_numpy() == pytest.approx(np.full(10, 0.1), abs=0.002)
    assert (table["share"] * table["observed_rate"]).sum() == pytest.approx(np.average(y, weights=weights))


def test_band_table_uses_the_business_bands() -> None:
    y = np.array([0, 0, 1, 1, 1])
    score = np.array([0.1, 0.3, 0.45, 0.6, 0.61])  # 0.30 and 0.60 are medium (low < 0.30 <= medium <= 0.60)
    table = band_table(y, score, np.array(list("abcde")), 0.3, 0.6).set_index("band")
    assert table["observations"].tolist() == [1, 3, 1]
    assert table.loc["medium", "observed_high_risk_rate"] == pytest.approx(2 / 3)
    assert table["decision"].tolist() == ["approve", "review", "reject"]
    assert table["share"].sum() == pytest.approx(1.0)


def test_bootstrap_auc_matches_sklearn_and_covers_the_estimate() -> None:
    rng = np.random.default_rng(1)
    customers = np.repeat(np.arange(300), rng.integers(1, 8, 300))
    y = (rng.random(len(customers)) < 0.3).astype(int)
    score = np.round(0.4 * y + rng.random(len(y)), 2)  # ties on purpose
    weights = 1 / pd.Series(customers).map(pd.Series(customers).value_counts()).to_numpy()
    boot = CustomerBootstrap(y, customers, weights, n_samples=200, seed=3)
    interval = boot.auc(score)
    assert interval.estimate == pytest.approx(roc_auc_score(y, score, sample_weight=weights))
    assert interval.low < interval.estimate < interval.high and interval.level == 0.95
    # One resample, recomputed by hand: customers drawn with replacement, their rows weighted by the draw.
    draws = np.random.default_rng(3).multinomial(300, np.full(300, 1 / 300), size=1)[0]
    by_hand = roc_auc_score(y, score, sample_weight=draws[customers] * weights)
    assert boot.aucs(score)[0] == pytest.approx(by_hand)


def test_bootstrap_difference_is_paired() -> None:
    rng = np.random.default_rng(2)
    customers = np.arange(400)
    y = (rng.random(400) < 0.4).astype(int)
    score = 0.5 * y + rng.random(400)
    boot = CustomerBootstrap(y, customers, np.ones(400), n_samples=300, seed=0)
    same = boot.difference(score, score.copy())
    assert same.estimate == 0.0 and same.low == 0.0 and same.high == 0.0
    better = boot.difference(score, rng.random(400))
    assert better.low > 0  # a real signal against noise: the whole interval is above zero


def test_psi_is_zero_for_the_same_distribution_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=5_000)
    assert stability(reference, reference) == 0.0
    assert stability(reference, rng.normal(size=5_000)) < 0.02
    assert stability(reference, rng.normal(1.0, 1.0, size=5_000)) > 0.25
    edges = bin_edges(reference, 10)
    assert len(edges) == 9 and bin_shares(reference, edges).sum() == pytest.approx(1.0)
    # Floored shares keep an empty bin finite.
    assert np.isfinite(psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]))


def test_bootstrap_gives_intervals_for_ks_and_brier_on_the_same_resamples() -> None:
    rng = np.random.default_rng(4)
    customers = np.arange(300)
    y = (rng.random(300) < 0.3).astype(int)
    score = np.clip(0.3 * y + 0.7 * rng.random(300), 0, 1)
    boot = CustomerBootstrap(y, customers, np.ones(300), n_samples=100, seed=1)
    metrics = boot.metrics(score)
    assert set(metrics) == {"roc_auc", "gini", "ks", "brier"}
    for interval in metrics.values():
        assert interval.low <= interval.estimate <= interval.high
    assert metrics["ks"].estimate == pytest.approx(ks_statistic(y, score))
    assert metrics["brier"].estimate == pytest.approx(np.mean((score - y) ** 2))
    assert metrics["gini"].low == pytest.approx(2 * metrics["roc_auc"].low - 1)
