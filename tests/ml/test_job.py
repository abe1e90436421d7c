"""End to end on small synthetic data: train, export, parity, register, reload via the alias, score."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import mlflow
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from mlflow import MlflowClient

from ml.export import read_metadata
from ml.schema import FEATURE_NAMES
from ml.target import build_training_set
from ml.train import as_model_input

from .test_main import run_cli

pytestmark = pytest.mark.slow

SMALL = ("--rows", "6000", "--seed", "7", "--random-search-iter", "2")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
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
    assert summary["model_type"] in {
        "logistic_regression",
        "decision_tree",
        "random_forest",
        "xgboost",
        "lightgbm",
    }
    assert summary["target"] == "forward"
    for metric in ("roc_auc", "gini", "ks", "accuracy", "precision", "recall", "f1", "brier", "log_loss"):
        assert 0.0 <= summary["heldout"][metric] <= 1.0 or metric == "log_loss"
    assert summary["heldout"]["gini"] == pytest.approx(2 * summary["heldout"]["roc_auc"] - 1, abs=1e-5)
    assert summary["onnx_parity_max_abs_diff"] <= 1e-5
    assert summary["other_target"]["target"] == "same-window"
    assert Path(summary["onnx_path"]) == workdir / "artifacts" / "credit-risk-v1.onnx"
    # Progress on the long steps went to stderr.
    assert "[10/10] random search of lightgbm" in stderr and "done in" in stderr


def test_champion_reloads_through_the_registry_and_scores_like_the_file(
    first_run, small_transactions
) -> None:
    workdir, summary, _ = first_run
    _use(workdir)
    registered = mlflow.onnx.load_model("models:/credit-risk@champion")
    local = onnx.load(summary["onnx_path"])
    assert registered.SerializeToString() == local.SerializeToString()

    rows = as_model_input(build_training_set(small_transactions, "forward").X)[:200]
    session = ort.InferenceSession(registered.SerializeToString(), providers=["CPUExecutionProvider"])
    scores = session.run(["probability"], {"features": rows})[0]
    assert scores.shape == (200,) and ((scores >= 0) & (scores <= 1)).all()
    assert len(np.unique(scores)) > 5


def test_onnx_metadata_carries_what_serving_needs(first_run) -> None:
    _, summary, _ = first_run
    meta = read_metadata(onnx.load(summary["onnx_path"]))
    assert meta["feature_names"] == list(FEATURE_NAMES)
    assert meta["model_name"] == "credit-risk" and meta["model_version"] == "1"
    assert meta["model_type"] == summary["model_type"]
    assert meta["risk_bands"] == {"low_below": 0.3, "high_above": 0.6}
    assert meta["threshold"] == 0.5
    assert meta["metrics"]["heldout_roc_auc"] == pytest.approx(summary["heldout"]["roc_auc"], abs=1e-6)
    assert len(meta["data_digest"]) == 16
    score_ref = meta["score_reference"]
    assert len(score_ref["proportions"]) == 10 and sum(score_ref["proportions"]) == pytest.approx(1.0)
    assert score_ref["count"] == summary["heldout"]["rows"]
    assert list(meta["feature_reference"]) == list(FEATURE_NAMES)


def test_mlflow_holds_the_parent_run_nested_runs_and_the_report(first_run) -> None:
    workdir, summary, _ = first_run
    _use(workdir)
    client = MlflowClient()
    parent = client.get_run(summary["run_id"])
    assert parent.data.metrics["heldout_roc_auc"] == pytest.approx(summary["heldout"]["roc_auc"], abs=1e-6)
    assert parent.data.tags["target_mode"] == "forward"
    assert parent.inputs.dataset_inputs[0].dataset.digest == parent.data.tags["data_digest"]
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(r.info.run_name for r in children) == sorted(
        f"{m}-{k}"
        for m in ("logistic_regression", "decision_tree", "random_forest", "xgboost", "lightgbm")
        for k in ("grid", "random")
    )
    for child in children:
        assert "cv_roc_auc" in child.data.metrics and "heldout_roc_auc" in child.data.metrics
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"cv_results.csv", "heldout_roc.png"} <= names
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {
        "report/model_card.md",
        "report/roc.png",
        "report/calibration.png",
        "report/score_distribution.png",
        "report/rfm_clusters.png",
        "report/feature_importance.png",
    } <= report
    # The SQLite file and artifacts stay inside the project folder.
    assert (
        sqlite3.connect(workdir / "mlruns" / "mlflow.db").execute("select count(*) from runs").fetchone()[0]
        == 11
    )


def test_model_card_reports_both_modes_and_the_leakage_audit(first_run) -> None:
    _, summary, _ = first_run
    card = Path(summary["report"]).read_text()
    assert "## Both target modes side by side" in card
    assert "| forward |" in card and "| same-window |" in card
    assert "leakage audit AUC" in card and "## Limitations" in card
    assert f"{summary['heldout']['roc_auc']:.4f}" in card
    for image in (
        "roc.png",
        "calibration.png",
        "score_distribution.png",
        "rfm_clusters.png",
        "feature_importance.png",
    ):
        assert (Path(summary["report"]).parent / image).stat().st_size > 5_000


def test_forced_retrain_moves_champion_and_keeps_previous(first_run) -> None:
    workdir, _, _ = first_run
    result = run_cli(
        "train", *SMALL, "--models", '["decision_tree"]', "--no-compare-modes", "--force", cwd=workdir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert (
        summary["version"] == 2 and summary["promoted"] is True and summary["model_type"] == "decision_tree"
    )
    _use(workdir)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("credit-risk", "champion").version) == "2"
    assert str(client.get_model_version_by_alias("credit-risk", "previous").version) == "1"


def test_failed_export_parity_leaves_the_registry_untouched(first_run) -> None:
    workdir, _, _ = first_run
    result = run_cli(
        "train",
        *SMALL,
        "--models",
        '["logistic_regression"]',
        "--no-compare-modes",
        "--parity-tolerance",
        "1e-12",
        cwd=workdir,
    )
    assert result.returncode == 4
    assert (
        "ONNX export disagrees with scikit-learn" in result.stderr
        and "Nothing was registered" in result.stderr
    )
    _use(workdir)
    client = MlflowClient()
    assert sorted(str(v.version) for v in client.search_model_versions("name = 'credit-risk'")) == ["1", "2"]
    assert str(client.get_model_version_by_alias("credit-risk", "champion").version) == "2"
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
