"""Online/offline feature parity: replay a transaction stream through a running transformer in time order —
score each transaction, then ingest it — and compare every feature vector the transformer scored with the
one training computes for the same transaction (:func:`ml.features.build_features`).

Used by the tests (a real transformer, Redis or SQLite, a real predictor) and by the kind job through
port-forwards: ``python -m harness.parity --score-url URL --ingest-url URL --token-file F [--rows N]``
exits 0 when every vector matches within float32 tolerance, 1 otherwise, and prints the numbers. Its ids
carry a fresh run tag, so a store that already holds a history (a backfill) does not change the result.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.net import http
from harness.transformer import records

RTOL = 1e-6  # float32 keeps 24 bits (~6e-8 relative): a few of its ulps
ATOL = 1e-6


@dataclass
class ParityReport:
    transactions: int
    customers: int
    simultaneous: int  # transactions sharing their customer's timestamp with another: the tie rule at work
    first_seen: int
    max_abs_diff: float
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def replay(
    score_url: str, ingest_url: str, token: str, transactions: pd.DataFrame, timeout: float = 30
) -> ParityReport:
    """Replay validated ``transactions`` (ids not yet in the store) score-then-ingest in training's order."""
    from ml.features import build_features
    from ml.schema import FEATURE_NAMES

    offline = build_features(transactions).to_numpy().astype(np.float32)
    times = transactions["TransactionStartTime"].to_numpy(dtype="datetime64[ns]")
    order = np.argsort(times, kind="stable")  # simultaneous transactions in file order, as training
    objects = records(transactions)
    auth = {"Authorization": f"Bearer {token}"}
    keys = (
        transactions["CustomerId"].astype(str)
        + "\x00"
        + pd.Series(times.astype(np.int64)).astype(str).to_numpy()
    )
    report = ParityReport(len(transactions), int(transactions["CustomerId"].nunique()),
                          int(keys.duplicated(keep=False).sum()), 0, 0.0)  # fmt: skip
    for i in order.tolist():
        status, _, body = http("POST", f"{score_url}/score", objects[i], timeout=timeout)
        if status != 200:
            raise RuntimeError(f"/score answered {status} for transaction {i}: {body[:300]!r}")
        answer = json.loads(body)
        online = np.array([answer["features"][name] for name in FEATURE_NAMES], dtype=np.float32)
        report.first_seen += bool(answer["first_seen"])
        diff = np.abs(online.astype(np.float64) - offline[i])
        report.max_abs_diff = max(report.max_abs_diff, float(diff.max()))
        bad = diff > ATOL + RTOL * np.abs(offline[i])
        if bad.any():
            report.mismatches.extend(
                f"{objects[i]['TransactionId']} {FEATURE_NAMES[j]}: online {online[j]!r}, offline {offline[i][j]!r}"
                for j in np.flatnonzero(bad)
            )
        status, _, body = http(
            "POST", f"{ingest_url}/v1/transactions", [objects[i]], headers=auth, timeout=timeout
        )
        if status != 200:
            raise RuntimeError(f"/v1/transactions answered {status} for transaction {i}: {body[:300]!r}")
    return report


def stream(rows: int, seed: int, tag: str | None = None) -> pd.DataFrame:
    """A synthetic Xente stream (validated), its customer and transaction ids prefixed with a run tag."""
    from ml.load import validate_transactions
    from ml.synthetic import SyntheticSpec, generate_transactions

    tag = tag or uuid.uuid4().hex[:8]
    frame = generate_transactions(SyntheticSpec(rows=rows, seed=seed))
    # Simultaneous transactions, which the tie rule (file order) must order the same online: every fifth
    # transaction of a customer takes its predecessor's timestamp.
    frame = frame.sort_values("TransactionStartTime", kind="stable").reset_index(drop=True)
    position = frame.groupby("CustomerId").cumcount()
    previous = frame.groupby("CustomerId")["TransactionStartTime"].shift()
    tie = (position % 5 == 4) & previous.notna()
    frame.loc[tie, "TransactionStartTime"] = previous[tie]
    frame["CustomerId"] = f"parity-{tag}-" + frame["CustomerId"].astype(str)
    frame["TransactionId"] = f"parity-{tag}-" + frame["TransactionId"].astype(str)
    return validate_transactions(frame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.parity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--score-url", required=True)
    parser.add_argument("--ingest-url", required=True)
    parser.add_argument("--token-file", required=True, type=Path)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = replay(
        args.score_url, args.ingest_url, args.token_file.read_text().strip(), stream(args.rows, args.seed)
    )
    print(
        f"parity: {report.transactions} transactions of {report.customers} customers replayed "
        f"({report.simultaneous} simultaneous with another of their customer, {report.first_seen} first seen); "
        f"max |online - offline| = {report.max_abs_diff:.3g}; {len(report.mismatches)} mismatching feature(s)"
    )
    for line in report.mismatches[:20]:
        print("  " + line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
