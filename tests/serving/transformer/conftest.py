"""A real predictor process (the small trained model) and a real redis-server, shared by the transformer's
tests; each test starts its own transformer process in front of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.predictor import Server, TrainedModel, running_server
from harness.redis import RedisServer, redis_server


@pytest.fixture(scope="session")
def predictor(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        "--model-uri", str(trained.path), workdir=tmp_path_factory.mktemp("predictor")
    ) as server:
        yield server


@pytest.fixture(scope="session")
def predictor_host(predictor: Server) -> str:
    return predictor.url.removeprefix("http://")


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"
