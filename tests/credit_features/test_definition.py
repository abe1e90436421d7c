"""The one feature definition: calendar features against pandas' calendar, Welford's History against numpy,
and the package importable without any training library (the serving image has none)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit_features.definition import (
    History,
    aggregates,
    calendar,
    category_indicators,
    extend,
    feature_matrix,
    median_of,
)
from credit_features.schema import AGGREGATE_FEATURES, CATEGORY_FEATURES, FEATURE_NAMES, TIME_FEATURES
from harness import ROOT


def test_calendar_matches_pandas_over_two_centuries() -> None:
    seconds = np.random.default_rng(0).integers(-2_000_000_000, 4_000_000_000, 100_000)
    seconds = np.concatenate([seconds, [0, -1, 86_399, 86_400, 1_230_768_000, 1_262_217_600]])  # ISO week 53
    ts = pd.to_datetime(seconds, unit="s", utc=True)
    expected = {
        "transaction_hour": ts.hour, "transaction_day": ts.day, "transaction_month": ts.month,
        "transaction_year": ts.year, "transaction_dayofweek": ts.dayofweek,
        "transaction_week": ts.isocalendar().week.to_numpy().astype(np.int64),
    }  # fmt: skip
    got = calendar(seconds)
    assert tuple(got) == TIME_FEATURES
    for name, values in expected.items():
        np.testing.assert_array_equal(got[name], np.asarray(values, dtype=np.int64), err_msg=name)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-1e7, 1e7, allow_nan=False), min_size=1, max_size=60))
def test_history_gives_numpy_statistics(amounts: list[float]) -> None:
    history = None
    for amount in amounts:
        history = extend(history, amount)
    assert history is not None and history.count == len(amounts)
    total, mean, count, std, low, high, median = aggregates(history, float(np.median(amounts)))
    assert total == math.fsum(amounts) or math.isclose(total, math.fsum(amounts), rel_tol=1e-12, abs_tol=1e-6)
    assert count == len(amounts) and low == min(amounts) and high == max(amounts)
    assert math.isclose(mean, total / len(amounts))
    expected_std = float(np.std(amounts, ddof=1)) if len(amounts) > 1 else 0.0
    assert math.isclose(std, expected_std, rel_tol=1e-9, abs_tol=1e-6)


def test_single_transaction_has_zero_spread_and_even_median_is_the_middle_mean() -> None:
    assert History.first(5.0).std == 0.0
    assert median_of((2.0,)) == 2.0 and median_of((2.0, 3.0)) == 2.5


def test_large_equal_amounts_have_exactly_zero_spread() -> None:
    history = None
    for _ in range(1_000):
        history = extend(history, 9_880_000.0)
    assert history.std == 0.0


def test_unknown_category_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'groceries'.*airtime"):
        category_indicators(np.array(["airtime", "groceries"], dtype=object))
    indicators = category_indicators(np.array(["airtime", "tv"], dtype=object))
    assert tuple(indicators) == CATEGORY_FEATURES
    assert indicators["ProductCategory_tv"].tolist() == [0, 1]


def test_feature_matrix_is_in_contract_order() -> None:
    columns = {"CountryCode": np.array([256]), "Amount": np.array([-50.0]), "Value": np.array([50.0]),
               "PricingStrategy": np.array([2]), "FraudResult": np.array([1]),
               "ProductCategory": np.array(["financial_services"], dtype=object)}  # fmt: skip
    rows = np.array([aggregates(History.first(-50.0), -50.0)])
    matrix = feature_matrix(columns, np.array([1_542_248_329]), rows)  # 2018-11-15T02:18:49Z, a Thursday
    named = dict(zip(FEATURE_NAMES, matrix[0].tolist(), strict=True))
    assert named["Amount"] == -50.0 and named["transaction_hour"] == 2 and named["transaction_dayofweek"] == 3
    assert named["transaction_week"] == 46 and named["ProductCategory_financial_services"] == 1
    assert [named[n] for n in AGGREGATE_FEATURES] == [-50.0, -50.0, 1.0, 0.0, -50.0, -50.0, -50.0]


def test_the_definition_imports_without_training_libraries() -> None:
    """The transformer's image has no pandas-free guarantee from kserve, but the definition must not need
    pandas or scikit-learn: import it with both blocked."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pandas', 'sklearn', 'lightgbm', 'xgboost', 'mlflow'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import credit_features.definition, credit_features.records, credit_features.schema\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
