"""The Grafana dashboard JSON: generated from ``monitoring/grafana/generate.py`` (the committed JSON must
equal the generator's output), and the panels, variables and queries the dashboard must have — the
transformer's row included, its queries checked against the transformer's metrics (names, labels, values)."""

from __future__ import annotations

import json
import re
from itertools import combinations

import pytest

from monitoring import stack
from tests.monitoring import transformer_metrics as tm
from tests.monitoring.conftest import ROOT, require_module

DASHBOARD = stack.DASHBOARDS / "credit-risk.json"
# Series with a model_version label (serving/metrics.py) other than credit_risk_model_info, and the
# per-version recorded series: the dashboard filters them on $version. Request series have no version.
VERSIONED = re.compile(
    r"credit_risk_(score_bin|feature_bin|score_reference|feature_reference|drift_reference|score_bucket"
    r"|score_sum|score_count|predictions|drift_window|score_psi|feature_psi)\w*|namespace_model_version\w*:\w+:\w+"
)


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_committed_json_equals_the_generator_output() -> None:
    require_module("grafana_foundation_sdk")
    from monitoring.grafana import generate

    for name in generate.DASHBOARDS:
        committed = (stack.DASHBOARDS / name).read_text()
        assert committed == generate.render(name), (
            f"{name} is stale: run python monitoring/grafana/generate.py"
        )
    assert generate.main(["--check"]) == 0


def test_variables(dashboard: dict) -> None:
    variables = {v["name"]: v for v in stack.dashboard_variables(dashboard)}
    assert set(variables) == {"datasource", "namespace", "model", "version"}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    assert stack.label_values_query(variables["namespace"]["query"]) == (
        "credit_risk_model_info",
        "namespace",
    )
    assert stack.label_values_query(variables["model"]["query"])[1] == "model_name"
    assert stack.label_values_query(variables["version"]["query"]) == (
        'credit_risk_model_info{namespace=~"$namespace", model_name=~"$model"}',
        "model_version",
    )
    for name in ("namespace", "model", "version"):
        assert (
            variables[name]["multi"] and variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
        )


def test_every_query_uses_the_datasource_and_the_variables(dashboard: dict) -> None:
    def panels(items: list[dict]):
        for p in items:
            yield p
            yield from panels(p.get("panels") or [])

    for panel in panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
    for query in stack.dashboard_queries(dashboard):
        # every selector of a credit-risk series is narrowed to the chosen namespaces and models
        for name, matchers in re.findall(
            r"((?:credit_risk_\w+|namespace_model\w*:\w+:\w+))(\{[^}]*\})?", query.expr
        ):
            if name.startswith(tm.PREFIX):
                # the transformer's series have no model_name: $namespace only (a model_name matcher would
                # select nothing), never $model or $version
                assert 'namespace=~"$namespace"' in matchers, (query.panel, name)
                assert "model_name" not in matchers and "model_version" not in matchers, (query.panel, name)
                continue
            assert 'namespace=~"$namespace"' in matchers and 'model_name=~"$model"' in matchers, (
                query.panel,
                name,
            )
            # versioned series follow $version; request series have no version to filter on, and the
            # rollout panels (credit_risk_model_info) show every version being served
            versioned = bool(VERSIONED.fullmatch(name))
            assert ('model_version=~"$version"' in matchers) == versioned, (query.panel, name)
        stack.substitute(
            query.expr, {"namespace": ".*", "model": ".*", "version": ".*", "__rate_interval": "1m"}
        )  # no unknown variable


def test_required_panels(dashboard: dict) -> None:
    by_title = {p["title"]: p for p in dashboard["panels"]}
    exprs = {q.panel: [] for q in stack.dashboard_queries(dashboard)}
    for q in stack.dashboard_queries(dashboard):
        exprs[q.panel].append(q.expr)

    def uses(title: str, *needles: str) -> None:
        joined = "\n".join(exprs[title])
        for needle in needles:
            assert needle in joined, (title, needle)

    uses("Scoring requests by status", "sum by (status_code)", "credit_risk_requests_total")
    uses("Error ratio", 'status_code=~"5.."', 'status_code=~"4.."')
    uses("Scoring latency", "histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,",
         "credit_risk_request_duration_seconds_bucket")  # fmt: skip
    uses("Rows per request", "credit_risk_request_rows_sum", "credit_risk_request_rows_bucket")
    uses("Score distribution", "credit_risk_score_bucket")
    assert by_title["Score distribution"]["type"] == "heatmap"
    assert by_title["Score distribution"]["targets"][0]["format"] == "heatmap"
    uses("Risk-level mix", "credit_risk_predictions_total", "sum by (model_version, decision)",
         "namespace_model_version_decision:credit_risk_reference:ratio")  # fmt: skip
    uses("Score PSI", "namespace_model_version:credit_risk_score_psi:30m", "credit_risk_score_psi")
    steps = by_title["Score PSI"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 0.1, 0.25]
    assert by_title["Score PSI"]["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"
    features = by_title["Feature PSI (30m), worst first"]
    assert features["type"] == "bargauge" and features["targets"][0]["expr"].startswith("sort_desc(")
    assert features["transformations"][0]["options"]["sort"][0]["desc"] is True
    uses("Model version serving", "credit_risk_model_info", "count by (model_version")
    uses("Instances up", "credit_risk_model_info", "up == 0")
    # A rollout is visible: pods and traffic per served version.
    uses("Pods per model version", "count by (model_version) (credit_risk_model_info")
    uses("Traffic per model version", "sum by (model_version)", "credit_risk_predictions_total")


DRIFT_PANELS = (
    "Score PSI (30m)",
    "Score PSI",
    "Feature PSI (30m), worst first",
    "Feature PSI over time (top 5)",
    "Rows in the drift windows",
    "Risk-level mix",
    "Pods per model version",
    "Traffic per model version",
)


def test_drift_panels_are_per_model_version(dashboard: dict) -> None:
    """During a rollout each version's drift is its own line (or bar): the queries keep model_version and
    the legends name it."""
    queries = [q for q in stack.dashboard_queries(dashboard) if q.panel in DRIFT_PANELS]
    assert {q.panel for q in queries} == set(DRIFT_PANELS)
    for query in queries:
        clauses = re.findall(r"\bby \(([^)]*)\)", query.expr)
        assert clauses and all("model_version" in c for c in clauses), (query.panel, query.expr)
        if query.panel != "Feature PSI (30m), worst first":  # a table: the display name below
            assert "{{model_version}}" in query.legend, (query.panel, query.legend)
    bars = next(p for p in dashboard["panels"] if p["title"] == "Feature PSI (30m), worst first")
    assert "${__data.fields.model_version}" in bars["fieldConfig"]["defaults"]["displayName"]


def test_layout_fits_the_grid_without_overlap(dashboard: dict) -> None:
    panels = dashboard["panels"]
    assert [p["id"] for p in panels] == list(range(1, len(panels) + 1))
    boxes = []
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        boxes.append((p["title"], g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]))
    for (a, ax0, ay0, ax1, ay1), (b, bx0, by0, bx1, by1) in combinations(boxes, 2):
        assert ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0, f"{a} overlaps {b}"


def test_recorded_series_used_by_the_dashboard_exist(dashboard: dict) -> None:
    recorded = {r["record"] for r in stack.rule_list(stack.RULES.read_text()) if "record" in r}
    for query in stack.dashboard_queries(dashboard):
        for name in re.findall(r"namespace_model\w*:\w+:\w+", query.expr):
            assert name in recorded, (query.panel, name)
    assert (ROOT / "monitoring" / "grafana" / "generate.py").is_file()


TRANSFORMER_PANELS = (
    "Transformer requests by route",
    "Transformer error ratio by route",
    "Transformer latency (p50 / p99)",
    "Feature store up",
    "Store errors by operation",
    "Predictor errors by reason",
    "First-seen customers",
    "Ingest: added vs duplicate",
    "Ingest rejected by reason",
)


def test_transformer_row(dashboard: dict) -> None:
    """The last row, "Transformer & feature store": its panels read the transformer's series only, with
    real names, labels and values, and show what the brief of each panel says."""
    panels = dashboard["panels"]
    rows = [i for i, p in enumerate(panels) if p["type"] == "row"]
    assert panels[rows[-1]]["title"] == "Transformer & feature store"
    assert tuple(p["title"] for p in panels[rows[-1] + 1 :]) == TRANSFORMER_PANELS
    queries = [q for q in stack.dashboard_queries(dashboard) if q.panel in TRANSFORMER_PANELS]
    assert {q.panel for q in queries} == set(TRANSFORMER_PANELS)
    read = set()
    for query in queries:
        assert tm.selectors(query.expr), (query.panel, query.expr)
        assert tm.problems(query.expr) == [], (query.panel, query.expr)
        assert "credit_risk_" not in re.sub(rf"{tm.PREFIX}\w+", "", query.expr), (query.panel, query.expr)
        read |= {tm.SERIES[s.series] for s in tm.selectors(query.expr)}
    assert read == set(tm.METRICS)  # every transformer metric is on the dashboard
    # No other panel reads the transformer.
    for query in stack.dashboard_queries(dashboard):
        if query.panel not in TRANSFORMER_PANELS:
            assert tm.PREFIX not in query.expr, query.panel

    exprs: dict[str, list[tuple[str, str]]] = {}
    for q in queries:
        exprs.setdefault(q.panel, []).append((q.expr, q.legend))

    def uses(title: str, *needles: str) -> None:
        joined = "\n".join(e for e, _ in exprs[title])
        for needle in needles:
            assert needle in joined, (title, needle)

    uses("Transformer requests by route", "sum by (route)", "credit_risk_transformer_requests_total")
    uses("Transformer error ratio by route", "sum by (route)", 'status_code=~"5.."', 'status_code=~"4.."')
    assert {legend for _, legend in exprs["Transformer error ratio by route"]} == {
        "5xx {{route}}",
        "4xx {{route}}",
    }
    # p50 and p99 of the store lookup, the predictor call and the whole request
    latency = exprs["Transformer latency (p50 / p99)"]
    for q in ("0.5", "0.99"):
        uses("Transformer latency (p50 / p99)", f"histogram_quantile({q}, sum by (stage, le)",
             f"histogram_quantile({q}, sum by (le)")  # fmt: skip
    assert any('stage=~"store_lookup|predictor"' in e for e, _ in latency)
    assert any("credit_risk_transformer_request_duration_seconds_bucket" in e for e, _ in latency)
    by_title = {p["title"]: p for p in panels}
    steps = by_title["Transformer latency (p50 / p99)"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 0.01]  # CreditRiskTransformerStoreLatencyHigh
    assert by_title["Feature store up"]["type"] == "stat"
    uses("Feature store up", "max by (pod) (credit_risk_transformer_store_up")
    uses("Store errors by operation", "sum by (operation)", "credit_risk_transformer_store_errors_total")
    uses("Predictor errors by reason", "sum by (reason)", "credit_risk_transformer_predictor_errors_total")
    first_seen = exprs["First-seen customers"][0][0]  # first seen / scored
    assert re.fullmatch(r"sum\(rate\(credit_risk_transformer_first_seen_customers_total\{[^}]*\}\[\$__rate_interval\]\)\) "
                        r"/ sum\(rate\(credit_risk_transformer_scored_transactions_total\{[^}]*\}\[\$__rate_interval\]\)\)",
                        first_seen), first_seen  # fmt: skip
    uses(
        "Ingest: added vs duplicate", "sum by (result)", "credit_risk_transformer_ingested_transactions_total"
    )
    uses("Ingest rejected by reason", "sum by (reason)", "credit_risk_transformer_ingest_rejected_total")


def test_transformer_alerts_and_panels_agree() -> None:
    """The thresholds the transformer panels draw are the alerts' (the rule file)."""
    rules = {r["alert"]: r["expr"] for r in stack.rule_list(stack.RULES.read_text()) if "alert" in r}
    assert 'quantile="0.99"} > 0.01' in rules["CreditRiskTransformerStoreLatencyHigh"]
    assert "ratio_rate5m > 0.01" in rules["CreditRiskTransformerPredictorErrors"]
