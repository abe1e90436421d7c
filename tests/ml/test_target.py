from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.errors import TargetError
from ml.target import assign_proxy_target, build_training_set, compute_rfm


def _tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "CustomerId": [r[0] for r in rows],
            "TransactionStartTime": pd.to_datetime([r[1] for r in rows], utc=True),
            "Value": [r[2] for r in rows],
        }
    )


def test_rfm_definition() -> None:
    tx = _tx([("a", "2019-01-01", 100), ("a", "2019-01-05", 50), ("b", "2019-01-02", 10)])
    rfm = compute_rfm(tx, pd.Timestamp("2019-01-11", tz="UTC"))
    assert rfm.loc["a"].tolist() == [6.0, 2.0, 150.0]
    assert rfm.loc["b"].tolist() == [9.0, 1.0, 10.0]


def test_forward_rfm_counts_only_the_window_and_keeps_silent_customers() -> None:
    tx = _tx(
        [("a", "2019-01-01", 100), ("a", "2019-01-20", 50), ("b", "2019-01-02", 10), ("c", "2019-01-25", 5)]
    )
    rfm = compute_rfm(
        tx,
        pd.Timestamp("2019-02-01", tz="UTC"),
        customers=pd.Index(["a", "b"]),
        since=pd.Timestamp("2019-01-15", tz="UTC"),
    )
    assert rfm.index.tolist() == ["a", "b"]
    assert rfm.loc["a"].tolist() == [12.0, 1.0, 50.0]
    assert rfm.loc["b"].tolist() == [30.0, 0.0, 0.0]  # silent in the window: F = 0, M = 0


def _rfm(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    engaged = pd.DataFrame(
        {
            "recency": rng.uniform(0, 5, n),
            "frequency": rng.integers(20, 60, n),
            "monetary": rng.uniform(1e5, 5e5, n),
        }
    )
    middle = pd.DataFrame(
        {
            "recency": rng.uniform(10, 20, n),
            "frequency": rng.integers(5, 15, n),
            "monetary": rng.uniform(1e4, 5e4, n),
        }
    )
    gone = pd.DataFrame(
        {
            "recency": rng.uniform(50, 80, n),
            "frequency": rng.integers(0, 2, n),
            "monetary": rng.uniform(0, 500, n),
        }
    )
    rfm = pd.concat([engaged, middle, gone], ignore_index=True).astype(float)
    rfm.index = [f"c{i}" for i in range(len(rfm))]
    return rfm


def test_high_risk_cluster_is_chosen_by_rule_not_index() -> None:
    rfm = _rfm(40)
    gone = rfm.index[80:]
    for order_seed in range(4):  # row order changes K-Means' cluster numbering, never the labelled customers
        shuffled = rfm.sample(frac=1.0, random_state=order_seed)
        target = assign_proxy_target(shuffled, pd.Timestamp("2019-02-14", tz="UTC"))
        flagged = set(target.rfm.index[target.rfm["is_high_risk"] == 1])
        assert flagged == set(gone)
        centres = target.centres
        assert centres["recency"].idxmax() == target.high_risk_cluster
        assert centres["frequency"].idxmin() == target.high_risk_cluster
        assert centres.loc[target.high_risk_cluster, "customers"] == 40


def test_degenerate_high_risk_cluster_fails_loudly() -> None:
    rfm = _rfm(40).iloc[:81]  # one disengaged customer only: it forms its own cluster
    with pytest.raises(TargetError, match=r"high-risk RFM cluster is degenerate: 1 of 81 customers"):
        assign_proxy_target(rfm, pd.Timestamp("2019-02-14", tz="UTC"))


def test_too_few_customers() -> None:
    with pytest.raises(TargetError, match="at least 10 customers"):
        assign_proxy_target(_rfm(2), pd.Timestamp("2019-02-14", tz="UTC"))


def test_identical_customers_cannot_be_clustered() -> None:
    rfm = pd.DataFrame({"recency": [1.0] * 20, "frequency": [3.0] * 20, "monetary": [10.0] * 20})
    with pytest.raises(TargetError, match="fewer than 3 distinct RFM profiles"):
        assign_proxy_target(rfm, pd.Timestamp("2019-02-14", tz="UTC"))


def test_same_window_labels_every_transaction(small_transactions: pd.DataFrame) -> None:
    ts = build_training_set(small_transactions, "same-window")
    assert len(ts.X) == len(small_transactions) == len(ts.y)
    assert ts.target.rfm.index.nunique() == small_transactions["CustomerId"].nunique()
    labels = pd.Series(ts.y).groupby(ts.customers).nunique()
    assert (labels == 1).all()  # the label is the customer's
    assert 0.05 < ts.target.high_risk_share < 0.7


def test_forward_uses_history_before_the_cutoff_and_labels_from_the_window(
    small_transactions: pd.DataFrame,
) -> None:
    ts = build_training_set(small_transactions, "forward", window_days=30)
    end = small_transactions["TransactionStartTime"].max()
    assert ts.cutoff == end + pd.Timedelta(seconds=1) - pd.Timedelta(days=30)
    assert (pd.to_datetime(ts.times, utc=True) < ts.cutoff).all()
    window = small_transactions[small_transactions["TransactionStartTime"] >= ts.cutoff]
    silent = set(ts.target.rfm.index) - set(window["CustomerId"])
    assert silent, "some customers are silent in the performance window"
    assert (ts.target.rfm.loc[list(silent), ["frequency", "monetary"]] == 0).all().all()
    assert (ts.target.rfm.loc[list(silent), "is_high_risk"] == 1).all()
    # Only customers with history before the cutoff are scored.
    assert set(ts.customers) == set(ts.target.rfm.index)


def test_window_longer_than_the_period_is_an_error(small_transactions: pd.DataFrame) -> None:
    with pytest.raises(TargetError, match="covers the whole period"):
        build_training_set(small_transactions, "forward", window_days=400)


def test_unknown_mode(small_transactions: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown target mode"):
        build_training_set(small_transactions, "backward")
