"""The credit-risk predictor's Grafana dashboard, as code (grafana-foundation-sdk).

    python monitoring/grafana/generate.py            # (re)write monitoring/grafana/dashboards/*.json
    python monitoring/grafana/generate.py --check    # exit 1 if a committed JSON differs from the code

The JSON output is committed next to this file (Grafana provisioning and the Helm chart read it);
``tests/monitoring/test_dashboards.py`` fails when the two differ. Metric names and meaning: README
"Metrics" and ``serving/metrics.py``; recorded series (``namespace_model…:…``): the rule file
``monitoring/prometheus/credit-risk-rules.yml``.

Variables: ``$datasource`` (any Prometheus), ``$namespace``, ``$model`` (``model_name``) and ``$version``
(``model_version``), multi-valued and taken from ``credit_risk_model_info``, so request series of unknown
model names (the predictor labels requests with the model name of the URL) never show up.

Model versions. The model's own series (score and feature bins, references, the score histogram,
decisions, the in-process drift gauges) carry ``model_version``: their panels filter on ``$version`` and
draw one line per version (legends ``v<version>``), so during a rollout each version's drift is read
against its own reference. Request series have no version and ignore ``$version``. The rollout panels
(``credit_risk_model_info``: versions serving, pods per version) always show every version.

Transformer. The row "Transformer & feature store" reads the KServe transformer's own series
(``credit_risk_transformer_*``, its pods scraped under their own job): requests and error ratio by route,
latency of the store lookup / predictor call / whole request, the store's health, predictor errors, the
first-seen share and ingest. Those series carry no ``model_name``: they follow ``$namespace`` only (a
``model_name`` matcher would select nothing), and are never filtered on ``$model`` or ``$version``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, heatmap, stat, timeseries
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dbm
from grafana_foundation_sdk.models import heatmap as heatmap_models
from grafana_foundation_sdk.models import prometheus as promm

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "dashboards"

DATASOURCE = dbm.DataSourceRef(type_val="prometheus", uid="${datasource}")
SCORING_ROUTES = "/predict|.*/infer"  # /predict and the V2 infer routes (versioned or not)
MODEL = 'namespace=~"$namespace", model_name=~"$model"'
VERSIONED = f'{MODEL}, model_version=~"$version"'  # series that carry model_version (not the request ones)
SCORING = f'{MODEL}, route=~"{SCORING_ROUTES}"'
# The transformer's series (credit_risk_transformer_*) have no model_name: filtered on the namespace only.
TRANSFORMER = 'namespace=~"$namespace"'
TRANSFORMER_SCORING_ROUTES = "/score|.*/infer|.*/ModelInfer"  # /score, V2 HTTP infer, V2 gRPC ModelInfer
TRANSFORMER_ROUTES = f"{TRANSFORMER_SCORING_ROUTES}|/v1/transactions"  # and ingest; no health probes
STORE_LOOKUP_P99_MAX = 0.01  # seconds: CreditRiskTransformerStoreLatencyHigh (the rule file)
PSI_MODERATE, PSI_MAJOR = 0.1, 0.25
MIN_DRIFT_ROWS = 500  # the drift alerts' guard (monitoring/prometheus/credit-risk-rules.yml)


# ------------------------------------------------------------------------------------------------ helpers


def query(expr: str, legend: str = "__auto", ref: str = "A", *, instant: bool = False,
          fmt: promm.PromQueryFormat | None = None) -> prom.Dataquery:  # fmt: skip
    q = prom.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    q = q.instant() if instant else q.range()
    if fmt is not None:
        q = q.format(fmt)
    return q


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dbm.ThresholdsMode.ABSOLUTE)
        .steps([dbm.Threshold(value=v, color=c) for v, c in steps])
    )


PSI_THRESHOLDS = (None, "green"), (PSI_MODERATE, "yellow"), (PSI_MAJOR, "red")


def legend(
    placement: common.LegendPlacement = common.LegendPlacement.BOTTOM,
) -> common_builder.VizLegendOptions:
    return (
        common_builder.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(placement)
        .show_legend(True)
    )


def tooltip() -> common_builder.VizTooltipOptions:
    return (
        common_builder.VizTooltipOptions()
        .mode(common.TooltipDisplayMode.MULTI)
        .sort(common.SortOrder.DESCENDING)
    )


def graph(title: str, description: str, unit: str, *queries: prom.Dataquery, w: int = 8, h: int = 8
          ) -> timeseries.Panel:  # fmt: skip
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(w)
        .height(h)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(legend())
        .tooltip(tooltip())
    )
    for q in queries:
        panel = panel.with_target(q)
    return panel


def big_number(title: str, description: str, unit: str, q: prom.Dataquery, steps: tuple, w: int = 4
               ) -> stat.Panel:  # fmt: skip
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(w)
        .height(4)
        .with_target(q)
        .thresholds(thresholds(*steps))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


# ------------------------------------------------------------------------------------------------ panels


def overview() -> list:
    instances = big_number(
        "Instances up",
        "Predictor pods serving the model (exporting credit_risk_model_info); red when a pod that served it "
        "in the last day can no longer be scraped.",
        "short",
        query(f"count(credit_risk_model_info{{{MODEL}}}) or vector(0)", "serving"),
        ((None, "red"), (1, "green")),
    ).with_target(
        query(
            f"count(up == 0 and on (job, instance) max_over_time(credit_risk_model_info{{{MODEL}}}[1d])) or vector(0)",
            "down",
            "B",
        )
    )
    version = (
        stat.Panel()
        .title("Model version serving")
        .description("Each model version being served and how many pods serve it (two versions: a rollout).")
        .datasource(DATASOURCE)
        .span(8)
        .height(4)
        .with_target(
            query(
                "count by (model_version, model_type, target_mode, data_digest) "
                f"(credit_risk_model_info{{{MODEL}}})",
                "v{{model_version}} · {{model_type}} · {{target_mode}} · data {{data_digest}}",
                instant=True,
            )
        )
        .unit("short")
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.NONE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    requests = big_number(
        "Scoring requests",
        "Scoring requests per second (/predict and V2 infer), every pod.",
        "reqps",
        query(f"sum(rate(credit_risk_requests_total{{{SCORING}}}[$__rate_interval]))", "requests/s"),
        ((None, "blue"),),
    )
    errors = big_number(
        "5xx ratio",
        "Share of scoring requests answered 5xx. The alert fires above 1% for 5 minutes.",
        "percentunit",
        query(
            f'(sum(rate(credit_risk_requests_total{{{SCORING}, status_code=~"5.."}}[$__rate_interval])) or vector(0))'
            f" / sum(rate(credit_risk_requests_total{{{SCORING}}}[$__rate_interval]))",
            "5xx",
        ),
        ((None, "green"), (0.01, "red")),
    )
    psi = big_number(
        "Score PSI (30m)",
        "Population stability of the scores over the last 30 minutes, each model version against its own "
        f"training reference: < {PSI_MODERATE} stable, {PSI_MODERATE}–{PSI_MAJOR} moderate shift, > {PSI_MAJOR} "
        "major shift.",
        "none",
        query(
            f"max by (model_version) (namespace_model_version:credit_risk_score_psi:30m{{{VERSIONED}}})",
            "v{{model_version}}",
        ),
        PSI_THRESHOLDS,
    ).decimals(3)
    pods = (
        graph(
            "Pods per model version",
            "Predictor pods serving each model version (credit_risk_model_info), stacked: a rollout shows as "
            "the new version rising while the old one falls. Two versions for 30 minutes: "
            "CreditRiskModelVersionSkew.",
            "short",
            query(f"count by (model_version) (credit_risk_model_info{{{MODEL}}})", "v{{model_version}}"),
            w=12,
            h=6,
        )
        .stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
        .decimals(0)
        .min(0)
    )
    share = (
        graph(
            "Traffic per model version",
            "Share of the scored rows each model version scored (of the versions selected): during a rollout, "
            "how much of the traffic the new version already takes.",
            "percentunit",
            query(
                f"sum by (model_version) (rate(credit_risk_predictions_total{{{VERSIONED}}}[$__rate_interval])) "
                "/ ignoring (model_version) group_left () "
                f"sum(rate(credit_risk_predictions_total{{{VERSIONED}}}[$__rate_interval]))",
                "v{{model_version}}",
            ),
            w=12,
            h=6,
        )
        .stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
        .max(1)
        .min(0)
    )
    return [instances, version, requests, errors, psi, pods, share]


def requests_row() -> list:
    by_status = graph(
        "Scoring requests by status",
        "Requests per second on the scoring routes (/predict, V2 infer) by HTTP status. Probes and scrapes are "
        "not counted here.",
        "reqps",
        query(
            f"sum by (status_code) (rate(credit_risk_requests_total{{{SCORING}}}[$__rate_interval]))",
            "{{status_code}}",
        ),
    )
    error_ratio = (
        graph(
            "Error ratio",
            "Share of scoring requests answered 5xx (server errors: the alert threshold is 1%) and 4xx (bad "
            "client input: informational above 5%).",
            "percentunit",
            query(
                f'(sum(rate(credit_risk_requests_total{{{SCORING}, status_code=~"5.."}}[$__rate_interval])) or vector(0))'
                f" / sum(rate(credit_risk_requests_total{{{SCORING}}}[$__rate_interval]))",
                "5xx",
            ),
            query(
                f'(sum(rate(credit_risk_requests_total{{{SCORING}, status_code=~"4.."}}[$__rate_interval])) or vector(0))'
                f" / sum(rate(credit_risk_requests_total{{{SCORING}}}[$__rate_interval]))",
                "4xx",
                "B",
            ),
        )
        .thresholds(thresholds((None, "transparent"), (0.01, "red")))
        .thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    )
    latency = graph(
        "Scoring latency",
        "p50 / p95 / p99 of the end-to-end latency of scoring requests inside the server, from the "
        "credit_risk_request_duration_seconds histogram summed over pods. The alert fires on p99 > 500 ms.",
        "s",
        *[
            query(
                f"histogram_quantile({q}, sum by (le) "
                f"(rate(credit_risk_request_duration_seconds_bucket{{{SCORING}}}[$__rate_interval])))",
                f"p{round(q * 100)}",
                ref,
            )
            for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
        ],
    ).scale_distribution(common_builder.ScaleDistributionConfig().type(common.ScaleDistribution.LOG).log(10))
    rows = graph(
        "Rows per request",
        "Rows scored per request: the mean and the p95 (credit_risk_request_rows histogram).",
        "short",
        query(
            f"sum(rate(credit_risk_request_rows_sum{{{MODEL}}}[$__rate_interval])) "
            f"/ sum(rate(credit_risk_request_rows_count{{{MODEL}}}[$__rate_interval]))",
            "mean",
        ),
        query(
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(credit_risk_request_rows_bucket{{{MODEL}}}[$__rate_interval])))",
            "p95",
            "B",
        ),
        w=12,
    )
    scored = graph(
        "Rows scored",
        "Rows scored per second (a request may carry many rows), by model version and decision.",
        "short",
        query(
            "sum by (model_version, decision) "
            f"(rate(credit_risk_predictions_total{{{VERSIONED}}}[$__rate_interval]))",
            "v{{model_version}} {{decision}}",
        ),
        w=12,
    ).stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
    return [by_status, error_ratio, latency, rows, scored]


def scores_row() -> list:
    distribution = (
        heatmap.Panel()
        .title("Score distribution")
        .description(
            "Rows per score bin over time (credit_risk_score histogram, on the training reference's bins "
            "0.1 … 0.9), summed over the versions selected: during a rollout pick one with the Version "
            "variable. Business bands: < 0.30 approve, 0.30–0.60 review, > 0.60 reject."
        )
        .datasource(DATASOURCE)
        .span(12)
        .height(9)
        .with_target(
            query(
                f"sum by (le) (increase(credit_risk_score_bucket{{{VERSIONED}}}[$__rate_interval]))",
                "{{le}}",
                fmt=promm.PromQueryFormat.HEATMAP,
            )
        )
        .calculate(False)
        .color(heatmap.HeatmapColorOptions().mode(heatmap_models.HeatmapColorMode.SCHEME).scheme("Oranges"))
        .y_axis(heatmap.YAxisConfig().unit("none").decimals(1))
        .cell_values(heatmap.CellValues().unit("short"))
        .show_legend()
    )
    mix = (
        graph(
            "Risk-level mix",
            "Share of scored rows per decision (approve = low risk, review = medium, reject = high), one line "
            "per model version and decision; dashed: the same shares in that version's training reference. The "
            "alert fires when a version's share moves more than 15 points from its reference for 30 minutes.",
            "percentunit",
            query(
                "sum by (model_version, decision) "
                f"(rate(credit_risk_predictions_total{{{VERSIONED}}}[$__rate_interval])) "
                "/ ignoring (decision) group_left () "
                f"sum by (model_version) (rate(credit_risk_predictions_total{{{VERSIONED}}}[$__rate_interval]))",
                "v{{model_version}} {{decision}}",
            ),
            query(
                "avg by (model_version, decision) "
                f"(namespace_model_version_decision:credit_risk_reference:ratio{{{VERSIONED}}})",
                "v{{model_version}} {{decision}} (reference)",
                "B",
            ),
            w=12,
            h=9,
        )
        .max(1)
        .min(0)
    )
    mix = mix.override_by_regexp(
        ".*reference.*",
        [
            dbm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            dbm.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
        ],
    )
    for decision, color in (("approve", "green"), ("review", "yellow"), ("reject", "red")):
        mix = mix.override_by_regexp(
            f".* {decision}.*",
            [dbm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": color})],
        )
    return [distribution, mix]


def drift_row() -> list:
    score_psi = (
        graph(
            "Score PSI",
            "PSI of the scores of each model version against that version's training reference: PromQL over 30 "
            "minutes (alerts) and 5 minutes (faster, noisier), both over all pods of the version, and each pod's "
            f"own sliding-window gauge (credit_risk_score_psi). Bands: {PSI_MODERATE} moderate, {PSI_MAJOR} major "
            "shift. Few rows make PSI noisy: see the rows panel (a new version starts with few).",
            "none",
            query(
                "max by (namespace, model_name, model_version) "
                f"(namespace_model_version:credit_risk_score_psi:30m{{{VERSIONED}}})",
                "30m v{{model_version}} {{namespace}}/{{model_name}}",
            ),
            query(
                "max by (namespace, model_name, model_version) "
                f"(namespace_model_version:credit_risk_score_psi:5m{{{VERSIONED}}})",
                "5m v{{model_version}} {{namespace}}/{{model_name}}",
                "B",
            ),
            query(
                f"max by (pod, model_version, window) (credit_risk_score_psi{{{VERSIONED}}})",
                "in-process {{window}} v{{model_version}} {{pod}}",
                "C",
            ),
            w=12,
            h=9,
        )
        .thresholds(thresholds(*PSI_THRESHOLDS))
        .thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE_AND_AREA)
        )
        .min(0)
        .decimals(3)
        .override_by_regexp(
            "in-process.*",
            [dbm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dot", "dash": [0, 10]})],
        )
    )
    features = (
        bargauge.Panel()
        .title("Feature PSI (30m), worst first")
        .description(
            "PSI of each of the 26 features over the last 30 minutes against its training deciles, per model "
            "version, sorted worst first. Absolute calendar features (transaction_year / month / week) drift "
            "by construction and do not alert."
        )
        .datasource(DATASOURCE)
        .span(12)
        .height(18)
        .with_target(
            query(
                "sort_desc(max by (model_version, feature) "
                f"(namespace_model_version_feature:credit_risk_feature_psi:30m{{{VERSIONED}}}))",
                "{{feature}}",
                instant=True,
                fmt=promm.PromQueryFormat.TABLE,
            )
        )
        .with_transformation(
            dbm.DataTransformerConfig(id_val="sortBy", options={"sort": [{"field": "Value", "desc": True}]})
        )
        .reduce_options(
            common_builder.ReduceDataOptions().values(True).calcs([]).fields("/^Value$/").limit(60)
        )
        .display_name("${__data.fields.feature} v${__data.fields.model_version}")
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .show_unfilled(True)
        .min(0)
        .max(1)
        .decimals(3)
        .unit("none")
        .thresholds(thresholds(*PSI_THRESHOLDS))
    )
    top = (
        graph(
            "Feature PSI over time (top 5)",
            "The five (feature, model version) pairs with the highest 30-minute PSI at each point in time.",
            "none",
            query(
                "topk(5, max by (model_version, feature) "
                f"(namespace_model_version_feature:credit_risk_feature_psi:30m{{{VERSIONED}}}))",
                "{{feature}} v{{model_version}}",
            ),
            w=12,
            h=9,
        )
        .thresholds(thresholds(*PSI_THRESHOLDS))
        .thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    )
    rows = (
        graph(
            "Rows in the drift windows",
            f"Rows behind the PSI values, per model version. Drift alerts need at least {MIN_DRIFT_ROWS} rows of "
            "the version in 30 minutes; PSI of a few rows is noise (about (bins − 1) / rows without any drift).",
            "short",
            query(
                f"sum by (model_version) (namespace_model_version:credit_risk_score_rows:increase30m{{{VERSIONED}}})",
                "30m window v{{model_version}}",
            ),
            query(
                f"sum by (model_version) (namespace_model_version:credit_risk_score_rows:increase5m{{{VERSIONED}}})",
                "5m window v{{model_version}}",
                "B",
            ),
            query(
                f"sum by (pod, model_version, window) (credit_risk_drift_window_rows{{{VERSIONED}}})",
                "in-process {{window}} v{{model_version}} {{pod}}",
                "C",
            ),
            w=12,
            h=9,
        )
        .thresholds(thresholds((None, "transparent"), (MIN_DRIFT_ROWS, "orange")))
        .thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    )
    return [score_psi, features, top, rows]


def transformer_row() -> list:
    """The KServe transformer (its own pods: credit_risk_transformer_*) and its online feature store."""
    api = f'{TRANSFORMER}, route=~"{TRANSFORMER_ROUTES}"'
    scoring = f'{TRANSFORMER}, route=~"{TRANSFORMER_SCORING_ROUTES}"'
    requests = graph(
        "Transformer requests by route",
        "Requests per second the transformer answered, by route: scoring (/score, V2 HTTP infer, V2 gRPC "
        "ModelInfer) and ingest (POST /v1/transactions). Health probes and scrapes are not counted.",
        "reqps",
        query(
            f"sum by (route) (rate(credit_risk_transformer_requests_total{{{api}}}[$__rate_interval]))",
            "{{route}}",
        ),
    )

    def share_by_route(status: str) -> str:
        failed = f'{api}, status_code=~"{status}"'
        total = f"sum by (route) (rate(credit_risk_transformer_requests_total{{{api}}}[$__rate_interval]))"
        return (
            f"(sum by (route) (rate(credit_risk_transformer_requests_total{{{failed}}}[$__rate_interval])) "
            f"or 0 * {total}) / {total}"
        )

    errors = (
        graph(
            "Transformer error ratio by route",
            "Share of each route's requests answered 5xx (the transformer, its store or the predictor failed) "
            "and 4xx (bad input; on /v1/transactions also refused ingests). Predictor failures alert above 1% "
            "(CreditRiskTransformerPredictorErrors).",
            "percentunit",
            query(share_by_route("5.."), "5xx {{route}}"),
            query(share_by_route("4.."), "4xx {{route}}", "B"),
        )
        .thresholds(thresholds((None, "transparent"), (0.01, "red")))
        .thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    )
    stages = f'{TRANSFORMER}, stage=~"store_lookup|predictor"'
    latency = (
        graph(
            "Transformer latency (p50 / p99)",
            "p50 and p99 of the transformer's history lookup in the feature store (store_lookup), of its call "
            "to the predictor (predictor), and of whole scoring requests (total), summed over pods. The dashed "
            f"line: CreditRiskTransformerStoreLatencyHigh fires on a p99 lookup above "
            f"{STORE_LOOKUP_P99_MAX * 1000:g} ms for 10 minutes.",
            "s",
            *[
                query(
                    f"histogram_quantile({q}, sum by (stage, le) "
                    f"(rate(credit_risk_transformer_stage_duration_seconds_bucket{{{stages}}}[$__rate_interval])))",
                    f"{{{{stage}}}} p{round(q * 100)}",
                    ref,
                )
                for q, ref in ((0.5, "A"), (0.99, "B"))
            ],
            *[
                query(
                    f"histogram_quantile({q}, sum by (le) "
                    f"(rate(credit_risk_transformer_request_duration_seconds_bucket{{{scoring}}}[$__rate_interval])))",
                    f"total p{round(q * 100)}",
                    ref,
                )
                for q, ref in ((0.5, "C"), (0.99, "D"))
            ],
        )
        .scale_distribution(
            common_builder.ScaleDistributionConfig().type(common.ScaleDistribution.LOG).log(10)
        )
        .thresholds(thresholds((None, "transparent"), (STORE_LOOKUP_P99_MAX, "orange")))
        .thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    )
    store_up = (
        big_number(
            "Feature store up",
            "Each transformer pod's view of the online feature store (credit_risk_transformer_store_up, set by "
            "every readiness probe and every store call): 1 up, 0 down. A pod at 0 for a minute: "
            "CreditRiskTransformerStoreDown.",
            "none",
            query(f"max by (pod) (credit_risk_transformer_store_up{{{TRANSFORMER}}})", "{{pod}}"),
            ((None, "red"), (1, "green")),
            w=4,
        )
        .height(8)
        .mappings(
            [
                dbm.ValueMap(
                    options={
                        "0": dbm.ValueMappingResult(text="down", color="red"),
                        "1": dbm.ValueMappingResult(text="up", color="green"),
                    }
                )
            ]
        )
    )
    store_errors = graph(
        "Store errors by operation",
        "Failed feature-store calls per second: lookup (a scoring request's history), ingest (storing a "
        "posted transaction), ping (readiness probes). Above 5% of lookups and ingests for a minute: "
        "CreditRiskTransformerStoreDown.",
        "short",
        query(
            f"sum by (operation) (rate(credit_risk_transformer_store_errors_total{{{TRANSFORMER}}}[$__rate_interval]))",
            "{{operation}}",
        ),
        w=6,
    )
    predictor_errors = graph(
        "Predictor errors by reason",
        "Failed calls from the transformer to the predictor per second: unavailable, timeout, refused. Above "
        "1% of scoring requests for 5 minutes: CreditRiskTransformerPredictorErrors.",
        "short",
        query(
            f"sum by (reason) (rate(credit_risk_transformer_predictor_errors_total{{{TRANSFORMER}}}[$__rate_interval]))",
            "{{reason}}",
        ),
        w=6,
    )
    first_seen = (
        graph(
            "First-seen customers",
            "Share of the scored transactions whose customer had no history in the feature store (scored as "
            "first seen). New customers keep it low and steady; a jump towards 100% means the store lost its "
            "data (a Redis restarted without persistence, a wrong database or key prefix).",
            "percentunit",
            query(
                f"sum(rate(credit_risk_transformer_first_seen_customers_total{{{TRANSFORMER}}}[$__rate_interval])) "
                f"/ sum(rate(credit_risk_transformer_scored_transactions_total{{{TRANSFORMER}}}[$__rate_interval]))",
                "first seen",
            ),
        )
        .min(0)
        .max(1)
    )
    ingest = graph(
        "Ingest: added vs duplicate",
        "Transactions posted to /v1/transactions per second: added to the feature store, or already "
        "there (duplicate: a producer's retry or replay, not stored twice).",
        "short",
        query(
            f"sum by (result) (rate(credit_risk_transformer_ingested_transactions_total{{{TRANSFORMER}}}[$__rate_interval]))",
            "{{result}}",
        ),
        w=12,
    ).stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
    rejected = graph(
        "Ingest rejected by reason",
        "Posted transactions refused per second: unauthorized (no valid producer credential: a forged-history "
        "attempt or a misconfigured producer; any one alerts, CreditRiskTransformerIngestRejected), invalid "
        "(malformed), conflict (a transaction id already stored with other content).",
        "short",
        query(
            f"sum by (reason) (rate(credit_risk_transformer_ingest_rejected_total{{{TRANSFORMER}}}[$__rate_interval]))",
            "{{reason}}",
        ),
        w=12,
    ).override_by_name(
        "unauthorized", [dbm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"})]
    )
    return [requests, errors, latency, store_up, store_errors, predictor_errors, first_seen, ingest, rejected]


# ------------------------------------------------------------------------------------------------ dashboard


def variables() -> list:
    datasource = db.DatasourceVariable("datasource").label("Data source").type("prometheus")
    namespace = (
        db.QueryVariable("namespace")
        .label("Namespace")
        .datasource(DATASOURCE)
        .query("label_values(credit_risk_model_info, namespace)")
        .refresh(dbm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dbm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    model = (
        db.QueryVariable("model")
        .label("Model")
        .datasource(DATASOURCE)
        .query('label_values(credit_risk_model_info{namespace=~"$namespace"}, model_name)')
        .refresh(dbm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dbm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    version = (
        db.QueryVariable("version")
        .label("Version")
        .datasource(DATASOURCE)
        .query(
            'label_values(credit_risk_model_info{namespace=~"$namespace", model_name=~"$model"}, model_version)'
        )
        .refresh(dbm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dbm.VariableSort.NUMERICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    return [datasource, namespace, model, version]


def credit_risk_dashboard() -> db.Dashboard:
    dashboard = (
        db.Dashboard("Credit risk — predictor")
        .uid("credit-risk-predictor")
        .description(
            "Bati Bank credit-risk predictor (KServe, serving/): traffic, errors, latency, scores, decisions and "
            "drift against the training reference; and the KServe transformer in front of it with its online "
            "feature store. Rules: monitoring/prometheus/credit-risk-rules.yml."
        )
        .tags(["credit-risk", "kserve", "ml"])
        .editable()
        .tooltip(dbm.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
        .annotation(
            db.AnnotationQuery()
            .name("Credit-risk alerts")
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color("red")
            .expr('ALERTS{alertname=~"CreditRisk.*", alertstate="firing", namespace=~"$namespace"}')
        )
    )
    for variable in variables():
        dashboard = dashboard.with_variable(variable)
    for title, panels in (
        ("Overview", overview()),
        ("Requests", requests_row()),
        ("Scores and decisions", scores_row()),
        ("Drift against the training reference", drift_row()),
        ("Transformer & feature store", transformer_row()),
    ):
        dashboard = dashboard.with_row(db.Row(title))
        for panel in panels:
            dashboard = dashboard.with_panel(panel)
    return dashboard


def _number_panels(model: dict) -> dict:
    """Stable panel ids (1, 2, …, in order) so the output does not depend on the SDK's defaults."""
    for i, panel in enumerate(model["panels"], start=1):
        panel["id"] = i
    return model


DASHBOARDS = {"credit-risk.json": credit_risk_dashboard}


def render(name: str) -> str:
    built = DASHBOARDS[name]().build()
    model = json.loads(json.dumps(built, cls=JSONEncoder))
    return json.dumps(_number_panels(model), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed JSON, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name in DASHBOARDS:
        path, text = OUTPUT / name, render(name)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print("out of date (run python monitoring/grafana/generate.py): " + ", ".join(map(str, stale)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
