from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.errors import TargetError
from ml.features import build_features
from ml.load import read_transactions
from ml.observations import build_design, check_sample_size, customer_weights, design_name, forward_windows
from ml.target import outcome_rfm


@pytest.fixture(scope="module")
def forward(small_transactions: pd.DataFrame):
    return build_design(small_transactions, "forward", horizon_days=30, oot_days=14)


def test_windows_put_every_training_label_before_the_out_of_time_observations(forward) -> None:
    w = forward.windows
    assert w.oot_end == w.data_end - pd.Timedelta(days=30)
    assert w.oot_start == w.oot_end - pd.Timedelta(days=14)
    train_times = pd.to_datetime(forward.train.times, utc=True)
    test_times = pd.to_datetime(forward.test.times, utc=True)
    # A training example's whole horizon ends before the first out-of-time observation...
    assert (train_times + pd.Timedelta(days=30)).max() < test_times.min()
    assert (train_times < w.development_end).all()
    # ... and every example's horizon ends inside the data: every label is fully observed.
    assert ((test_times + pd.Timedelta(days=30)) <= w.data_end).all()
    assert test_times.min() >= w.oot_start and test_times.max() <= w.oot_end


def test_examples_are_purchases_with_the_features_of_their_row(forward, small_transactions) -> None:
    tx = forward.transactions
    for obs in (forward.train, forward.test):
        assert (tx["Amount"].to_numpy()[obs.rows] > 0).all()
        expected = (
            build_features(small_transactions).reset_index(drop=True).iloc[obs.rows].reset_index(drop=True)
        )
        pd.testing.assert_frame_equal(obs.X, expected)


def test_labels_come_from_the_horizon_only(forward) -> None:
    """The label is a function of the outcome RFM (what happens after the transaction), by one fitted
    definition for both splits."""
    for obs in (forward.train, forward.test):
        assert np.array_equal(forward.label.assign(obs.outcome), obs.y)
    outcome = outcome_rfm(forward.transactions, 30).iloc[forward.test.rows].reset_index(drop=True)
    pd.testing.assert_frame_equal(outcome, forward.test.outcome)
    # Silent for the whole horizon: high risk.
    silent = (forward.train.outcome["frequency"] == 0).to_numpy()
    assert silent.any() and forward.train.y[silent].all()


def test_each_customer_weighs_the_same(forward) -> None:
    for obs in (forward.train, forward.test):
        per_customer = pd.Series(obs.weights).groupby(obs.customers).sum()
        assert np.allclose(per_customer, per_customer.iloc[0])
        assert obs.weights.mean() == pytest.approx(1.0)
    w = customer_weights(np.array(["a", "a", "a", "b"]))
    assert w.tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2.0])


def test_same_window_splits_by_customer(small_transactions) -> None:
    design = build_design(small_transactions, "same-window", test_size=0.2)
    assert not set(design.train.customers) & set(design.test.customers)
    assert design.test_kind == "held-out customers" and not design.out_of_time
    # The label is the customer's, on all of their rows.
    labels = pd.Series(np.r_[design.train.y, design.test.y]).groupby(
        np.r_[design.train.customers, design.test.customers]
    )
    assert (labels.nunique() == 1).all()
    assert design.name == design_name("same-window", 30, 14) != design_name("forward", 30, 14)


def test_the_design_name_records_its_choices() -> None:
    assert design_name("forward", 30, 14) == "application-point-v2/horizon-30d/oot-14d/k3"
    assert design_name("forward", 45, 14) != design_name("forward", 30, 14)


def test_too_short_a_history_is_a_clear_error(real_head_path: Path) -> None:
    tx = read_transactions(real_head_path)  # 31 rows over a few hours
    with pytest.raises(TargetError, match=r"needs more than 74 days .*shorter --horizon-days / --oot-days"):
        forward_windows(tx["TransactionStartTime"], 30, 14)


def test_too_few_customers_is_refused_naming_each_shortfall(forward) -> None:
    check_sample_size(forward, min_customers=10, min_positive_customers=5)  # enough
    with pytest.raises(TargetError) as caught:
        check_sample_size(forward, min_customers=10_000, min_positive_customers=5_000)
    message = str(caught.value)
    assert caught.value.exit_code == 3
    assert f"training split has {forward.train.n_customers} customers (minimum 10000)" in message
    assert (
        f"out-of-time split has {forward.test.positive_customers} high-risk customers (minimum 5000)"
        in message
    )
    assert "--min-customers" in message


def test_unknown_mode(small_transactions) -> None:
    with pytest.raises(ValueError, match="unknown target mode"):
        build_design(small_transactions, "backward")
