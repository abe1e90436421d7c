"""Raw Xente transactions as a scoring or ingestion request carries them, validated by training's rules.

:mod:`credit_features.table` validates a CSV history with pandas; this module applies the same rules to
the few transactions of one request, without pandas, in the same words: a blank id, a timestamp that is
not ISO 8601, an amount that is not a finite number, a negative ``Value``, a non-integer ``CountryCode``, a
``FraudResult`` other than 0 or 1, an unknown ``ProductCategory`` or a repeated ``TransactionId`` is
refused, and the message names the transaction and the field. (tests/credit_features holds both
validators to the same verdicts.)

Two shapes come in: JSON objects keyed by the Xente column names (:func:`from_records`), and one column per
field, as V2 tensors carry them (:func:`from_columns`). A request needs the fields the 26 features read
(:data:`REQUIRED_FIELDS`); the other Xente columns may be sent and are then checked too; any other name is
refused, so a misspelt field never passes unnoticed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from credit_features.schema import (
    AMOUNT_COLUMNS,
    AMOUNT_LIMIT,
    ID_COLUMNS,
    INTEGER_COLUMNS,
    PRODUCT_CATEGORIES,
    RAW_COLUMNS,
    TIME_COLUMN,
)

REQUIRED_FIELDS: tuple[str, ...] = (
    "TransactionId",
    "CustomerId",
    TIME_COLUMN,
    "ProductCategory",
    "CountryCode",
    "Amount",
    "Value",
    "PricingStrategy",
    "FraudResult",
)
OPTIONAL_FIELDS: tuple[str, ...] = tuple(c for c in RAW_COLUMNS if c not in REQUIRED_FIELDS)
STRING_FIELDS: tuple[str, ...] = (*ID_COLUMNS, TIME_COLUMN)
TIME_EXAMPLE = "2018-11-15T02:18:49Z"
_CATEGORIES = frozenset(PRODUCT_CATEGORIES)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidTransaction(ValueError):
    """A transaction of the request breaks a rule; the message names it and the field."""


@dataclass(frozen=True)
class Transactions:
    """Validated transactions, one typed column per field (ids as ``str``, amounts float64, integers
    int64), and each ``TransactionStartTime`` as UTC Unix seconds (``seconds``, whole seconds)."""

    columns: dict[str, np.ndarray]
    seconds: np.ndarray

    def __len__(self) -> int:
        return len(self.seconds)

    def column(self, name: str) -> np.ndarray:
        return self.columns[name]


def from_records(records: object, where: str = "transactions") -> Transactions:
    """Validate a list of JSON objects keyed by Xente column names (``records[i].Field`` in messages)."""
    if not isinstance(records, list) or not records:
        raise InvalidTransaction(
            f"{where}: expected a non-empty list of transaction objects keyed by the Xente column names"
        )
    columns: dict[str, list] = {}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidTransaction(
                f"{where}[{i}]: expected an object keyed by the Xente column names, got {_kind(record)}"
            )
        _check_names(record.keys(), f"{where}[{i}]")
    present = [n for n in RAW_COLUMNS if any(n in r for r in records)]
    for name in present:
        values = []
        for i, record in enumerate(records):
            if name not in record:
                raise InvalidTransaction(f"{where}[{i}]: {name} is missing (the other transactions have it)")
            values.append(record[name])
        columns[name] = values
    return _validate(columns, len(records), lambda i, name: f"{where}[{i}].{name}")


def from_columns(columns: Mapping[str, Sequence], where: str = "inputs") -> Transactions:
    """Validate one sequence of values per field (V2 tensors; BYTES elements may be ``bytes``)."""
    _check_names(columns.keys(), where)
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{n} {k}" for n, k in lengths.items())
        raise InvalidTransaction(f"{where}: every field needs one value per transaction; got {shown}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise InvalidTransaction(f"{where}: the request holds no transactions")
    decoded = {}
    for name, values in columns.items():
        if name in STRING_FIELDS:
            values = [_text(v, f"{where} {name}[{i}]") for i, v in enumerate(values)]
        decoded[name] = list(values)
    return _validate(decoded, n, lambda i, name: f"{where} {name}[{i}]")


def _check_names(names: object, where: str) -> None:
    names = list(names)  # type: ignore[call-overload]
    unknown = [n for n in names if n not in RAW_COLUMNS]
    if unknown:
        raise InvalidTransaction(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown[:5]))}; the Xente fields are "
            f"{', '.join(RAW_COLUMNS)}"
        )
    missing = [n for n in REQUIRED_FIELDS if n not in names]
    if missing:
        raise InvalidTransaction(
            f"{where}: missing field(s) {', '.join(missing)} (the features need {', '.join(REQUIRED_FIELDS)})"
        )


def _validate(columns: dict[str, list], n: int, at) -> Transactions:
    out: dict[str, np.ndarray] = {}
    for name, values in columns.items():
        if name in ID_COLUMNS:
            out[name] = np.array([_identifier(v, at(i, name)) for i, v in enumerate(values)], dtype=object)
        elif name in AMOUNT_COLUMNS:
            out[name] = np.array([_amount(v, at(i, name)) for i, v in enumerate(values)], dtype=np.float64)
        elif name in INTEGER_COLUMNS:
            out[name] = np.array([_integer(v, at(i, name)) for i, v in enumerate(values)], dtype=np.int64)
    for i, value in enumerate(out["Value"].tolist()):
        if value < 0:
            raise InvalidTransaction(
                f"{at(i, 'Value')}: {value!r} is negative (Value is the absolute amount)"
            )
    for i, value in enumerate(out["FraudResult"].tolist()):
        if value not in (0, 1):
            raise InvalidTransaction(f"{at(i, 'FraudResult')}: {value!r} is not 0 or 1")
    for i, value in enumerate(out["ProductCategory"].tolist()):
        if value not in _CATEGORIES:
            raise InvalidTransaction(
                f"{at(i, 'ProductCategory')}: {value!r} is not a known category ({', '.join(PRODUCT_CATEGORIES)}); "
                "the 26-feature contract has no column for it"
            )
    seen: dict[str, int] = {}
    for i, value in enumerate(out["TransactionId"].tolist()):
        if value in seen:
            raise InvalidTransaction(
                f"{at(i, 'TransactionId')}: {value!r} is duplicated (also transaction {seen[value]}; each "
                "transaction must appear once)"
            )
        seen[value] = i
    seconds = np.array([_seconds(v, at(i, TIME_COLUMN)) for i, v in enumerate(columns[TIME_COLUMN])],
                       dtype=np.int64)  # fmt: skip
    assert all(len(v) == n for v in out.values())
    return Transactions(out, seconds)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return {list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _text(value: object, where: str) -> object:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidTransaction(f"{where}: is not valid UTF-8 (byte {exc.start})") from exc
    return value


def _identifier(value: object, where: str) -> str:
    if value is None:
        raise InvalidTransaction(f"{where}: is empty")
    if not isinstance(value, str):
        raise InvalidTransaction(f"{where}: must be a string, got {_kind(value)}")
    stripped = value.strip()
    if not stripped:
        raise InvalidTransaction(f"{where}: is blank")
    return stripped


def _number(value: object, where: str) -> float:
    if value is None:
        raise InvalidTransaction(f"{where}: is empty")
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidTransaction(f"{where}: {_kind(value)} is not a number")
    try:
        number = float(value)
    except OverflowError as exc:  # an integer beyond float range
        raise InvalidTransaction(f"{where}: {value!r} is not finite") from exc
    if not math.isfinite(number):
        raise InvalidTransaction(f"{where}: {value!r} is not finite")
    return number


def _amount(value: object, where: str) -> float:
    number = _number(value, where)
    if abs(number) > AMOUNT_LIMIT:
        raise InvalidTransaction(f"{where}: {value!r} is beyond ±{AMOUNT_LIMIT:.0e}")
    return number


def _integer(value: object, where: str) -> int:
    number = _number(value, where)
    if number != round(number) or abs(number) >= 2**63:
        raise InvalidTransaction(f"{where}: {value!r} is not an integer")
    return int(value) if isinstance(value, int | np.integer) else int(number)


def _seconds(value: object, where: str) -> int:
    if value is None:
        raise InvalidTransaction(f"{where}: is empty")
    if not isinstance(value, str):
        raise InvalidTransaction(
            f"{where}: must be an ISO-8601 timestamp string (e.g. {TIME_EXAMPLE}), got {_kind(value)}"
        )
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidTransaction(
            f"{where}: {value[:40]!r} is not an ISO-8601 timestamp (e.g. {TIME_EXAMPLE})"
        ) from None
    if moment.tzinfo is None:  # training reads naive times as UTC
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(seconds=1)
