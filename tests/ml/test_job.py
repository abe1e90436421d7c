"""End to end on small synthetic data: train, export, parity, register, reload via the alias, score."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import mlflow
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from mlflow import MlflowClient

from ml.export import read_metadata
from ml.features import build_features
from ml.schema import CALENDAR_FEATURES, FEATURE_NAMES
from ml.synthetic import SyntheticSpec, generate_transactions
from ml.train import as_model_input

from .test_main import run_cli

pytestmark = pytest.mark.slow

# Small enough to train in seconds, large enough for the default minimums (100 customers and 20 high-risk
# ones per split); a few settings differ from the defaults so the model card can be checked against them.
SMALL = (
    "--rows",
    "12000",
    "--seed",
    "7",
    "--random-search-iter",
    "2",
    "--cv-folds",
    "3",
    "--bootstrap-samples",
    "200",
)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    workdir = tmp_path_factory.mktemp("job")
    result = run_cli("train", *SMALL, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, "train prints exactly one JSON line on stdout"
    return workdir, json.loads(lines[0]), result.stderr


def _use(workdir: Path) -> None:
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def test_summary_line(first_run) -> None:
    workdir, summary, stderr = first_run
    assert summary["registered_model"] == "credit-risk"
    assert summary["version"] == 1 and summary["alias"] == "champion" and summary["promoted"] is True
    assert summary["gate_rule"] == "first"
    assert summary["model_type"] in {
        "logistic_regression",
        "decision_tree",
        "random_forest",
        "xgboost",
        "lightgbm",
    }
    assert summary["target"] == "forward" and summary["test"] == "out-of-time"
    assert summary["observation_design"] == "application-point-v2/horizon-30d/oot-14d/k3"
    auc = summary["test_customer_roc_auc"]
    assert auc["low"] < auc["estimate"] < auc["high"] and auc["level"] == 0.95
    for metric in ("roc_auc", "gini", "ks", "accuracy", "precision", "recall", "f1", "brier"):
        assert 0.0 <= summary["test_per_customer"][metric] <= 1.0
    assert summary["test_per_customer"]["roc_auc"] == pytest.approx(auc["estimate"], abs=1e-6)
    best_rule = max(
        summary["baselines"][k]["estimate"] for k in ("days since previous transaction", "transaction count")
    )
    assert auc["estimate"] > best_rule, "the champion beats every no-model baseline out of time"
    assert set(summary["leakage_audit"]) == {
        "label inputs (recency, frequency, Value)",
        "calendar (day, month, year, week)",
    }
    assert not any(route["flagged"] for route in summary["leakage_audit"].values())
    assert summary["onnx_parity_max_abs_diff"] <= 1e-5
    assert summary["other_target"]["target"] == "same-window"
    assert Path(summary["onnx_path"]) == workdir / "artifacts" / "credit-risk-v1.onnx"
    assert "[10/10] random search of lightgbm (3-fold grouped CV)" in stderr and "done in" in stderr


def test_champion_reloads_through_the_registry_and_scores_like_the_file(first_run) -> None:
    workdir, summary, _ = first_run
    _use(workdir)
    registered = mlflow.onnx.load_model("models:/credit-risk@champion")
    local = onnx.load(summary["onnx_path"])
    assert registered.SerializeToString() == local.SerializeToString()
    rows = as_model_input(build_features(generate_transactions(SyntheticSpec(rows=12_000, seed=7))))[:200]
    session = ort.InferenceSession(registered.SerializeToString(), providers=["CPUExecutionProvider"])
    scores = session.run(["probability"], {"features": rows})[0]
    assert scores.shape == (200,) and ((scores >= 0) & (scores <= 1)).all()
    assert len(np.unique(scores)) > 5


def test_the_served_champion_ignores_the_date(first_run) -> None:
    """The validator's re-dating test on the registered champion: the same transactions moved by months and
    years (whole weeks: same hour, same weekday) get exactly the same scores."""
    _, summary, _ = first_run
    session = ort.InferenceSession(summary["onnx_path"], providers=["CPUExecutionProvider"])
    transactions = generate_transactions(SyntheticSpec(rows=12_000, seed=7))
    base = session.run(None, {"features": as_model_input(build_features(transactions))})[0]
    for weeks in (17, 52, 4 * 52 + 30):
        moved = transactions.assign(
            TransactionStartTime=transactions["TransactionStartTime"] + pd.Timedelta(weeks=weeks)
        )
        X = as_model_input(build_features(moved))
        assert np.array_equal(session.run(None, {"features": X})[0], base), f"{weeks} weeks later"


def test_onnx_metadata_carries_what_serving_needs(first_run) -> None:
    _, summary, _ = first_run
    meta = read_metadata(onnx.load(summary["onnx_path"]))
    assert meta["feature_names"] == list(FEATURE_NAMES)
    assert meta["model_name"] == "credit-risk" and meta["model_version"] == "1"
    assert meta["model_type"] == summary["model_type"] and meta["target_mode"] == "forward"
    assert meta["observation_design"] == summary["observation_design"]
    assert meta["ignored_features"] == list(CALENDAR_FEATURES)
    assert meta["monotone_directions"] == {"transaction_count": -1, "total_transaction_amount": -1}
    assert meta["risk_bands"] == {"low_below": 0.3, "high_above": 0.6} and meta["threshold"] == 0.5
    assert meta["metrics"]["test_customer_roc_auc"] == pytest.approx(
        summary["test_customer_roc_auc"]["estimate"]
    )
    assert meta["metrics"]["cv_roc_auc"] == pytest.approx(summary["cv_roc_auc"], abs=1e-6)
    assert len(meta["data_digest"]) == 16
    score_ref = meta["score_reference"]
    assert len(score_ref["proportions"]) == 10 and sum(score_ref["proportions"]) == pytest.approx(1.0)
    assert score_ref["count"] == summary["test_per_transaction"]["rows"]
    assert list(meta["feature_reference"]) == list(FEATURE_NAMES)


def test_mlflow_holds_the_runs_the_gate_decision_and_the_report(first_run) -> None:
    workdir, summary, _ = first_run
    _use(workdir)
    client = MlflowClient()
    parent = client.get_run(summary["run_id"])
    assert parent.data.metrics["test_customer_roc_auc"] == pytest.approx(
        summary["test_customer_roc_auc"]["estimate"]
    )
    assert parent.data.tags["target_mode"] == "forward"
    assert parent.data.tags["observation_design"] == summary["observation_design"]
    assert parent.data.tags["gate.decision"] == "promoted" and parent.data.tags["gate.rule"] == "first"
    assert parent.data.tags["gate.best_baseline"] in {"days since previous transaction", "transaction count"}
    assert parent.inputs.dataset_inputs[0].dataset.digest == parent.data.tags["data_digest"]
    version = client.get_model_version("credit-risk", "1")
    assert version.tags["observation_design"] == summary["observation_design"]
    assert version.tags["gate.decision"] == "promoted"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(r.info.run_name for r in children) == sorted(
        f"{m}-{k}"
        for m in ("logistic_regression", "decision_tree", "random_forest", "xgboost", "lightgbm")
        for k in ("grid", "random")
    )
    for child in children:
        assert "cv_roc_auc" in child.data.metrics and "test_customer_roc_auc" in child.data.metrics
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"cv_results.csv", "test_roc.png"} <= names
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {f"report/{name}" for name in ("model_card.md", "roc.png", "calibration.png", "score_distribution.png",
                                           "rfm_clusters.png", "feature_importance.png", "time_of_day.png")} <= report  # fmt: skip
    assert (
        sqlite3.connect(workdir / "mlruns" / "mlflow.db").execute("select count(*) from runs").fetchone()[0]
        == 11
    )


def test_model_card_is_what_a_validator_asks_for(first_run) -> None:
    _, summary, _ = first_run
    card = Path(summary["report"]).read_text()
    for section in (
        "## Observation design", "### Label sensitivity", "## Validation — out-of-time", "### Decisions by band",
        "## Baselines", "## Leakage audit", "## Stability", "## Customers with no prior history",
        "## Calendar independence and the time of day", "## Monotone directions", "## Candidates and selection",
        "## Champion gate", "## Both target modes side by side", "## Limitations",
    ):  # fmt: skip
        assert section in card, section
    auc = summary["test_customer_roc_auc"]
    assert f"{auc['estimate']:.4f} [{auc['low']:.4f}, {auc['high']:.4f}]" in card
    for name, interval in summary["baselines"].items():
        assert f"| {name} |" in card and f"{interval['estimate']:.4f} [" in card
    # Every number comes from the settings used, none from a template.
    assert "Seed 7 " in card and "random_state=7" in card and "3-fold" in card and "200 resamples" in card
    assert "random_state=42" not in card and "80/20" not in card and "5-fold" not in card
    assert "| 2 | 30 |" in card and "| 3 | 45 |" in card  # label sensitivity: k and horizon variants
    for image in ("roc.png", "calibration.png", "score_distribution.png", "rfm_clusters.png",
                  "feature_importance.png", "time_of_day.png"):  # fmt: skip
        assert (Path(summary["report"]).parent / image).stat().st_size > 5_000


def test_a_same_window_run_after_a_forward_one_never_takes_the_alias(first_run) -> None:
    """The validator's sequence: train forward, then --target same-window (circular, high in-sample AUC). The
    same-window model is registered as a diagnostic and the champion stays the forward one."""
    workdir, _, _ = first_run
    result = run_cli(
        "train",
        *SMALL,
        "--target",
        "same-window",
        "--min-customers",
        "50",
        "--no-compare-modes",
        "--force",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["target"] == "same-window" and summary["test"] == "held-out customers"
    assert summary["promoted"] is False and summary["gate_rule"] == "diagnostic" and summary["alias"] is None
    assert "never becomes 'champion'" in summary["promotion"]
    assert any(route["flagged"] for route in summary["leakage_audit"].values()), (
        "the audit flags the circular label"
    )
    _use(workdir)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("credit-risk", "champion").version) == "1"
    assert client.get_model_version("credit-risk", str(summary["version"])).tags["gate.decision"] == "kept"


def test_a_retrain_on_the_same_data_is_not_an_improvement_unless_forced(first_run) -> None:
    workdir, first, _ = first_run
    again = run_cli(
        "train", *SMALL, "--models", f'["{first["model_type"]}"]', "--no-compare-modes", cwd=workdir
    )
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["promoted"] is False and summary["gate_rule"] == "not better"
    assert "the interval reaches zero" in summary["promotion"]
    forced = run_cli(
        "train",
        *SMALL,
        "--models",
        f'["{first["model_type"]}"]',
        "--no-compare-modes",
        "--force",
        cwd=workdir,
    )
    assert forced.returncode == 0, forced.stderr[-3000:]
    summary = json.loads(forced.stdout)
    assert summary["promoted"] is True and "forced with --force" in summary["promotion"]
    _use(workdir)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("credit-risk", "champion").version) == str(
        summary["version"]
    )
    assert str(client.get_model_version_by_alias("credit-risk", "previous").version) == "1"


def test_failed_export_parity_leaves_the_registry_untouched(first_run) -> None:
    workdir, _, _ = first_run
    _use(workdir)
    client = MlflowClient()
    versions = sorted(str(v.version) for v in client.search_model_versions("name = 'credit-risk'"))
    champion = str(client.get_model_version_by_alias("credit-risk", "champion").version)
    result = run_cli(
        "train", *SMALL, "--models", '["logistic_regression"]', "--no-compare-modes", "--parity-tolerance", "1e-12",
        cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 4
    assert (
        "ONNX export disagrees with scikit-learn" in result.stderr
        and "Nothing was registered" in result.stderr
    )
    assert sorted(str(v.version) for v in client.search_model_versions("name = 'credit-risk'")) == versions
    assert str(client.get_model_version_by_alias("credit-risk", "champion").version) == champion
    failed = client.search_runs(
        [mlflow.get_experiment_by_name("credit-risk").experiment_id],
        filter_string="attributes.status = 'FAILED'",
    )
    assert len(failed) == 1


def _champion(workdir: Path) -> str:
    _use(workdir)
    return str(MlflowClient().get_model_version_by_alias("credit-risk", "champion").version)


@pytest.mark.parametrize("damage", ["truncated", "latin-1"])
def test_a_damaged_csv_leaves_the_champion_untouched(first_run, damage: str, tmp_path: Path) -> None:
    from ml.synthetic import SyntheticSpec, generate_transactions, write_csv

    workdir, _, _ = first_run
    before = _champion(workdir)
    path = tmp_path / "data.csv"
    write_csv(generate_transactions(SyntheticSpec(rows=3_000, seed=3)), str(path))
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])  # cut mid-row, as an interrupted copy leaves it
        expected = "is empty in 1 row(s)"
    else:
        path.write_bytes(raw.decode().replace("CustomerId_", "CustomérId_", 1).encode("latin-1"))
        expected = "is not valid UTF-8"
    result = run_cli("train", "--data", str(path), cwd=workdir)
    assert result.returncode == 2 and expected in result.stderr
    assert _champion(workdir) == before
