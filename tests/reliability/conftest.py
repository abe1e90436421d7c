"""A real predictor (a small trained model) and a real redis-server, shared by the transformer's
reliability tests; each module starts the transformers it needs in front of them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.predictor import Server, running_server, train_small_model
from harness.redis import RedisServer, redis_server


@pytest.fixture(scope="session")
def predictor_for_transformer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("transformer-predictor")
    model = train_small_model(folder, rows=6_000)
    with running_server("--model-uri", str(model.path), "--workers", "1", workdir=folder) as server:
        yield server


@pytest.fixture(scope="session")
def predictor_host(predictor_for_transformer: Server) -> str:
    return predictor_for_transformer.url.removeprefix("http://")


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("transformer-redis")) as server:
        yield server
