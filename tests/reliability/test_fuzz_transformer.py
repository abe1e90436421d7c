"""The transformer under malformed and hostile input (``reliability/fuzz_transformer.py`` at test-suite size),
in front of a real predictor and a real Redis: 500 hypothesis-generated requests to ``/score``, ingestion
(with and without the producer's token) and the raw-tensor V2 route, and 300 V2 gRPC calls, with no 5xx, every 4xx with its
``{"error"}`` body, no traceback, the process live and bounded in memory; and afterwards a store holding
exactly what the acknowledged ingestions wrote. Then named rejected ingestions, each checked to write
nothing, and the finding the fuzz made about amounts beyond float32."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.net import http
from harness.redis import RedisServer
from harness.transformer import Transformer, running_transformer, transaction
from reliability.fuzz import FuzzConfig
from reliability.fuzz_transformer import Target, run_transformer_fuzz
from reliability.store_state import stored

MAX_BYTES = 1_000_000


@pytest.fixture(scope="module")
def store_url(redis: RedisServer) -> str:
    """A database of the session's redis-server for this module alone: the judgement is that the store holds
    exactly what this fuzz's acknowledged ingestions wrote, so nobody else may write there."""
    return redis.url.rsplit("/", 1)[0] + "/3"


@pytest.fixture(scope="module")
def transformer(predictor_host: str, store_url: str, tmp_path_factory) -> Iterator[Transformer]:
    folder = tmp_path_factory.mktemp("fuzz-transformer")
    with running_transformer(
        predictor_host, store_url, "--max-request-bytes", str(MAX_BYTES), workdir=folder
    ) as t:
        yield t


def test_fuzzing_gets_no_server_error_and_the_store_holds_exactly_what_was_acknowledged(
    transformer: Transformer, store_url: str
) -> None:
    target = Target(transformer.url, transformer.process.pid, transformer.token, store_url, transformer.logs,
                    transformer.grpc)  # fmt: skip
    config = FuzzConfig(requests=500, grpc_requests=300, seed=5, concurrency=4, max_request_bytes=MAX_BYTES)
    result = run_transformer_fuzz(target, config, log=lambda _: None)
    requests = result["requests"]
    assert requests["total"] >= 500
    assert {"/score", "/v1/transactions", "v2 infer"} <= set(requests["by_route"])
    assert {"200", "400", "401", "413"} <= set(requests["by_status"]), requests["by_status"]
    assert result["server_errors"]["count"] == 0, json.dumps(
        result["server_errors"]["examples"][:3], indent=1
    )
    assert not result["server_side"]["5xx_counted_in_metrics"]
    assert result["server_side"]["tracebacks_logged"] == 0, transformer.logs()[-3000:]
    assert result["no_response"]["unexpected"] == 0, result["no_response"]
    assert not result["error_body_violations"]["by_status_route"], result["error_body_violations"][
        "examples"
    ][:3]
    assert not result["wrong_answers"]["by_route"], json.dumps(
        result["wrong_answers"]["examples"][:3], indent=1
    )
    assert result["liveness"]["failures"] == [] and result["liveness"]["final_status"] == 200
    assert result["workers"]["server_alive"] and transformer.process.poll() is None
    memory = result["memory_mb"]
    assert memory["growth"] < 150 and memory["peak_growth"] < 150, memory
    ledger = result["store"]
    assert ledger["passed"], ledger["failures"]
    assert ledger["acknowledged_requests"] > 10 and ledger["answers"]["added"] > 10, ledger
    assert {"400", "401"} <= set(ledger["rejected_requests_by_status"]), ledger["rejected_requests_by_status"]
    assert (
        ledger["rejected_valid_transactions"] > 0 and ledger["rejected_transactions_found_in_the_store"] == 0
    )
    assert ledger["stored"]["transactions"] == ledger["answers"]["added"]
    grpc = result["grpc"]
    assert grpc["requests"]["total"] >= 300 and {"OK", "INVALID_ARGUMENT", "NOT_FOUND"} <= set(
        grpc["requests"]["by_status"]
    )
    assert grpc["server_errors"]["count"] == 0, json.dumps(grpc["server_errors"]["examples"][:3], indent=1)
    assert not grpc["wrong_answers"]["by_route"], json.dumps(
        [
            {k: e.get(k) for k in ("status", "wrong", "response", "note")}
            for e in grpc["wrong_answers"]["examples"][:6]
        ],
        indent=1,
    )
    assert grpc["ok_share"] >= 0.2 and set(grpc["after_the_run"].values()) == {"ok"}, grpc["after_the_run"]
    assert result["passed"], result["failures"]


def _ingest(t: Transformer, body: bytes, headers: dict[str, str]) -> int:
    return http(
        "POST", f"{t.url}/v1/transactions", body, headers={"Content-Type": "application/json", **headers}
    ).status


def _batch(customer: str, n: int = 3, **first: object) -> list[dict]:
    batch = [transaction(customer, i) for i in range(n)]
    batch[0].update(first)
    return batch


def _repeated(customer: str) -> list[dict]:
    batch = _batch(customer)
    return [*batch, batch[0]]


BATCHES = {
    "valid": _batch,
    "one invalid": lambda customer: _batch(customer, FraudResult=2),
    "a repeated TransactionId": _repeated,
    "over --max-batch-rows": lambda customer: _batch(customer, 1_001),
}
TOKEN = "<the producer's>"
REJECTED = [  # (case, batch, Authorization, bytes of padding, status)
    ("no token", "valid", None, 0, 401),
    ("wrong token", "valid", "Bearer not-it", 0, 401),
    ("the token in another scheme", "valid", f"Basic {TOKEN}", 0, 401),
    ("one invalid transaction", "one invalid", f"Bearer {TOKEN}", 0, 400),
    ("a repeated TransactionId", "a repeated TransactionId", f"Bearer {TOKEN}", 0, 400),
    ("over --max-batch-rows", "over --max-batch-rows", f"Bearer {TOKEN}", 0, 400),
    ("over --max-request-bytes", "valid", f"Bearer {TOKEN}", MAX_BYTES, 413),
]


@pytest.mark.parametrize(("batch", "authorization", "padding", "status"), [c[1:] for c in REJECTED],
                         ids=[c[0] for c in REJECTED])  # fmt: skip
def test_a_rejected_ingestion_writes_nothing(
    transformer: Transformer,
    store_url: str,
    batch: str,
    authorization: str | None,
    padding: int,
    status: int,
) -> None:
    customer = f"CustomerId_rejected_{uuid.uuid4().hex[:12]}"
    body = json.dumps(BATCHES[batch](customer)).encode() + b" " * padding
    headers = (
        {} if authorization is None else {"Authorization": authorization.replace(TOKEN, transformer.token)}
    )
    assert _ingest(transformer, body, headers) == status
    assert customer not in stored(store_url)


def test_a_conflict_writes_nothing_of_its_batch(transformer: Transformer, store_url: str) -> None:
    customer = "CustomerId_conflict_batch"
    first = transaction(customer, 0)
    auth = {"Authorization": f"Bearer {transformer.token}"}
    assert _ingest(transformer, json.dumps([first]).encode(), auth) == 200
    changed = {**first, "Amount": first["Amount"] + 1}
    assert _ingest(transformer, json.dumps([transaction(customer, 1), changed]).encode(), auth) == 409
    assert stored(store_url)[customer] == {first["TransactionId"]: first["Amount"]}


def test_an_accepted_history_can_always_be_scored(transformer: Transformer, tmp_path: Path) -> None:
    """Found by the fuzz (``scorable`` in its report): ``/v1/transactions`` took any finite Amount, and
    the features of a history holding an Amount beyond float32 (or whose total overflows) could not be
    scored, so every later ``/score`` of that customer — a legitimate transaction — answered 400. Amounts
    beyond ±1e12 are now refused (training's rule too), so an accepted history can always be scored."""
    customer = "CustomerId_beyond_float32"
    auth = {"Authorization": f"Bearer {transformer.token}"}
    accepted = _ingest(
        transformer, json.dumps([transaction(customer, 0, Amount=1e39, Value=1e39)]).encode(), auth
    )
    assert accepted == 400
    largest = [transaction(customer, i, Amount=sign * 1e12, Value=1e12) for i, sign in enumerate((1, -1, 1))]
    assert _ingest(transformer, json.dumps(largest).encode(), auth) == 200
    assert http("POST", f"{transformer.url}/score", transaction(customer, 5)).status == 200
