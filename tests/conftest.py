"""Shared fixtures: the real Xente sample, small synthetic data, an isolated MLflow tracking folder, the small
trained model, and the real predictor process and redis-server the transformer's tests put a transformer in
front of (one of each per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from harness.predictor import Server, TrainedModel, running_server, train_small_model
from harness.redis import RedisServer, redis_server
from ml.synthetic import SyntheticSpec, generate_transactions

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"  # sources in tests/fixtures/README.md
REAL_HEAD = FIXTURES / "xente_real_head.csv"


@pytest.fixture(scope="session")
def real_head_path() -> Path:
    if not REAL_HEAD.is_file():
        pytest.fail(f"the real Xente sample is missing at {REAL_HEAD} (tests/fixtures/)")
    return REAL_HEAD


@pytest.fixture(scope="session")
def small_transactions() -> pd.DataFrame:
    """About 6,000 transactions of ~235 customers: enough for every stage, fast to train on."""
    return generate_transactions(SyntheticSpec(rows=6_000, seed=7))


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private MLflow store per test: tests never see each other's (or a developer's) registry."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    return train_small_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def predictor(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        "--model-uri", str(trained.path), "--workers", "1", workdir=tmp_path_factory.mktemp("predictor")
    ) as server:
        yield server


@pytest.fixture(scope="session")
def predictor_host(predictor: Server) -> str:
    return predictor.url.removeprefix("http://")


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server
