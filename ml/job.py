"""The training job: load → observation design → train → validate → export → register → gate → report.

:func:`run` is the whole job; ``python -m ml train`` calls it. Nothing reaches the registry unless every
step before registration succeeded (data valid, enough customers, label sound, export parity, directions
and calendar blindness checked on the ONNX graph); the alias moves only if the champion gate says so.
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
import onnx
import pandas as pd
from sklearn.pipeline import Pipeline

from ml import export
from ml.evaluate import CustomerBootstrap, Interval, band_table, calibration_table, classification_metrics
from ml.gate import Challenger
from ml.load import dataset_digest, read_transactions
from ml.observations import Design, build_design, check_sample_size
from ml.register import configure_tracking, log_and_register, next_version, promote
from ml.report import ReportInputs, write_report
from ml.schema import TIME_COLUMN
from ml.settings import TrainSettings
from ml.synthetic import SyntheticSpec, generate_transactions
from ml.target import DEFAULT_K
from ml.train import (
    MODEL_SPECS,
    SEARCH_KINDS,
    Candidate,
    as_model_input,
    cv_folds,
    fit_weighted,
    refit,
    run_search,
    select_champion,
    weighted_auc,
)
from ml.validation import (
    AuditRoute,
    Comparator,
    baselines,
    best_rule,
    first_history,
    label_sensitivity,
    leakage_audit,
    population_stability,
    time_of_day_effects,
)

log = logging.getLogger("ml")


@contextmanager
def step(title: str) -> Iterator[None]:
    """Progress on long steps: a line when a step starts and one with its wall time when it ends."""
    log.info("%s …", title)
    started = time.perf_counter()
    yield
    log.info("%s done in %.1fs", title, time.perf_counter() - started)


def prepare(transactions: pd.DataFrame, mode: str, settings: TrainSettings) -> Design:
    """The labelled, split examples of ``mode`` under ``settings`` (see :mod:`ml.observations`)."""
    return build_design(
        transactions,
        mode,
        horizon_days=settings.horizon_days,
        oot_days=settings.oot_days,
        test_size=settings.test_size,
        random_state=settings.seed,
        min_high_risk_share=settings.min_high_risk_share,
        k=DEFAULT_K,
    )


def fit_and_export(
    design: Design, model_type: str, settings: TrainSettings, version: int = 1, data_digest: str = ""
) -> tuple[Pipeline, onnx.ModelProto]:
    """One family with its default parameters fit (customer-weighted) on a design's training split and
    exported with its serving metadata and checks — a model without the searches, for tests, benchmarks and
    the kind job."""
    train, test = design.train, design.test
    X_test = as_model_input(test.X)
    pipeline = fit_weighted(
        MODEL_SPECS[model_type].build(settings.seed), as_model_input(train.X), train.y, train.weights
    )
    model = export.to_onnx(pipeline, settings.registered_model)
    export.check_parity(pipeline, model, X_test, settings.parity_tolerance)
    export.check_ignored(model, X_test, seed=settings.seed)
    scores = pipeline.predict_proba(X_test)[:, 1]
    export.attach_metadata(
        model,
        export.serving_metadata(
            model_name=settings.registered_model, model_version=version, model_type=model_type,
            target_mode=design.mode, data_digest=data_digest, threshold=settings.threshold,
            risk_bands=settings.risk_bands.model_dump(),
            metrics={"test_customer_roc_auc": weighted_auc(test.y, scores, test.weights)},
            scores=scores, X_reference=X_test, score_bins=settings.score_bins, feature_bins=settings.feature_bins,
            observation_design=design.name,
        ),
    )  # fmt: skip
    return pipeline, model


def load_data(settings: TrainSettings) -> tuple[pd.DataFrame, str]:
    if settings.data is not None:
        return read_transactions(settings.data), str(settings.data)
    spec = SyntheticSpec(rows=settings.synthetic_rows, seed=settings.seed)
    return generate_transactions(spec), f"built-in synthetic data (rows={spec.rows}, seed={spec.seed})"


@dataclass
class ModeResult:
    """One target mode's champion configuration, scored on that mode's test split."""

    design: Design
    test_scores: np.ndarray
    per_transaction: dict[str, float]
    per_customer: dict[str, float]
    intervals: dict[str, Interval]  # per customer: the AUC always; Gini, KS and Brier for the trained mode
    audit: list[AuditRoute]

    @property
    def customer_auc(self) -> Interval:
        return self.intervals["roc_auc"]


def _bootstrap(design: Design, settings: TrainSettings) -> CustomerBootstrap:
    test = design.test
    return CustomerBootstrap(
        test.y, test.customers, test.weights, settings.bootstrap_samples, settings.confidence, settings.seed
    )


def _score_mode(
    design: Design,
    pipeline,
    folds: list,
    settings: TrainSettings,
    bootstrap: CustomerBootstrap,
    all_intervals: bool = False,
) -> ModeResult:
    test = design.test
    scores = pipeline.predict_proba(as_model_input(test.X))[:, 1]
    per_customer = classification_metrics(test.y, scores, settings.threshold, test.weights)
    return ModeResult(
        design=design,
        test_scores=scores,
        per_transaction=classification_metrics(test.y, scores, settings.threshold),
        per_customer=per_customer,
        intervals=bootstrap.metrics(scores) if all_intervals else {"roc_auc": bootstrap.auc(scores)},
        audit=leakage_audit(
            design, per_customer["roc_auc"], bootstrap, folds, settings.seed, settings.audit_flag_ratio
        ),
    )


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
    with step(f"building the {settings.target} observation design and proxy target"):
        design = prepare(transactions, settings.target, settings)
        check_sample_size(design, settings.min_customers, settings.min_positive_customers)
        train, test = design.train, design.test
        X_train, X_test = as_model_input(train.X), as_model_input(test.X)
        folds = cv_folds(train.y, train.customers, settings.cv_folds, settings.seed)

    tracking_uri = configure_tracking(settings.tracking_uri, settings.mlflow_dir, settings.experiment)
    log.info("MLflow tracking at %s (experiment %r)", tracking_uri, settings.experiment)
    dataset = mlflow.data.from_pandas(transactions, source=source, name="xente-transactions", digest=digest)

    with mlflow.start_run(run_name=f"train-{settings.target}") as parent:
        mlflow.log_input(dataset, context="training")
        mlflow.log_params(_settings_params(settings))
        mlflow.set_tags(
            {"target_mode": settings.target, "data_digest": digest, "observation_design": design.name}
        )

        candidates, candidate_scores, candidate_aucs = _search_all(settings, design, folds, dataset)
        champion, selection = select_champion(candidates)
        log.info("champion: %s — %s", champion.key, selection)

        with step(f"validating the champion on the {design.test_kind} split"):
            bootstrap = _bootstrap(design, settings)
            primary = _score_mode(design, champion.pipeline, folds, settings, bootstrap, all_intervals=True)
            scores = primary.test_scores
            comparators = baselines(design, bootstrap, folds, settings.seed)
            rule = best_rule(comparators)
            bands = settings.risk_bands
            evidence = {
                "calibration": calibration_table(test.y, scores, weights=test.weights),
                "calibration_per_transaction": calibration_table(test.y, scores),
                "bands": band_table(test.y, scores, test.customers, bands.low_below, bands.high_above, test.weights),
                "stability": population_stability(
                    train, test, champion.pipeline.predict_proba(X_train)[:, 1], scores, settings.feature_bins
                ),
                "sensitivity": label_sensitivity(
                    design, settings.sensitivity_k, settings.sensitivity_horizons, DEFAULT_K,
                    settings.horizon_days, settings.seed, settings.min_high_risk_share,
                ),
                "first_history": first_history(test, scores, bands.low_below, bands.high_above),
                "time_of_day": time_of_day_effects(champion.pipeline, X_test, seed=settings.seed),
            }  # fmt: skip
            log.info(
                "%s per customer: ROC-AUC %s (in-time CV %.4f); best no-model baseline %s: %s",
                design.test_kind, primary.customer_auc, champion.cv_auc, rule.name, rule.test_auc,
            )  # fmt: skip
        other = _other_mode(transactions, champion, settings) if settings.compare_modes else None

        with step("exporting the pipeline to ONNX and checking it"):
            model = export.to_onnx(champion.pipeline, settings.registered_model)
            parity = export.check_parity(champion.pipeline, model, X_test, settings.parity_tolerance)
            export.check_ignored(model, X_test, seed=settings.seed)
            directions = export.check_directions(model, X_test[: min(len(X_test), 500)])
            log.info(
                "ONNX parity on %d %s rows: max |diff| %.2e; calendar ignored; directions hold (%s)",
                len(X_test), design.test_kind, parity, directions,
            )  # fmt: skip
            version = next_version(mlflow.MlflowClient(), settings.registered_model)
            metrics = _headline(champion, primary, rule)
            export.attach_metadata(
                model,
                export.serving_metadata(
                    model_name=settings.registered_model,
                    model_version=version,
                    model_type=champion.model_type,
                    target_mode=settings.target,
                    data_digest=digest,
                    threshold=settings.threshold,
                    risk_bands=bands.model_dump(),
                    metrics=metrics,
                    scores=scores,
                    X_reference=X_test,
                    score_bins=settings.score_bins,
                    feature_bins=settings.feature_bins,
                    observation_design=design.name,
                ),
            )

        with step(f"registering {settings.registered_model} v{version} and running the champion gate"):
            log_and_register(
                model,
                settings.registered_model,
                X_test[:5],
                version,
                tags={
                    "model_type": champion.model_type,
                    "target_mode": settings.target,
                    "observation_design": design.name,
                    "data_digest": digest,
                    "test": design.test_kind,
                    "test_customer_roc_auc": f"{primary.customer_auc.estimate:.6f}",
                },
            )
            onnx_path = export.save(
                model, settings.artifacts_dir.resolve() / f"{settings.registered_model}-v{version}.onnx"
            )
            challenger = Challenger(
                version=str(version),
                mode=settings.target,
                design=design.name,
                oot_customer_auc=primary.customer_auc,
                best_baseline=rule.name,
                best_baseline_auc=rule.test_auc,
            )
            promotion = promote(
                settings.registered_model,
                str(version),
                challenger,
                scores,
                X_test,
                bootstrap,
                settings.alias,
                settings.previous_alias,
                settings.force,
            )
            mlflow.set_tags(promotion.decision.tags)
            log.info("champion gate: %s", promotion.reason)

        with step("writing the model card"):
            report_dir = settings.reports_dir.resolve() / f"{settings.registered_model}-v{version}"
            card = write_report(
                ReportInputs(
                    settings=settings,
                    version=version,
                    champion=champion,
                    selection=selection,
                    candidates=_candidate_table(candidates, candidate_aucs),
                    data_source=source,
                    data_digest=digest,
                    n_transactions=len(transactions),
                    period=(str(transactions[TIME_COLUMN].min()), str(transactions[TIME_COLUMN].max())),
                    primary=primary,
                    other=other,
                    comparators=comparators,
                    best_rule=rule,
                    evidence=evidence,
                    candidate_scores=candidate_scores,
                    parity=parity,
                    directions=directions,
                    promotion=promotion,
                ),
                report_dir,
            )
            mlflow.log_artifacts(str(report_dir), artifact_path="report")

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        mlflow.log_metrics({f"test_{k}": float(v) for k, v in primary.per_transaction.items()})
        mlflow.log_metrics({f"test_customer_{k}": float(v) for k, v in primary.per_customer.items()})
        mlflow.log_metrics({"onnx_parity_max_abs_diff": parity})
        for route in primary.audit:
            mlflow.log_metric(f"audit_{_slug(route.route)}_auc", route.comparator.test_auc.estimate)
        for comparator in comparators:
            mlflow.log_metric(f"baseline_{_slug(comparator.name)}_auc", comparator.test_auc.estimate)
        if other is not None:
            mlflow.log_metric(
                f"{_slug(other.design.mode)}_test_customer_roc_auc", other.customer_auc.estimate
            )
        mlflow.set_tags(
            {
                "champion_model_type": champion.model_type,
                "registered_version": str(version),
                "promoted": str(promotion.promoted),
                "audit_flagged": ",".join(r.route for r in primary.audit if r.flagged) or "none",
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
        "gate_rule": promotion.decision.rule,
        "onnx_path": str(onnx_path),
        "target": settings.target,
        "observation_design": design.name,
        "test": design.test_kind,
        "cv_roc_auc": round(champion.cv_auc, 6),
        "test_per_transaction": _rounded(primary.per_transaction),
        "test_per_customer": _rounded(primary.per_customer),
        "test_customer_roc_auc": _rounded(primary.customer_auc.as_dict()),
        "baselines": {c.name: _rounded(c.test_auc.as_dict()) for c in comparators},
        "leakage_audit": {
            r.route: {"roc_auc": round(r.comparator.test_auc.estimate, 6), "flagged": r.flagged}
            for r in primary.audit
        },
        "onnx_parity_max_abs_diff": parity,
        "other_target": None
        if other is None
        else {
            "target": other.design.mode,
            "test": other.design.test_kind,
            "test_customer_roc_auc": round(other.customer_auc.estimate, 6),
            "leakage_audit": {r.route: round(r.comparator.test_auc.estimate, 6) for r in other.audit},
        },
        "report": str(card),
        "run_id": parent.info.run_id,
        "tracking_uri": tracking_uri,
    }


def _headline(champion: Candidate, primary: ModeResult, rule: Comparator) -> dict[str, float]:
    """The numbers that travel in the ONNX metadata and head the MLflow run."""
    return {
        "cv_roc_auc": champion.cv_auc,
        "cv_roc_auc_std": champion.cv_auc_std,
        "test_customer_roc_auc": primary.customer_auc.estimate,
        "test_customer_roc_auc_low": primary.customer_auc.low,
        "test_customer_roc_auc_high": primary.customer_auc.high,
        "test_roc_auc": primary.per_transaction["roc_auc"],
        "test_ks": primary.per_transaction["ks"],
        "test_brier": primary.per_transaction["brier"],
        "best_baseline_customer_roc_auc": rule.test_auc.estimate,
    }


def _search_all(
    settings: TrainSettings, design: Design, folds: list, dataset: object
) -> tuple[list[Candidate], dict[str, np.ndarray], dict[str, float]]:
    """Grid and random search of every model family, each in its own nested MLflow run.

    Returns the candidates with their test-split scores and per-customer test AUCs (reported, never used to
    choose).
    """
    train, test = design.train, design.test
    X_train, X_test = as_model_input(train.X), as_model_input(test.X)
    candidates: list[Candidate] = []
    scores: dict[str, np.ndarray] = {}
    aucs: dict[str, float] = {}
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
                train.y,
                train.weights,
                folds,
                settings.random_search_iter,
                settings.seed,
                settings.n_jobs,
            )
            held = candidate.pipeline.predict_proba(X_test)[:, 1]
            scores[candidate.key] = held
            per_customer = classification_metrics(test.y, held, settings.threshold, test.weights)
            aucs[candidate.key] = per_customer["roc_auc"]
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
                    "directions_ok": float(candidate.directions_ok),
                    **{f"test_customer_{k}": float(v) for k, v in per_customer.items()},
                }
            )
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "cv_results.csv"
                candidate.cv_results.drop(columns=["params"]).to_csv(path, index=False)
                mlflow.log_artifact(str(path))
                mlflow.log_figure(_roc_figure(test.y, held, test.weights, candidate.key), "test_roc.png")
            log.info(
                "%s: CV ROC-AUC %.4f ± %.4f (per customer), best %s%s",
                candidate.key,
                candidate.cv_auc,
                candidate.cv_auc_std,
                json.dumps(candidate.best_params),
                "" if candidate.directions_ok else " — breaks a monotone direction",
            )
            candidates.append(candidate)
    return candidates, scores, aucs


def _other_mode(
    transactions: pd.DataFrame, champion: Candidate, settings: TrainSettings
) -> ModeResult | None:
    """The champion's configuration on the other target mode, for the side-by-side report."""
    mode = settings.other_target
    with step(f"fitting the champion configuration on the {mode} target for comparison"):
        try:
            design = prepare(transactions, mode, settings)  # a diagnostic: no minimum sample size
            folds = cv_folds(design.train.y, design.train.customers, settings.cv_folds, settings.seed)
        except Exception as exc:  # the comparison is a report section: its absence is stated, not fatal
            log.warning("no %s comparison: %s", mode, exc)
            return None
        train = design.train
        pipeline = refit(champion, as_model_input(train.X), train.y, train.weights)
        result = _score_mode(design, pipeline, folds, settings, _bootstrap(design, settings))
        log.info(
            "%s (%s): per-customer ROC-AUC %s; audit %s",
            mode, design.test_kind, result.customer_auc,
            ", ".join(f"{r.route} {r.comparator.test_auc.estimate:.4f}" for r in result.audit),
        )  # fmt: skip
    return result


def _candidate_table(candidates: list[Candidate], test_aucs: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "model": c.model_type,
                "search": c.search,
                "candidates": c.n_candidates,
                "cv_roc_auc": c.cv_auc,
                "cv_roc_auc_se": c.cv_auc_se,
                "complexity": c.complexity,
                "directions_ok": c.directions_ok,
                "test_customer_roc_auc": test_aucs[c.key],
                "fit_seconds": round(c.fit_seconds, 1),
            }
            for c in candidates
        ]
    ).sort_values("cv_roc_auc", ascending=False)


def _roc_figure(y: np.ndarray, scores: np.ndarray, weights: np.ndarray, title: str):
    import matplotlib.pyplot as plt
    from sklearn.metrics import RocCurveDisplay

    fig, ax = plt.subplots(figsize=(5, 4))
    RocCurveDisplay.from_predictions(y, scores, sample_weight=weights, ax=ax, name=title)
    plt.close(fig)
    return fig


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")[:60]


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in values.items()}


def _settings_params(settings: TrainSettings) -> dict[str, object]:
    params = settings.model_dump(mode="json", exclude={"tracking_uri"})
    params["models"] = ",".join(settings.models)
    params["risk_bands"] = json.dumps(params["risk_bands"])
    for key in ("sensitivity_k", "sensitivity_horizons"):
        params[key] = ",".join(map(str, params[key]))
    return params
