"""Shared fixtures: the real Xente sample, small synthetic data, an isolated MLflow tracking folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

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
