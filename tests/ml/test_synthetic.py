from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.load import read_transactions
from ml.schema import RAW_COLUMNS
from ml.synthetic import (
    PRODUCTS,
    REAL_FACTS,
    REAL_SHAPE,
    SyntheticSpec,
    generate_transactions,
    shape_comparison,
    write_csv,
)


@pytest.fixture(scope="module")
def default() -> pd.DataFrame:
    return generate_transactions()


def test_default_shape_matches_the_real_dataset(default: pd.DataFrame) -> None:
    assert list(default.columns) == list(RAW_COLUMNS)
    assert len(default) == 95_662
    assert default["CustomerId"].nunique() == 3_742
    assert default["TransactionStartTime"].min() == pd.Timestamp("2018-11-15T02:18:49Z")
    assert default["TransactionStartTime"].max() == pd.Timestamp("2019-02-13T10:01:28Z")
    assert default["ProductCategory"].value_counts().to_dict() == REAL_SHAPE["category_counts"]
    assert set(default["CurrencyCode"]) == {"UGX"} and set(default["CountryCode"]) == {256}
    assert default["ProviderId"].nunique() == 6
    assert default["ProductId"].nunique() == 23
    assert default["ChannelId"].nunique() == 4
    assert default["TransactionId"].is_unique
    assert default["Amount"].min() == -1_000_000 and default["Amount"].max() == 9_880_000
    assert default["Amount"].median() == 1_000
    assert default["Value"].min() >= 2 and default["Value"].max() == 9_880_000
    assert 0.0015 < default["FraudResult"].mean() < 0.0025
    assert (default["AccountId"] == "AccountId_4841").sum() == REAL_SHAPE["credit_account_rows"]


def test_value_is_absolute_amount_except_utility_bill_fees(default: pd.DataFrame) -> None:
    bills = default["ProductCategory"] == "utility_bill"
    others = default[~bills]
    assert (others["Value"] == np.ceil(others["Amount"].abs())).all()
    assert (default.loc[bills, "Value"] > default.loc[bills, "Amount"]).mean() > 0.9
    assert (default.loc[bills, "Value"] >= default.loc[bills, "Amount"]).all()
    assert (default["Amount"] < 0).mean() > 0.3  # credits are negative


def test_heavy_tailed_activity_with_one_very_active_customer(default: pd.DataFrame) -> None:
    per_customer = default["CustomerId"].value_counts()
    assert per_customer.index[0] == "CustomerId_7343"
    assert abs(per_customer.iloc[0] - 4_091) < 250
    assert per_customer.iloc[1] < per_customer.iloc[0] / 2
    assert per_customer.median() < 15  # most customers are light users


def test_credits_follow_channel_3_purchases_of_the_same_customer(default: pd.DataFrame) -> None:
    credits = default[default["AccountId"] == "AccountId_4841"]
    assert set(credits["ProviderId"]) == {"ProviderId_4"}
    assert set(credits["ProductId"]) == {"ProductId_6"}
    assert set(credits["ChannelId"]) == {"ChannelId_2"}
    assert set(credits["ProductCategory"]) == {"financial_services"}
    assert (credits["Amount"] < 0).all()
    # For each credit, the same customer made a ChannelId_3 purchase within the 90 seconds before it.
    purchases = default[(default["ChannelId"] == "ChannelId_3") & (default["Amount"] > 0)]
    sample = credits.sample(500, random_state=0).sort_values("TransactionStartTime")
    matched = pd.merge_asof(
        sample,
        purchases.sort_values("TransactionStartTime"),
        on="TransactionStartTime",
        by="CustomerId",
        direction="backward",
        tolerance=pd.Timedelta(seconds=90),
        suffixes=("", "_purchase"),
    )
    assert matched["TransactionId_purchase"].notna().mean() > 0.99
    ratio = -matched["Amount"] / matched["Amount_purchase"]
    # 1-5% of the purchase (rounded to quarters), never below the 2 UGX floor.
    assert (ratio.between(0.005, 0.06) | (matched["Amount"] == -2)).mean() > 0.99


def test_seeded_and_deterministic() -> None:
    a = generate_transactions(SyntheticSpec(rows=3_000, seed=5))
    b = generate_transactions(SyntheticSpec(rows=3_000, seed=5))
    c = generate_transactions(SyntheticSpec(rows=3_000, seed=6))
    pd.testing.assert_frame_equal(a, b)
    assert not a["Amount"].equals(c["Amount"])


@pytest.mark.parametrize("rows", [1, 2, 17, 400])
def test_tiny_sizes_still_make_valid_data(rows: int, tmp_path: Path) -> None:
    df = generate_transactions(SyntheticSpec(rows=rows))
    assert len(df) == rows
    path = tmp_path / "tiny.csv"
    write_csv(df, str(path))
    assert len(read_transactions(path)) == rows


def test_scaled_sizes_keep_proportions() -> None:
    df = generate_transactions(SyntheticSpec(rows=300_000, seed=1))
    assert len(df) == 300_000
    assert abs(df["CustomerId"].nunique() - round(3_742 * 300_000 / 95_662)) <= 1
    shares = df["ProductCategory"].value_counts(normalize=True)
    assert abs(shares["financial_services"] - 45_405 / 95_662) < 1e-4


def test_written_csv_round_trips_through_the_loader(default: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "synthetic.csv"
    write_csv(default, str(path))
    text = path.read_text().splitlines()
    assert text[0] == ",".join(RAW_COLUMNS)
    assert ",1000,1000," in path.read_text()  # integers without ".0", like the public file
    assert "Z," in text[1]
    loaded = read_transactions(path)
    pd.testing.assert_frame_equal(loaded, default, check_dtype=False)


def test_the_default_data_matches_the_sourced_facts_of_the_real_file(default: pd.DataFrame) -> None:
    """The synthetic-vs-real table: counts within 3%, amounts' location and spread within the stated bands."""
    table = shape_comparison(default).set_index("fact")
    assert set(table.index) == set(REAL_FACTS) and table["source"].str.len().min() > 10
    exact = [
        "rows",
        "customers",
        "FraudResult 1 rows",
        "AccountId_4841 rows",
        "Amount median",
        "Value median",
    ]
    assert (table.loc[exact, "ratio"] == 1.0).all()
    counts = [f for f in table.index if f.endswith("rows") and f not in exact] + [
        "accounts", "subscriptions", "batches", "distinct timestamps"
    ]  # fmt: skip
    close = table.loc[counts, "ratio"]
    assert close.between(0.85, 1.15).all(), close[~close.between(0.85, 1.15)]
    assert (
        table.loc[["Amount mean", "Value mean", "Amount 75%", "Value 75%", "Amount 25%"], "ratio"]
        .between(0.85, 1.2)
        .all()
    )
    assert table.loc[["Amount std", "Value 25%"], "ratio"].between(0.5, 1.5).all()


def test_no_timestamp_collects_an_overflow(default: pd.DataFrame) -> None:
    """Times are drawn inside each customer's window, never clipped onto its edge: like the real file, ties
    are a few simultaneous rows (17 at most there), not hundreds."""
    per_second = default["TransactionStartTime"].value_counts()
    assert per_second.iloc[0] <= 17
    assert 0.98 < default["TransactionStartTime"].nunique() / len(default) < 0.999


def test_products_belong_to_their_real_categories(default: pd.DataFrame) -> None:
    assert PRODUCTS["ProductId_19"][0] == "tv"  # as in the real rows
    mapping = default.groupby("ProductId")["ProductCategory"].unique()
    assert all(len(categories) == 1 for categories in mapping)
    assert mapping["ProductId_19"][0] == "tv"
    negative = default[default["Amount"] < 0]
    assert (negative["ProviderId"] == "ProviderId_4").all()  # ProviderId_4 rows are the credits and cash-outs
    assert (default.loc[default["Amount"] >= 0, "ProviderId"] != "ProviderId_4").all()


def test_batches_are_nearly_one_per_transaction(default: pd.DataFrame) -> None:
    shared = default[default["BatchId"].duplicated(keep=False)]
    assert 0.98 < default["BatchId"].nunique() / len(default) < 1.0
    assert (shared.groupby("BatchId")["CustomerId"].nunique() == 1).all()  # a batch is one customer's


def test_the_planted_signal_is_a_forecast_not_recency(default: pd.DataFrame) -> None:
    """Purchases followed by 30 silent days (the disengaged ones) look different while the customer is
    still active — smaller than the customer's usual ticket, more often at night — while the time since the
    previous transaction barely tells them apart."""
    from sklearn.metrics import roc_auc_score

    from ml.features import build_features, engagement_history
    from ml.target import outcome_rfm

    outcome = outcome_rfm(default, 30)
    purchases = (default["Amount"] > 0).to_numpy() & outcome["complete"].to_numpy()
    silent = (outcome["frequency"].to_numpy() == 0)[purchases]
    features = build_features(default)[purchases]
    relative = (features["Amount"] / features["median_transaction_amount"]).to_numpy()
    night = (features["transaction_hour"] < 5).to_numpy()
    assert np.median(relative[silent]) < np.median(relative[~silent])
    assert night[silent].mean() > 1.5 * night[~silent].mean()
    gap = engagement_history(default)["days_since_previous"].to_numpy()[purchases]
    known = ~np.isnan(gap)
    assert roc_auc_score(silent[known], gap[known]) < 0.7
