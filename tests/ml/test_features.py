from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.errors import DataValidationError
from ml.features import TransactionFeatures, build_features
from ml.load import read_transactions
from ml.schema import FEATURE_NAMES

CONTRACT = [
    "CountryCode",
    "Amount",
    "Value",
    "PricingStrategy",
    "FraudResult",
    "transaction_hour",
    "transaction_day",
    "transaction_month",
    "transaction_year",
    "transaction_dayofweek",
    "transaction_week",
    "total_transaction_amount",
    "avg_transaction_amount",
    "transaction_count",
    "std_transaction_amount",
    "min_transaction_amount",
    "max_transaction_amount",
    "median_transaction_amount",
    "ProductCategory_data_bundles",
    "ProductCategory_financial_services",
    "ProductCategory_movies",
    "ProductCategory_other",
    "ProductCategory_ticket",
    "ProductCategory_transport",
    "ProductCategory_tv",
    "ProductCategory_utility_bill",
]


def test_feature_order_is_the_public_contract(real_head_path: Path) -> None:
    assert list(FEATURE_NAMES) == CONTRACT
    features = build_features(read_transactions(real_head_path))
    assert list(features.columns) == CONTRACT
    assert (features.dtypes == np.float64).all()
    assert np.isfinite(features.to_numpy()).all()


def _brute_force(tx: pd.DataFrame) -> pd.DataFrame:
    """Aggregates recomputed naively: for each row, the customer's rows at or before it (file order on ties)."""
    rows = []
    for i, row in tx.iterrows():
        same = tx[(tx["CustomerId"] == row["CustomerId"])]
        earlier = same[
            (same["TransactionStartTime"] < row["TransactionStartTime"])
            | ((same["TransactionStartTime"] == row["TransactionStartTime"]) & (same.index <= i))
        ]
        amounts = earlier["Amount"]
        rows.append(
            {
                "total_transaction_amount": amounts.sum(),
                "avg_transaction_amount": amounts.mean(),
                "transaction_count": len(amounts),
                "std_transaction_amount": amounts.std() if len(amounts) > 1 else 0.0,
                "min_transaction_amount": amounts.min(),
                "max_transaction_amount": amounts.max(),
                "median_transaction_amount": amounts.median(),
            }
        )
    return pd.DataFrame(rows, index=tx.index)


def test_aggregates_are_point_in_time_on_the_real_sample(real_head_path: Path) -> None:
    tx = read_transactions(real_head_path)
    got = build_features(tx)
    expected = _brute_force(tx)
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False, rtol=1e-9)
    # CustomerId_1053 transacts 4 times: 600, 600, 4000, 4000 (then 4000 again).
    rows = tx.index[tx["CustomerId"] == "CustomerId_1053"]
    assert got.loc[rows, "transaction_count"].tolist() == [1, 2, 3, 4, 5]
    assert got.loc[rows, "total_transaction_amount"].tolist() == [600, 1200, 5200, 9200, 13200]
    assert got.loc[rows, "median_transaction_amount"].tolist() == [600, 600, 600, 2300, 4000]


def test_aggregates_match_brute_force_on_shuffled_synthetic_rows(small_transactions: pd.DataFrame) -> None:
    sample = small_transactions[
        small_transactions["CustomerId"].isin(small_transactions["CustomerId"].unique()[:25])
    ]
    shuffled = sample.sample(frac=1.0, random_state=3).reset_index(drop=True)
    got = build_features(shuffled)
    expected = _brute_force(shuffled)
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False, rtol=1e-9)


def test_future_transactions_do_not_change_past_features(small_transactions: pd.DataFrame) -> None:
    cutoff = small_transactions["TransactionStartTime"].quantile(0.5)
    past = small_transactions[small_transactions["TransactionStartTime"] < cutoff]
    alone = build_features(past)
    with_future = build_features(small_transactions).loc[past.index]
    pd.testing.assert_frame_equal(alone, with_future)


def test_simultaneous_transactions_keep_file_order() -> None:
    tx = _frame(
        [
            ("c1", "2019-01-01T10:00:00Z", 100.0),
            ("c1", "2019-01-01T10:00:00Z", 300.0),
            ("c1", "2019-01-01T09:00:00Z", 50.0),
        ]
    )
    got = build_features(tx)
    assert got["transaction_count"].tolist() == [2, 3, 1]
    assert got["total_transaction_amount"].tolist() == [150, 450, 50]


def test_time_parts_and_category_indicators() -> None:
    tx = _frame([("c1", "2019-01-06T23:59:59Z", 10.0)], category="utility_bill")
    row = build_features(tx).iloc[0]
    # 2019-01-06 is a Sunday (dayofweek 6) in ISO week 1 of 2019.
    assert (row["transaction_hour"], row["transaction_day"], row["transaction_month"]) == (23, 6, 1)
    assert (row["transaction_year"], row["transaction_dayofweek"], row["transaction_week"]) == (2019, 6, 1)
    assert row["ProductCategory_utility_bill"] == 1
    assert (
        row[
            [c for c in CONTRACT if c.startswith("ProductCategory_") and c != "ProductCategory_utility_bill"]
        ].sum()
        == 0
    )
    airtime = build_features(_frame([("c1", "2019-01-06T23:59:59Z", 10.0)], category="airtime")).iloc[0]
    assert (
        airtime[[c for c in CONTRACT if c.startswith("ProductCategory_")]].sum() == 0
    )  # the reference level


def test_transformer_is_a_sklearn_estimator(real_head_path: Path) -> None:
    tx = read_transactions(real_head_path)
    transformer = TransactionFeatures()
    out = transformer.fit_transform(tx)
    assert list(transformer.get_feature_names_out()) == CONTRACT
    pd.testing.assert_frame_equal(out, build_features(tx))
    with pytest.raises(DataValidationError, match="missing column"):
        transformer.transform(tx.drop(columns=["Amount"]))


def _frame(rows: list[tuple[str, str, float]], category: str = "airtime") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "TransactionId": [f"T{i}" for i in range(len(rows))],
            "BatchId": "B",
            "AccountId": "A",
            "SubscriptionId": "S",
            "CustomerId": [r[0] for r in rows],
            "CurrencyCode": "UGX",
            "CountryCode": 256,
            "ProviderId": "P",
            "ProductId": "Q",
            "ProductCategory": category,
            "ChannelId": "ChannelId_3",
            "Amount": [r[2] for r in rows],
            "Value": [abs(r[2]) for r in rows],
            "TransactionStartTime": pd.to_datetime([r[1] for r in rows], utc=True),
            "PricingStrategy": 2,
            "FraudResult": 0,
        }
    )
