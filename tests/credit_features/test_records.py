"""One request's transactions are held to training's rules: every record the CSV validator
(:mod:`credit_features.table`, used by ``ml`` and the backfill) refuses is refused here too, naming the same
column, and accepted records are typed the same."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from credit_features import records, table
from credit_features.schema import RAW_COLUMNS

GOOD = {
    "TransactionId": "TransactionId_1", "BatchId": "BatchId_1", "AccountId": "AccountId_1",
    "SubscriptionId": "SubscriptionId_1", "CustomerId": "CustomerId_1", "CurrencyCode": "UGX",
    "CountryCode": 256, "ProviderId": "ProviderId_6", "ProductId": "ProductId_10", "ProductCategory": "airtime",
    "ChannelId": "ChannelId_3", "Amount": 1000.0, "Value": 1000, "TransactionStartTime": "2018-11-15T02:18:49Z",
    "PricingStrategy": 2, "FraudResult": 0,
}  # fmt: skip

# (field, bad value, the words both validators use)
BAD = [
    ("CustomerId", "   ", "blank"),
    ("CustomerId", None, "empty"),
    ("TransactionStartTime", "2018-13-15T00:00:00Z", "ISO-8601"),
    ("TransactionStartTime", "yesterday", "ISO-8601"),
    ("Amount", float("inf"), "finite"),
    ("Amount", 1e39, "beyond"),  # a total beyond float32 could never be scored again
    ("Value", 2e12, "beyond"),
    ("Value", -5, "negative"),
    ("CountryCode", 256.5, "integer"),
    ("PricingStrategy", 1.5, "integer"),
    ("FraudResult", 2, "0 or 1"),
    ("ProductCategory", "groceries", "known category"),
]


def _table(record: dict) -> pd.DataFrame:
    """The record as a CSV line would give it to training (every value as text; None as empty)."""
    text = {k: [None if v is None else str(v)] for k, v in record.items()}
    return table.validate_transactions(pd.DataFrame(text, columns=list(RAW_COLUMNS)), source="request")


@pytest.mark.parametrize(("field", "value", "words"), BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
def test_both_validators_refuse_the_same_value_naming_the_field(
    field: str, value: object, words: str
) -> None:
    record = {**GOOD, field: value}
    with pytest.raises(table.InvalidTransactions, match=words) as offline:
        _table(record)
    assert field in str(offline.value)
    with pytest.raises(records.InvalidTransaction, match=words) as online:
        records.from_records([record])
    assert f"transactions[0].{field}" in str(online.value)


def test_accepted_records_are_typed_as_training_types_them() -> None:
    rows = [GOOD, {**GOOD, "TransactionId": "T2", "TransactionStartTime": "2018-11-15 03:00:00",
                   "Amount": -20.5, "Value": 20.5, "ProductCategory": "tv", "FraudResult": 1}]  # fmt: skip
    online = records.from_records(rows)
    offline = pd.concat([_table(r) for r in rows], ignore_index=True)
    for name, column in online.columns.items():
        np.testing.assert_array_equal(column, offline[name].to_numpy(), err_msg=name)
    expected = offline["TransactionStartTime"].to_numpy(dtype="datetime64[s]").astype(np.int64)
    np.testing.assert_array_equal(online.seconds, expected)


def test_duplicated_transaction_ids_are_refused_like_training() -> None:
    with pytest.raises(table.InvalidTransactions, match="duplicated"):
        table.validate_transactions(pd.DataFrame([GOOD, GOOD]).astype(str))
    with pytest.raises(records.InvalidTransaction, match=r"transactions\[1\].TransactionId.*duplicated"):
        records.from_records([GOOD, GOOD])


def test_unknown_and_missing_fields_are_named() -> None:
    with pytest.raises(records.InvalidTransaction, match="unknown field.*'Amuont'"):
        records.from_records([{**GOOD, "Amuont": 1}])
    partial = {k: v for k, v in GOOD.items() if k != "Amount"}
    with pytest.raises(records.InvalidTransaction, match="missing field.*Amount"):
        records.from_records([partial])
    optional_left_out = {k: v for k, v in GOOD.items() if k not in records.OPTIONAL_FIELDS}
    assert len(records.from_records([optional_left_out])) == 1


@pytest.mark.parametrize(
    ("value", "words"),
    [(True, "not a number"), ("1000", "not a number"), ([1], "not a number")],
)
def test_json_types_are_strict(value: object, words: str) -> None:
    with pytest.raises(records.InvalidTransaction, match=words):
        records.from_records([{**GOOD, "Amount": value}])


def test_columns_decode_bytes_and_must_agree_on_length() -> None:
    columns = {k: [v.encode() if isinstance(v, str) else v] for k, v in GOOD.items()}
    assert records.from_columns(columns).column("CustomerId").tolist() == ["CustomerId_1"]
    with pytest.raises(records.InvalidTransaction, match="one value per transaction"):
        records.from_columns({**columns, "Amount": [1.0, 2.0]})
    with pytest.raises(records.InvalidTransaction, match="UTF-8"):
        records.from_columns({**columns, "CustomerId": [b"\xff"]})
