"""Column contracts: the raw Xente transaction schema and the public 26-feature model input.

The feature order is a public contract: the ONNX model's input ``features`` is ``[N, 26]`` in exactly
this order, and the predictor reads the same list back from the model's metadata. Training (``ml``) and
the transformer (``serving.transformer``) both read it from here.
"""

from __future__ import annotations

RAW_COLUMNS: tuple[str, ...] = (
    "TransactionId",
    "BatchId",
    "AccountId",
    "SubscriptionId",
    "CustomerId",
    "CurrencyCode",
    "CountryCode",
    "ProviderId",
    "ProductId",
    "ProductCategory",
    "ChannelId",
    "Amount",
    "Value",
    "TransactionStartTime",
    "PricingStrategy",
    "FraudResult",
)

ID_COLUMNS: tuple[str, ...] = (
    "TransactionId",
    "BatchId",
    "AccountId",
    "SubscriptionId",
    "CustomerId",
    "CurrencyCode",
    "ProviderId",
    "ProductId",
    "ProductCategory",
    "ChannelId",
)
INTEGER_COLUMNS: tuple[str, ...] = ("CountryCode", "PricingStrategy", "FraudResult")
AMOUNT_COLUMNS: tuple[str, ...] = ("Amount", "Value")
TIME_COLUMN = "TransactionStartTime"
# The largest |Amount| and Value accepted (UGX; the Xente data's largest is under 1e7). The model reads
# float32 features, and a customer's total over any plausible history must stay far inside float32's
# 3.4e38: an amount beyond this is a unit or parsing error upstream, and once stored it would make every
# later score of that customer impossible.
AMOUNT_LIMIT = 1e12

# Every category seen in the Xente data. "airtime" is the reference level: it has no indicator column.
PRODUCT_CATEGORIES: tuple[str, ...] = (
    "airtime",
    "data_bundles",
    "financial_services",
    "movies",
    "other",
    "ticket",
    "transport",
    "tv",
    "utility_bill",
)
REFERENCE_CATEGORY = "airtime"

TIME_FEATURES: tuple[str, ...] = (
    "transaction_hour",
    "transaction_day",
    "transaction_month",
    "transaction_year",
    "transaction_dayofweek",
    "transaction_week",
)
AGGREGATE_FEATURES: tuple[str, ...] = (
    "total_transaction_amount",
    "avg_transaction_amount",
    "transaction_count",
    "std_transaction_amount",
    "min_transaction_amount",
    "max_transaction_amount",
    "median_transaction_amount",
)
CATEGORY_FEATURES: tuple[str, ...] = tuple(
    f"ProductCategory_{c}" for c in PRODUCT_CATEGORIES if c != REFERENCE_CATEGORY
)

FEATURE_NAMES: tuple[str, ...] = (
    "CountryCode",
    "Amount",
    "Value",
    "PricingStrategy",
    "FraudResult",
    *TIME_FEATURES,
    *AGGREGATE_FEATURES,
    *CATEGORY_FEATURES,
)

assert len(FEATURE_NAMES) == 26, "the public feature contract has 26 columns"
