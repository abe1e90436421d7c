"""The model card: a Markdown report with PNG plots that a model-risk reviewer can read and sign on its own.

Every number in it comes from the run: the settings used, the design's windows and counts, the metrics and
their bootstrap intervals. Nothing is written from memory of how the job is usually configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from ml.schema import CALENDAR_FEATURES, MONOTONE_DIRECTIONS
from ml.target import DEFAULT_K
from ml.train import Candidate, transformed_names

if TYPE_CHECKING:
    from ml.job import ModeResult
    from ml.register import Promotion
    from ml.settings import TrainSettings
    from ml.validation import Comparator

METRIC_ORDER = (
    "roc_auc",
    "gini",
    "ks",
    "brier",
    "log_loss",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "positive_rate",
    "rows",
)


@dataclass
class ReportInputs:
    settings: TrainSettings
    version: int
    champion: Candidate
    selection: str
    candidates: pd.DataFrame  # one row per (model, search)
    data_source: str
    data_digest: str
    n_transactions: int
    period: tuple[str, str]
    primary: ModeResult
    other: ModeResult | None
    comparators: list[Comparator]
    best_rule: Comparator
    evidence: dict[str, object]  # calibration, bands, stability, sensitivity, first_history, time_of_day
    candidate_scores: dict[str, np.ndarray]
    parity: float
    directions: dict[str, float]
    promotion: Promotion


def write_report(inputs: ReportInputs, folder: Path) -> Path:
    """Write ``model_card.md`` with its plots and tables into ``folder``; returns the card's path."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = {
        "roc": _plot_roc(inputs, folder / "roc.png"),
        "calibration": _plot_calibration(inputs.evidence["calibration"], folder / "calibration.png"),
        "scores": _plot_scores(inputs, folder / "score_distribution.png"),
        "rfm": _plot_rfm(inputs, folder / "rfm_clusters.png"),
        "importance": _plot_importance(inputs.champion.pipeline, folder / "feature_importance.png"),
        "time_of_day": _plot_time_of_day(inputs.evidence["time_of_day"], folder / "time_of_day.png"),
    }
    inputs.evidence["calibration"].to_csv(folder / "calibration.csv")
    inputs.evidence["stability"].to_csv(folder / "stability.csv", index=False)
    inputs.candidates.to_csv(folder / "candidates.csv", index=False)
    card = folder / "model_card.md"
    card.write_text(_markdown(inputs, {k: p.name for k, p in plots.items()}))
    return card


# ---------------------------------------------------------------------------------------------- markdown


def _markdown(r: ReportInputs, plots: dict[str, str]) -> str:
    s, p, c = r.settings, r.primary, r.champion
    d = p.design
    level = f"{s.confidence:.0%}"
    test = d.test_kind
    bands = s.risk_bands
    lines = [
        f"# Model card — {s.registered_model} v{r.version}",
        "",
        f"**Champion:** {c.model_type} ({c.search} search), **{s.target}** proxy target, observation design "
        f"`{d.name}`.",
        "",
        f"- {test.capitalize()} per-customer ROC-AUC **{p.customer_auc.estimate:.4f}** ({level} interval "
        f"[{p.customer_auc.low:.4f}, {p.customer_auc.high:.4f}], {s.bootstrap_samples:,} customer resamples); "
        f"per transaction {p.per_transaction['roc_auc']:.4f}.",
        f"- In-time {c.n_folds}-fold grouped CV ROC-AUC {c.cv_auc:.4f} ± {c.cv_auc_std:.4f} (per customer).",
        f"- Best no-model baseline: {r.best_rule.name}, {r.best_rule.test_auc.estimate:.4f} "
        f"[{r.best_rule.test_auc.low:.4f}, {r.best_rule.test_auc.high:.4f}].",
        f"- **Champion gate:** {'promoted' if r.promotion.promoted else 'not promoted'} — {r.promotion.reason}.",
        "",
        "## Intended use",
        "",
        "Scores a buy-now-pay-later application — a purchase, with the customer's history up to and including it "
        f"— for the probability that the customer disengages over the next {s.horizon_days} days (the least "
        f"engaged RFM segment). Business bands: P < {bands.low_below:.2f} low risk → approve; "
        f"{bands.low_below:.2f}–{bands.high_above:.2f} medium → manual review; > {bands.high_above:.2f} high → "
        f"reject. The 0/1 prediction uses threshold {s.threshold:.2f}. It is a proxy: there are no observed "
        "defaults.",
        "",
        "## Data",
        "",
        f"- Source: {r.data_source}; digest `{r.data_digest}`; {r.n_transactions:,} transactions, "
        f"{r.period[0]} to {r.period[1]}.",
        "- Model input: the public 26-feature contract (`features` FP32 [N, 26]); customer aggregates are point "
        "in time (only the customer's transactions up to and including the scored one).",
        f"- Seed {s.seed} for the synthetic data, the folds, the searches, K-Means and the bootstrap.",
        "",
        "## Observation design",
        "",
        *_design_section(r),
        "",
        "## Proxy target",
        "",
        f"RFM of each example's outcome (recency in days to the end of the horizon, frequency, monetary = sum of "
        f"Value), log1p on F and M, standard scaling, K-Means k={DEFAULT_K} (random_state={s.seed}), all "
        "customer-weighted and fitted on the training examples only; the high-risk cluster is the one with the "
        "largest R − F − M centre in scaled units, never an index. Other examples are labelled by nearest centre.",
        "",
        _table(d.label.centres.round(3).reset_index()),
        "",
        f"![RFM clusters]({plots['rfm']})",
        "",
        "### Label sensitivity",
        "",
        "The training examples re-labelled with other cluster counts"
        + (" and horizons" if d.mode == "forward" else "")
        + ": the customer-weighted share labelled as by the default label, and the high-risk share.",
        "",
        _table(r.evidence["sensitivity"].round(4)),
        "",
        f"## Validation — {test}",
        "",
        f"Per customer: every customer's examples together weigh one; intervals are {level} percentile "
        f"intervals over {s.bootstrap_samples:,} resamples of the test customers (their examples move together).",
        "",
        _table(
            pd.DataFrame(
                {
                    "metric": list(METRIC_ORDER),
                    "per transaction": [_fmt(p.per_transaction[k]) for k in METRIC_ORDER],
                    "per customer": [_fmt(p.per_customer[k]) for k in METRIC_ORDER],
                    f"per customer, {level} interval": [
                        f"[{p.intervals[k].low:.4f}, {p.intervals[k].high:.4f}]" if k in p.intervals else ""
                        for k in METRIC_ORDER
                    ],
                }
            )
        ),
        "",
        f"![ROC]({plots['roc']})",
        "",
        "### Calibration by score decile (per customer)",
        "",
        _table(r.evidence["calibration"].round(4).reset_index()),
        "",
        _calibration_summary(r.evidence["calibration"], test),
        "",
        f"![Calibration]({plots['calibration']})",
        "",
        "### Calibration by score decile (per transaction)",
        "",
        _table(r.evidence["calibration_per_transaction"].round(4).reset_index()),
        "",
        f"![Score distribution]({plots['scores']})",
        "",
        "### Decisions by band (per customer)",
        "",
        "Share of the test decisions in each band and the observed high-risk rate there, each customer counted "
        "once.",
        "",
        _table(r.evidence["bands"].round(4)),
        "",
        "## Baselines",
        "",
        f"Scored like the champion: in time (per customer on the training examples; fitted comparators out of "
        f"fold on the same {c.n_folds} grouped folds) and on the {test} split with {level} intervals. A champion "
        "that does not beat the best no-model rule on the test split is not promoted.",
        "",
        _table(_comparator_table(r, r.comparators)),
        "",
        "## Leakage audit",
        "",
        "A flexible model (histogram gradient boosting) fed one route to the label alone: the label's own inputs "
        "as a live system knows them at the transaction (days since the previous transaction, transactions so "
        "far, Value so far) and the calendar (the absolute date the model ignores). A route reaching "
        f"{s.audit_flag_ratio:.0%} of the model's per-customer AUC is flagged: the label would be re-read rather "
        "than predicted.",
        "",
        _table(_audit_table(p)),
        "",
        "## Stability",
        "",
        f"Population stability index from the training examples to the {test} ones, per transaction, on the "
        f"training deciles ({s.feature_bins} bins). Calendar inputs drift by construction; the model ignores "
        "them.",
        "",
        _table(r.evidence["stability"].round(4)),
        "",
        "## Customers with no prior history",
        "",
        *_first_history_section(r),
        "",
        "## Calendar independence and the time of day",
        "",
        f"The graph keeps all 26 inputs, but its first step drops {', '.join(CALENDAR_FEATURES)}: a score that "
        "followed the calendar would stand in for the time to the end of the data and would not transfer. The "
        "export check replaces those four inputs with arbitrary values on every test row and requires every score "
        "to stay exactly the same. Hour and day of week stay; their partial dependence on the test rows:",
        "",
        _table(_effect_summary(r.evidence["time_of_day"])),
        "",
        f"![Time of day]({plots['time_of_day']})",
        "",
        "## Monotone directions",
        "",
        'The target means "least engaged", so more activity and more spend must never raise the risk. The tree '
        "families are fitted with these constraints; the linear model's coefficient signs are checked and a "
        "candidate that breaks one cannot be chosen. The exported ONNX graph is swept over each feature's "
        "observed range on test rows (individual conditional expectation curves):",
        "",
        _table(
            pd.DataFrame(
                [
                    {
                        "feature": f,
                        "direction": "non-increasing" if dirn < 0 else "non-decreasing",
                        "worst step against it": f"{r.directions.get(f, float('nan')):.2e}",
                    }
                    for f, dirn in MONOTONE_DIRECTIONS.items()
                ]
            )
        ),
        "",
        "## Candidates and selection",
        "",
        f"{len(s.models)} famil{'y' if len(s.models) == 1 else 'ies'} ({', '.join(s.models)}), each with a grid "
        f"and a random search ({s.random_search_iter} candidates) over "
        f"{s.cv_folds}-fold StratifiedGroupKFold (no customer in two folds), fitted and scored with customer "
        "weights. Selection by the one-standard-error rule: "
        + r.selection
        + ". Test-split numbers are shown "
        "for information only.",
        "",
        _table(r.candidates.round(4)),
        "",
        f"Champion parameters: `{c.best_params}`",
        "",
        f"![Feature importance]({plots['importance']})",
        "",
        "## Champion gate",
        "",
        *[f"- {k}: {v}" for k, v in r.promotion.decision.tags.items()],
        "",
        "## Both target modes side by side",
        "",
        *_modes_section(r),
        "",
        "## Export",
        "",
        f"One ONNX graph of the whole pipeline (`features` FP32 [N, 26] → `probability` FP32 [N]); max "
        f"|sklearn − onnxruntime| over the {len(p.test_scores):,} test rows: {r.parity:.2e} (tolerance "
        f"{s.parity_tolerance:g}). The metadata carries the feature names, bands, threshold, headline metrics, the "
        "observation design, the ignored inputs, the monotone directions and the drift references (the test "
        "rows' scores and features).",
        "",
        "## Limitations",
        "",
        "- The label is a proxy for disengagement, not default: a customer who stops using the platform is "
        "treated as high risk, and a disengaged customer may repay well.",
        "- The served model is the one validated: trained on the development window only. The most recent "
        f"{s.horizon_days + s.oot_days} days serve as its test and its test's outcome; a refit on them would be "
        "unvalidated.",
        "- Aggregates such as transaction_count grow with tenure; the development window is short, so later "
        "customers have longer histories than any the model trained on (see the stability table).",
        "- A purchase's platform credit seconds later counts as activity in the label's horizon.",
        "- The gate re-scores the current champion on this run's test rows; if that champion was trained on data "
        "overlapping them, its score is optimistic and the gate conservative.",
        "- Trained on synthetic data unless a real file was passed: the numbers describe the planted relation.",
        "",
    ]
    return "\n".join(lines)


def _calibration_summary(table: pd.DataFrame, test: str) -> str:
    predicted = float((table["share"] * table["mean_predicted"]).sum())
    observed = float((table["share"] * table["observed_rate"]).sum())
    worst = table.loc[table["gap"].abs().idxmax()]
    return (
        f"On the {test} split the mean predicted probability is {predicted:.3f} against an observed high-risk "
        f"rate of {observed:.3f} (per customer); the largest decile gap is {worst['gap']:+.3f} (decile "
        f"{int(worst.name)}). Ranking and level are separate questions: bands rest on the level, so a gap here "
        "calls for recalibration on the latest complete window before the bands are relied on."
    )


def _design_section(r: ReportInputs) -> list[str]:
    s, d = r.settings, r.primary.design
    lines = []
    if d.mode == "forward":
        lines += [
            f"An example is an application point: a purchase with the customer's history up to and including it, "
            f"labelled from what the customer does in the {s.horizon_days} days after it. Only purchases whose "
            f"horizon ends inside the data are examples. The test split is the latest {s.oot_days}-day window "
            f"with complete labels; training examples are those whose whole horizon ends before it begins.",
            "",
            *[f"- {k}: {v}" for k, v in d.windows.describe().items()],
        ]
    else:
        lines += [
            "Diagnostic design: RFM over the whole period per customer, every purchase an example, "
            f"{s.test_size:.0%} of customers held out (stratified, grouped). The label re-states aggregates the "
            "features also carry; this model is never promoted.",
        ]
    lines += [
        "",
        "Each customer's examples weigh 1 / (their number of examples in the split), rescaled to mean 1, in "
        "training, cross-validation scoring, K-Means and every per-customer metric: heavy customers do not "
        "dominate.",
        "",
        _table(
            pd.DataFrame(
                [{"split": "training", **d.train.summary()}, {"split": d.test_kind, **d.test.summary()}]
            )
        ),
    ]
    return lines


def _comparator_table(r: ReportInputs, comparators: list[Comparator]) -> pd.DataFrame:
    p, c = r.primary, r.champion
    rows = [
        {
            "model or rule": f"champion ({c.model_type})",
            "kind": "model",
            "in time (per customer)": round(c.cv_auc, 4),
            f"{p.design.test_kind} (per customer)": str(p.customer_auc),
            f"{p.design.test_kind} (per transaction)": round(p.per_transaction["roc_auc"], 4),
        }
    ]
    for x in comparators:
        rows.append(
            {
                "model or rule": x.name,
                "kind": x.kind,
                "in time (per customer)": round(x.in_time_auc, 4),
                f"{p.design.test_kind} (per customer)": str(x.test_auc),
                f"{p.design.test_kind} (per transaction)": round(x.test_auc_per_transaction, 4),
            }
        )
    return pd.DataFrame(rows)


def _audit_table(m: ModeResult) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "route": a.route,
                "inputs": ", ".join(a.columns),
                "in time (per customer)": round(a.comparator.in_time_auc, 4),
                f"{m.design.test_kind} (per customer)": str(a.comparator.test_auc),
                "share of the model's AUC": f"{a.ratio:.0%}",
                "flagged": "**yes**" if a.flagged else "no",
            }
            for a in m.audit
        ]
    )


def _first_history_section(r: ReportInputs) -> list[str]:
    f = r.evidence["first_history"]
    lines = [
        "A customer's first transaction has no history: every aggregate equals that one transaction (count 1, "
        "standard deviation 0), so the score rests on the transaction itself and the time of day. On the test "
        f"split: {f['observations']:,} such examples ({f['share_of_test_observations']:.1%} of test examples), "
        f"{f['customers']:,} customers.",
    ]
    if f["observations"]:
        auc = "n/a (one class)" if f.get("roc_auc") is None else f"{f['roc_auc']:.4f}"
        lines += [
            f"Observed high-risk rate {f['observed_high_risk_rate']:.3f}, mean score {f['mean_score']:.3f}, "
            f"per-customer ROC-AUC within the segment {auc}.",
            "",
            _table(f["bands"].round(4)),
        ]
    return lines


def _effect_summary(effects: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for name, part in effects.groupby("feature", sort=False):
        low, high = part.loc[part["mean_score"].idxmin()], part.loc[part["mean_score"].idxmax()]
        rows.append(
            {
                "input": name,
                "lowest mean score": f"{low['mean_score']:.4f} at {int(low['value'])}",
                "highest mean score": f"{high['mean_score']:.4f} at {int(high['value'])}",
                "range": round(high["mean_score"] - low["mean_score"], 4),
            }
        )
    return pd.DataFrame(rows)


def _modes_section(r: ReportInputs) -> list[str]:
    modes = [r.primary] + ([] if r.other is None else [r.other])
    lines = [
        "The champion's configuration fitted on each mode's training split and scored on that mode's test split. "
        "`same-window` labels are circular (RFM over the period the features also cover): its scores measure how "
        "well the label is re-read, which the leakage audit shows; only `forward` numbers judge predictive power.",
        "",
        _table(
            pd.DataFrame(
                [
                    {
                        "target mode": m.design.mode,
                        "design": m.design.name,
                        "test": m.design.test_kind,
                        "training customers": m.design.train.n_customers,
                        "test customers": m.design.test.n_customers,
                        "per-customer ROC-AUC": str(m.customer_auc),
                        **{
                            f"audit: {a.route}": f"{a.comparator.test_auc.estimate:.4f}{' (flagged)' if a.flagged else ''}"
                            for a in m.audit
                        },
                    }
                    for m in modes
                ]
            )
        ),
    ]
    if r.other is None:
        lines += ["", "The other mode was not fitted (see the run's log for why, or --no-compare-modes)."]
    return lines


def _fmt(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def _table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


# ---------------------------------------------------------------------------------------------- plots


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_roc(r: ReportInputs, path: Path) -> Path:
    test = r.primary.design.test
    fig, ax = plt.subplots(figsize=(6, 5))
    for key, scores in r.candidate_scores.items():
        fpr, tpr, _ = roc_curve(test.y, scores, sample_weight=test.weights)
        ax.plot(fpr, tpr, lw=1, alpha=0.4, label=key)
    for comparator in r.comparators:
        fpr, tpr, _ = roc_curve(test.y, comparator.scores, sample_weight=test.weights)
        ax.plot(fpr, tpr, lw=1.5, ls="--", label=f"baseline: {comparator.name}")
    fpr, tpr, _ = roc_curve(test.y, r.primary.test_scores, sample_weight=test.weights)
    ax.plot(fpr, tpr, lw=2.5, color="black", label=f"champion ({r.champion.model_type})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate",
           title=f"ROC per customer — {r.primary.design.test_kind}")  # fmt: skip
    ax.legend(fontsize=6, loc="lower right")
    return _save(fig, path)


def _plot_calibration(table: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label="score deciles")
    top = float(max(table["mean_predicted"].max(), table["observed_rate"].max(), 0.05))
    ax.plot([0, top], [0, top], ls="--", color="grey", lw=1, label="perfect calibration")
    ax.set(xlabel="mean predicted P(high risk)", ylabel="observed high-risk rate",
           title="Calibration per customer (test split)")  # fmt: skip
    ax.legend()
    return _save(fig, path)


def _plot_scores(r: ReportInputs, path: Path) -> Path:
    test, scores, bands = r.primary.design.test, r.primary.test_scores, r.settings.risk_bands
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bins = np.linspace(0, 1, 41)
    for label, name in ((0, "not high risk (0)"), (1, "high risk (1)")):
        mask = test.y == label
        ax.hist(scores[mask], bins=bins, weights=test.weights[mask], alpha=0.6, density=True, label=name)
    for edge in (bands.low_below, bands.high_above):
        ax.axvline(edge, color="black", ls=":", lw=1)
    ax.set(xlabel="P(high risk)", ylabel="density (per customer)",
           title="Test score distribution by class (bands dotted)")  # fmt: skip
    ax.legend()
    return _save(fig, path)


def _plot_rfm(r: ReportInputs, path: Path) -> Path:
    modes = [r.primary] + ([] if r.other is None else [r.other])
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.8), squeeze=False)
    for ax, m in zip(axes[0], modes, strict=True):
        d = m.design
        rfm = d.train.outcome.drop_duplicates() if d.mode == "same-window" else d.train.outcome
        clusters = d.label.clusters(rfm)
        for cluster in range(d.label.k):
            part = rfm[clusters == cluster]
            high = cluster == d.label.high_risk_cluster
            ax.scatter(part["recency"], np.log1p(part["frequency"]), s=5, alpha=0.4,
                       label=f"cluster {cluster} ({len(part)}){' — high risk' if high else ''}")  # fmt: skip
        ax.set(xlabel="recency (days)", ylabel="log1p(frequency)", title=f"RFM clusters — {d.mode}")
        ax.legend(fontsize=8)
    return _save(fig, path)


def _plot_importance(pipeline, path: Path) -> Path:
    model = pipeline.steps[-1][1]
    names = transformed_names(pipeline)
    if hasattr(model, "feature_importances_"):
        values, label = np.asarray(model.feature_importances_, dtype=float), "importance"
    else:  # the linear model: coefficients on standardised inputs
        values, label = np.asarray(model.coef_[0], dtype=float), "coefficient (standardised inputs)"
    order = np.argsort(np.abs(values))
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.barh(np.asarray(names)[order], values[order])
    ax.set(xlabel=label, title=f"Feature {label} ({len(names)} model features; calendar dropped)")
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, path)


def _plot_time_of_day(effects: pd.DataFrame, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (name, part) in zip(axes, effects.groupby("feature", sort=False), strict=True):
        ax.plot(part["value"], part["mean_score"], marker="o")
        ax.set(xlabel=name, ylabel="mean P(high risk)", title=f"Partial dependence: {name}")
    return _save(fig, path)
