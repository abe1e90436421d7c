from __future__ import annotations

from pathlib import Path

import pytest

from harness.predictor import TrainedModel, train_small_model


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    return train_small_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def row(trained: TrainedModel) -> list[float]:
    return [float(v) for v in trained.X_test[0]]


@pytest.fixture
def model_path(trained: TrainedModel) -> Path:
    return trained.path
