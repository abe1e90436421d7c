"""The Prometheus rule file: ``promtool check rules``, ``promtool test rules`` (every alert fires on the
right series and stays quiet on the others), the generated unit tests in sync with their generator, and
the conventions every rule follows."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitoring import stack

RULES = stack.RULES
UNIT_TESTS = RULES.parent / "tests"


def _load(path: Path) -> object:
    name = f"_monitoring_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _rules() -> list[dict]:
    return stack.rule_list(RULES.read_text())


def test_promtool_check_rules(promtool: str) -> None:
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_unit_tests(promtool: str) -> None:
    files = sorted(UNIT_TESTS.glob("*.yml"))
    assert {f.name for f in files} == {"availability.yml", "drift.yml", "requests.yml"}
    result = subprocess.run([promtool, "test", "rules", *map(str, files)], capture_output=True, text=True,
                            cwd=UNIT_TESTS)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files), result.stdout


def test_unit_tests_are_generated_from_the_generator() -> None:
    generator = _load(UNIT_TESTS / "generate.py")
    for name, make in generator.FILES.items():
        assert (UNIT_TESTS / name).read_text() == make(), (
            f"{name} is stale: run python monitoring/prometheus/tests/generate.py"
        )


def test_every_alert_fires_and_stays_quiet_in_the_unit_tests() -> None:
    alerts = {r["alert"] for r in _rules() if "alert" in r}
    fired, quiet = set(), set()
    for path in UNIT_TESTS.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert alerts - fired == set(), "alerts never proven to fire"
    assert alerts - quiet == set(), "alerts never proven to stay quiet"
    # Every unit-test scenario has at least two pods in a namespace (multi-instance aggregation).
    drift = (UNIT_TESTS / "drift.yml").read_text()
    assert len(set(re.findall(r'namespace="bank-prod",pod="([^"]+)"', drift))) == 2


def test_alert_conventions() -> None:
    for rule in _rules():
        if "alert" not in rule:
            continue
        name = rule["alert"]
        assert re.fullmatch(r"CreditRisk[A-Z]\w+", name)
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        assert rule["annotations"]["runbook"].startswith("monitoring/runbook.md#"), name


def test_runbook_has_a_section_per_alert() -> None:
    runbook = (RULES.parents[1] / "runbook.md").read_text()
    anchors = {m.lower() for m in re.findall(r"^## (\w+)", runbook, flags=re.M)}
    for rule in _rules():
        if "alert" in rule:
            anchor = re.search(r"runbook\.md#(\w+)", rule["annotations"]["runbook"]).group(1)
            assert anchor in anchors, f"{rule['alert']}: no '## {anchor}' section in monitoring/runbook.md"


def test_recording_rule_conventions() -> None:
    names = [r["record"] for r in _rules() if "record" in r]
    for name in names:
        assert re.fullmatch(r"namespace_model\w*:credit_risk_\w+:\w+", name), name
        for rule in _rules():
            if rule.get("record") == name:
                # aggregated by namespace and model: nothing per pod survives into a recorded series
                assert (
                    "by (namespace, model_name" in rule["expr"]
                    or "clamp_min(" in rule["expr"]
                    or ("label_replace" in rule["expr"])
                ), name
    # The file is plain YAML: no Helm templating (the chart embeds it verbatim).
    text = RULES.read_text()
    assert "{{-" not in text and ".Values" not in text and ".Release" not in text
    assert list(yaml.safe_load(text)) == ["groups"]


@pytest.mark.parametrize("window", ["30m", "5m"])
def test_psi_rules_follow_the_predictor_formula(window: str) -> None:
    """Shares floored at 1e-4 on both sides, pods summed before the shares are taken."""
    rules = {r.get("record"): r["expr"] for r in _rules()}
    live = rules[f"namespace_model_bin:credit_risk_score_live:ratio{window}"]
    assert "clamp_min(" in live and "1e-4" in live
    assert f"sum by (namespace, model_name, bin) (increase(credit_risk_score_bin_total[{window}]))" in live
    assert "1e-4" in rules["namespace_model_bin:credit_risk_score_reference:ratio"]
    psi = rules[f"namespace_model:credit_risk_score_psi:{window}"]
    assert " - " in psi and "* ln(" in psi
