"""The chart's PrometheusRule: the rule file monitoring/prometheus/credit-risk-rules.yml with exactly the
documented substitutions — CreditRiskModelAbsent scoped to the release (``monitoring.prometheusRule.selector``),
``runbook_url`` on ``runbookBaseUrl``, ``alertLabels`` / ``alertAnnotations`` on every alert — valid for
promtool, and the scoped ``absent()`` proven with promtool: it fires for the release's own predictor, not
for another namespace's or job's."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import ROOT
from tests.deploy.conftest import (
    CHART,
    NAMESPACE,
    RELEASE,
    combo_values,
    deep_merge,
    one,
    require_tool,
    run_helm,
    yaml_module,
)

RULES = ROOT / "monitoring" / "prometheus" / "credit-risk-rules.yml"
RUNBOOK_URL = "https://github.com/bati-bank/credit-risk/blob/main/monitoring/runbook.md"
FILE_ABSENT = 'absent(credit_risk_model_info{job="credit-risk-predictor"})'
MODEL = "credit-risk"


def file_groups() -> list[dict]:
    return yaml_module().safe_load(RULES.read_text())["groups"]


def rendered_groups(render: Callable[..., list[dict]], values: dict) -> list[dict]:
    return one(render(values), "PrometheusRule")["spec"]["groups"]


def rules_of(groups: list[dict]) -> list[dict]:
    return [rule for group in groups for rule in group["rules"]]


def alert(groups: list[dict], name: str) -> dict:
    (found,) = [r for r in rules_of(groups) if r.get("alert") == name]
    return found


def with_monitoring(mode: str = "kserve", **prometheus_rule: object) -> dict:
    values = combo_values(mode, True, False, "pvc")
    return (
        deep_merge(values, {"monitoring": {"prometheusRule": prometheus_rule}}) if prometheus_rule else values
    )


def expected_groups(absent: str, base: str = RUNBOOK_URL, labels: dict | None = None,
                    annotations: dict | None = None) -> list[dict]:  # fmt: skip
    """The rule file with the chart's substitutions applied, computed here independently of the template."""
    groups = copy.deepcopy(file_groups())
    for rule in rules_of(groups):
        if "alert" not in rule:
            continue
        if rule["expr"] == FILE_ABSENT:
            rule["expr"] = absent
        rule["labels"] = {**(labels or {}), **rule["labels"]}
        merged = {**(annotations or {}), **rule["annotations"]}
        merged["runbook_url"] = base + "#" + rule["annotations"]["runbook_url"].split("#", 1)[1]
        rule["annotations"] = merged
    return groups


# ------------------------------------------------------------------------------------------ substitutions


def test_the_rule_file_has_the_selector_the_chart_replaces() -> None:
    absents = [r for r in rules_of(file_groups()) if "absent(" in r["expr"]]
    assert [(r["alert"], r["expr"]) for r in absents] == [("CreditRiskModelAbsent", FILE_ABSENT)]


@pytest.mark.parametrize(
    ("mode", "extra", "absent"),
    [
        # the chart's ServiceMonitor scrapes: its job is the Service (KServe's <fullname>-predictor)
        ("kserve", {}, f'absent(credit_risk_model_info{{job="{RELEASE}-predictor", model_name="{MODEL}", '
                       f'namespace="{NAMESPACE}"}})'),
        ("deployment", {}, f'absent(credit_risk_model_info{{job="{RELEASE}", model_name="{MODEL}", '
                           f'namespace="{NAMESPACE}"}})'),
        # no ServiceMonitor (annotation scraping, Serverless): the job is unknown, namespace and model only
        ("deployment", {"monitoring": {"serviceMonitor": {"enabled": False}}},
         f'absent(credit_risk_model_info{{model_name="{MODEL}", namespace="{NAMESPACE}"}})'),
        ("kserve", {"kserve": {"deploymentMode": "Serverless"}},
         f'absent(credit_risk_model_info{{model_name="{MODEL}", namespace="{NAMESPACE}"}})'),
        # names follow fullnameOverride and model.name
        ("kserve", {"fullnameOverride": "scorer", "model": {"name": "bnpl"}},
         f'absent(credit_risk_model_info{{job="scorer-predictor", model_name="bnpl", namespace="{NAMESPACE}"}})'),
        # an explicit selector replaces the default entirely
        ("kserve", {"monitoring": {"prometheusRule": {"selector": {"namespace": "scoring", "job": "kubernetes-pods"}}}},
         'absent(credit_risk_model_info{job="kubernetes-pods", namespace="scoring"})'),
    ],
)  # fmt: skip
def test_model_absent_is_scoped_to_the_release(
    render: Callable[..., list[dict]], mode: str, extra: dict, absent: str
) -> None:
    groups = rendered_groups(render, deep_merge(with_monitoring(mode), extra))
    assert alert(groups, "CreditRiskModelAbsent")["expr"] == absent
    # and nothing else changed
    assert groups == expected_groups(absent)


def test_service_monitor_job_is_the_service_it_selects(render: Callable[..., list[dict]]) -> None:
    """The job in the selector is the Service the chart's ServiceMonitor scrapes (the Prometheus Operator
    names the job after the Service when no jobLabel is set)."""
    deployment = render(with_monitoring("deployment"))
    assert "jobLabel" not in one(deployment, "ServiceMonitor")["spec"]
    service = one(deployment, "Service")["metadata"]["name"]
    absent = alert(rendered_groups(render, with_monitoring("deployment")), "CreditRiskModelAbsent")["expr"]
    assert f'job="{service}"' in absent
    kserve = render(with_monitoring("kserve"))
    isvc = one(kserve, "InferenceService")["metadata"]["name"]
    selected = one(kserve, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert selected["serving.kserve.io/inferenceservice"] == isvc
    absent = alert(rendered_groups(render, with_monitoring("kserve")), "CreditRiskModelAbsent")["expr"]
    assert f'job="{isvc}-predictor"' in absent  # the Service KServe makes for the predictor


def test_runbook_urls_follow_runbook_base_url(render: Callable[..., list[dict]]) -> None:
    default = rendered_groups(render, with_monitoring())
    own = "https://git.bank.internal/ml/credit-risk/-/blob/v1.4.0/monitoring/runbook.md"
    moved = rendered_groups(render, with_monitoring(runbookBaseUrl=own))
    file_urls = [r["annotations"]["runbook_url"] for r in rules_of(file_groups()) if "alert" in r]
    assert len(file_urls) == 15 and all(u.startswith(RUNBOOK_URL + "#") for u in file_urls)
    assert [r["annotations"]["runbook_url"] for r in rules_of(default) if "alert" in r] == file_urls
    assert [r["annotations"]["runbook_url"] for r in rules_of(moved) if "alert" in r] == [
        own + "#" + u.split("#", 1)[1] for u in file_urls
    ]


def test_alert_labels_and_annotations_reach_every_alert_only(render: Callable[..., list[dict]]) -> None:
    labels = {"team": "credit-risk", "routing": "bank-oncall"}
    annotations = {"dashboard_url": "https://grafana.bank.internal/d/credit-risk-predictor",
                   "summary": "never wins over the rule's own"}  # fmt: skip
    groups = rendered_groups(render, with_monitoring(alertLabels=labels, alertAnnotations=annotations))
    absent = alert(rendered_groups(render, with_monitoring()), "CreditRiskModelAbsent")["expr"]
    assert groups == expected_groups(absent, labels=labels, annotations=annotations)
    for rule, original in zip(rules_of(groups), rules_of(file_groups()), strict=True):
        if "alert" in rule:
            assert rule["labels"] == {**labels, "severity": original["labels"]["severity"]}
            assert rule["annotations"]["summary"] == original["annotations"]["summary"]
            assert rule["annotations"]["dashboard_url"] == annotations["dashboard_url"]
        else:
            assert rule == original  # recording rules untouched
    # Prometheus templates in annotations survive (never run through helm's tpl)
    assert (
        "{{ $labels.namespace }}" in alert(groups, "CreditRiskScoreDriftCritical")["annotations"]["summary"]
    )


@pytest.mark.parametrize(
    ("prometheus_rule", "message"),
    [
        ({"runbookBaseUrl": "monitoring/runbook.md"}, "runbookBaseUrl"),
        ({"runbookBaseUrl": RUNBOOK_URL + "#creditriskmodelabsent"}, "runbookBaseUrl"),
        ({"alertLabels": {"severity-routing": "bank-oncall"}}, "alertLabels"),  # not a Prometheus label name
        ({"alertLabels": {"severity": "page"}}, "alertLabels"),  # the rules' own
        ({"alertLabels": {"team": 3}}, "alertLabels"),
        ({"selector": {"job-name": "x"}}, "selector"),
        ({"selector": 'namespace="scoring"'}, "selector"),
        ({"alertAnnotations": {"dashboard-url": "x"}}, "alertAnnotations"),
    ],
)
def test_bad_prometheus_rule_values_fail_schema(
    helm: str, write_values: Callable[[dict], Path], prometheus_rule: dict, message: str
) -> None:
    values = write_values(with_monitoring(**prometheus_rule))
    result = run_helm(helm, "template", RELEASE, str(CHART), "-f", str(values), "--namespace", NAMESPACE,
                      "--api-versions", "monitoring.coreos.com/v1", check=False)  # fmt: skip
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]


def test_a_rule_file_without_the_scoped_selector_fails_the_render(helm: str, tmp_path: Path) -> None:
    """If the rule file's absent() changes, the chart refuses to render instead of shipping an unscoped one."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart, symlinks=False)  # follows files/ -> monitoring/
    rules = chart / "files" / "credit-risk-rules.yml"
    rules.write_text(rules.read_text().replace(FILE_ABSENT, "absent(credit_risk_model_info)"))
    values = tmp_path / "values.yaml"
    values.write_text(yaml_module().safe_dump(with_monitoring()))
    result = run_helm(helm, "template", RELEASE, str(chart), "-f", str(values), "--namespace", NAMESPACE,
                      "--api-versions", "monitoring.coreos.com/v1", check=False)  # fmt: skip
    assert result.returncode != 0 and "CreditRiskModelAbsent" in result.stderr, result.stderr[-2000:]


# ------------------------------------------------------------------------------------------ promtool


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool", "Debian package prometheus; bash .ci/tools.sh")


def write_rules(path: Path, groups: list[dict]) -> Path:
    path.write_text(yaml_module().safe_dump({"groups": groups}, sort_keys=False, width=200))
    return path


@pytest.mark.parametrize("mode", ["kserve", "deployment"])
def test_rendered_rules_pass_promtool(
    render: Callable[..., list[dict]], promtool: str, tmp_path: Path, mode: str
) -> None:
    values = with_monitoring(mode, alertLabels={"team": "credit-risk"},
                             alertAnnotations={"dashboard_url": "https://grafana.example/d/x"})  # fmt: skip
    rules = write_rules(tmp_path / "rules.yml", rendered_groups(render, values))
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules_of(file_groups()))} rules found" in result.stdout


def _info(namespace: str, job: str, values: str, model: str = MODEL) -> dict:
    labels = {"job": job, "namespace": namespace, "pod": f"{job}-7c9d5-a", "instance": "10.1.0.7:8080",
              "model_name": model, "model_version": "3", "model_type": "lightgbm", "target_mode": "forward",
              "data_digest": "3f2a9c"}  # fmt: skip
    return {"series": "credit_risk_model_info{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}",
            "values": values}  # fmt: skip


@pytest.mark.parametrize(("mode", "job"), [("kserve", f"{RELEASE}-predictor"), ("deployment", RELEASE)])
def test_model_absent_fires_for_the_release_only(
    render: Callable[..., list[dict]], promtool: str, tmp_path: Path, mode: str, job: str
) -> None:
    """promtool on the rendered rules: the release's predictor disappears while another namespace's (and
    another job's in the same namespace) keep serving -> the alert fires, labelled with the release; the
    others disappear while the release's keeps serving -> quiet."""
    groups = rendered_groups(render, with_monitoring(mode, alertLabels={"team": "credit-risk"}))
    write_rules(tmp_path / "rules.yml", groups)
    annotations = alert(groups, "CreditRiskModelAbsent")["annotations"]
    fired = {"exp_labels": {"severity": "critical", "team": "credit-risk", "namespace": NAMESPACE, "job": job,
                            "model_name": MODEL},
             "exp_annotations": annotations}  # fmt: skip
    gone, serving = "1x5 _x30", "1x35"
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "the release's predictor is gone; other namespaces' and jobs' still serve",
                "interval": "1m",
                "input_series": [
                    _info(NAMESPACE, job, gone),
                    _info("scoring-staging", job, serving),
                    _info(NAMESPACE, "credit-risk-sandbox", serving),
                ],
                "alert_rule_test": [
                    {"eval_time": "12m", "alertname": "CreditRiskModelAbsent", "exp_alerts": []},  # pending
                    {"eval_time": "25m", "alertname": "CreditRiskModelAbsent", "exp_alerts": [fired]},
                ],
            },
            {
                "name": "another namespace's and another job's predictors are gone; the release's serves",
                "interval": "1m",
                "input_series": [
                    _info(NAMESPACE, job, serving),
                    _info("scoring-staging", job, gone),
                    _info(NAMESPACE, "credit-risk-sandbox", gone),
                ],
                "alert_rule_test": [
                    {"eval_time": "25m", "alertname": "CreditRiskModelAbsent", "exp_alerts": []}
                ],
            },
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml_module().safe_dump(tests, sort_keys=False, width=200))
    result = subprocess.run([promtool, "test", "rules", "tests.yml"], capture_output=True, text=True,
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS", result.stdout), result.stdout
