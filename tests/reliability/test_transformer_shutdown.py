"""Short versions of ``reliability/load_transformer.py``'s SIGTERM experiments: the transformer under
ingestion load (kept-alive connections posting batches of fresh transactions), SIGTERM mid-load; requests
in flight answered, the exit within the grace period with code 0; then a new transformer on the same store,
where every transaction of every acknowledged batch is found — each customer's ``transaction_count`` from
``/score`` exactly the stored transactions, nothing stored that was not sent. Once with a request stalled
half-way through its body, which holds the exit for the grace period and no longer."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.redis import RedisServer
from reliability.load import ShutdownSpec
from reliability.load_transformer import ingest_shutdown_experiment

GRACE, STALL_GRACE = 30, 3


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("transformer-shutdown")


def _explain(experiment: dict) -> str:
    s = experiment["shutdown"]
    return (
        f"exit {s['exit_seconds']} s code {s['exit_code']}; in flight {s['in_flight_ok']}/{s['in_flight_at_sigterm']}"
        f" failed {s['in_flight_failed']}; after SIGTERM {s['after_sigterm']}; checks {s['checks']}; store "
        f"{experiment['store']}; examples {s['examples'][:3]}"
    )


def test_sigterm_under_ingestion_loses_no_acknowledged_transaction(
    predictor_host: str, redis: RedisServer, workdir: Path
) -> None:
    spec = ShutdownSpec(
        "ingest-sigterm", "parent", workers=1, grace=GRACE, connections=16, rows=5, load_seconds=1.5
    )
    experiment = ingest_shutdown_experiment(spec, predictor_host, redis, workdir, count=6_000)
    shutdown, check = experiment["shutdown"], experiment["store"]
    assert shutdown["in_flight_at_sigterm"] > 0 and shutdown["checks"]["in_flight_all_ok"], _explain(
        experiment
    )
    assert shutdown["checks"]["kept_alive_requests_not_reset"], _explain(experiment)
    assert shutdown["checks"]["new_connections_not_held"], _explain(experiment)
    assert shutdown["exit_code"] == 0 and shutdown["exit_seconds"] < 5 and not shutdown["survivors"], (
        _explain(experiment)
    )
    assert check["batches_acknowledged"] > 100 and check["transactions_acknowledged"] > 500, check
    assert check["checks"] == {
        "every_acknowledged_transaction_stored": True,
        "nothing_stored_that_was_not_sent": True,
        "transaction_count_per_customer_exact": True,
    }, check
    assert experiment["passed"], _explain(experiment)


def test_a_stalled_ingestion_holds_the_exit_for_the_grace_period_and_loses_nothing(
    predictor_host: str, redis: RedisServer, workdir: Path
) -> None:
    spec = ShutdownSpec("ingest-stalled", "parent", workers=1, grace=STALL_GRACE, connections=8, rows=5,
                        load_seconds=1.0, stall=True)  # fmt: skip
    experiment = ingest_shutdown_experiment(spec, predictor_host, redis, workdir, count=4_000)
    shutdown = experiment["shutdown"]
    assert (
        shutdown["exit_seconds"] is not None
        and STALL_GRACE - 0.5 <= shutdown["exit_seconds"] <= STALL_GRACE + 2
    )
    assert shutdown["stalled"] == "status 503", _explain(experiment)  # told, not dropped
    assert experiment["passed"], _explain(experiment)
