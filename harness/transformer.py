"""A real transformer process (``python -m serving.transformer``) on loopback ports, in front of a predictor
and a feature store, and raw Xente transactions as the JSON objects its routes take."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.net import free_port, spawned

TOKEN = "test-ingest-token-0123456789abcdef"  # written to a file per server; never a real credential


@dataclass
class Transformer:
    url: str  # scoring (and, without a separate ingest port, ingestion)
    ingest_url: str
    grpc: str
    token: str
    process: subprocess.Popen
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def running_transformer(predictor: str, store: str, *args: str, workdir: Path, separate_ingest: bool = False,
                        token: str | None = TOKEN, ready_timeout: float = 60,
                        env: dict[str, str] | None = None) -> Iterator[Transformer]:  # fmt: skip
    """``python -m serving.transformer --predictor-host PREDICTOR --store STORE ARGS`` on free ports (HTTP,
    gRPC and, with ``separate_ingest``, an ingest port), with ``token`` in a token file, until the block
    ends (then SIGTERM). Waits for liveness only: readiness follows the store, which a test may have
    stopped on purpose."""
    port, grpc_port = free_port(), free_port()
    command = [sys.executable, "-m", "serving.transformer", "--predictor-host", predictor, "--store", store,
               "--http-port", str(port), "--grpc-port", str(grpc_port), *args]  # fmt: skip
    ingest_port = free_port() if separate_ingest else port
    if separate_ingest:
        command += ["--ingest-port", str(ingest_port)]
    if token is not None:
        token_file = workdir / f"ingest-token-{port}"
        token_file.write_text(token + "\n")
        command += ["--ingest-token-file", str(token_file)]
    log = workdir / f"transformer-{port}.log"
    url = f"http://127.0.0.1:{port}"
    with spawned(
        command, log, url + "/v2/health/live", "the transformer", workdir, env, ready_timeout
    ) as process:
        yield Transformer(
            url, f"http://127.0.0.1:{ingest_port}", f"127.0.0.1:{grpc_port}", token or "", process, log
        )


def records(transactions: pd.DataFrame) -> list[dict[str, object]]:
    """Validated Xente transactions (``ml.load``'s typed frame) as the JSON objects ``/score`` and
    ``/v1/transactions`` take: the Xente column names, the time in ISO 8601 UTC."""
    out = []
    times = transactions["TransactionStartTime"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    frame = transactions.drop(columns=["TransactionStartTime"])
    for time_text, row in zip(times, frame.to_dict("records"), strict=True):
        record = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        record["TransactionStartTime"] = time_text
        out.append(record)
    return out


def transaction(customer: str = "", index: int = 0, **fields: object) -> dict[str, object]:
    """One valid raw Xente transaction of ``customer`` (a fresh customer by default)."""
    customer = customer or f"CustomerId_{uuid.uuid4().hex[:10]}"
    record: dict[str, object] = {
        "TransactionId": f"TransactionId_{uuid.uuid4().hex[:12]}", "BatchId": "BatchId_1",
        "AccountId": "AccountId_1", "SubscriptionId": "SubscriptionId_1", "CustomerId": customer,
        "CurrencyCode": "UGX", "CountryCode": 256, "ProviderId": "ProviderId_6", "ProductId": "ProductId_10",
        "ProductCategory": "airtime", "ChannelId": "ChannelId_3", "Amount": 1000.0 + 250 * index,
        "Value": 1000 + 250 * index, "TransactionStartTime": f"2019-01-{1 + index % 28:02d}T10:00:00Z",
        "PricingStrategy": 2, "FraudResult": 0,
    }  # fmt: skip
    record.update(fields)
    return record
