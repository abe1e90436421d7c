"""Load a Xente history into the online feature store: the same validation as training
(:mod:`credit_features.table`: the whole file is checked before anything is written), then the transactions
in time order (simultaneous ones in file order, the order training's "up to and including" follows), in
batches each written atomically. Ingestion is idempotent, so a backfill stopped half-way (the store went
away) is finished by running it again, and a replayed history changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from credit_features.schema import TIME_COLUMN
from credit_features.table import read_transactions
from serving.transformer.store import FeatureStore, Key


@dataclass(frozen=True)
class BackfillReport:
    transactions: int
    customers: int
    added: int
    duplicates: int
    validation_seconds: float
    write_seconds: float


def history_keys(path: Path) -> tuple[list[Key], int, float]:
    """The validated history as store keys in time order, its customer count, and the validation time."""
    started = time.perf_counter()
    frame = read_transactions(path)
    order = np.argsort(frame[TIME_COLUMN].to_numpy(dtype="datetime64[ns]"), kind="stable")
    customers = frame["CustomerId"].to_numpy()[order].tolist()
    ids = frame["TransactionId"].to_numpy()[order].tolist()
    amounts = frame["Amount"].to_numpy()[order].tolist()
    keys = [Key(c, t, a) for c, t, a in zip(customers, ids, amounts, strict=True)]
    return keys, int(frame["CustomerId"].nunique()), time.perf_counter() - started


async def backfill(path: Path, store: FeatureStore, batch_size: int = 5_000) -> BackfillReport:
    keys, customers, validation_seconds = history_keys(path)
    started = time.perf_counter()
    added = duplicates = 0
    try:
        for start in range(0, len(keys), batch_size):
            result = await store.ingest(keys[start : start + batch_size])
            added += result.added
            duplicates += result.duplicates
    finally:
        await store.close()
    return BackfillReport(len(keys), customers, added, duplicates, validation_seconds,
                          time.perf_counter() - started)  # fmt: skip
