"""The Prometheus rule file: ``promtool check rules``, ``promtool test rules`` (every alert fires on the
right series and stays quiet on the others), the generated unit tests in sync with their generator, and
the conventions every rule follows: model series aggregated per model version, transformer series per
namespace (with real names, labels and values), runbook URLs that resolve to a section of the runbook, a
scoped ``absent()``."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitoring import stack
from tests.monitoring import transformer_metrics as tm

RULES = stack.RULES
UNIT_TESTS = RULES.parent / "tests"
RUNBOOK = RULES.parents[1] / "runbook.md"
# The runbook's published address (documented in the rule file, monitoring/README.md and the chart's values).
RUNBOOK_URL = "https://github.com/bati-bank/credit-risk/blob/main/monitoring/runbook.md"
# Series that carry model_version and describe the model itself: whatever reads them compares or
# aggregates per version (bins against their own version's reference).
VERSIONED_INPUTS = (
    "credit_risk_score_bin_total",
    "credit_risk_feature_bin_total",
    "credit_risk_score_reference_ratio",
    "credit_risk_feature_reference_ratio",
    "credit_risk_score_bucket",
    "namespace_model_version",
)


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
    assert {f.name for f in files} == {"availability.yml", "drift.yml", "requests.yml", "transformer.yml"}
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
        # the standard annotations (Alertmanager templates, Grafana and most receivers read runbook_url)
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, name
        url = rule["annotations"]["runbook_url"]
        assert re.fullmatch(re.escape(RUNBOOK_URL) + r"#[a-z0-9-]+", url), (name, url)
        assert "{{" not in url, name


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file: lower case, punctuation dropped, spaces
    to hyphens (``## Rollout in progress / two versions`` -> ``rollout-in-progress--two-versions``)."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", markdown, flags=re.M):
        text = re.sub(r"`", "", heading).lower()
        anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def test_github_anchors() -> None:
    text = "# Runbook\n## CreditRiskModelAbsent\n## Rollout in progress / two versions serving\n"
    assert github_anchors(text) == {
        "runbook",
        "creditriskmodelabsent",
        "rollout-in-progress--two-versions-serving",
    }


def test_every_runbook_url_points_at_a_section_of_the_runbook() -> None:
    runbook = RUNBOOK.read_text()
    anchors = github_anchors(runbook)
    for rule in _rules():
        if "alert" in rule:
            anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
            assert anchor in anchors, (
                f"{rule['alert']}: no section with anchor #{anchor} in monitoring/runbook.md"
            )
    # The runbook's own links between sections resolve too.
    for link in re.findall(r"\]\(#([^)]+)\)", runbook):
        assert link in anchors, f"monitoring/runbook.md links to #{link}, which is no heading"
    assert "rollout-in-progress--two-versions-serving" in anchors


def test_model_absent_is_scoped_to_the_predictor_job() -> None:
    """absent() of a bare metric fires in every Prometheus that loads the rules; the rule names the
    predictor's scrape job, the one monitoring/stack.py and the promtool tests use."""
    generator = _load(UNIT_TESTS / "generate.py")
    absents = [r for r in _rules() if "absent(" in r["expr"]]
    assert [r.get("alert") for r in absents] == ["CreditRiskModelAbsent"]
    assert absents[0]["expr"] == f'absent(credit_risk_model_info{{job="{stack.JOB}"}})'
    assert generator.JOB == stack.JOB
    config = stack.Prometheus(Path("/nonexistent"), []).config()
    assert [job["job_name"] for job in config["scrape_configs"]] == [stack.JOB]


def test_model_series_are_aggregated_per_version() -> None:
    """Every rule reading bins, references or the score histogram (or a per-version recorded series)
    keeps model_version in each of its by / on clauses: two versions are never added together, nor one
    version's traffic compared with another's reference."""
    checked = 0
    for rule in _rules():
        name = rule.get("record") or rule["alert"]
        if not any(metric in rule["expr"] for metric in VERSIONED_INPUTS) and not name.startswith(
            "namespace_model_version"
        ):
            continue
        checked += 1
        for keyword, clause in re.findall(r"\b(by|on) \(([^)]*)\)", rule["expr"]):
            assert "model_version" in clause.split(", "), f"{name}: {keyword} ({clause}) drops model_version"
        if "record" in rule:
            assert rule["record"].startswith("namespace_model_version"), name
    assert checked == 18  # 14 recorded series, the 4 drift and decision alerts


def test_recording_rule_conventions() -> None:
    names = [r["record"] for r in _rules() if "record" in r]
    for name in names:
        if tm.PREFIX in name:  # the transformer's: per namespace (test_transformer_rules_are_per_namespace)
            assert re.fullmatch(rf"namespace(_route_status|_stage)?:{tm.PREFIX}\w+:\w+", name), name
            continue
        assert re.fullmatch(r"namespace_model\w*:credit_risk_\w+:\w+", name), name
        # the level names the aggregation: namespace_model_version… keeps the version, namespace_model… not
        level = "namespace, model_name, model_version" if name.startswith("namespace_model_version") else (
            "namespace, model_name")  # fmt: skip
        for rule in _rules():
            if rule.get("record") == name:
                # aggregated by namespace and model: nothing per pod survives into a recorded series
                assert (
                    f"by ({level}" in rule["expr"]
                    or "clamp_min(" in rule["expr"]
                    or ("label_replace" in rule["expr"])
                ), name
                if level == "namespace, model_name":
                    assert "model_version" not in rule["expr"], name
    # The file is plain YAML: no Helm templating (the chart parses it and substitutes values itself).
    text = RULES.read_text()
    assert "{{-" not in text and ".Values" not in text and ".Release" not in text
    assert list(yaml.safe_load(text)) == ["groups"]


@pytest.mark.parametrize("window", ["30m", "5m"])
def test_psi_rules_follow_the_predictor_formula(window: str) -> None:
    """Shares floored at 1e-4 on both sides, pods summed before the shares are taken."""
    rules = {r.get("record"): r["expr"] for r in _rules()}
    live = rules[f"namespace_model_version_bin:credit_risk_score_live:ratio{window}"]
    assert "clamp_min(" in live and "1e-4" in live
    assert (
        f"sum by (namespace, model_name, model_version, bin) (increase(credit_risk_score_bin_total[{window}]))"
        in live
    )
    assert "1e-4" in rules["namespace_model_version_bin:credit_risk_score_reference:ratio"]
    psi = rules[f"namespace_model_version:credit_risk_score_psi:{window}"]
    assert " - " in psi and "* ln(" in psi


# ------------------------------------------------------------------------------------------------ transformer


def _transformer_rules() -> list[dict]:
    return [r for r in _rules() if tm.PREFIX in r["expr"] or tm.PREFIX in r.get("record", "")]


def test_transformer_rules_read_real_series_labels_and_values() -> None:
    """Every transformer selector names a series the transformer exports, with its labels and values; the
    route regexes take in every scoring route and no probe."""
    rules = _transformer_rules()
    assert len(rules) == 14  # 10 recorded series, 4 alerts
    read = set()
    for rule in rules:
        assert tm.problems(rule["expr"]) == [], rule.get("record") or rule["alert"]
        read |= {tm.SERIES[s.series] for s in tm.selectors(rule["expr"])}
    # Everything but the ingest-result counter (a dashboard panel only) is read by a rule.
    assert set(tm.METRICS) - read == {"credit_risk_transformer_ingested_transactions_total"}


def test_transformer_problems_catch_typos() -> None:
    assert tm.problems('rate(credit_risk_transformer_store_errors{operation="lookup"}[5m])') == [
        "credit_risk_transformer_store_errors: not a transformer series"
    ]
    assert tm.problems('credit_risk_transformer_stage_duration_seconds_bucket{stage="lookup"}')
    assert tm.problems('credit_risk_transformer_store_up{model_name="credit-risk"}')
    assert tm.problems('credit_risk_transformer_requests_total{route=~".*"}')  # takes in the probes
    assert tm.problems('credit_risk_transformer_requests_total{route=~"/score|.*/infer"}')  # misses gRPC
    assert not tm.problems('credit_risk_transformer_ingest_rejected_total{reason="unauthorized", pod="x"}')


def test_transformer_rules_are_per_namespace() -> None:
    """The transformer's series carry no model_name (nor model_version): its rules aggregate and join by
    namespace only, and the recorded series say so in their level (namespace:, namespace_stage:, …)."""
    for rule in _transformer_rules():
        name = rule.get("record") or rule["alert"]
        assert "model_name" not in rule["expr"] and "model_version" not in rule["expr"], name
        for keyword, clause in re.findall(r"\b(by|on) \(([^)]*)\)", rule["expr"]):
            labels = clause.split(", ")
            assert labels[0] == "namespace", f"{name}: {keyword} ({clause})"
            assert keyword == "by" or labels == ["namespace"], f"{name}: {keyword} ({clause})"
        if "record" in rule:
            level = rule["record"].split(":")[0].split("_")
            kept = {"route_status": ["route", "status_code"], "stage": ["stage"]}.get("_".join(level[1:]), [])
            clauses = re.findall(r"\bby \(([^)]*)\)", rule["expr"])
            for clause in clauses:
                assert [c for c in clause.split(", ") if c != "le"] == ["namespace", *kept], (name, clause)
        else:
            assert name.startswith("CreditRiskTransformer"), name


def test_transformer_unit_tests_look_like_transformer_pods() -> None:
    """The promtool scenarios give the transformer's series the labels a scrape of its pods gives (its
    own job, two pods per namespace, no model_name), and only the transformer's labels besides."""
    group = yaml.safe_load((UNIT_TESTS / "transformer.yml").read_text())["tests"][0]
    series = [s["series"] for s in group["input_series"]]
    assert series and all(s.startswith(tm.PREFIX) for s in series)
    routes = tm.SCORING_ROUTES | tm.INGEST_ROUTES | tm.HEALTH_ROUTES
    for s in series:
        name = s.split("{")[0]
        labels = dict(re.findall(r'(\w+)="([^"]*)"', s))
        assert labels["job"] == "credit-risk-transformer" and "model_name" not in labels, s
        extra = {"le"} if name.endswith("_bucket") else set()
        assert set(labels) - tm.SCRAPE_LABELS - extra == tm.METRICS[tm.SERIES[name]].labels, s
        for label, value in labels.items():
            assert value in tm.VALUES.get((tm.SERIES[name], label), {value}), s
        assert labels.get("route", "/score") in routes, s
    prod = set(re.findall(r'namespace="bank-prod",pod="([^"]+)"', "\n".join(series)))
    assert len(prod) == 2
