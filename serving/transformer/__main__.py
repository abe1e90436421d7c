"""``python -m serving.transformer --predictor-host HOST:PORT --store URL [...]`` serves;
``python -m serving.transformer backfill --data CSV --store URL`` loads a Xente history into the store.

KServe starts a transformer container with ``--model_name``, ``--predictor_host`` and ``--http_port``; those
spellings are read as the flags they name. Exit codes: 0 done, 1 the store (or a port) failed, 2 bad flags
or bad data (the message names the flag, or the column and lines).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.settings import from_cli
from serving.transformer.settings import TransformerSettings

log = logging.getLogger("serving.transformer")

KSERVE_SPELLINGS = ("model_name", "predictor_host", "http_port", "grpc_port", "predictor_protocol")


class BackfillSettings(BaseSettings):
    """Load a Xente transactions CSV into the online feature store, validated by training's rules."""

    model_config = SettingsConfigDict(env_prefix="CREDIT_RISK_TRANSFORMER_")

    data: Path = Field(description="the Xente transactions CSV")
    store: str = Field(description="the feature store URL (as the transformer's --store)")
    batch_size: int = Field(5_000, ge=1, le=100_000, description="transactions per atomic store write")
    store_timeout_seconds: float = Field(30.0, gt=0, description="timeout of each store call")


def kserve_flags(argv: list[str]) -> list[str]:
    """``--predictor_host X`` → ``--predictor-host X`` (also ``--http_port=8080``), for KServe's flags only."""
    out = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        if name.startswith("--") and name[2:] in KSERVE_SPELLINGS:
            arg = "--" + name[2:].replace("_", "-") + eq + value
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["backfill"]:
        return backfill_main(argv[1:])
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    settings = from_cli(TransformerSettings, kserve_flags(argv), "python -m serving.transformer")
    if settings is None:
        return 2
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # one process: plain registries, nothing to aggregate

    from serving.server import bind, configure_logging
    from serving.transformer.model import TransactionTransformer
    from serving.transformer.predictor import connect
    from serving.transformer.server import run
    from serving.transformer.store import open_store

    configure_logging()
    try:
        store = open_store(settings.store, settings.store_timeout_seconds)
    except ValueError as exc:
        print(f"error: --store: {exc}", file=sys.stderr)
        return 2
    predictor = connect(
        settings.predictor_protocol, settings.predictor_address, settings.model_name,
        settings.predictor_timeout_seconds,
    )  # fmt: skip
    try:
        http = bind(settings.host, settings.http_port)
        ingest = bind(settings.host, settings.ingest_port) if settings.ingest_port else None
        if settings.grpc_port:
            bind(settings.host, settings.grpc_port).close()
    except OSError as exc:
        log.error("cannot listen on %s: %s", settings.host, exc.strerror or exc)
        return 1
    ingestion = (
        f"on port {settings.ingest_port}" if settings.ingest_port else "on the HTTP port"
    ) if settings.ingest_token_file else "disabled (no --ingest-token-file)"  # fmt: skip
    log.info(
        "transformer %s: HTTP on %s:%d%s, ingestion %s; store %s; predictor %s (%s)",
        settings.model_name, settings.host, settings.http_port,
        f", gRPC on {settings.grpc_port}" if settings.grpc_port else "", ingestion, store.url,
        settings.predictor_address, settings.predictor_protocol,
    )  # fmt: skip
    run(TransactionTransformer(settings, store, predictor), http, ingest)
    return 0


def backfill_main(argv: list[str]) -> int:
    settings = from_cli(BackfillSettings, argv, "python -m serving.transformer backfill")
    if settings is None:
        return 2
    from credit_features.table import InvalidTransactions
    from serving.server import configure_logging
    from serving.transformer.backfill import backfill
    from serving.transformer.store import IngestConflict, StoreUnavailable, open_store

    configure_logging()
    started = time.perf_counter()
    try:
        store = open_store(settings.store, settings.store_timeout_seconds)
        report = asyncio.run(backfill(settings.data, store, settings.batch_size))
    except InvalidTransactions as exc:
        log.error("nothing written: %s", exc)
        return 2
    except ValueError as exc:
        print(f"error: --store: {exc}", file=sys.stderr)
        return 2
    except (StoreUnavailable, IngestConflict) as exc:
        log.error("backfill stopped: %s (batches already written stay; re-running is safe: ingestion is "
                  "idempotent)", exc)  # fmt: skip
        return 1
    seconds = time.perf_counter() - started
    log.info(
        "backfilled %s: %d transactions of %d customers (added %d, already stored %d) into %s in %.2fs "
        "(%.0f transactions/s; validation %.2fs)",
        settings.data, report.transactions, report.customers, report.added, report.duplicates, store.url,
        seconds, report.transactions / seconds, report.validation_seconds,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
