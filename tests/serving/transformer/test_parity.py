"""Online features equal training's: a synthetic stream replayed in time order through a real transformer —
score, then ingest, transaction by transaction — gives every transaction the feature vector
``ml.features.build_features`` gives it offline, simultaneous transactions included, with either store and
either protocol to the predictor."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.parity import replay, stream
from harness.redis import RedisServer
from harness.transformer import running_transformer

ROWS = 1_200  # ~50 customers, some with over 100 transactions; a fifth of each customer's are simultaneous


@pytest.mark.parametrize(
    ("store", "protocol"), [("redis", "v2"), ("redis", "grpc-v2"), ("sqlite", "v2")], ids=lambda v: v
)
def test_every_online_vector_equals_the_offline_one(
    store: str, protocol: str, predictor, predictor_host: str, redis: RedisServer, tmp_path: Path
) -> None:
    url = redis.url if store == "redis" else f"sqlite:///{tmp_path / 'store.db'}"
    host = predictor.grpc if protocol == "grpc-v2" else predictor_host
    transactions = stream(ROWS if store == "redis" and protocol == "v2" else 400, seed=3)
    with running_transformer(host, url, "--predictor-protocol", protocol, workdir=tmp_path) as t:
        report = replay(t.url, t.ingest_url, t.token, transactions)
    assert report.transactions == len(transactions) and report.simultaneous > 0.1 * len(transactions)
    assert report.first_seen == report.customers  # each customer's first transaction, and only that one
    assert report.mismatches == [], "\n".join(report.mismatches[:10])
    assert report.max_abs_diff <= 1e-3
