from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from harness.predictor import TrainedModel
from serving.errors import ModelLoadError
from serving.model import CreditRiskModel
from serving.settings import ServingSettings


def _model(uri: Path | str, **settings: object) -> CreditRiskModel:
    model = CreditRiskModel(ServingSettings(model_uri=str(uri), **settings))
    model.load()
    return model


def test_load_reads_the_contract_and_is_ready(trained: TrainedModel) -> None:
    model = _model(trained.path)
    assert model.ready and model.version == "1" and model.threshold == 0.5
    assert model.get_input_types() == [{"name": "features", "datatype": "FP32", "shape": [-1, 26]}]
    assert [o["name"] for o in model.get_output_types()] == [
        "probability",
        "prediction",
        "risk_level",
        "decision",
    ]
    assert _model(trained.path, threshold=0.2).threshold == 0.2


def test_scores_equal_sklearn_and_onnxruntime(trained: TrainedModel) -> None:
    out = _model(trained.path).score(trained.X_test)
    expected = trained.pipeline.predict_proba(trained.X_test)[:, 1]
    np.testing.assert_allclose(out.probability, expected, atol=1e-5)
    session = ort.InferenceSession(str(trained.path), providers=["CPUExecutionProvider"])
    direct = session.run(["probability"], {"features": trained.X_test})[0]
    np.testing.assert_allclose(out.probability, direct, atol=1e-6)  # thread count changes the summation order
    assert out.probability.dtype == np.float32 and out.prediction.dtype == np.int64
    assert (out.prediction == (out.probability >= 0.5)).all()


class _FixedSession:
    def __init__(self, probability: list[float]) -> None:
        self.probability = np.asarray(probability, dtype=np.float32)

    def run(self, names: list[str], feeds: dict) -> list[np.ndarray]:
        return [self.probability]


def test_business_bands_and_decisions(trained: TrainedModel) -> None:
    model = _model(trained.path)
    model._session = _FixedSession([0.0, 0.2999, 0.30, 0.45, 0.5, 0.60, 0.6001, 1.0])
    out = model.score(np.zeros((8, 26), dtype=np.float32))
    assert out.risk_level.tolist() == ["low", "low", "medium", "medium", "medium", "medium", "high", "high"]
    assert out.decision.tolist() == [
        "approve",
        "approve",
        "review",
        "review",
        "review",
        "review",
        "reject",
        "reject",
    ]
    assert out.prediction.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_survives_pickling_into_a_worker(trained: TrainedModel) -> None:
    model = _model(trained.path)
    payload = pickle.dumps(model)
    # Below a pipe's buffer: multiprocessing must never block writing it to a worker that died starting.
    assert len(payload) < 64 * 1024 < len(trained.path.read_bytes())
    clone = pickle.loads(payload)
    assert clone._session is not model._session and clone.metrics is not model.metrics
    np.testing.assert_array_equal(
        clone.score(trained.X_test).probability, model.score(trained.X_test).probability
    )
    assert clone.version == "1" and clone.ready


def test_a_corrupt_file_is_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ModelLoadError, match="is not a loadable ONNX model"):
        _model(bad)


def test_a_foreign_onnx_without_our_metadata_is_refused(trained: TrainedModel, tmp_path: Path) -> None:
    foreign = onnx.load(str(trained.path))
    del foreign.metadata_props[:]
    path = tmp_path / "foreign.onnx"
    onnx.save(foreign, str(path))
    with pytest.raises(ModelLoadError, match="not exported by the credit-risk training package"):
        _model(path)


def test_a_model_of_another_width_is_refused(trained: TrainedModel, tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.tree import DecisionTreeClassifier

    narrow = to_onnx(
        DecisionTreeClassifier(max_depth=2).fit(trained.X_train[:, :5], trained.y_train), trained.X_train[:1, :5],
        options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3},
    )  # fmt: skip
    narrow.metadata_props.extend(onnx.load(str(trained.path)).metadata_props)
    path = tmp_path / "narrow.onnx"
    onnx.save(narrow, str(path))
    with pytest.raises(ModelLoadError, match=r"must take one float tensor \[N, 26\]"):
        _model(path)
