"""A real Prometheus scraping two real predictors (two workers each, like two pods) and a real transformer
(in front of one of them, on a real redis-server), loaded with the rule file, while reference-like traffic
and then a shifted population are scored, a quarter of the requests as raw transactions through the
transformer (scored, then ingested).

The rules run with short windows (``stack.TEST_RANGES``: the 30m PSI over 24 s, 5m over 8 s, ``for``
a few seconds), scraping and evaluating every second; rule and series names are unchanged. Then:

* every PromQL expression of the dashboards (variables substituted) and every recorded series returns
  data, and every rule evaluates without error;
* the PSI the rules record equals numpy's PSI on the counters Prometheus holds, pooled over both pods,
  and every recorded drift series carries the served ``model_version``;
* drift stays under 0.1 for reference-like traffic and crosses 0.25 after the shift — recorded PSI, the
  dashboard's PSI queries and the predictor's own gauges alike;
* each alert is in its expected state: drift, feature drift, decision mix and 4xx firing; the others
  (down, absent, version skew, no traffic, 5xx, latency) quiet; of the transformer's, the ingestion
  refusal alert firing (one ingestion is sent without its token), the store and predictor ones quiet.

"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from harness.net import wait_ready
from harness.predictor import TrainedModel, running_server
from harness.redis import redis_server
from harness.transformer import running_transformer
from monitoring import stack

pytestmark = pytest.mark.slow

NAMESPACE = "credit-risk-test"
PHASE_SECONDS = 26  # > the 24 s "30m" window: the window then holds one population only
VARIABLES = {"namespace": NAMESPACE, "model": stack.MODEL, "version": ".*",
             "__rate_interval": stack.TEST_RATE_INTERVAL, "__interval": "2s", "datasource": "prometheus"}  # fmt: skip
WINDOW = stack.TEST_RANGES["30m"]

# The state of every alert at the end of the run (the test fails on an alert missing here).
EXPECTED_ALERTS = {
    "CreditRiskScoreDriftCritical": "firing",
    "CreditRiskScoreDriftWarning": "firing",
    "CreditRiskFeatureDrift": "firing",
    "CreditRiskDecisionMixShift": "firing",
    "CreditRiskClientErrorRatio": "firing",  # the traffic includes 15% malformed requests
    "CreditRiskHighErrorRatio": "inactive",
    "CreditRiskHighLatency": "inactive",
    "CreditRiskPredictorDown": "inactive",
    "CreditRiskModelAbsent": "inactive",
    "CreditRiskModelVersionSkew": "inactive",
    "CreditRiskNoTraffic": "inactive",
    "CreditRiskTransformerStoreDown": "inactive",
    "CreditRiskTransformerStoreLatencyHigh": "inactive",
    "CreditRiskTransformerPredictorErrors": "inactive",
    "CreditRiskTransformerIngestRejected": "firing",  # one ingestion without the token
}
DRIFT_ALERTS = {"CreditRiskScoreDriftCritical", "CreditRiskScoreDriftWarning", "CreditRiskFeatureDrift",
                "CreditRiskDecisionMixShift"}  # fmt: skip


@dataclass
class Run:
    prometheus: stack.Prometheus
    traffic: stack.Traffic
    reference: dict[str, float] = field(default_factory=dict)  # values at the end of the reference phase
    reference_alerts: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _drift_values(prom: stack.Prometheus) -> dict[str, float]:
    selector = f'{{namespace="{NAMESPACE}", model_name="{stack.MODEL}"}}'
    return {
        "psi_30m": prom.value(f"namespace_model_version:credit_risk_score_psi:30m{selector}"),
        "psi_5m": prom.value(f"namespace_model_version:credit_risk_score_psi:5m{selector}"),
        "psi_gauge": prom.value(f"max(credit_risk_score_psi{selector})"),
        "amount_psi_30m": prom.value(
            f'namespace_model_version_feature:credit_risk_feature_psi:30m{{namespace="{NAMESPACE}", feature="Amount"}}'
        ),
        "rows_30m": prom.value(f"namespace_model_version:credit_risk_score_rows:increase30m{selector}"),
    }


@pytest.fixture(scope="module")
def run(
    trained: TrainedModel, prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    from ml.schema import FEATURE_NAMES

    workdir = tmp_path_factory.mktemp("stack")
    started = time.monotonic()
    args = ("--model-uri", str(trained.path), "--workers", "2", "--drift-window-seconds", "24",
            "--grace-period-seconds", "2")  # fmt: skip
    with (
        running_server(*args, workdir=workdir) as pod_a,
        running_server(*args, workdir=workdir) as pod_b,
        redis_server(workdir / "redis") as redis,
        running_transformer(pod_a.url.removeprefix("http://"), redis.url, workdir=workdir) as transformer,
    ):
        wait_ready(transformer.url + "/v2/health/ready", "the transformer", 30)
        pods = ((pod_a.url, "credit-risk-predictor-a"), (pod_b.url, "credit-risk-predictor-b"),
                (transformer.url, "credit-risk-transformer-a"))  # fmt: skip
        targets = [
            stack.Target(url.removeprefix("http://"), {"namespace": NAMESPACE, "pod": pod})
            for url, pod in pods
        ]
        rules = stack.rules_with_windows(stack.RULES.read_text(), stack.TEST_RANGES, stack.TEST_FOR)
        with stack.Prometheus(workdir / "prometheus", targets, rules, binary=prometheus_binary) as prom:
            traffic = stack.Traffic([pod_a.url, pod_b.url], (transformer.url, transformer.token))
            result = Run(prom, traffic)
            result.seconds["start"] = time.monotonic() - started
            traffic.run(trained.X_fresh, PHASE_SECONDS)
            result.reference = _drift_values(prom)
            result.reference_alerts = prom.alerts()
            shifted = stack.shifted_population(trained.X_train, trained.y_train, list(FEATURE_NAMES), 5_000)
            traffic.run(shifted, PHASE_SECONDS)
            time.sleep(2)  # a last scrape and rule evaluation
            result.seconds["traffic"] = time.monotonic() - started - result.seconds["start"]
            yield result
            assert "level=error" not in prom.logs(), prom.logs()[-3000:]


def test_both_predictors_and_the_transformer_are_scraped_and_traffic_was_served(run: Run) -> None:
    assert run.prometheus.targets_up() == 3
    assert run.traffic.statuses.get(200, 0) > 300 and set(run.traffic.statuses) == {200, 400}
    assert run.traffic.transformer_statuses.get(200, 0) > 200 and set(run.traffic.transformer_statuses) == {
        200,
        401,
    }
    assert run.seconds["start"] < 40 and run.seconds["traffic"] < 70, run.seconds


def test_every_rule_evaluates_and_every_recorded_series_has_data(run: Run) -> None:
    states = run.prometheus.rules_state()
    product = stack.rule_list(stack.RULES.read_text())
    assert len(states) == len(product)
    for rule in states:
        assert rule["health"] == "ok" and not rule.get("lastError"), rule
    for rule in product:
        if "record" in rule:
            result = run.prometheus.query(f'{rule["record"]}{{namespace="{NAMESPACE}"}}')
            assert result, f"no data for the recorded series {rule['record']}"


def test_every_dashboard_query_returns_data(run: Run) -> None:
    for path in stack.dashboard_files():
        dashboard = json.loads(path.read_text())
        for variable in stack.dashboard_variables(dashboard):
            if variable["type"] == "query":
                selector, label = stack.label_values_query(stack.substitute(variable["query"], VARIABLES))
                values = {s.get(label) for s in run.prometheus.series(selector)}
                expected = {"namespace": {NAMESPACE}, "model_name": {stack.MODEL}}.get(
                    label, _served_versions(run)
                )
                assert values == expected, (variable["name"], values)
        queries = stack.dashboard_queries(dashboard)
        assert len(queries) >= 20 and any(stack.reads_transformer(q.expr) for q in queries)
        for query in queries:
            expr = stack.substitute(query.expr, VARIABLES)
            result = run.prometheus.query(expr)
            assert result, f"{path.name} / {query.panel} / {query.ref}: no data for {expr}"
            values = [float(r["value"][1]) for r in result]
            assert not any(np.isnan(values)), (query.panel, expr, result)


def _served_versions(run: Run) -> set[str]:
    return {r["metric"]["model_version"] for r in run.prometheus.query("credit_risk_model_info")}


def test_recorded_drift_series_carry_the_served_model_version(run: Run) -> None:
    """The predictor labels its bins and references with model_version (one version here, both pods):
    every per-version recorded series has exactly that version, nothing version-less."""
    versions = _served_versions(run)
    assert len(versions) == 1 and "" not in versions, versions
    for rule in stack.rule_list(stack.RULES.read_text()):
        if rule.get("record", "").startswith("namespace_model_version"):
            result = run.prometheus.query(f'{rule["record"]}{{namespace="{NAMESPACE}"}}')
            assert {r["metric"].get("model_version", "") for r in result} == versions, rule["record"]


def test_drift_is_low_for_reference_like_traffic_and_crosses_025_after_the_shift(run: Run) -> None:
    before, after = run.reference, _drift_values(run.prometheus)
    assert before["rows_30m"] > 1_000 and after["rows_30m"] > 1_000  # far above the 500-row guard
    for name in ("psi_30m", "psi_5m", "psi_gauge", "amount_psi_30m"):
        assert before[name] < 0.1, (name, before)
        assert after[name] > 0.25, (name, after)
    # The dashboard's drift panels see the same: its score-PSI and feature-PSI queries.
    dashboard = json.loads((stack.DASHBOARDS / "credit-risk.json").read_text())
    for query in stack.dashboard_queries(dashboard):
        if query.panel in ("Score PSI (30m)", "Score PSI", "Feature PSI (30m), worst first"):
            values = [
                float(r["value"][1]) for r in run.prometheus.query(stack.substitute(query.expr, VARIABLES))
            ]
            assert max(values) > 0.25, (query.panel, query.ref, values)
    # The worst feature comes first.
    worst = run.prometheus.query(
        stack.substitute(
            next(
                q.expr for q in stack.dashboard_queries(dashboard) if q.panel.startswith("Feature PSI (30m)")
            ),
            VARIABLES,
        )
    )
    values = [float(r["value"][1]) for r in worst]
    assert values == sorted(values, reverse=True) and len(values) == 26


def _psi(live: np.ndarray, reference: np.ndarray) -> float:
    live = np.maximum(live / live.sum(), 1e-4)
    reference = np.maximum(reference, 1e-4)
    return float(np.sum((live - reference) * np.log(live / reference)))


@pytest.mark.parametrize(
    ("recorded", "counters", "reference", "matchers"),
    [
        ("namespace_model_version:credit_risk_score_psi:30m", "credit_risk_score_bin_total",
         "credit_risk_score_reference_ratio", ""),
        ("namespace_model_version_feature:credit_risk_feature_psi:30m", "credit_risk_feature_bin_total",
         "credit_risk_feature_reference_ratio", 'feature="Amount"'),
        ("namespace_model_version_feature:credit_risk_feature_psi:30m", "credit_risk_feature_bin_total",
         "credit_risk_feature_reference_ratio", 'feature="transaction_hour"'),
    ],
)  # fmt: skip
def test_recorded_psi_equals_numpy_on_the_pooled_counters(run: Run, recorded: str, counters: str,
                                                          reference: str, matchers: str) -> None:  # fmt: skip
    prom = run.prometheus
    selector = ", ".join(filter(None, [f'namespace="{NAMESPACE}"', matchers]))
    at = prom.value(f"timestamp({recorded}{{{selector}}})")  # when the rule last ran
    value = prom.value(f"{recorded}{{{selector}}}", at)
    # Counters summed over the two pods per bin, over the same window, at the same time.
    live = {r["metric"]["bin"]: float(r["value"][1])
            for r in prom.query(f"sum by (bin) (increase({counters}{{{selector}}}[{WINDOW}]))", at)}  # fmt: skip
    per_pod = prom.query(f"sum by (pod) (increase({counters}{{{selector}}}[{WINDOW}]))", at)
    assert len(per_pod) == 2 and all(float(r["value"][1]) > 0 for r in per_pod)
    ref = {r["metric"]["bin"]: float(r["value"][1])
           for r in prom.query(f"max by (bin) ({reference}{{{selector}}})", at)}  # fmt: skip
    assert set(live) == set(ref) and len(ref) >= 2
    bins = sorted(ref)
    expected = _psi(np.array([live[b] for b in bins]), np.array([ref[b] for b in bins]))
    assert value == pytest.approx(expected, rel=0.02, abs=0.005)


def test_alerts_are_in_their_expected_states(run: Run) -> None:
    product = {r["alert"] for r in stack.rule_list(stack.RULES.read_text()) if "alert" in r}
    assert product == set(EXPECTED_ALERTS), "add the new alert to EXPECTED_ALERTS"
    # Reference-like traffic: no drift alert even pending.
    assert not [a for a in run.reference_alerts if a["labels"]["alertname"] in DRIFT_ALERTS]
    states = {r["name"]: r["state"] for r in run.prometheus.rules_state() if r["type"] == "alerting"}
    assert states == EXPECTED_ALERTS
    firing = [a["labels"] for a in run.prometheus.alerts() if a["state"] == "firing"]
    # drift alerts name the model version whose traffic drifted from its own reference
    (version,) = _served_versions(run)
    assert {"alertname": "CreditRiskScoreDriftCritical", "severity": "critical", "namespace": NAMESPACE,
            "model_name": stack.MODEL, "model_version": version} in firing  # fmt: skip
    features = {a["feature"] for a in firing if a["alertname"] == "CreditRiskFeatureDrift"}
    assert "Amount" in features and not features & {
        "transaction_year",
        "transaction_month",
        "transaction_week",
    }
    assert {a["decision"] for a in firing if a["alertname"] == "CreditRiskDecisionMixShift"} >= {"reject"}
    # The dashboard's alert annotation query sees them.
    assert run.prometheus.query(
        f'ALERTS{{alertname=~"CreditRisk.*", alertstate="firing", namespace=~"{NAMESPACE}"}}'
    )


def test_rules_with_test_windows_keep_names_and_change_only_durations() -> None:
    product = stack.rule_list(stack.RULES.read_text())
    short = stack.rule_list(
        stack.rules_with_windows(stack.RULES.read_text(), stack.TEST_RANGES, stack.TEST_FOR)
    )
    assert [r.get("record") or r.get("alert") for r in product] == [
        r.get("record") or r.get("alert") for r in short
    ]
    for a, b in zip(product, short, strict=True):
        normalised = b["expr"]
        for long, brief in stack.TEST_RANGES.items():
            normalised = normalised.replace(f"[{brief}]", f"[{long}]")
        assert normalised == a["expr"]
    assert Path(stack.RULES).read_text().count("[30m]") >= 6
