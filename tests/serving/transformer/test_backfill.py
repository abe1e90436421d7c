"""``python -m serving.transformer backfill``: training's validation before anything is written, then the
history, idempotently; a transformer then scores a customer's next transaction from it exactly as training
would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from harness import ROOT
from harness.net import http
from harness.parity import stream
from harness.redis import RedisServer
from harness.transformer import records, running_transformer
from serving.transformer.store import Key, open_store


def backfill(csv: Path, store: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "serving.transformer", "backfill", "--data", str(csv), "--store", store],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip


def test_backfill_then_score_matches_training(
    redis: RedisServer, predictor_host: str, tmp_path: Path
) -> None:
    from ml.features import build_features
    from ml.schema import FEATURE_NAMES

    transactions = stream(800, seed=11)
    history, latest = transactions.iloc[:-1], transactions.iloc[-1:]
    csv = tmp_path / "history.csv"
    history.assign(
        TransactionStartTime=history["TransactionStartTime"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    ).to_csv(csv, index=False)
    done = backfill(csv, redis.url)
    assert done.returncode == 0, done.stderr
    assert f"{len(history)} transactions" in done.stderr and f"added {len(history)}" in done.stderr
    again = backfill(csv, redis.url)
    assert (
        again.returncode == 0
        and "added 0" in again.stderr
        and f"already stored {len(history)}" in again.stderr
    )

    # the last transaction, scored after the backfill, has the features training computes on the whole file
    later = latest["TransactionStartTime"].iloc[0] >= history["TransactionStartTime"].max()
    assert later
    offline = build_features(transactions).iloc[-1].to_numpy()
    with running_transformer(predictor_host, redis.url, workdir=tmp_path) as t:
        answer = json.loads(http("POST", f"{t.url}/score", records(latest)[0]).body)
    online = np.array([answer["features"][n] for n in FEATURE_NAMES])
    np.testing.assert_allclose(online, offline.astype(np.float32), rtol=1e-6)


def test_a_bad_file_writes_nothing_and_names_column_and_lines(tmp_path: Path) -> None:
    frame = stream(50, seed=2)
    frame = frame.assign(TransactionStartTime=frame["TransactionStartTime"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    frame["Amount"] = frame["Amount"].astype(object)
    frame.loc[7, "Amount"] = "twelve"
    csv = tmp_path / "bad.csv"
    frame.to_csv(csv, index=False)
    store = tmp_path / "store.db"
    result = backfill(csv, f"sqlite:///{store}")
    assert result.returncode == 2
    assert "column Amount is not a number" in result.stderr and "line 9: 'twelve'" in result.stderr
    assert "nothing written" in result.stderr

    async def first_seen() -> bool:  # the store (if the file was made at all) holds no customer
        s = open_store(f"sqlite:///{store}")
        try:
            [snapshot] = await s.lookup([Key(frame.loc[0, "CustomerId"], "new", 1.0)])
            return snapshot.history is None
        finally:
            await s.close()

    assert asyncio.run(first_seen())


def test_a_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = backfill(tmp_path / "nope.csv", f"sqlite:///{tmp_path / 's.db'}")
    assert result.returncode == 2 and "no such file" in result.stderr
