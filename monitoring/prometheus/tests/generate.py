"""Write the promtool unit tests of ``credit-risk-rules.yml`` (``availability.yml``, ``requests.yml``,
``drift.yml``, ``transformer.yml`` next to this file).

    python monitoring/prometheus/tests/generate.py           # rewrite the four files
    python monitoring/prometheus/tests/generate.py --check   # exit 1 if a committed file differs
    promtool test rules monitoring/prometheus/tests/*.yml

Why generated: the drift scenarios need hundreds of bin counters (10 score bins and feature bins per pod,
several namespaces), and their expected PSI values are computed here independently of PromQL, with numpy
— the same formula as the predictor (``serving.metrics.psi``). Expected annotations are rendered from the
rule file's templates (the few template forms it uses), so a wording change regenerates the tests while
the values and labels still come from the scenarios below.

Every series carries the labels a Kubernetes scrape gives (``job``, ``namespace``, ``pod``, ``instance``)
plus the predictor's own (``model_version`` on the model's series: bins, references, decisions, info),
with two pods per namespace where it matters, so each alert is proven to fire on the right series and to
stay quiet on the others. A rollout scenario serves two model versions side by side, each with its own
training reference: drift and decision shares are computed per version, never pooled across versions.
The transformer's series (``credit_risk_transformer_*``) come from its own pods and scrape job, without
``model_name``, and its rules aggregate by namespace; expected latency quantiles are interpolated here the
way ``histogram_quantile`` does.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "credit-risk-rules.yml"
MODEL = "credit-risk"
JOB = "credit-risk-predictor"  # the scrape job CreditRiskModelAbsent's selector names (and monitoring/stack.py's)
VERSION = "3"
FLOOR = 1e-4

# Training reference of the score bins (upper edges 0.1 … 0.9, +Inf), like a real model's held-out scores.
SCORE_BINS = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "+Inf"]
REFERENCE = np.array([0.540, 0.066, 0.064, 0.070, 0.063, 0.048, 0.041, 0.039, 0.041, 0.028])
# A riskier population (major shift) and a moderate shift that keeps the decision mix.
SHIFTED = np.array([0.20, 0.05, 0.05, 0.06, 0.07, 0.08, 0.10, 0.12, 0.14, 0.13])
MODERATE = np.array([0.36, 0.15, 0.14, 0.08, 0.07, 0.05, 0.045, 0.04, 0.04, 0.025])
# Version 4's own training reference (a retrained model spreads its scores more): what its pods export as
# credit_risk_score_reference_ratio while version 3's pods export REFERENCE.
REFERENCE_V4 = np.array([0.12, 0.14, 0.14, 0.12, 0.11, 0.09, 0.08, 0.07, 0.07, 0.06])
DECISIONS = {
    "approve": ("low", slice(0, 3)),
    "review": ("medium", slice(3, 6)),
    "reject": ("high", slice(6, 10)),
}
# Features: bins (upper edges) and reference shares; live shares per phase below.
FEATURES = {
    "Amount": (["-16.75", "250.0", "1000.0", "+Inf"], np.array([0.25, 0.25, 0.25, 0.25])),
    "CountryCode": (["+Inf"], np.array([1.0])),
    "transaction_year": (["2018.0", "+Inf"], np.array([0.5, 0.5])),
}
FEATURE_SHIFT = {
    "Amount": np.array([0.70, 0.20, 0.05, 0.05]),
    "CountryCode": np.array([1.0]),
    "transaction_year": np.array([0.0, 1.0]),  # a new year: calendar features drift by construction
}
MINUTES = 130
SHIFT_AT = 60  # minute the prod population changes


def psi(live: np.ndarray, reference: np.ndarray) -> float:
    live = np.maximum(live / live.sum(), FLOOR)
    ref = np.maximum(reference, FLOOR)
    return float(np.sum((live - ref) * np.log(live / ref)))


# ------------------------------------------------------------------------------------------------ series


def labels(namespace: str, pod: str, **extra: str) -> str:
    ip = 10 + sum(map(ord, pod)) % 200
    base = {
        "job": JOB,
        "namespace": namespace,
        "pod": pod,
        "instance": f"10.1.0.{ip}:8080",
        "model_name": MODEL,
    }
    return ",".join(f'{k}="{v}"' for k, v in {**base, **extra}.items())


def counter(phases: list[tuple[int, float]]) -> str:
    """Values of a counter growing ``slope`` per minute during each (minutes, slope) phase, from 0."""
    parts, value = [], 0.0
    for i, (minutes, slope) in enumerate(phases):
        start = value if i == 0 else value + slope
        count = minutes if i == 0 else minutes - 1
        parts.append(f"{_num(start)}+{_num(slope)}x{count}")
        value = start + slope * count
    return " ".join(parts)


def _num(x: float) -> str:
    return f"{round(x, 6):g}"


@dataclass
class Pod:
    namespace: str
    name: str
    rows: float  # rows scored per minute
    score: list[tuple[int, np.ndarray]]  # (minutes, shares over SCORE_BINS)
    features: list[tuple[int, dict[str, np.ndarray]]] = field(default_factory=list)
    version: str = VERSION  # model_version of the model's series
    reference: np.ndarray = field(default_factory=lambda: REFERENCE)  # the version's score reference

    def series(self) -> list[dict]:
        out = []
        for i, b in enumerate(SCORE_BINS):
            out.append(
                self._counter(
                    "credit_risk_score_bin_total", [(m, s[i] * self.rows) for m, s in self.score], bin=b
                )
            )
            out.append({"series": "credit_risk_score_reference_ratio"
                        f"{{{labels(self.namespace, self.name, model_version=self.version, bin=b)}}}",
                        "values": f"{_num(self.reference[i])}x{MINUTES}"})  # fmt: skip
        for decision, (level, bins) in DECISIONS.items():
            out.append(self._counter("credit_risk_predictions_total",
                                     [(m, s[bins].sum() * self.rows) for m, s in self.score],
                                     risk_level=level, decision=decision))  # fmt: skip
        for feature, (bins, reference) in FEATURES.items():
            phases = self.features or [(m, {}) for m, _ in self.score]
            for i, b in enumerate(bins):
                shares = [(m, shift.get(feature, reference)[i] * self.rows) for m, shift in phases]
                out.append(self._counter("credit_risk_feature_bin_total", shares, feature=feature, bin=b))
                out.append({"series": "credit_risk_feature_reference_ratio"
                            f"{{{labels(self.namespace, self.name, model_version=self.version, feature=feature, bin=b)}}}",
                            "values": f"{_num(reference[i])}x{MINUTES}"})  # fmt: skip
        return out

    def _counter(self, name: str, phases: list[tuple[int, float]], **extra: str) -> dict:
        return {
            "series": f"{name}{{{labels(self.namespace, self.name, model_version=self.version, **extra)}}}",
            "values": counter(phases),
        }


# ------------------------------------------------------------------------------------------------ annotations


def rule_annotations() -> dict[str, dict[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["alert"]: r.get("annotations", {}) for g in groups for r in g["rules"] if "alert" in r}


def humanize_duration(v: float) -> str:
    if v >= 1:
        parts, seconds = [], v
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size:
                parts.append(f"{int(seconds // size)}{unit}")
                seconds -= size * int(seconds // size)
        return "".join(parts) + (f"{seconds:.4g}s" if seconds or not parts else "")
    for unit, scale in (("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
        if v * scale >= 1:
            return f"{v * scale:.4g}{unit}"
    return f"{v:.4g}s"


def render(template: str, labels: dict[str, str], value: float) -> str:
    """The template forms the rule file uses: $labels.x, $value and four $value formatters."""

    def one(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr.startswith("$labels."):
            return labels.get(expr.removeprefix("$labels."), "")
        if expr == "$value":
            return f"{value:g}" if value != int(value) else str(int(value))
        if expr == "$value | humanizePercentage":
            return f"{value * 100:.4g}%"
        if expr == "$value | humanizeDuration":
            return humanize_duration(value)
        if expr == '$value | printf "%.2f"':
            return f"{value:.2f}"
        if expr == '$value | printf "%.0f"':
            return f"{value:.0f}"
        raise ValueError(f"template form not supported here: {expr}")

    return re.sub(r"\{\{(.*?)\}\}", one, template)


ANNOTATIONS = rule_annotations()


def alert(name: str, severity: str, value: float, **labels: str) -> dict:
    all_labels = {"severity": severity, **labels}
    rendered = {k: render(v, {**all_labels, "alertname": name}, value) for k, v in ANNOTATIONS[name].items()}
    return {"exp_labels": all_labels, "exp_annotations": rendered}


def test_file(groups: list[dict], about: str) -> str:
    document = {"rule_files": ["../credit-risk-rules.yml"], "evaluation_interval": "1m", "tests": groups}
    header = f"# Generated by monitoring/prometheus/tests/generate.py: do not edit by hand.\n# {about}\n"
    return header + yaml.safe_dump(document, sort_keys=False, width=200, allow_unicode=True)


# ------------------------------------------------------------------------------------------------ drift


def drift() -> str:
    prod = [
        Pod("bank-prod", "credit-risk-predictor-7c9d5-a", 200, [(SHIFT_AT, REFERENCE), (MINUTES - SHIFT_AT + 1, SHIFTED)],
            [(SHIFT_AT, {}), (MINUTES - SHIFT_AT + 1, FEATURE_SHIFT)]),
        Pod("bank-prod", "credit-risk-predictor-7c9d5-b", 100, [(SHIFT_AT, REFERENCE), (MINUTES - SHIFT_AT + 1, SHIFTED)],
            [(SHIFT_AT, {}), (MINUTES - SHIFT_AT + 1, FEATURE_SHIFT)]),
    ]  # fmt: skip
    staging = [  # a moderate shift all along: warning only
        Pod("bank-staging", "credit-risk-predictor-55f8b-a", 60, [(MINUTES + 1, MODERATE)]),
        Pod("bank-staging", "credit-risk-predictor-55f8b-b", 40, [(MINUTES + 1, MODERATE)]),
    ]
    # Each pod alone is far from the reference, together they are exactly the reference: the rules must
    # add the pods' counters before taking shares (averaging per-pod PSI would alert).
    low, high = REFERENCE.copy(), REFERENCE.copy()
    low[3:], high[:3] = 0, 0
    split = [
        Pod("bank-split", "credit-risk-predictor-0a1b2-a", 100 * low.sum(), [(MINUTES + 1, low / low.sum())]),
        Pod(
            "bank-split",
            "credit-risk-predictor-0a1b2-b",
            100 * high.sum(),
            [(MINUTES + 1, high / high.sum())],
        ),
    ]
    # A huge shift on 10 rows a minute: 300 rows in 30 minutes, under the 500-row guard.
    canary = [Pod("bank-canary", "credit-risk-predictor-c4n4r-a", 10, [(MINUTES + 1, SHIFTED)],
                  [(MINUTES + 1, FEATURE_SHIFT)])]  # fmt: skip
    series = [s for pod in (*prod, *staging, *split, *canary) for s in pod.series()]

    prod_psi = psi(SHIFTED, REFERENCE)
    staging_psi = psi(MODERATE, REFERENCE)
    canary_psi = psi(SHIFTED, REFERENCE)
    split_psi = psi(REFERENCE, REFERENCE)
    amount_psi = psi(FEATURE_SHIFT["Amount"], FEATURES["Amount"][1])
    assert prod_psi > 0.25 and 0.1 < staging_psi < 0.25 and split_psi == 0 and amount_psi > 0.25
    reference_share = {d: float(REFERENCE[b].sum()) for d, (_, b) in DECISIONS.items()}
    shifted_share = {d: float(SHIFTED[b].sum()) for d, (_, b) in DECISIONS.items()}
    moved = {d: shifted_share[d] - reference_share[d] for d in DECISIONS}
    assert abs(moved["approve"]) > 0.15 and abs(moved["reject"]) > 0.15 and abs(moved["review"]) < 0.15
    assert all(abs(MODERATE[b].sum() - reference_share[d]) < 0.15 for d, (_, b) in DECISIONS.items())

    # Minute the prod score PSI first exceeds a threshold: the 30m window then holds (t - SHIFT_AT) / 30 of
    # shifted rows (counters step once a minute). The alert turns active there and fires 30 minutes later.
    def crossing(threshold: float) -> int:
        return next(t for t in range(SHIFT_AT, SHIFT_AT + 31)
                    if psi(REFERENCE * (SHIFT_AT + 30 - t) + SHIFTED * (t - SHIFT_AT), REFERENCE) > threshold)  # fmt: skip

    critical_at, warning_at = crossing(0.25) + 30, crossing(0.1) + 30
    assert SHIFT_AT + 30 <= warning_at < critical_at < 125  # the window is all shifted rows by then

    prod_l = {"namespace": "bank-prod", "model_name": MODEL, "model_version": VERSION}
    staging_l = {"namespace": "bank-staging", "model_name": MODEL, "model_version": VERSION}
    late = "125m"  # 65 minutes after the shift: the 30m window holds shifted rows only, `for: 30m` elapsed

    def milli(x: float) -> int:
        return round(1000 * x)

    def psi_checks(expr: str, expected: dict[str, float], **extra: str) -> dict:
        return {
            "expr": f"round(1000 * {expr})",
            "eval_time": late,
            "exp_samples": [
                {"labels": "{" + ", ".join(f'{k}="{v}"' for k, v in {"model_name": MODEL, "model_version": VERSION, "namespace": ns, **extra}.items()) + "}",
                 "value": milli(v)}
                for ns, v in sorted(expected.items())
            ],
        }  # fmt: skip

    group = {
        "name": "drift: PSI in PromQL, pooled over pods, with the row guard",
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            # The score PSI of each namespace equals numpy's on the designed shares.
            psi_checks(
                "namespace_model_version:credit_risk_score_psi:30m",
                {
                    "bank-prod": prod_psi,
                    "bank-staging": staging_psi,
                    "bank-split": split_psi,
                    "bank-canary": canary_psi,
                },
            ),
            psi_checks(
                "namespace_model_version:credit_risk_score_psi:5m",
                {
                    "bank-prod": prod_psi,
                    "bank-staging": staging_psi,
                    "bank-split": split_psi,
                    "bank-canary": canary_psi,
                },
            ),
            psi_checks(
                'namespace_model_version_feature:credit_risk_feature_psi:30m{feature="Amount"}',
                {"bank-prod": amount_psi, "bank-staging": 0.0, "bank-split": 0.0, "bank-canary": amount_psi},
                feature="Amount",
            ),
            psi_checks(
                'namespace_model_version_feature:credit_risk_feature_psi:30m{feature="CountryCode"}',
                {"bank-prod": 0.0, "bank-staging": 0.0, "bank-split": 0.0, "bank-canary": 0.0},
                feature="CountryCode",
            ),
            # Before the shift the prod population matches the reference.
            {
                "expr": 'round(1000 * namespace_model_version:credit_risk_score_psi:30m{namespace="bank-prod"})',
                "eval_time": "55m",
                "exp_samples": [
                    {
                        "labels": '{model_name="credit-risk", model_version="3", namespace="bank-prod"}',
                        "value": 0,
                    }
                ],
            },
            # Rows in the 30m window: (200 + 100) rows/min x 30 min, summed over the two pods.
            {
                "expr": 'round(namespace_model_version:credit_risk_score_rows:increase30m{namespace="bank-prod"})',
                "eval_time": late,
                "exp_samples": [
                    {
                        "labels": '{model_name="credit-risk", model_version="3", namespace="bank-prod"}',
                        "value": 9000,
                    }
                ],
            },
            # Decision shares: live (shifted) and the training reference, from the score bins.
            {
                "expr": 'round(1000 * namespace_model_version_decision:credit_risk_predictions:ratio30m{namespace="bank-prod"})',
                "eval_time": late,
                "exp_samples": [
                    {
                        "labels": f'{{decision="{d}", model_name="credit-risk", model_version="3", namespace="bank-prod"}}',
                        "value": milli(shifted_share[d]),
                    }
                    for d in DECISIONS
                ],
            },
            {
                "expr": 'round(1000 * namespace_model_version_decision:credit_risk_reference:ratio{namespace="bank-prod"})',
                "eval_time": late,
                "exp_samples": [
                    {
                        "labels": f'{{decision="{d}", model_name="credit-risk", model_version="3", namespace="bank-prod"}}',
                        "value": milli(reference_share[d]),
                    }
                    for d in DECISIONS
                ],
            },
        ],  # fmt: skip
        "alert_rule_test": [
            # Staging's moderate shift is there from the start, but not yet for 30 minutes.
            {"eval_time": "5m", "alertname": "CreditRiskScoreDriftWarning", "exp_alerts": []},
            # Before the shift: only staging's moderate shift (present from the start) alerts.
            {"eval_time": "55m", "alertname": "CreditRiskScoreDriftCritical", "exp_alerts": []},
            {
                "eval_time": "55m",
                "alertname": "CreditRiskScoreDriftWarning",
                "exp_alerts": [alert("CreditRiskScoreDriftWarning", "warning", staging_psi, **staging_l)],
            },
            {"eval_time": "55m", "alertname": "CreditRiskFeatureDrift", "exp_alerts": []},
            {"eval_time": "55m", "alertname": "CreditRiskDecisionMixShift", "exp_alerts": []},
            # `for: 30m`: one minute before PSI has been above the threshold for 30 minutes, still pending...
            {
                "eval_time": f"{critical_at - 1}m",
                "alertname": "CreditRiskScoreDriftCritical",
                "exp_alerts": [],
            },
            {
                "eval_time": f"{warning_at - 1}m",
                "alertname": "CreditRiskScoreDriftWarning",
                "exp_alerts": [alert("CreditRiskScoreDriftWarning", "warning", staging_psi, **staging_l)],
            },
            # ... and firing a minute later. (Not "on the minute": rule groups are evaluated in no fixed order,
            # so the alert may read the PSI recorded one evaluation earlier.)
            {
                "eval_time": f"{critical_at + 1}m",
                "alertname": "CreditRiskScoreDriftCritical",
                "exp_alerts": [alert("CreditRiskScoreDriftCritical", "critical", prod_psi, **prod_l)],
            },
            # After: prod fires; staging (moderate), split (pooled = reference) and canary (few rows) stay quiet.
            {
                "eval_time": late,
                "alertname": "CreditRiskScoreDriftCritical",
                "exp_alerts": [alert("CreditRiskScoreDriftCritical", "critical", prod_psi, **prod_l)],
            },
            {
                "eval_time": late,
                "alertname": "CreditRiskScoreDriftWarning",
                "exp_alerts": [
                    alert("CreditRiskScoreDriftWarning", "warning", prod_psi, **prod_l),
                    alert("CreditRiskScoreDriftWarning", "warning", staging_psi, **staging_l),
                ],
            },
            # Amount fires; CountryCode is stable; transaction_year drifts but calendar features never alert.
            {
                "eval_time": late,
                "alertname": "CreditRiskFeatureDrift",
                "exp_alerts": [
                    alert("CreditRiskFeatureDrift", "warning", amount_psi, feature="Amount", **prod_l)
                ],
            },
            {
                "eval_time": late,
                "alertname": "CreditRiskDecisionMixShift",
                "exp_alerts": [
                    alert("CreditRiskDecisionMixShift", "warning", abs(moved[d]), decision=d, **prod_l)
                    for d in ("approve", "reject")
                ],
            },
        ],  # fmt: skip
    }
    return test_file(
        [group, rollout()],
        "Drift and decision-mix rules and alerts, per model version; expected PSI values computed with numpy.",
    )


def rollout() -> dict:
    """Two model versions serving at once (a rollout half-way), each pod exporting its own version's
    training reference. bank-rollout: each version scores like its own reference (no drift), although
    the two populations of scores differ — pooling the versions' counters would page. bank-rollout-bad:
    version 4 scores the (unchanged) population like version 3 does, far from version 4's own reference:
    only version 4 alerts."""
    v4 = {"version": "4", "reference": REFERENCE_V4}
    stable = [
        Pod("bank-rollout", "credit-risk-predictor-6d4f1-a", 100, [(MINUTES + 1, REFERENCE)]),
        Pod("bank-rollout", "credit-risk-predictor-6d4f1-b", 100, [(MINUTES + 1, REFERENCE)]),
        Pod("bank-rollout", "credit-risk-predictor-8e2a7-c", 50, [(MINUTES + 1, REFERENCE_V4)], **v4),
        Pod("bank-rollout", "credit-risk-predictor-8e2a7-d", 50, [(MINUTES + 1, REFERENCE_V4)], **v4),
    ]
    bad = [
        Pod("bank-rollout-bad", "credit-risk-predictor-6d4f1-a", 100, [(MINUTES + 1, REFERENCE)]),
        Pod("bank-rollout-bad", "credit-risk-predictor-8e2a7-b", 100, [(MINUTES + 1, REFERENCE)], **v4),
    ]
    series = [s for pod in (*stable, *bad) for s in pod.series()]

    def shares(x: np.ndarray) -> dict[str, float]:
        return {d: float(x[b].sum()) for d, (_, b) in DECISIONS.items()}

    # (namespace, version) -> (live score shares, the version's reference, rows per minute)
    populations = {
        ("bank-rollout", VERSION): (REFERENCE, REFERENCE, 200),
        ("bank-rollout", "4"): (REFERENCE_V4, REFERENCE_V4, 100),
        ("bank-rollout-bad", VERSION): (REFERENCE, REFERENCE, 100),
        ("bank-rollout-bad", "4"): (REFERENCE, REFERENCE_V4, 100),
    }
    # What the version-blind rules did: bank-rollout's counters pooled over both versions, against version
    # 4's reference (or the bin-wise max of both references): a critical drift and a decision-mix page.
    pooled = 200 * REFERENCE + 100 * REFERENCE_V4
    assert psi(pooled, REFERENCE_V4) > 0.25 and psi(pooled, np.maximum(REFERENCE, REFERENCE_V4)) > 0.1
    assert abs(shares(pooled / pooled.sum())["approve"] - shares(REFERENCE_V4)["approve"]) > 0.15
    bad_psi = psi(REFERENCE, REFERENCE_V4)
    moved = {d: shares(REFERENCE)[d] - shares(REFERENCE_V4)[d] for d in DECISIONS}
    assert bad_psi > 0.25 and all(abs(abs(m) - 0.15) > 0.005 for m in moved.values())
    late = "125m"

    def key(ns: str, version: str, **extra: str) -> str:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in {"model_name": MODEL, "model_version": version,
                                                          "namespace": ns, **extra}.items()) + "}"  # fmt: skip

    def per_version(expr: str, value: Callable[[np.ndarray, np.ndarray, float], float], scale: int = 1000,
                    **extra: str) -> dict:  # fmt: skip
        return {
            "expr": f"round({scale} * {expr})",
            "eval_time": late,
            "exp_samples": [{"labels": key(ns, v, **extra), "value": round(scale * value(*p))}
                            for (ns, v), p in sorted(populations.items())],
        }  # fmt: skip

    def decisions(expr: str, of: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> dict:
        return {
            "expr": f"round(1000 * {expr})",
            "eval_time": late,
            "exp_samples": [{"labels": key(ns, v, decision=d), "value": round(1000 * share)}
                            for (ns, v), (live, ref, _) in sorted(populations.items())
                            for d, share in shares(of(live, ref)).items()],
        }  # fmt: skip

    bad_l = {"namespace": "bank-rollout-bad", "model_name": MODEL, "model_version": "4"}
    return {
        "name": "rollout: two model versions serving at once, drift per version, never pooled",
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            # Every version against its own reference: 0 where each scores like its reference.
            per_version(
                "namespace_model_version:credit_risk_score_psi:30m", lambda live, ref, _: psi(live, ref)
            ),
            per_version(
                "namespace_model_version:credit_risk_score_psi:5m", lambda live, ref, _: psi(live, ref)
            ),
            per_version(
                'namespace_model_version_feature:credit_risk_feature_psi:30m{feature="Amount"}',
                lambda *_: 0.0,
                feature="Amount",
            ),
            # Rows per version in the 30m window: each version's pods summed, the other version's never.
            per_version(
                "namespace_model_version:credit_risk_score_rows:increase30m",
                lambda _live, _ref, rows: 30 * rows,
                scale=1,
            ),
            # Each version's reference, as its own pods export it.
            per_version(
                'namespace_model_version_bin:credit_risk_score_reference:ratio{bin="0.1"}',
                lambda _live, ref, _: ref[0],
                bin="0.1",
            ),
            decisions(
                "namespace_model_version_decision:credit_risk_predictions:ratio30m", lambda live, _: live
            ),
            decisions("namespace_model_version_decision:credit_risk_reference:ratio", lambda _, ref: ref),
        ],  # fmt: skip
        "alert_rule_test": [
            # bank-rollout: no alert at all; bank-rollout-bad: version 4 only.
            {
                "eval_time": late,
                "alertname": "CreditRiskScoreDriftCritical",
                "exp_alerts": [alert("CreditRiskScoreDriftCritical", "critical", bad_psi, **bad_l)],
            },
            {
                "eval_time": late,
                "alertname": "CreditRiskScoreDriftWarning",
                "exp_alerts": [alert("CreditRiskScoreDriftWarning", "warning", bad_psi, **bad_l)],
            },
            {"eval_time": late, "alertname": "CreditRiskFeatureDrift", "exp_alerts": []},
            {
                "eval_time": late,
                "alertname": "CreditRiskDecisionMixShift",
                "exp_alerts": [
                    alert("CreditRiskDecisionMixShift", "warning", abs(m), decision=d, **bad_l)
                    for d, m in moved.items()
                    if abs(m) > 0.15
                ],
            },
        ],  # fmt: skip
    }


# ------------------------------------------------------------------------------------------------ requests

SCORING = "/v2/models/{model_name}/infer"
LE = ["0.01", "0.1", "0.5", "1.0", "+Inf"]


def requests() -> str:
    series: list[dict] = []

    def requests_of(ns: str, pod: str, route: str, status: str, phases: list[tuple[int, float]]) -> None:
        series.append({"series": f"credit_risk_requests_total{{{labels(ns, pod, route=route, status_code=status)}}}",
                       "values": counter(phases)})  # fmt: skip

    def latency_of(ns: str, pod: str, route: str, per_minute: int, cumulative_shares: list[float]) -> None:
        for le, share in zip(LE, cumulative_shares, strict=True):
            series.append({"series": "credit_risk_request_duration_seconds_bucket"
                           f"{{{labels(ns, pod, route=route, le=le)}}}",
                           "values": counter([(61, per_minute * share)])})  # fmt: skip

    prod = ["credit-risk-predictor-7c9d5-a", "credit-risk-predictor-7c9d5-b"]
    staging = ["credit-risk-predictor-55f8b-a", "credit-risk-predictor-55f8b-b"]
    quiet = "credit-risk-predictor-9e8d7-a"
    for pod in prod:
        # 600 good requests a minute on each pod (V2 and /predict); 5xx on pod a only, from minute 20.
        requests_of("bank-prod", pod, SCORING, "200", [(61, 500)])
        requests_of("bank-prod", pod, "/predict", "200", [(61, 100)])
        # Probes and scrapes fail a lot during a slow start: not scoring traffic, never counted.
        requests_of("bank-prod", pod, "/v2/health/ready", "503", [(61, 60)])
        latency_of("bank-prod", pod, SCORING, 600, [1, 1, 1, 1, 1])  # everything under 10 ms
        latency_of("bank-prod", pod, "/metrics", 60, [0, 0, 0, 0, 1])  # slow scrapes, not scoring latency
    requests_of("bank-prod", prod[0], SCORING, "500", [(21, 0), (40, 30)])  # 30 of 1230 a minute: 2.4%
    for pod in staging:
        # 0.2% 5xx (under 1%), 10% 4xx (client errors), 5% of requests slower than 1 s (p99 > 0.5 s).
        requests_of("bank-staging", pod, SCORING, "200", [(61, 179.6)])
        requests_of("bank-staging", pod, SCORING, "503", [(61, 0.4)])
        requests_of("bank-staging", pod, SCORING, "400", [(61, 20)])
        latency_of("bank-staging", pod, SCORING, 200, [0.9, 0.93, 0.95, 0.95, 1])
    # Low traffic with a failure every 4 minutes: the ratio is ~11%, but 1 or 2 failures in 5 minutes are
    # not an incident (the alert needs 5).
    requests_of("bank-quiet", quiet, "/predict", "200", [(61, 2)])
    series.append({"series": f"credit_risk_requests_total{{{labels('bank-quiet', quiet, route='/predict', status_code='500')}}}",
                   "values": " ".join(str(m // 4) for m in range(61))})  # fmt: skip

    prod_l = {"namespace": "bank-prod", "model_name": MODEL}
    staging_l = {"namespace": "bank-staging", "model_name": MODEL}
    prod_ratio = 30 / (2 * 600 + 30)
    group = {
        "name": "requests: error ratios, latency; probes and scrapes excluded",
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            {
                "expr": 'round(10000 * namespace_model:credit_risk_scoring_errors:ratio_rate5m{namespace!="bank-quiet"})',
                "eval_time": "40m",
                "exp_samples": [
                    {
                        "labels": '{model_name="credit-risk", namespace="bank-prod"}',
                        "value": round(10000 * prod_ratio),
                    },
                    {"labels": '{model_name="credit-risk", namespace="bank-staging"}', "value": 20},
                ],
            },
            # bank-quiet: far above 1% (see the alert test at 40m: quiet all the same).
            {
                "expr": 'namespace_model:credit_risk_scoring_errors:ratio_rate5m{namespace="bank-quiet"} > bool 0.05',
                "eval_time": "40m",
                "exp_samples": [{"labels": '{model_name="credit-risk", namespace="bank-quiet"}', "value": 1}],
            },
            # 0 rather than no data when there are requests and no 5xx at all.
            {
                "expr": 'namespace_model:credit_risk_scoring_errors:ratio_rate5m{namespace="bank-prod"}',
                "eval_time": "10m",
                "exp_samples": [
                    {
                        "labels": '{__name__="namespace_model:credit_risk_scoring_errors:ratio_rate5m", '
                        'model_name="credit-risk", namespace="bank-prod"}',
                        "value": 0,
                    }
                ],
            },
            {
                "expr": "round(1000 * namespace_model:credit_risk_scoring_client_errors:ratio_rate5m)",
                "eval_time": "40m",
                "exp_samples": [
                    {"labels": '{model_name="credit-risk", namespace="bank-prod"}', "value": 0},
                    {"labels": '{model_name="credit-risk", namespace="bank-quiet"}', "value": 0},
                    {"labels": '{model_name="credit-risk", namespace="bank-staging"}', "value": 100},
                ],
            },
            # By status, scoring routes only: the probes' 503s are not here.
            {
                "expr": 'round(10 * namespace_model_status:credit_risk_scoring_requests:rate5m{namespace="bank-prod"})',
                "eval_time": "40m",
                "exp_samples": [
                    {
                        "labels": '{model_name="credit-risk", namespace="bank-prod", status_code="200"}',
                        "value": 200,
                    },
                    {
                        "labels": '{model_name="credit-risk", namespace="bank-prod", status_code="500"}',
                        "value": 5,
                    },
                ],
            },
            # Requests per second on scoring routes only: (500 + 100) x 2 pods + 30 errors per minute.
            {
                "expr": 'round(10 * namespace_model:credit_risk_scoring_requests:rate5m{namespace="bank-prod"})',
                "eval_time": "40m",
                "exp_samples": [
                    {"labels": '{model_name="credit-risk", namespace="bank-prod"}', "value": 205}
                ],
            },
            # p99 in ms: prod's scoring requests all take < 10 ms (its slow /metrics scrapes do not count).
            {
                "expr": 'round(1000 * namespace_model:credit_risk_scoring_duration_seconds:histogram_quantile_rate5m{quantile="0.99"})',
                "eval_time": "40m",
                "exp_samples": [
                    {
                        "labels": '{model_name="credit-risk", namespace="bank-prod", quantile="0.99"}',
                        "value": 10,
                    },
                    {
                        "labels": '{model_name="credit-risk", namespace="bank-staging", quantile="0.99"}',
                        "value": 1000,
                    },
                ],
            },
        ],  # fmt: skip
        "alert_rule_test": [
            {"eval_time": "15m", "alertname": "CreditRiskHighErrorRatio", "exp_alerts": []},
            # Errors start at minute 20; `for: 5m`: pending at 24m, firing from ~26m.
            {"eval_time": "27m", "alertname": "CreditRiskHighErrorRatio", "exp_alerts": []},
            {
                "eval_time": "40m",
                "alertname": "CreditRiskHighErrorRatio",
                "exp_alerts": [alert("CreditRiskHighErrorRatio", "critical", prod_ratio, **prod_l)],
            },
            {
                "eval_time": "40m",
                "alertname": "CreditRiskClientErrorRatio",
                "exp_alerts": [alert("CreditRiskClientErrorRatio", "info", 0.1, **staging_l)],
            },
            {"eval_time": "10m", "alertname": "CreditRiskClientErrorRatio", "exp_alerts": []},
            {
                "eval_time": "40m",
                "alertname": "CreditRiskHighLatency",
                "exp_alerts": [alert("CreditRiskHighLatency", "warning", 1.0, quantile="0.99", **staging_l)],
            },
            {"eval_time": "8m", "alertname": "CreditRiskHighLatency", "exp_alerts": []},
        ],  # fmt: skip
    }
    return test_file(
        [group], "Request rules and alerts: 5xx and 4xx ratios, p99 latency, with two pods per namespace."
    )


# ------------------------------------------------------------------------------------------------ availability


def availability() -> str:
    a, b = "credit-risk-predictor-7c9d5-a", "credit-risk-predictor-7c9d5-b"

    def info(ns: str, pod: str, version: str, values: str, job: str = JOB) -> dict:
        extra = {
            "model_version": version,
            "model_type": "lightgbm",
            "target_mode": "forward",
            "data_digest": "3f2a9c",
        }
        series = labels(ns, pod, **extra).replace(f'job="{JOB}"', f'job="{job}"')
        return {"series": f"credit_risk_model_info{{{series}}}", "values": values}

    def up(ns: str, pod: str, values: str, job: str = JOB) -> dict:
        inst = labels(ns, pod).replace(f'job="{JOB}"', f'job="{job}"').replace(f',model_name="{MODEL}"', "")
        return {"series": f"up{{{inst}}}", "values": values}

    def predictions(ns: str, pod: str, version: str, values: str) -> dict:
        series = labels(ns, pod, model_version=version, risk_level="low", decision="approve")
        return {"series": f"credit_risk_predictions_total{{{series}}}", "values": values}

    prod_l = {"namespace": "bank-prod", "model_name": MODEL}
    down = {
        "job": JOB,
        "namespace": "bank-prod",
        "pod": b,
        "instance": labels("bank-prod", b).split('instance="')[1].split('"')[0],
    }
    serving = {
        "name": "serving: a pod goes down, versions skew, traffic stops",
        "interval": "1m",
        "input_series": [
            # prod: pod b stops answering scrapes at minute 10 (its series go stale); pod a keeps serving.
            up("bank-prod", a, "1x70"),
            up("bank-prod", b, "1x10 0x60"),
            info("bank-prod", a, "3", "1x70"),
            info("bank-prod", b, "3", "1x10 _x60"),
            predictions("bank-prod", a, "3", "0+100x20 2000x50"),  # traffic stops at minute 20
            # Another team's exporter is down too: not a credit-risk target, never alerts here.
            up("bank-prod", "node-exporter-x1", "0x70", job="node-exporter"),
            # staging: a rollout stuck half-way (versions 3 and 4), traffic all along.
            up("bank-staging", a, "1x70"),
            up("bank-staging", b, "1x70"),
            info("bank-staging", a, "3", "1x70"),
            info("bank-staging", b, "4", "1x70"),
            predictions("bank-staging", a, "3", "0+10x70"),
            predictions("bank-staging", b, "4", "0+10x70"),
        ],
        "promql_expr_test": [
            # Pods per served version: staging's rollout shows as two series.
            {
                "expr": "namespace_model_version:credit_risk_instances:count",
                "eval_time": "30m",
                "exp_samples": [
                    {
                        "labels": "namespace_model_version:credit_risk_instances:count"
                        f'{{model_name="{MODEL}", model_version="{v}", namespace="{ns}"}}',
                        "value": n,
                    }
                    for ns, v, n in (
                        ("bank-prod", "3", 1),
                        ("bank-staging", "3", 1),
                        ("bank-staging", "4", 1),
                    )
                ],
            },
        ],
        "alert_rule_test": [
            {"eval_time": "9m", "alertname": "CreditRiskPredictorDown", "exp_alerts": []},
            {
                "eval_time": "15m",
                "alertname": "CreditRiskPredictorDown",
                "exp_alerts": [],
            },  # pending (for: 5m)
            {
                "eval_time": "20m",
                "alertname": "CreditRiskPredictorDown",
                "exp_alerts": [alert("CreditRiskPredictorDown", "critical", 0, **down)],
            },
            {"eval_time": "60m", "alertname": "CreditRiskModelAbsent", "exp_alerts": []},
            {"eval_time": "29m", "alertname": "CreditRiskModelVersionSkew", "exp_alerts": []},
            {
                "eval_time": "30m",
                "alertname": "CreditRiskModelVersionSkew",
                "exp_alerts": [
                    alert(
                        "CreditRiskModelVersionSkew", "warning", 2, namespace="bank-staging", model_name=MODEL
                    )
                ],
            },
            # prod: last scored row at minute 20; the 15m window is empty from 35m, + `for: 15m` = 50m.
            {"eval_time": "49m", "alertname": "CreditRiskNoTraffic", "exp_alerts": []},
            {
                "eval_time": "50m",
                "alertname": "CreditRiskNoTraffic",
                "exp_alerts": [alert("CreditRiskNoTraffic", "warning", 1, **prod_l)],
            },
        ],  # fmt: skip
    }
    # CreditRiskModelAbsent is scoped to the predictor's scrape job: another job's credit-risk series (a
    # sandbox predictor scraped by the same Prometheus) neither hides our missing predictor nor, when it
    # disappears itself, raises the alert here.
    sandbox = "credit-risk-sandbox"
    absent = {
        "name": "absent: the predictor's job reports no model, another job's predictor is still there",
        "interval": "1m",
        "input_series": [
            info("bank-prod", a, "3", "1x5 _x30"),  # the last predictor disappears at minute 5
            info("bank-lab", "credit-risk-lab-0", "7", "1x35", job=sandbox),  # present all along
            up("bank-prod", "node-exporter-x1", "1x35", job="node-exporter"),
        ],
        "alert_rule_test": [
            {"eval_time": "4m", "alertname": "CreditRiskModelAbsent", "exp_alerts": []},
            {
                "eval_time": "12m",
                "alertname": "CreditRiskModelAbsent",
                "exp_alerts": [],
            },  # stale after 5m, pending
            {
                "eval_time": "25m",
                "alertname": "CreditRiskModelAbsent",
                "exp_alerts": [alert("CreditRiskModelAbsent", "critical", 1, job=JOB)],
            },
        ],
    }
    other_absent = {
        "name": "absent: another job's predictor disappears, ours keeps serving",
        "interval": "1m",
        "input_series": [
            info("bank-prod", a, "3", "1x35"),
            info("bank-lab", "credit-risk-lab-0", "7", "1x5 _x30", job=sandbox),
        ],
        "alert_rule_test": [
            {"eval_time": "25m", "alertname": "CreditRiskModelAbsent", "exp_alerts": []},
        ],
    }
    return test_file(
        [serving, absent, other_absent],
        "Availability alerts: predictor down, model absent (scoped to the predictor's job), version skew, "
        "no traffic.",
    )


# ------------------------------------------------------------------------------------------------ transformer

TRANSFORMER_JOB = "credit-risk-transformer"  # its own scrape job (KServe: the <name>-transformer Service)
TRANSFORMER_LE = ["0.0025", "0.005", "0.01", "0.025", "0.1", "+Inf"]  # a subset of the real buckets
# Cumulative shares of observations over TRANSFORMER_LE.
FAST = [0.75, 1, 1, 1, 1, 1]  # a healthy store lookup or ingest: all under 5 ms
SLOW_STORE = [0.5, 0.9, 0.95, 1, 1, 1]  # 5% of lookups between 10 and 25 ms: p99 22 ms
PREDICTOR = [0, 0, 0.2, 0.9, 1, 1]  # the predictor call over the network: p99 92.5 ms, not a store problem
TOTAL = [0, 0, 0.1, 0.85, 1, 1]
FIRST_SEEN = 0.05  # share of scored transactions whose customer has no history yet


def transformer_labels(namespace: str, pod: str, **extra: str) -> str:
    ip = 10 + sum(map(ord, pod)) % 200
    base = {"job": TRANSFORMER_JOB, "namespace": namespace, "pod": pod, "instance": f"10.2.0.{ip}:8080",
            "container": "transformer"}  # fmt: skip
    return ",".join(f'{k}="{v}"' for k, v in {**base, **extra}.items())


def histogram_quantile(q: float, les: list[str], cumulative: list[float]) -> float:
    """Prometheus' interpolation inside the bucket that holds rank q (the first bucket starts at 0)."""
    rank = q * cumulative[-1]
    for i, (le, share) in enumerate(zip(les, cumulative, strict=True)):
        if share >= rank:
            lower, below = (0.0, 0.0) if i == 0 else (float(les[i - 1]), cumulative[i - 1])
            return lower + (float(le) - lower) * (rank - below) / (share - below)
    raise ValueError("rank beyond the last bucket")


def promql_round(x: float) -> int:
    return math.floor(x + 0.5)  # PromQL's round(): half up


def transformer() -> str:
    series: list[dict] = []

    def add(metric: str, ns: str, pod: str, values: str, **extra: str) -> None:
        series.append({"series": f"{metric}{{{transformer_labels(ns, pod, **extra)}}}", "values": values})

    def histogram(metric: str, ns: str, pod: str, traffic: list[tuple[int, float]], cumulative: list[float],
                  **extra: str) -> None:  # fmt: skip
        for le, share in zip(TRANSFORMER_LE, cumulative, strict=True):
            add(f"{metric}_bucket", ns, pod, scaled(traffic, share), le=le, **extra)
        add(f"{metric}_count", ns, pod, scaled(traffic, 1), **extra)

    def scaled(traffic: list[tuple[int, float]], share: float) -> str:
        return counter([(minutes, per_minute * share) for minutes, per_minute in traffic])

    def pod(ns: str, name: str, per_minute: float | list[tuple[int, float]], *, lookup: list[float] = FAST,
            store_up: str = "1x61", unauthorized: str = "0x61") -> None:  # fmt: skip
        """A transformer pod scoring ``per_minute`` requests a minute (3/4 /score, 1/8 V2 HTTP, 1/8 V2 gRPC;
        or phases of (minutes, per minute)), each with one store lookup and one predictor call, and
        ingesting a tenth as many transactions; every request answered 200, probes too (never counted).
        Its labelled counters start at 0 (initialised)."""
        traffic = [(61, per_minute)] if isinstance(per_minute, int | float) else per_minute
        tenth = [(minutes, r / 10) for minutes, r in traffic]
        for route, share in (
            ("/score", 0.75),
            (SCORING, 0.125),
            ("/inference.GRPCInferenceService/ModelInfer", 0.125),
        ):
            add("credit_risk_transformer_requests_total", ns, name, scaled(traffic, share),
                route=route, status_code="200")  # fmt: skip
        add("credit_risk_transformer_requests_total", ns, name, scaled(tenth, 1),
            route="/v1/transactions", status_code="200")  # fmt: skip
        add("credit_risk_transformer_requests_total", ns, name, counter([(61, 6)]),
            route="/v2/health/ready", status_code="200")  # fmt: skip
        histogram(
            "credit_risk_transformer_request_duration_seconds", ns, name, traffic, TOTAL, route="/score"
        )
        # slow probes: not scoring latency
        histogram("credit_risk_transformer_request_duration_seconds", ns, name, [(61, 6)], [0, 0, 0, 0, 0, 1],
                  route="/v2/health/ready")  # fmt: skip
        histogram(
            "credit_risk_transformer_stage_duration_seconds", ns, name, traffic, lookup, stage="store_lookup"
        )
        histogram(
            "credit_risk_transformer_stage_duration_seconds", ns, name, traffic, PREDICTOR, stage="predictor"
        )
        histogram(
            "credit_risk_transformer_stage_duration_seconds", ns, name, tenth, FAST, stage="store_ingest"
        )
        add("credit_risk_transformer_store_up", ns, name, store_up)
        add("credit_risk_transformer_scored_transactions_total", ns, name, scaled(traffic, 1))
        add("credit_risk_transformer_first_seen_customers_total", ns, name, scaled(traffic, FIRST_SEEN))
        add(
            "credit_risk_transformer_ingested_transactions_total",
            ns,
            name,
            scaled(tenth, 0.9),
            result="added",
        )
        add(
            "credit_risk_transformer_ingested_transactions_total",
            ns,
            name,
            scaled(tenth, 0.1),
            result="duplicate",
        )
        add("credit_risk_transformer_ingest_rejected_total", ns, name, unauthorized, reason="unauthorized")

    def pods(ns: str) -> tuple[str, str]:
        return (
            f"credit-risk-transformer-{ns.removeprefix('bank-')}-a",
            f"credit-risk-transformer-{ns.removeprefix('bank-')}-b",
        )

    # bank-prod: healthy. 0.2% predictor timeouts (under 1%, though 8 in 5 minutes), 0.45% failed store calls
    # (under 5%, though 20 in 5 minutes), invalid and conflicting ingests (never alert), a predictor stage
    # far above 10 ms (only store lookups count for the store-latency alert).
    a, b = pods("bank-prod")
    for p in (a, b):
        pod("bank-prod", p, 400)
    add(
        "credit_risk_transformer_predictor_errors_total",
        "bank-prod",
        a,
        counter([(61, 1.6)]),
        reason="timeout",
    )
    add("credit_risk_transformer_store_errors_total", "bank-prod", b, counter([(61, 4)]), operation="lookup")
    add("credit_risk_transformer_ingest_rejected_total", "bank-prod", a, counter([(61, 2)]), reason="invalid")
    add(
        "credit_risk_transformer_ingest_rejected_total", "bank-prod", b, counter([(61, 1)]), reason="conflict"
    )
    # bank-store-down: pod a loses Redis from minute 21 to 40. Its readiness probe fails (ping errors, 503s
    # never counted as traffic), the Service stops sending it requests, so none of its lookups fail: only
    # store_up tells. Pod b keeps serving. One pod is enough to alert.
    a, b = pods("bank-store-down")
    outage = [(20, 0), (20, 6), (22, 0)]
    pod("bank-store-down", a, [(20, 400), (20, 0), (22, 400)], store_up="1x20 0x19 1x21")
    add("credit_risk_transformer_store_errors_total", "bank-store-down", a, counter(outage), operation="ping")
    add("credit_risk_transformer_requests_total", "bank-store-down", a, counter(outage),
        route="/v2/health/ready", status_code="503")  # fmt: skip
    pod("bank-store-down", b, 400)
    # bank-store-flaky: the gauge reads 1 at every scrape, but a tenth of all store calls fail (pod a's).
    a, b = pods("bank-store-flaky")
    for p in (a, b):
        pod("bank-store-flaky", p, 400)
    add(
        "credit_risk_transformer_store_errors_total",
        "bank-store-flaky",
        a,
        counter([(61, 88)]),
        operation="lookup",
    )
    # bank-slow-store: 5% of lookups take 10-25 ms: p99 22 ms.
    for p in pods("bank-slow-store"):
        pod("bank-slow-store", p, 400, lookup=SLOW_STORE)
    # bank-predictor: from minute 21 the predictor is unreachable from pod a (16 a minute) and slow from pod
    # b (8 timeouts a minute); those requests answer 503 on top of the 200s.
    a, b = pods("bank-predictor")
    for p in (a, b):
        pod("bank-predictor", p, 400)
    for p, reason, per_minute in ((a, "unavailable", 16), (b, "timeout", 8)):
        add("credit_risk_transformer_predictor_errors_total", "bank-predictor", p, counter([(20, 0), (42, per_minute)]),
            reason=reason)  # fmt: skip
        add("credit_risk_transformer_requests_total", "bank-predictor", p, counter([(20, 0), (42, per_minute)]),
            route="/score", status_code="503")  # fmt: skip
    # bank-quiet: 4 requests a minute and one store error and one predictor error every 2 minutes: ratios far
    # above the thresholds all along, but 2 or 3 failures in 5 minutes are not an incident.
    quiet, _ = pods("bank-quiet")
    pod("bank-quiet", quiet, 4)
    every_2 = " ".join(str(m // 2) for m in range(62))
    add("credit_risk_transformer_store_errors_total", "bank-quiet", quiet, every_2, operation="lookup")
    add("credit_risk_transformer_predictor_errors_total", "bank-quiet", quiet, every_2, reason="refused")
    # bank-ingest: pod a rejects 3 unauthorized ingests at minute 30 (its counter initialised at 0); pod b's
    # counter is only born at minute 40, at 1 (a transformer that does not initialise its labelled
    # counters): increase() alone would never see that first rejection.
    a, b = pods("bank-ingest")
    pod("bank-ingest", a, 100, unauthorized="0x29 3x32")
    pod("bank-ingest", b, 100, unauthorized="_x39 1x22")

    def ns_labels(ns: str, **extra: str) -> str:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in {"namespace": ns, **extra}.items()) + "}"

    predictor_ratio = (16 + 8) / (2 * 400 + 16 + 8)
    store_flaky_ratio = 88 / (2 * (400 + 40))
    at = "40m"
    slow_p99 = histogram_quantile(0.99, TRANSFORMER_LE, SLOW_STORE)
    assert 0.01 < slow_p99 < 0.025 and histogram_quantile(0.99, TRANSFORMER_LE, FAST) < 0.01
    assert histogram_quantile(0.99, TRANSFORMER_LE, PREDICTOR) > 0.01  # bank-prod's predictor stage: no alert
    micros = {
        (stage, q): promql_round(1e6 * histogram_quantile(q, TRANSFORMER_LE, shares))
        for stage, shares in (("store_lookup", FAST), ("predictor", PREDICTOR), ("store_ingest", FAST))
        for q in (0.5, 0.99)
    }
    prod = "bank-prod"
    group = {
        "name": "transformer: feature store, predictor calls, ingest; aggregated by namespace",
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            # Requests/s by route and status: scoring and ingest routes, never the probes.
            {
                "expr": f'round(100 * namespace_route_status:credit_risk_transformer_requests:rate5m{{namespace="{prod}"}})',
                "eval_time": at,
                "exp_samples": [
                    {"labels": ns_labels(prod, route=route, status_code="200"), "value": value}
                    for route, value in (
                        ("/inference.GRPCInferenceService/ModelInfer", 167),
                        ("/score", 1000),
                        ("/v1/transactions", 133),
                        (SCORING, 167),
                    )
                ],
            },
            # Scoring requests/s: 400 a minute x 2 pods, no ingest, no probes.
            {
                "expr": f'round(100 * namespace:credit_risk_transformer_scoring_requests:rate5m{{namespace="{prod}"}})',
                "eval_time": at,
                "exp_samples": [{"labels": ns_labels(prod), "value": round(100 * 800 / 60)}],
            },
            # Predictor-error share: every reason summed over both pods, against the scoring requests; 0
            # (not "no data") where there are requests and no error series at all.
            {
                "expr": "round(100000 * namespace:credit_risk_transformer_predictor_errors:ratio_rate5m"
                '{namespace=~"bank-(prod|predictor|store-flaky)"})',
                "eval_time": at,
                "exp_samples": [
                    {"labels": ns_labels(ns), "value": promql_round(100000 * v)}
                    for ns, v in (
                        ("bank-predictor", predictor_ratio),
                        (prod, 1.6 / 800),
                        ("bank-store-flaky", 0),
                    )
                ],
            },
            # Store-error share: failed lookups and ingests over all store calls (lookups + ingests).
            {
                "expr": 'round(1000 * namespace:credit_risk_transformer_store_errors:ratio_rate5m{namespace=~"bank-(prod|store-flaky)"})',
                "eval_time": at,
                "exp_samples": [
                    {"labels": ns_labels(prod), "value": promql_round(1000 * 4 / (2 * (400 + 40)))},
                    {
                        "labels": ns_labels("bank-store-flaky"),
                        "value": promql_round(1000 * store_flaky_ratio),
                    },
                ],
            },
            {
                "expr": f'round(100 * namespace:credit_risk_transformer_store_calls:rate5m{{namespace="{prod}"}})',
                "eval_time": at,
                "exp_samples": [
                    {"labels": ns_labels(prod), "value": promql_round(100 * 2 * (400 + 40) / 60)}
                ],
            },
            # bank-quiet: far above both thresholds (see the alert tests at 40m: quiet all the same).
            {
                "expr": 'namespace:credit_risk_transformer_predictor_errors:ratio_rate5m{namespace="bank-quiet"} > bool 0.01',
                "eval_time": at,
                "exp_samples": [{"labels": ns_labels("bank-quiet"), "value": 1}],
            },
            {
                "expr": 'namespace:credit_risk_transformer_store_errors:ratio_rate5m{namespace="bank-quiet"} > bool 0.05',
                "eval_time": at,
                "exp_samples": [{"labels": ns_labels("bank-quiet"), "value": 1}],
            },
            # Stage latency in µs, per stage, pooled over the pods.
            {
                "expr": "round(1e6 * namespace_stage:credit_risk_transformer_stage_duration_seconds:histogram_quantile_rate5m"
                f'{{namespace="{prod}"}})',
                "eval_time": at,
                "exp_samples": [
                    {"labels": ns_labels(prod, quantile=str(q), stage=stage), "value": value}
                    for (stage, q), value in sorted(micros.items(), key=lambda kv: (kv[0][1], kv[0][0]))
                ],
            },
            # Whole scoring requests (the slow probes are not scoring latency).
            {
                "expr": "round(1e6 * namespace:credit_risk_transformer_scoring_duration_seconds:histogram_quantile_rate5m"
                f'{{namespace="{prod}"}})',
                "eval_time": at,
                "exp_samples": [
                    {
                        "labels": ns_labels(prod, quantile=str(q)),
                        "value": promql_round(1e6 * histogram_quantile(q, TRANSFORMER_LE, TOTAL)),
                    }
                    for q in (0.5, 0.99)
                ],
            },
            {
                "expr": f'round(1000 * namespace:credit_risk_transformer_first_seen:ratio_rate5m{{namespace="{prod}"}})',
                "eval_time": at,
                "exp_samples": [{"labels": ns_labels(prod), "value": promql_round(1000 * FIRST_SEEN)}],
            },
        ],  # fmt: skip
        "alert_rule_test": [
            # Store down: bank-store-down's pod a reports store_up 0 from minute 21, `for: 1m`; bank-store-flaky's
            # failing calls alert all along (pending at 1m); bank-prod and bank-quiet (2 or 3 errors) never.
            {
                "eval_time": "20m",
                "alertname": "CreditRiskTransformerStoreDown",
                "exp_alerts": [
                    alert("CreditRiskTransformerStoreDown", "critical", 0, namespace="bank-store-flaky")
                ],
            },
            {
                "eval_time": "23m",
                "alertname": "CreditRiskTransformerStoreDown",
                "exp_alerts": [
                    alert("CreditRiskTransformerStoreDown", "critical", 0, namespace=ns)
                    for ns in ("bank-store-down", "bank-store-flaky")
                ],
            },
            # bank-store-down: store_up back to 1 at minute 41.
            {
                "eval_time": "50m",
                "alertname": "CreditRiskTransformerStoreDown",
                "exp_alerts": [
                    alert("CreditRiskTransformerStoreDown", "critical", 0, namespace="bank-store-flaky")
                ],
            },
            {"eval_time": "1m", "alertname": "CreditRiskTransformerStoreDown", "exp_alerts": []},
            # Store latency: bank-slow-store's p99 lookup from the start, `for: 10m`; bank-prod's slow
            # predictor stage never.
            {"eval_time": "8m", "alertname": "CreditRiskTransformerStoreLatencyHigh", "exp_alerts": []},
            {
                "eval_time": at,
                "alertname": "CreditRiskTransformerStoreLatencyHigh",
                "exp_alerts": [
                    alert(
                        "CreditRiskTransformerStoreLatencyHigh",
                        "warning",
                        slow_p99,
                        namespace="bank-slow-store",
                        stage="store_lookup",
                        quantile="0.99",
                    )
                ],
            },
            # Predictor errors from minute 21: above 1% from ~22m, `for: 5m`; bank-prod (0.2%) and bank-quiet
            # (1 error in 2 minutes) never.
            {"eval_time": "20m", "alertname": "CreditRiskTransformerPredictorErrors", "exp_alerts": []},
            {"eval_time": "24m", "alertname": "CreditRiskTransformerPredictorErrors", "exp_alerts": []},
            {
                "eval_time": at,
                "alertname": "CreditRiskTransformerPredictorErrors",
                "exp_alerts": [
                    alert(
                        "CreditRiskTransformerPredictorErrors",
                        "critical",
                        predictor_ratio,
                        namespace="bank-predictor",
                    )
                ],
            },
            # Unauthorized ingests: pod a's 3 at minute 30 for 15 minutes, pod b's first one (its counter
            # born at 1) from minute 40; invalid and conflicting ingests in bank-prod never.
            {"eval_time": "29m", "alertname": "CreditRiskTransformerIngestRejected", "exp_alerts": []},
            {
                "eval_time": "31m",
                "alertname": "CreditRiskTransformerIngestRejected",
                "exp_alerts": [
                    alert("CreditRiskTransformerIngestRejected", "warning", 3, namespace="bank-ingest")
                ],
            },
            {
                "eval_time": "45m",
                "alertname": "CreditRiskTransformerIngestRejected",
                "exp_alerts": [
                    alert("CreditRiskTransformerIngestRejected", "warning", 1, namespace="bank-ingest")
                ],
            },
            {"eval_time": "58m", "alertname": "CreditRiskTransformerIngestRejected", "exp_alerts": []},
        ],  # fmt: skip
    }
    return test_file(
        [group],
        "Transformer rules and alerts: feature store down or slow, predictor errors, unauthorized ingests; "
        "two pods per namespace, aggregated by namespace.",
    )


# ------------------------------------------------------------------------------------------------ main

FILES = {
    "drift.yml": drift,
    "requests.yml": requests,
    "availability.yml": availability,
    "transformer.yml": transformer,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed files, write nothing"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, make in FILES.items():
        path, text = HERE / name, make()
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python monitoring/prometheus/tests/generate.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    assert (
        math.isclose(REFERENCE.sum(), 1)
        and math.isclose(SHIFTED.sum(), 1)
        and math.isclose(MODERATE.sum(), 1)
    )
    sys.exit(main())
