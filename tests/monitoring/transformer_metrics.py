"""The KServe transformer's metrics (``python -m serving.transformer``, its own pods and scrape job), as the
monitoring reads them: names, types, labels and the label values the rules and panels match on.

The rules (``monitoring/prometheus/credit-risk-rules.yml``) and the dashboard (``monitoring/grafana/
generate.py``) may only name these series, these labels and these values; ``tests/monitoring`` checks
every selector against this table, so a typo (``stage="lookup"``, ``credit_risk_transformer_store_errors``)
fails here instead of drawing an empty panel or an alert that never fires. Once the transformer is on main,
a test can compare this table with its registry (the names ``prometheus_client`` exposes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "credit_risk_transformer_"


@dataclass(frozen=True)
class Metric:
    kind: str  # counter | gauge | histogram
    labels: frozenset[str]


METRICS = {
    "credit_risk_transformer_requests_total": Metric("counter", frozenset({"route", "status_code"})),
    "credit_risk_transformer_request_duration_seconds": Metric("histogram", frozenset({"route"})),
    "credit_risk_transformer_stage_duration_seconds": Metric("histogram", frozenset({"stage"})),
    "credit_risk_transformer_store_errors_total": Metric("counter", frozenset({"operation"})),
    "credit_risk_transformer_store_up": Metric("gauge", frozenset()),
    "credit_risk_transformer_predictor_errors_total": Metric("counter", frozenset({"reason"})),
    "credit_risk_transformer_first_seen_customers_total": Metric("counter", frozenset()),
    "credit_risk_transformer_scored_transactions_total": Metric("counter", frozenset()),
    "credit_risk_transformer_ingested_transactions_total": Metric("counter", frozenset({"result"})),
    "credit_risk_transformer_ingest_rejected_total": Metric("counter", frozenset({"reason"})),
}
# Label values per (metric, label), where the transformer has a fixed set.
VALUES = {
    ("credit_risk_transformer_stage_duration_seconds", "stage"): {
        "store_lookup",
        "predictor",
        "store_ingest",
    },
    ("credit_risk_transformer_store_errors_total", "operation"): {"lookup", "ingest", "ping"},
    ("credit_risk_transformer_predictor_errors_total", "reason"): {"unavailable", "timeout", "refused"},
    ("credit_risk_transformer_ingested_transactions_total", "result"): {"added", "duplicate"},
    ("credit_risk_transformer_ingest_rejected_total", "reason"): {"unauthorized", "invalid", "conflict"},
}
SCORING_ROUTES = {"/score", "/v2/models/{model_name}/infer", "/inference.GRPCInferenceService/ModelInfer"}
INGEST_ROUTES = {"/v1/transactions"}
# Probes and scrapes (kserve's health routes, the model-ready route, /metrics): never traffic.
HEALTH_ROUTES = {"/v2/health/live", "/v2/health/ready", "/v2/models/{model_name}/ready", "/metrics"}
# Labels Prometheus adds at the scrape (the Prometheus Operator: namespace, pod, job, instance, container…).
SCRAPE_LABELS = {"namespace", "pod", "job", "instance", "container", "service", "endpoint"}


def series_names(metric: str) -> dict[str, str]:
    """The exposed series of a metric → the metric (a histogram's _bucket / _sum / _count, a counter's _total)."""
    kind = METRICS[metric].kind
    if kind == "histogram":
        return {f"{metric}{suffix}": metric for suffix in ("_bucket", "_sum", "_count")}
    return {metric: metric}


SERIES = {name: metric for metric in METRICS for name, metric in series_names(metric).items()}


@dataclass(frozen=True)
class Selector:
    series: str  # as written, e.g. credit_risk_transformer_stage_duration_seconds_bucket
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)


def selectors(expr: str) -> list[Selector]:
    """Every selector of a transformer series in a PromQL expression (raw series, not recorded ones)."""
    out = []
    for name, body in re.findall(rf"(?<![\w:])({PREFIX}\w+)(?:\{{([^}}]*)\}})?", expr):
        matchers = tuple(re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', body or ""))
        out.append(Selector(name, matchers))
    return out


def problems(expr: str) -> list[str]:
    """What is wrong with the transformer selectors of ``expr``: unknown series, labels the transformer
    does not have, values it never exports, route regexes that take in probes or miss scoring routes."""
    found = []
    for sel in selectors(expr):
        metric = SERIES.get(sel.series)
        if metric is None:
            found.append(f"{sel.series}: not a transformer series")
            continue
        allowed = (
            METRICS[metric].labels | SCRAPE_LABELS | ({"le"} if sel.series.endswith("_bucket") else set())
        )
        for label, op, value in sel.matchers:
            if label not in allowed:
                found.append(f"{sel.series}: no label {label}")
                continue
            if label == "route":
                found += _route_problems(sel.series, op, value)
            known = VALUES.get((metric, label))
            if known is None or label == "route":
                continue
            values = set(value.split("|")) if op in ("=~", "!~") else {value}
            if not values <= known:
                found.append(f"{sel.series}: {label} {op} {value!r}: the transformer exports {sorted(known)}")
    return found


def _route_problems(series: str, op: str, value: str) -> list[str]:
    if op != "=~":
        return [f"{series}: route {op} {value!r}: match routes with a regex of scoring (and ingest) routes"]
    matched = {r for r in SCORING_ROUTES | INGEST_ROUTES | HEALTH_ROUTES if re.fullmatch(value, r)}
    out = []
    if matched & HEALTH_ROUTES:
        out.append(f"{series}: route=~{value!r} takes in probes {sorted(matched & HEALTH_ROUTES)}")
    if SCORING_ROUTES - matched:
        out.append(f"{series}: route=~{value!r} misses scoring routes {sorted(SCORING_ROUTES - matched)}")
    return out
