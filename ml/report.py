"""The model card: a Markdown report with PNG plots that a model-risk reviewer can read on its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve
from sklearn.pipeline import Pipeline

from ml.schema import FEATURE_NAMES, LABEL_DEFINING_FEATURES
from ml.target import ProxyTarget

METRIC_ORDER = (
    "roc_auc",
    "gini",
    "ks",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "brier",
    "log_loss",
    "positive_rate",
    "rows",
)


@dataclass
class ModeSummary:
    """One target mode's outcome, for the side-by-side table."""

    mode: str
    notes: dict[str, object]
    target: ProxyTarget
    heldout: dict[str, float]
    customer: dict[str, float]
    leakage_auc: float


@dataclass
class ReportInputs:
    model_name: str
    version: int
    model_type: str
    search: str
    best_params: dict[str, object]
    cv_auc: float
    cv_auc_std: float
    data_source: str
    data_digest: str
    n_transactions: int
    period: tuple[str, str]
    primary: ModeSummary
    other: ModeSummary | None
    candidates: pd.DataFrame  # one row per (model, search)
    calibration: pd.DataFrame
    y_holdout: np.ndarray
    scores: np.ndarray
    candidate_scores: dict[str, np.ndarray]
    pipeline: Pipeline
    parity: float
    threshold: float
    risk_bands: dict[str, float]
    promotion: str
    extra: dict[str, object] = field(default_factory=dict)


def write_report(inputs: ReportInputs, folder: Path) -> Path:
    """Write ``model_card.md`` and its plots into ``folder``; returns the card's path."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = {
        "roc": _plot_roc(inputs, folder / "roc.png"),
        "calibration": _plot_calibration(inputs.calibration, folder / "calibration.png"),
        "scores": _plot_scores(
            inputs.y_holdout, inputs.scores, inputs.risk_bands, folder / "score_distribution.png"
        ),
        "rfm": _plot_rfm(inputs, folder / "rfm_clusters.png"),
        "importance": _plot_importance(inputs.pipeline, folder / "feature_importance.png"),
    }
    inputs.calibration.to_csv(folder / "calibration.csv")
    inputs.candidates.to_csv(folder / "candidates.csv", index=False)
    card = folder / "model_card.md"
    card.write_text(_markdown(inputs, {k: p.name for k, p in plots.items()}))
    return card


# ---------------------------------------------------------------------------------------------- markdown


def _markdown(r: ReportInputs, plots: dict[str, str]) -> str:
    p, o = r.primary, r.other
    modes = [p] if o is None else [p, o]
    lines = [
        f"# Model card — {r.model_name} v{r.version}",
        "",
        f"**Champion:** {r.model_type} ({r.search} search), trained on the **{p.mode}** proxy target. "
        f"Cross-validated ROC-AUC {r.cv_auc:.4f} ± {r.cv_auc_std:.4f}; held-out ROC-AUC "
        f"{p.heldout['roc_auc']:.4f} (per customer {p.customer['roc_auc']:.4f}).",
        "",
        f"**Registry:** {r.promotion}",
        "",
        "## Intended use",
        "",
        "Scores a buy-now-pay-later applicant's transaction (with the customer's history up to it) for the "
        "probability of belonging to the disengaged, high-risk RFM segment. Business bands: "
        f"P < {r.risk_bands['low_below']:.2f} low risk → approve; {r.risk_bands['low_below']:.2f}–"
        f"{r.risk_bands['high_above']:.2f} medium → manual review; > {r.risk_bands['high_above']:.2f} high → reject. "
        f"The 0/1 prediction uses threshold {r.threshold:.2f}. It is a proxy: there are no observed defaults.",
        "",
        "## Data",
        "",
        f"- Source: {r.data_source}; digest `{r.data_digest}`; {r.n_transactions:,} transactions, "
        f"{r.period[0]} to {r.period[1]}.",
        "- Model input: the public 26-feature contract (`features` FP32 [N, 26]); customer aggregates are point in "
        "time (only the customer's transactions up to and including the scored one).",
        "- Split: 80/20 by customer (StratifiedGroupKFold, random_state=42), no customer on both sides; "
        "5-fold grouped, stratified cross-validation inside the training part.",
        "",
        "## Proxy target",
        "",
        "RFM per customer (recency in days, frequency, monetary = sum of Value), log1p on F and M, standard "
        "scaling, K-Means k=3 (random_state=42). The high-risk cluster is the one with the largest "
        "R − F − M centre in scaled units.",
        "",
    ]
    for m in modes:
        lines += [f"### {m.mode}", "", _kv(m.notes), "", _table(m.target.centres.round(3).reset_index()), ""]
    lines += [
        "## Both target modes side by side",
        "",
        "The champion's configuration (family and tuned parameters) fit on each mode's training split and "
        "scored on that mode's held-out customers. The leakage audit fits a model on the label-defining "
        f"aggregates alone ({', '.join(LABEL_DEFINING_FEATURES)}): when those alone score nearly as well as the "
        "full model, the label is being read back from the features rather than predicted.",
        "",
        _table(
            pd.DataFrame(
                [
                    {
                        "target mode": m.mode,
                        "rows": m.notes.get("rows"),
                        "customers": m.notes.get("customers"),
                        "high-risk customers": m.notes.get("high_risk_customers"),
                        "held-out ROC-AUC": round(m.heldout["roc_auc"], 4),
                        "held-out KS": round(m.heldout["ks"], 4),
                        "per-customer ROC-AUC": round(m.customer["roc_auc"], 4),
                        "leakage audit AUC (label aggregates only)": round(m.leakage_auc, 4),
                    }
                    for m in modes
                ]
            )
        ),
        "",
        "## Candidates",
        "",
        "Champion chosen by cross-validated ROC-AUC; held-out numbers are shown for information only.",
        "",
        _table(r.candidates.round(4)),
        "",
        f"Champion parameters: `{r.best_params}`",
        "",
        "## Held-out performance",
        "",
        _table(
            pd.DataFrame(
                {
                    "metric": list(METRIC_ORDER),
                    "per transaction": [_fmt(p.heldout[k]) for k in METRIC_ORDER],
                    "per customer (latest transaction)": [_fmt(p.customer[k]) for k in METRIC_ORDER],
                }
            )
        ),
        "",
        f"![ROC]({plots['roc']})",
        "",
        "### Calibration by score decile",
        "",
        _table(r.calibration.round(4).reset_index()),
        "",
        f"![Calibration]({plots['calibration']})",
        "",
        f"![Score distribution]({plots['scores']})",
        "",
        f"![RFM clusters]({plots['rfm']})",
        "",
        f"![Feature importance]({plots['importance']})",
        "",
        "## Export",
        "",
        f"One ONNX graph of the whole pipeline (`features` FP32 [N, 26] → `probability` FP32 [N]); max |sklearn − "
        f"onnxruntime| over the {len(r.scores):,} held-out rows: {r.parity:.2e}. The ONNX metadata carries the "
        "feature names, bands, threshold, metrics and the drift references (held-out score histogram, per-feature "
        "bins) the predictor needs.",
        "",
        "## Limitations",
        "",
        "- The label is a proxy for disengagement, not default: a customer who stops using the platform is "
        "treated as high risk, and a disengaged customer may repay well.",
        "- `same-window` labels are circular (the RFM inputs are also features); its scores measure how well the "
        "label is re-read, not predicted. Use `forward` numbers to judge predictive power.",
        "- Calendar features (day, week, month, year) are in the public contract; in `forward` mode they let the "
        "model learn that older activity precedes silence, which will not transfer to new periods. Monitor drift "
        "and retrain on recent windows.",
        "- Heavy-tailed activity: a few customers contribute thousands of rows; transaction-level metrics weigh "
        "them heavily, so per-customer metrics are reported too.",
        "- The champion gate compares the old champion on this run's held-out rows; if the old champion was "
        "trained on data that overlaps them, its score is optimistic and the gate conservative.",
        "- Trained on synthetic data unless a real file was passed: the numbers describe the planted relation.",
        "",
    ]
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def _kv(values: dict[str, object]) -> str:
    return "\n".join(f"- {k}: {v}" for k, v in values.items())


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
    fig, ax = plt.subplots(figsize=(6, 5))
    for key, scores in r.candidate_scores.items():
        fpr, tpr, _ = roc_curve(r.y_holdout, scores)
        ax.plot(fpr, tpr, lw=1, alpha=0.6, label=key)
    fpr, tpr, _ = roc_curve(r.y_holdout, r.scores)
    ax.plot(fpr, tpr, lw=2.5, color="black", label=f"champion ({r.model_type})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Held-out ROC")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def _plot_calibration(table: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label="score deciles")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    ax.set(
        xlabel="mean predicted P(high risk)", ylabel="observed high-risk rate", title="Calibration (held-out)"
    )
    ax.legend()
    return _save(fig, path)


def _plot_scores(y: np.ndarray, scores: np.ndarray, bands: dict[str, float], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bins = np.linspace(0, 1, 41)
    ax.hist(scores[y == 0], bins=bins, alpha=0.6, density=True, label="not high risk (0)")
    ax.hist(scores[y == 1], bins=bins, alpha=0.6, density=True, label="high risk (1)")
    for edge in (bands["low_below"], bands["high_above"]):
        ax.axvline(edge, color="black", ls=":", lw=1)
    ax.set(
        xlabel="P(high risk)", ylabel="density", title="Held-out score distribution by class (bands dotted)"
    )
    ax.legend()
    return _save(fig, path)


def _plot_rfm(r: ReportInputs, path: Path) -> Path:
    modes = [r.primary] if r.other is None else [r.primary, r.other]
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.8), squeeze=False)
    for ax, m in zip(axes[0], modes, strict=True):
        rfm = m.target.rfm
        for cluster, part in rfm.groupby("cluster"):
            high = cluster == m.target.high_risk_cluster
            ax.scatter(
                part["recency"],
                np.log1p(part["frequency"]),
                s=6,
                alpha=0.5,
                label=f"cluster {cluster} ({len(part)}){' — high risk' if high else ''}",
            )
        ax.set(xlabel="recency (days)", ylabel="log1p(frequency)", title=f"RFM clusters — {m.mode}")
        ax.legend(fontsize=8)
    return _save(fig, path)


def _plot_importance(pipeline: Pipeline, path: Path) -> Path:
    model = pipeline.steps[-1][1]
    if hasattr(model, "feature_importances_"):
        values, label = np.asarray(model.feature_importances_, dtype=float), "importance"
        names = list(FEATURE_NAMES)
    else:  # linear model behind a ColumnTransformer: coefficients in the transformer's output order
        values, label = np.asarray(model.coef_[0], dtype=float), "coefficient (standardised inputs)"
        names = _transformed_names(pipeline)
    order = np.argsort(np.abs(values))
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.barh(np.asarray(names)[order], values[order])
    ax.set(
        xlabel=label,
        title="Feature importance" if label == "importance" else "Logistic regression coefficients",
    )
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, path)


def _transformed_names(pipeline: Pipeline) -> list[str]:
    transformer = pipeline.steps[0][1]
    columns: list[int] = []
    for _, _, selected in transformer.transformers_:
        if isinstance(selected, list | np.ndarray):
            columns.extend(int(i) for i in selected)
    return [FEATURE_NAMES[i] for i in columns]
