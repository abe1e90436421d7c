"""Read a Xente transactions CSV and validate it into a typed frame.

The rules live in :mod:`credit_features.table`, shared with the transformer's backfill. Validation never
drops or repairs rows: any bad value stops the job with a :class:`DataValidationError` (exit code 2) that
names the column, the first offending lines of the file and their values.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from credit_features import table
from ml.errors import DataValidationError
from ml.schema import RAW_COLUMNS

MAX_SHOWN = table.MAX_SHOWN


def read_transactions(path: str | Path) -> pd.DataFrame:
    """Read and validate a Xente CSV. Every value is read as text first so nothing is coerced silently."""
    try:
        return table.read_transactions(path)
    except table.InvalidTransactions as exc:
        raise DataValidationError(str(exc)) from exc


def validate_transactions(raw: pd.DataFrame, source: str = "transactions") -> pd.DataFrame:
    """Check a frame of raw (text or typed) columns against the Xente schema and return it typed
    (see :func:`credit_features.table.validate_transactions`)."""
    try:
        return table.validate_transactions(raw, source)
    except table.InvalidTransactions as exc:
        raise DataValidationError(str(exc)) from exc


def dataset_digest(transactions: pd.DataFrame) -> str:
    """A content digest of the validated transactions: the same rows give the same digest, whatever the file."""
    hashed = pd.util.hash_pandas_object(transactions.loc[:, list(RAW_COLUMNS)], index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()[:16]
