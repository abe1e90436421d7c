from __future__ import annotations

from pathlib import Path

import pytest

from harness.predictor import TrainedModel


@pytest.fixture(scope="session")
def row(trained: TrainedModel) -> list[float]:
    return [float(v) for v in trained.X_test[0]]


@pytest.fixture
def model_path(trained: TrainedModel) -> Path:
    return trained.path
