from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.errors import TargetError
from ml.target import compute_rfm, fit_proxy_label, outcome_rfm


def _tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "CustomerId": [r[0] for r in rows],
            "TransactionStartTime": pd.to_datetime([r[1] for r in rows], utc=True, format="ISO8601"),
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


def test_outcome_rfm_looks_only_after_each_transaction_over_the_horizon() -> None:
    tx = _tx(
        [
            ("a", "2019-01-01T00:00:00", 100),
            ("b", "2019-01-01T00:00:00", 7),
            ("a", "2019-01-05T00:00:00", 50),
            ("a", "2019-01-05T00:00:00", 30),  # same second as the row before: after it in file order
            ("a", "2019-01-11T00:00:00", 20),  # exactly 10 days after the first: inside its horizon
            ("a", "2019-01-11T00:00:01", 5),  # one second past it: outside
            ("b", "2019-01-30T00:00:00", 1),
        ]
    )
    out = outcome_rfm(tx, horizon_days=10)
    first = out.iloc[0]
    assert first[["frequency", "monetary"]].tolist() == [3.0, 100.0]  # 50 + 30 + 20: not itself, not later
    assert first["recency"] == 0.0  # its last activity in the horizon is at the horizon's end
    assert out.iloc[2][["frequency", "monetary"]].tolist() == [3.0, 55.0]  # 30, 20, 5 (the tie is after it)
    assert out.iloc[3][["frequency", "monetary"]].tolist() == [2.0, 25.0]  # the earlier tie is history
    silent = out.iloc[1]  # b is silent for 10 days after its first transaction
    assert silent[["recency", "frequency", "monetary"]].tolist() == [10.0, 0.0, 0.0]
    # Complete only when the horizon ends by the data's last timestamp (2019-01-30).
    assert out["complete"].tolist() == [True, True, True, True, True, True, False]


def test_outcome_rfm_keeps_the_input_index() -> None:
    tx = _tx([("a", "2019-01-03", 1), ("a", "2019-01-01", 2), ("a", "2019-01-02", 4)])
    tx.index = [30, 10, 20]
    out = outcome_rfm(tx, horizon_days=30)
    assert out.index.tolist() == [30, 10, 20]
    assert out["monetary"].tolist() == [0.0, 5.0, 1.0]  # 01-01 is followed by 01-02 (4) and 01-03 (1)


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
    for order_seed in range(4):  # row order changes K-Means' cluster numbering, never the labelled rows
        shuffled = rfm.sample(frac=1.0, random_state=order_seed)
        label = fit_proxy_label(shuffled)
        flagged = set(shuffled.index[label.assign(shuffled) == 1])
        assert flagged == set(gone)
        centres = label.centres
        assert centres["recency"].idxmax() == label.high_risk_cluster
        assert centres["frequency"].idxmin() == label.high_risk_cluster
        assert centres.loc[label.high_risk_cluster, "rows"] == 40


def test_the_fitted_label_labels_new_rows_by_nearest_centre() -> None:
    label = fit_proxy_label(_rfm(40))
    new = pd.DataFrame(
        {"recency": [70.0, 1.0, 15.0], "frequency": [0.0, 40.0, 9.0], "monetary": [10.0, 3e5, 2e4]}
    )
    assert label.assign(new).tolist() == [1, 0, 0]


def test_weights_move_the_clusters() -> None:
    """Customer weights count in the fit: a heavy customer's many rows do not outvote everyone else."""
    rfm = _rfm(40)
    heavy = pd.DataFrame({"recency": [2.0] * 400, "frequency": [50.0] * 400, "monetary": [4e5] * 400})
    rows = pd.concat([rfm, heavy], ignore_index=True)
    unweighted = fit_proxy_label(rows)
    weights = np.r_[np.ones(len(rfm)), np.full(400, 1 / 400)]
    weighted = fit_proxy_label(rows, weights)
    assert weighted.centres.loc[weighted.high_risk_cluster, "share"] == pytest.approx(40 / 121, abs=0.01)
    assert unweighted.centres.loc[unweighted.high_risk_cluster, "share"] < 0.1


def test_degenerate_high_risk_cluster_fails_loudly() -> None:
    rfm = _rfm(40).iloc[:81]  # one disengaged customer only: it forms its own cluster
    with pytest.raises(TargetError, match=r"high-risk RFM cluster is degenerate: 1.2% of the customers"):
        fit_proxy_label(rfm)


def test_too_few_rows() -> None:
    with pytest.raises(TargetError, match="at least 10 customers"):
        fit_proxy_label(_rfm(2))


def test_identical_customers_cannot_be_clustered() -> None:
    rfm = pd.DataFrame({"recency": [1.0] * 20, "frequency": [3.0] * 20, "monetary": [10.0] * 20})
    with pytest.raises(TargetError, match="fewer than 3 distinct RFM profiles"):
        fit_proxy_label(rfm)
