"""The 26 model features of a transaction, defined once for training and for serving.

numpy only (no pandas, no scikit-learn): the transformer's image imports this module, and ``ml.features``
builds the training frame with the same functions, so the two cannot drift apart. The rules:

* **pass-through**: ``CountryCode``, ``Amount``, ``Value``, ``PricingStrategy``, ``FraudResult`` as given;
* **calendar** (:func:`calendar`): hour, day of month, month, year, day of week (Monday 0) and ISO week of
  ``TransactionStartTime`` in UTC, from whole seconds;
* **customer aggregates** of ``Amount`` over the customer's transactions up to and including this one
  (:class:`History` and :func:`aggregates`): total, mean (total / count), count, sample standard deviation
  (``ddof=1``; 0 for a single transaction, so the input is always finite), minimum, maximum and median (the
  mean of the two middle values for an even count). "Up to" follows time; simultaneous transactions follow
  the order they arrived in (file order offline, ingestion order online);
* **product category** (:func:`category_indicators`): one 0/1 column per category except the reference
  level ``airtime``.

:func:`feature_matrix` assembles them in the contract's order (:data:`FEATURE_NAMES`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from credit_features.schema import (
    AGGREGATE_FEATURES,
    CATEGORY_FEATURES,
    FEATURE_NAMES,
    PRODUCT_CATEGORIES,
    REFERENCE_CATEGORY,
    TIME_FEATURES,
)

PASSTHROUGH_FEATURES: tuple[str, ...] = ("CountryCode", "Amount", "Value", "PricingStrategy", "FraudResult")
SECONDS_PER_DAY = 86_400


def calendar(seconds: np.ndarray) -> dict[str, np.ndarray]:
    """The six calendar features (int64) of UTC Unix times in whole seconds."""
    seconds = np.asarray(seconds, dtype=np.int64)
    days = np.floor_divide(seconds, SECONDS_PER_DAY)
    dayofweek = (days + 3) % 7  # 1970-01-01 was a Thursday; numpy's % is never negative here
    date = days.astype("datetime64[D]")
    month_start = date.astype("datetime64[M]")
    year_start = date.astype("datetime64[Y]")
    # ISO 8601: the week belongs to the year of its Thursday and week 1 holds that year's first Thursday.
    thursday = days - dayofweek + 3
    iso_year_start = thursday.astype("datetime64[D]").astype("datetime64[Y]").astype("datetime64[D]")
    columns = {
        "transaction_hour": np.floor_divide(seconds - days * SECONDS_PER_DAY, 3600),
        "transaction_day": (date - month_start.astype("datetime64[D]")).astype(np.int64) + 1,
        "transaction_month": month_start.astype(np.int64) % 12 + 1,
        "transaction_year": year_start.astype(np.int64) + 1970,
        "transaction_dayofweek": dayofweek,
        "transaction_week": (thursday - iso_year_start.astype(np.int64)) // 7 + 1,
    }
    assert tuple(columns) == TIME_FEATURES
    return columns


_CATEGORY_CODE = {c: i for i, c in enumerate(PRODUCT_CATEGORIES)}


def category_indicators(categories: np.ndarray) -> dict[str, np.ndarray]:
    """One int64 0/1 column per non-reference category. Every value must be a known category."""
    values = np.asarray(categories, dtype=object)
    unknown = sorted({str(v) for v in values.tolist() if v not in _CATEGORY_CODE})
    if unknown:
        raise ValueError(
            f"unknown ProductCategory {', '.join(map(repr, unknown[:5]))}: the feature contract knows "
            f"{', '.join(PRODUCT_CATEGORIES)}"
        )
    return {
        name: (values == name.removeprefix("ProductCategory_")).astype(np.int64) for name in CATEGORY_FEATURES
    }


assert REFERENCE_CATEGORY not in {c.removeprefix("ProductCategory_") for c in CATEGORY_FEATURES}


@dataclass(frozen=True)
class History:
    """A customer's Amounts so far, summarised: every aggregate but the median follows from it exactly.

    ``mean`` and ``m2`` (the sum of squared deviations) are Welford's running moments, so the standard
    deviation stays accurate for large amounts with small spread; ``total`` is the plain running sum (the
    total and mean features are read from it, as a cumulative sum would give them). The feature store keeps
    these six numbers per customer and applies :meth:`add` on ingestion (its Redis script performs the
    same IEEE-754 operations in the same order); the median needs the amounts themselves (an order
    statistic), which the store keeps sorted.
    """

    count: int
    total: float
    mean: float
    m2: float
    minimum: float
    maximum: float

    @classmethod
    def first(cls, amount: float) -> History:
        return cls(1, amount, amount, 0.0, amount, amount)

    def add(self, amount: float) -> History:
        count = self.count + 1
        delta = amount - self.mean
        mean = self.mean + delta / count
        return History(
            count,
            self.total + amount,
            mean,
            self.m2 + delta * (amount - mean),
            min(self.minimum, amount),
            max(self.maximum, amount),
        )

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1); 0 for a single transaction."""
        return math.sqrt(max(self.m2, 0.0) / (self.count - 1)) if self.count > 1 else 0.0


def extend(history: History | None, amount: float) -> History:
    """``history`` with one more transaction of ``amount`` (the first one when there is no history)."""
    return History.first(amount) if history is None else history.add(amount)


def median_of(sorted_middle: tuple[float] | tuple[float, float]) -> float:
    """The median from the middle amount (odd count) or the two middle amounts (even count), in order."""
    return sorted_middle[0] if len(sorted_middle) == 1 else (sorted_middle[0] + sorted_middle[1]) / 2


def aggregates(history: History, median: float) -> tuple[float, ...]:
    """The seven aggregate features, in :data:`AGGREGATE_FEATURES` order, of a history including the
    transaction being scored, given the median of its amounts."""
    return (
        history.total,
        history.total / history.count,
        float(history.count),
        history.std,
        history.minimum,
        history.maximum,
        median,
    )


def feature_matrix(
    columns: Mapping[str, np.ndarray], seconds: np.ndarray, aggregate_rows: np.ndarray
) -> np.ndarray:
    """The float64 ``[N, 26]`` model input in contract order.

    ``columns`` holds the pass-through columns and ``ProductCategory``; ``seconds`` the UTC Unix time of
    each transaction in whole seconds; ``aggregate_rows`` the ``[N, 7]`` customer aggregates
    (:func:`aggregates` per row online, the expanding statistics offline).
    """
    n = len(seconds)
    aggregate_rows = np.asarray(aggregate_rows, dtype=np.float64).reshape(n, len(AGGREGATE_FEATURES))
    named: dict[str, np.ndarray] = {name: np.asarray(columns[name]) for name in PASSTHROUGH_FEATURES}
    named.update(calendar(seconds))
    named.update(zip(AGGREGATE_FEATURES, aggregate_rows.T, strict=True))
    named.update(category_indicators(columns["ProductCategory"]))
    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
    for j, name in enumerate(FEATURE_NAMES):
        out[:, j] = named[name]
    return out
