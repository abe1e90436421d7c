"""Column contracts of training: the shared raw and feature schema (:mod:`credit_features.schema`) plus what
only training reads (indicator columns, calendar inputs no model may use, monotone directions)."""

from __future__ import annotations

from credit_features.schema import (  # noqa: F401  (re-exported: ml.* imports them from here)
    AGGREGATE_FEATURES,
    AMOUNT_COLUMNS,
    CATEGORY_FEATURES,
    FEATURE_NAMES,
    ID_COLUMNS,
    INTEGER_COLUMNS,
    PRODUCT_CATEGORIES,
    RAW_COLUMNS,
    REFERENCE_CATEGORY,
    TIME_COLUMN,
    TIME_FEATURES,
)

# Indicator columns (0/1): passed through unscaled by the linear pipeline.
BINARY_FEATURES: tuple[str, ...] = ("FraudResult", *CATEGORY_FEATURES)

# The absolute date. It stays in the public 26-input contract, but no fitted model reads it: a score that
# follows the calendar stands in for "how long before the end of the data", which never transfers to a new
# period. Hour and day of week stay (their effect is shown in the model card).
CALENDAR_FEATURES: tuple[str, ...] = (
    "transaction_day",
    "transaction_month",
    "transaction_year",
    "transaction_week",
)
MODEL_FEATURES: tuple[str, ...] = tuple(f for f in FEATURE_NAMES if f not in CALENDAR_FEATURES)

# Economic direction the target demands: it means "least engaged", so more activity and more spend must never
# raise the risk (-1: the score is non-increasing in the feature, everything else fixed).
MONOTONE_DIRECTIONS: dict[str, int] = {"transaction_count": -1, "total_transaction_amount": -1}
