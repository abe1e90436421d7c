"""The training job: load → features → target → train → evaluate → export → register → report.

:func:`run` is the whole job; ``python -m ml train`` calls it. Nothing reaches the registry unless every
step before registration succeeded (data valid, target sound, export parity within tolerance).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from ml import export
from ml.evaluate import calibration_table, classification_metrics, customer_metrics
from ml.load import dataset_digest, read_transactions
from ml.register import configure_tracking, log_and_register, next_version, promote
from ml.report import ModeSummary, ReportInputs, write_report
from ml.schema import TIME_COLUMN
from ml.settings import TrainSettings
from ml.synthetic import SyntheticSpec, generate_transactions
from ml.target import TrainingSet, build_training_set
from ml.train import (
    SEARCH_KINDS,
    Candidate,
    Split,
    as_model_input,
    cv_folds,
    holdout_split,
    leakage_audit_auc,
    refit,
    run_search,
)

log = logging.getLogger("ml")


@contextmanager
def step(title: str) -> Iterator[None]:
    """Progress on long steps: a line when a step starts and one with its wall time when it ends."""
    log.info("%s …", title)
    started = time.perf_counter()
    yield
    log.info("%s done in %.1fs", title, time.perf_counter() - started)


@dataclass(frozen=True)
class Prepared:
    """A target mode's labelled rows, split by customer, as model input."""

    data: TrainingSet
    split: Split
    X: np.ndarray  # float32 [rows, 26]

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.X[self.split.train], self.data.y[self.split.train]

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.X[self.split.test], self.data.y[self.split.test]

    def customer_metrics(self, scores: np.ndarray, threshold: float) -> dict[str, float]:
        test = self.split.test
        return customer_metrics(
            self.data.y[test], scores, self.data.customers[test], self.data.times[test], threshold
        )

    def leakage_auc(self, seed: int) -> float:
        X, y, s = self.data.X, self.data.y, self.split
        return leakage_audit_auc(X.iloc[s.train], y[s.train], X.iloc[s.test], y[s.test], seed)


def prepare(transactions: pd.DataFrame, mode: str, settings: TrainSettings) -> Prepared:
    data = build_training_set(
        transactions, mode, settings.performance_window_days, settings.seed, settings.min_high_risk_share
    )
    split = holdout_split(data.y, data.customers, settings.test_size, settings.seed)
    # Heavy-tailed activity: say how much of the held-out set its most active customer is.
    held_out = pd.Series(data.customers[split.test]).value_counts()
    data.notes["held_out_customers"] = len(held_out)
    data.notes["held_out_largest_customer"] = (
        f"{held_out.index[0]}: {held_out.iloc[0]:,} of {len(split.test):,} held-out rows "
        f"({held_out.iloc[0] / len(split.test):.0%})"
    )
    return Prepared(data=data, split=split, X=as_model_input(data.X))


def load_data(settings: TrainSettings) -> tuple[pd.DataFrame, str]:
    if settings.data is not None:
        return read_transactions(settings.data), str(settings.data)
    spec = SyntheticSpec(rows=settings.synthetic_rows, seed=settings.seed)
    return generate_transactions(spec), f"built-in synthetic data (rows={spec.rows}, seed={spec.seed})"


def run(settings: TrainSettings) -> dict[str, object]:
    """Run the whole job and return the summary printed as the final JSON line."""
    with step("loading and validating transactions"):
        transactions, source = load_data(settings)
        digest = dataset_digest(transactions)
        log.info(
            "%s: %d transactions, %d customers, digest %s",
            source,
            len(transactions),
            transactions["CustomerId"].nunique(),
            digest,
        )
    with step(f"building features and the {settings.target} proxy target"):
        primary = prepare(transactions, settings.target, settings)
        X_train, y_train = primary.train
        X_test, y_test = primary.test
        folds = cv_folds(
            y_train, primary.data.customers[primary.split.train], settings.cv_folds, settings.seed
        )

    tracking_uri = configure_tracking(settings.tracking_uri, settings.mlflow_dir, settings.experiment)
    log.info("MLflow tracking at %s (experiment %r)", tracking_uri, settings.experiment)
    dataset = mlflow.data.from_pandas(transactions, source=source, name="xente-transactions", digest=digest)

    with mlflow.start_run(run_name=f"train-{settings.target}") as parent:
        mlflow.log_input(dataset, context="training")
        mlflow.log_params(_settings_params(settings))
        mlflow.set_tags({"target_mode": settings.target, "data_digest": digest})

        candidates, candidate_scores, candidate_metrics = _search_all(settings, primary, folds, dataset)
        champion = max(candidates, key=lambda c: c.cv_auc)
        log.info("champion: %s (CV ROC-AUC %.4f)", champion.key, champion.cv_auc)

        with step("evaluating the champion on held-out customers"):
            scores = champion.pipeline.predict_proba(X_test)[:, 1]
            heldout = classification_metrics(y_test, scores, settings.threshold)
            per_customer = primary.customer_metrics(scores, settings.threshold)
            calibration = calibration_table(y_test, scores)
            primary_summary = ModeSummary(
                settings.target,
                primary.data.notes,
                primary.data.target,
                heldout,
                per_customer,
                primary.leakage_auc(settings.seed),
            )
        other_summary = _other_mode(transactions, champion, settings) if settings.compare_modes else None

        with step("exporting the pipeline to ONNX and checking parity"):
            model = export.to_onnx(champion.pipeline, settings.registered_model)
            parity = export.check_parity(champion.pipeline, model, X_test, settings.parity_tolerance)
            log.info("ONNX parity on %d held-out rows: max |diff| %.2e", len(X_test), parity)
            version = next_version(mlflow.MlflowClient(), settings.registered_model)
            export.attach_metadata(
                model,
                export.serving_metadata(
                    model_name=settings.registered_model,
                    model_version=version,
                    model_type=champion.model_type,
                    target_mode=settings.target,
                    data_digest=digest,
                    threshold=settings.threshold,
                    risk_bands=settings.risk_bands.model_dump(),
                    metrics={
                        "cv_roc_auc": champion.cv_auc,
                        **{f"heldout_{k}": v for k, v in heldout.items()},
                    },
                    scores=scores,
                    X_reference=primary.X,
                    score_bins=settings.score_bins,
                    feature_bins=settings.feature_bins,
                ),
            )

        with step(f"registering {settings.registered_model} v{version} in MLflow"):
            log_and_register(
                model,
                settings.registered_model,
                X_test[:5],
                version,
                tags={
                    "model_type": champion.model_type,
                    "target_mode": settings.target,
                    "data_digest": digest,
                    "heldout_roc_auc": f"{heldout['roc_auc']:.6f}",
                },
            )
            onnx_path = export.save(
                model, settings.artifacts_dir.resolve() / f"{settings.registered_model}-v{version}.onnx"
            )
            promotion = promote(
                settings.registered_model,
                str(version),
                heldout["roc_auc"],
                X_test,
                y_test,
                settings.alias,
                settings.previous_alias,
                settings.force,
            )
            log.info("alias: %s", promotion.reason)

        with step("writing the model card"):
            report_dir = settings.reports_dir.resolve() / f"{settings.registered_model}-v{version}"
            card = write_report(
                ReportInputs(
                    model_name=settings.registered_model,
                    version=version,
                    model_type=champion.model_type,
                    search=champion.search,
                    best_params=champion.best_params,
                    cv_auc=champion.cv_auc,
                    cv_auc_std=champion.cv_auc_std,
                    data_source=source,
                    data_digest=digest,
                    n_transactions=len(transactions),
                    period=(str(transactions[TIME_COLUMN].min()), str(transactions[TIME_COLUMN].max())),
                    primary=primary_summary,
                    other=other_summary,
                    candidates=_candidate_table(candidates, candidate_metrics),
                    calibration=calibration,
                    y_holdout=y_test,
                    scores=scores,
                    candidate_scores=candidate_scores,
                    pipeline=champion.pipeline,
                    parity=parity,
                    threshold=settings.threshold,
                    risk_bands=settings.risk_bands.model_dump(),
                    promotion=promotion.reason,
                ),
                report_dir,
            )
            mlflow.log_artifacts(str(report_dir), artifact_path="report")

        mlflow.log_metrics({f"heldout_{k}": float(v) for k, v in heldout.items()})
        mlflow.log_metrics({f"heldout_customer_{k}": float(v) for k, v in per_customer.items()})
        mlflow.log_metrics(
            {
                "cv_roc_auc": champion.cv_auc,
                "onnx_parity_max_abs_diff": parity,
                "leakage_audit_auc": primary_summary.leakage_auc,
            }
        )
        if other_summary is not None:
            mlflow.log_metrics(
                {
                    f"{other_summary.mode.replace('-', '_')}_heldout_roc_auc": other_summary.heldout[
                        "roc_auc"
                    ],
                    f"{other_summary.mode.replace('-', '_')}_leakage_audit_auc": other_summary.leakage_auc,
                }
            )
        mlflow.set_tags(
            {
                "champion_model_type": champion.model_type,
                "registered_version": str(version),
                "promoted": str(promotion.promoted),
            }
        )

    return {
        "model_type": champion.model_type,
        "search": champion.search,
        "registered_model": settings.registered_model,
        "version": version,
        "alias": promotion.alias,
        "promoted": promotion.promoted,
        "promotion": promotion.reason,
        "onnx_path": str(onnx_path),
        "target": settings.target,
        "heldout": {k: round(v, 6) if isinstance(v, float) else v for k, v in heldout.items()},
        "heldout_per_customer_roc_auc": round(per_customer["roc_auc"], 6),
        "cv_roc_auc": round(champion.cv_auc, 6),
        "onnx_parity_max_abs_diff": parity,
        "other_target": None
        if other_summary is None
        else {
            "target": other_summary.mode,
            "heldout_roc_auc": round(other_summary.heldout["roc_auc"], 6),
            "leakage_audit_auc": round(other_summary.leakage_auc, 6),
        },
        "leakage_audit_auc": round(primary_summary.leakage_auc, 6),
        "report": str(card),
        "run_id": parent.info.run_id,
        "tracking_uri": tracking_uri,
    }


def _search_all(
    settings: TrainSettings, primary: Prepared, folds: list, dataset: object
) -> tuple[list[Candidate], dict[str, np.ndarray], dict[str, dict[str, float]]]:
    """Grid and random search of every model family, each in its own nested MLflow run.

    Returns the candidates with their held-out scores and metrics (reported, never used to choose).
    """
    X_train, y_train = primary.train
    X_test, y_test = primary.test
    candidates: list[Candidate] = []
    scores: dict[str, np.ndarray] = {}
    heldout: dict[str, dict[str, float]] = {}
    total = len(settings.models) * len(SEARCH_KINDS)
    for i, (model_type, kind) in enumerate(((m, k) for m in settings.models for k in SEARCH_KINDS), start=1):
        with (
            step(f"[{i}/{total}] {kind} search of {model_type} ({settings.cv_folds}-fold grouped CV)"),
            mlflow.start_run(run_name=f"{model_type}-{kind}", nested=True),
        ):
            candidate = run_search(
                model_type,
                kind,
                X_train,
                y_train,
                folds,
                settings.random_search_iter,
                settings.seed,
                settings.n_jobs,
            )
            held = candidate.pipeline.predict_proba(X_test)[:, 1]
            scores[candidate.key] = held
            metrics = heldout[candidate.key] = classification_metrics(y_test, held, settings.threshold)
            mlflow.log_input(dataset, context="training")
            mlflow.set_tags({"model_type": model_type, "search": kind})
            mlflow.log_params(
                {
                    "model_type": model_type,
                    "search": kind,
                    "candidates": candidate.n_candidates,
                    **{f"best_{k}": v for k, v in candidate.best_params.items()},
                }
            )
            mlflow.log_metrics(
                {
                    "cv_roc_auc": candidate.cv_auc,
                    "cv_roc_auc_std": candidate.cv_auc_std,
                    "fit_seconds": candidate.fit_seconds,
                    **{f"heldout_{k}": float(v) for k, v in metrics.items()},
                }
            )
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "cv_results.csv"
                candidate.cv_results.drop(columns=["params"]).to_csv(path, index=False)
                mlflow.log_artifact(str(path))
                mlflow.log_figure(_roc_figure(y_test, held, candidate.key), "heldout_roc.png")
            log.info(
                "%s: CV ROC-AUC %.4f ± %.4f, best %s",
                candidate.key,
                candidate.cv_auc,
                candidate.cv_auc_std,
                json.dumps(candidate.best_params),
            )
            candidates.append(candidate)
    return candidates, scores, heldout


def _other_mode(transactions: pd.DataFrame, champion: Candidate, settings: TrainSettings) -> ModeSummary:
    """The champion's configuration on the other target mode, for the side-by-side report."""
    mode = settings.other_target
    with step(f"fitting the champion configuration on the {mode} target for comparison"):
        other = prepare(transactions, mode, settings)
        pipeline = refit(champion, *other.train)
        X_test, y_test = other.test
        scores = pipeline.predict_proba(X_test)[:, 1]
        summary = ModeSummary(
            mode,
            other.data.notes,
            other.data.target,
            classification_metrics(y_test, scores, settings.threshold),
            other.customer_metrics(scores, settings.threshold),
            other.leakage_auc(settings.seed),
        )
        log.info(
            "%s: held-out ROC-AUC %.4f, leakage audit AUC %.4f",
            mode,
            summary.heldout["roc_auc"],
            summary.leakage_auc,
        )
    return summary


def _candidate_table(candidates: list[Candidate], heldout: dict[str, dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "model": c.model_type,
                "search": c.search,
                "candidates": c.n_candidates,
                "cv_roc_auc": c.cv_auc,
                "cv_roc_auc_std": c.cv_auc_std,
                "heldout_roc_auc": heldout[c.key]["roc_auc"],
                "fit_seconds": round(c.fit_seconds, 1),
            }
            for c in candidates
        ]
    ).sort_values("cv_roc_auc", ascending=False)


def _roc_figure(y: np.ndarray, scores: np.ndarray, title: str):
    import matplotlib.pyplot as plt
    from sklearn.metrics import RocCurveDisplay

    fig, ax = plt.subplots(figsize=(5, 4))
    RocCurveDisplay.from_predictions(y, scores, ax=ax, name=title)
    plt.close(fig)
    return fig


def _settings_params(settings: TrainSettings) -> dict[str, object]:
    params = settings.model_dump(mode="json", exclude={"tracking_uri"})
    params["models"] = ",".join(settings.models)
    params["risk_bands"] = json.dumps(params["risk_bands"])
    return params
