"""Fixtures and the CI rule of the monitoring tests.

``promtool`` and ``prometheus`` (Debian's ``prometheus`` package, installed by ``.ci/tools.sh``) are real
dependencies of these tests: in CI (``CI`` set) a missing binary FAILS the test; on a developer machine
without them the test is skipped with the reason shown (``pytest -ra``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    message = f"`{name}` is not installed (Debian package `prometheus`; run `bash .ci/tools.sh` as root)"
    if in_ci():
        pytest.fail(f"{message}: CI must run the monitoring tests, not skip them", pytrace=False)
    pytest.skip(message)


def require_module(name: str) -> object:
    try:
        return __import__(name)
    except ImportError:
        message = f"Python package `{name}` is missing (a dev dependency: pip install -e '.[dev]')"
        if in_ci():
            pytest.fail(f"{message}: CI must run this test, not skip it", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_binary("prometheus")


ROOT = Path(__file__).resolve().parents[2]
