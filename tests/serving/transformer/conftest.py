"""The transformer's tests start their own transformer processes in front of the session's real predictor and
redis-server (``predictor``, ``predictor_host``, ``redis`` in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"
