"""The import boundaries the project relies on, read from the source (every ``import``, also inside
functions): the predictor ships without ``ml/`` (the ONNX metadata carries the contract), the feature
definition both use (``credit_features/``) depends on neither, and the tooling
(``bench/``, ``reliability/``, ``monitoring/``) shares ``harness/`` instead of reaching into ``tests/`` or
into one another."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness import ROOT

FORBIDDEN = {
    "serving": {"ml", "harness", "tests", "bench", "reliability", "monitoring"},
    # The one feature definition: training and serving import it; it imports neither (nor any tooling).
    "credit_features": {"ml", "serving", "harness", "tests", "bench", "reliability", "monitoring"},
    "harness": {"tests", "bench", "reliability", "monitoring"},
    # The tooling shares harness/ (servers, wrk, processes, machine facts), never one another's scripts.
    "bench": {"tests", "reliability", "monitoring"},
    "reliability": {"tests", "bench", "monitoring"},
    "monitoring": {"tests", "bench", "reliability"},
    "k8s": {"tests", "harness"},  # the kind job's scripts run without the checkout's tooling
}


def imported_packages(path: Path) -> set[tuple[int, str]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_what_it_must_not(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    crossings = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in files
        if not any(part.startswith(".venv") for part in path.parts)
        for line, name in sorted(imported_packages(path))
        if name in FORBIDDEN[package]
    ]
    assert not crossings, "\n".join(crossings)


def test_the_reader_sees_relative_and_nested_imports(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("import os.path\n\ndef f():\n    from tests.support import x\n    from . import y\n")
    assert imported_packages(source) == {(1, "os"), (4, "tests")}
