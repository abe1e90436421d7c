from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from harness.predictor import TrainedModel
from serving import metrics as metrics_module
from serving.contract import ModelContract
from serving.drift import DriftWindow, psi
from serving.metrics import ModelMetrics


@pytest.fixture
def contract(trained: TrainedModel) -> ModelContract:
    return ModelContract.from_metadata({p.key: p.value for p in onnx.load(str(trained.path)).metadata_props})


def _samples(text: bytes) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_psi() -> None:
    ref = np.array([0.25, 0.25, 0.5])
    assert psi(np.array([25, 25, 50]), ref) == pytest.approx(0.0)
    assert math.isnan(psi(np.zeros(3), ref))
    live = np.array([0.5, 0.25, 0.25])
    expected = float(np.sum((live - ref) * np.log(live / ref)))
    assert psi(np.array([2, 1, 1]), ref) == pytest.approx(expected)
    assert psi(np.array([0, 0, 10]), ref) > 1  # an empty reference bin is floored, not infinite


def test_batched_histogram_equals_one_by_one(contract: ModelContract, trained: TrainedModel) -> None:
    """The score histogram fed from the pending bin counts equals prometheus_client's own observe()."""
    metrics = ModelMetrics(contract, "1", 0.0, drift_window_seconds=60)
    reference = Histogram(
        "r", "r", buckets=(*contract.score.edges.tolist(), math.inf), registry=CollectorRegistry()
    )
    probability = trained.pipeline.predict_proba(trained.X_test)[:, 1].astype(np.float32)
    for chunk in (probability[:1], probability[1:40], probability[40:]):  # both binning paths
        metrics.observe(trained.X_test[: len(chunk)], chunk, np.zeros(len(chunk), dtype=np.intp))
        for value in chunk:
            reference.observe(float(value))
    metrics.flush()
    family = next(f for f in metrics.registry.collect() if f.name == "credit_risk_score")
    ours = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    theirs = {s.labels["le"]: s.value for s in reference.collect()[0].samples if s.name.endswith("_bucket")}
    assert ours == theirs
    total = next(s.value for s in family.samples if s.name.endswith("_sum"))
    assert total == pytest.approx(float(probability.astype(np.float64).sum()), rel=1e-6)


def test_feature_bins_agree_on_both_paths(contract: ModelContract, trained: TrainedModel) -> None:
    """Small batches bin with one vectorised comparison, large ones with searchsorted: same bins."""
    X = trained.X_test[:200]
    for rows in (1, 64, 65, 200):
        metrics = ModelMetrics(contract, "1", 0.0, drift_window_seconds=60)
        metrics.observe(X[:rows], np.full(rows, 0.5, np.float32), np.ones(rows, dtype=np.intp))
        pending = metrics._pending
        for j, feature in enumerate(contract.feature_names):
            start = metrics._feature_offsets[j]
            expected = contract.features[feature].counts(X[:rows, j].astype(np.float64))
            assert pending[start : start + len(expected)].tolist() == expected.tolist(), (rows, feature)


def test_observe_counts_every_row_in_its_bins(contract: ModelContract, trained: TrainedModel) -> None:
    metrics = ModelMetrics(contract, "1", 0.01, drift_window_seconds=60)
    X = trained.X_test[:200]
    probability = trained.pipeline.predict_proba(X)[:, 1].astype(np.float32)
    level = (probability >= 0.3).astype(np.intp) + (probability > 0.6)
    metrics.observe(X, probability, level)
    metrics.observe(X[:1], probability[:1], level[:1])
    samples = _samples(metrics.render(None)[0])
    name = ("model_name", "credit-risk")
    v1 = ("model_version", "1")
    expected = contract.score.counts(np.concatenate([probability, probability[:1]]))
    for label, count in zip(contract.score.labels, expected, strict=True):
        assert samples[("credit_risk_score_bin_total", (("bin", label), name, v1))] == count
    assert samples[("credit_risk_score_count", (name, v1))] == 201
    assert samples[("credit_risk_request_rows_count", (name,))] == 2
    amount = contract.features["Amount"].counts(np.concatenate([X[:, 1], X[:1, 1]]))
    for label, count in zip(contract.features["Amount"].labels, amount, strict=True):
        assert (
            samples[("credit_risk_feature_bin_total", (("bin", label), ("feature", "Amount"), name, v1))]
            == count
        )
    levels = np.bincount(np.concatenate([level, level[:1]]), minlength=3)
    assert (
        samples[("credit_risk_predictions_total", (("decision", "reject"), name, v1, ("risk_level", "high")))]
        == levels[2]
    )
    reference = samples[("credit_risk_score_reference_ratio", (("bin", "0.1"), name, v1))]
    assert reference == pytest.approx(contract.score.proportions[0])
    assert samples[("credit_risk_model_info", (("data_digest", "test"), name, ("model_type", "lightgbm"),
                                                ("model_version", "1"), ("target_mode", "forward")))] == 1  # fmt: skip
    # The window holds every row so far, and its PSI is the PSI of those rows.
    window = (("model_name", "credit-risk"), ("model_version", "1"), ("window", "60s"))
    assert samples[("credit_risk_drift_window_rows", window)] == 201
    assert samples[
        ("credit_risk_score_psi", (("model_name", "credit-risk"), ("model_version", "1"), ("window", "60s")))
    ] == (pytest.approx(psi(expected, contract.score.proportions)))


def test_the_window_slides_with_scrapes(
    contract: ModelContract, trained: TrainedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_000.0]
    monkeypatch.setattr(metrics_module.time, "time", lambda: clock[0])
    metrics = ModelMetrics(contract, "1", 0.01, drift_window_seconds=60)
    X = trained.X_test
    p = trained.pipeline.predict_proba(X)[:, 1].astype(np.float32)
    level = np.zeros(len(p), dtype=np.intp)

    def window_rows() -> float:
        samples = _samples(metrics.render(None)[0])
        return samples[
            (
                "credit_risk_drift_window_rows",
                (("model_name", "credit-risk"), ("model_version", "1"), ("window", "60s")),
            )
        ]

    metrics.observe(X[:100], p[:100], level[:100])
    assert window_rows() == 100  # no snapshot a window old yet: everything since start
    clock[0] += 61
    metrics.observe(X[100:130], p[100:130], level[100:130])
    assert window_rows() == 30  # the scrape 61s ago is the baseline
    clock[0] += 30
    metrics.observe(X[130:135], p[130:135], level[130:135])
    assert window_rows() == 35  # the baseline stays until a newer snapshot is a window old
    clock[0] += 31
    assert window_rows() == 5


def test_workers_share_the_snapshots(
    contract: ModelContract, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers' scrapes go to one file: both see the same window baseline."""
    clock = [0.0]
    monkeypatch.setattr(metrics_module.time, "time", lambda: clock[0])
    a, b = DriftWindow(60), DriftWindow(60)
    a.baseline(np.array([10.0, 0.0]), tmp_path)
    clock[0] = 70.0
    baseline, span = b.baseline(np.array([25.0, 5.0]), tmp_path)
    assert baseline.tolist() == [10.0, 0.0] and span == pytest.approx(70.0)
    # Counters that went backwards (a stale file from an earlier run) restart the history.
    baseline, _ = a.baseline(np.array([1.0, 0.0]), tmp_path)
    assert baseline.tolist() == [0.0, 0.0]


def test_two_versions_never_mix(contract: ModelContract, trained: TrainedModel) -> None:
    """Every bin counter and reference gauge carries model_version, and a version's drift window counts its
    own rows only, even when another version's samples are collected with it (one metrics folder, or one
    Prometheus sum during a rollout)."""
    X = trained.X_test[:50]
    p = trained.pipeline.predict_proba(X)[:, 1].astype(np.float32)
    level = np.zeros(len(p), dtype=np.intp)
    old = ModelMetrics(contract, "1", 0.0, drift_window_seconds=60)
    new = ModelMetrics(contract, "2", 0.0, drift_window_seconds=60)
    old.observe(X[:30], p[:30], level[:30])
    new.observe(X[30:], p[30:], level[30:])
    old.flush()
    new.flush()
    both = [*old.registry.collect(), *new.registry.collect()]
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in both for s in f.samples}
    for version, rows in (("1", 30), ("2", 20)):
        bins = [v for (metric, labels), v in samples.items()
                if metric == "credit_risk_score_bin_total" and ("model_version", version) in labels]  # fmt: skip
        assert len(bins) == len(contract.score.labels) and sum(bins) == rows
        refs = [v for (metric, labels), v in samples.items()
                if metric == "credit_risk_score_reference_ratio" and ("model_version", version) in labels]  # fmt: skip
        assert sum(refs) == pytest.approx(1.0)
    drift = {f.name: f for f in new._drift_families(both, None)}
    assert [s.value for s in drift["credit_risk_drift_window_rows"].samples] == [20]
    assert drift["credit_risk_score_psi"].samples[0].labels["model_version"] == "2"
