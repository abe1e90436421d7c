"""Read a Xente transactions CSV and validate it into a typed frame (pandas).

Validation never drops or repairs rows: any bad value raises :class:`InvalidTransactions` naming the
column, the first offending lines of the file and their values. Training (``ml.load``) and the
transformer's backfill read histories through these same functions; :mod:`credit_features.records`
applies the same rules to one transaction at a time, and a test holds the two to the same verdicts.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from credit_features.schema import (
    AMOUNT_COLUMNS,
    AMOUNT_LIMIT,
    ID_COLUMNS,
    INTEGER_COLUMNS,
    PRODUCT_CATEGORIES,
    RAW_COLUMNS,
    TIME_COLUMN,
)

log = logging.getLogger(__name__)


class InvalidTransactions(ValueError):
    """Transactions that do not satisfy the Xente schema; the message says where and why."""


MAX_SHOWN = 5  # bad rows quoted in an error message


def read_transactions(path: str | Path) -> pd.DataFrame:
    """Read and validate a Xente CSV. Every value is read as text first so nothing is coerced silently."""
    path = Path(path)
    if not path.is_file():
        raise InvalidTransactions(
            f"{path}: no such file. Pass --data with the path of a Xente transactions CSV."
        )
    if path.stat().st_size == 0:
        raise InvalidTransactions(f"{path} is empty: expected a header line and at least one transaction.")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidTransactions(
            f"{path} is not valid UTF-8 (byte {exc.start}: {exc.object[exc.start : exc.start + 8]!r}). "
            "Re-export the file as UTF-8."
        ) from exc
    except pd.errors.ParserError as exc:
        raise InvalidTransactions(f"{path} is not a well-formed CSV: {exc}") from exc
    except pd.errors.EmptyDataError as exc:
        raise InvalidTransactions(f"{path} has no header line: expected the 16 Xente columns.") from exc
    return validate_transactions(raw, source=str(path))


def validate_transactions(raw: pd.DataFrame, source: str = "transactions") -> pd.DataFrame:
    """Check a frame of raw (text or typed) columns against the Xente schema and return it typed.

    Returns the 16 columns in schema order with ``TransactionStartTime`` as UTC datetimes, ``Amount`` and
    ``Value`` as float64 and the integer columns as int64. Extra columns are ignored (and logged).
    """
    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise InvalidTransactions(
            f"{source}: missing column(s) {', '.join(missing)}. Expected the 16 Xente columns: "
            f"{', '.join(RAW_COLUMNS)}."
        )
    extra = [c for c in raw.columns if c not in RAW_COLUMNS]
    if extra:
        log.info("%s: ignoring %d extra column(s): %s", source, len(extra), ", ".join(map(str, extra)))
    if raw.empty:
        raise InvalidTransactions(f"{source} has a header but no transactions.")

    df = raw.loc[:, list(RAW_COLUMNS)].reset_index(drop=True)
    for column in RAW_COLUMNS:
        _fail_where(df[column].isna(), df[column], source, column, "is empty")

    out = pd.DataFrame(index=df.index)
    for column in ID_COLUMNS:
        out[column] = df[column].astype(str).str.strip()
        _fail_where(out[column] == "", df[column], source, column, "is blank")

    times = pd.to_datetime(df[TIME_COLUMN], errors="coerce", utc=True, format="ISO8601")
    _fail_where(
        times.isna(),
        df[TIME_COLUMN],
        source,
        TIME_COLUMN,
        "is not an ISO-8601 timestamp (e.g. 2018-11-15T02:18:49Z)",
    )
    out[TIME_COLUMN] = times

    for column in AMOUNT_COLUMNS:
        values = pd.to_numeric(df[column], errors="coerce").astype("float64")
        _fail_where(values.isna(), df[column], source, column, "is not a number")
        _fail_where(~np.isfinite(values), df[column], source, column, "is not finite")
        _fail_where(values.abs() > AMOUNT_LIMIT, df[column], source, column, f"is beyond ±{AMOUNT_LIMIT:.0e}")
        out[column] = values
    _fail_where(out["Value"] < 0, df["Value"], source, "Value", "is negative (Value is the absolute amount)")

    for column in INTEGER_COLUMNS:
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values) | (values != np.round(values))
        _fail_where(bad, df[column], source, column, "is not an integer")
        out[column] = values.astype("int64")
    _fail_where(~out["FraudResult"].isin((0, 1)), df["FraudResult"], source, "FraudResult", "is not 0 or 1")

    _fail_where(
        ~out["ProductCategory"].isin(PRODUCT_CATEGORIES),
        df["ProductCategory"],
        source,
        "ProductCategory",
        f"is not a known category ({', '.join(PRODUCT_CATEGORIES)}); the 26-feature contract has no column for it",
    )
    _fail_where(
        out["TransactionId"].duplicated(keep=False),
        df["TransactionId"],
        source,
        "TransactionId",
        "is duplicated (each transaction must appear once)",
    )
    return out.loc[:, list(RAW_COLUMNS)]


def _fail_where(bad: pd.Series, shown: pd.Series, source: str, column: str, problem: str) -> None:
    """Raise naming ``column`` and the first bad rows (as file line numbers: header is line 1)."""
    bad = bad.fillna(True).to_numpy(dtype=bool)
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    quoted = ", ".join(f"line {i + 2}: {_quote(shown.iloc[i])}" for i in rows[:MAX_SHOWN])
    more = f" and {len(rows) - MAX_SHOWN:,} more" if len(rows) > MAX_SHOWN else ""
    raise InvalidTransactions(
        f"{source}: column {column} {problem} in {len(rows):,} row(s) — {quoted}{more}."
    )


def _quote(value: object) -> str:
    return "(empty)" if value is None or (isinstance(value, float) and np.isnan(value)) else repr(value)
