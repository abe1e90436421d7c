"""Export a fitted pipeline to one ONNX graph that carries everything the predictor needs.

The graph takes ``features`` FP32 [N, 26] (the public feature order) and returns ``probability`` FP32 [N],
P(high risk), as a plain tensor. Every export is checked against scikit-learn on the full held-out set; a
gap above the tolerance fails the export. ``metadata_props`` hold JSON values (see ``METADATA_KEYS``): the
feature names, model name and version, data digest, risk bands, threshold, metrics, and the drift
references — the held-out score histogram on fixed bins and, per feature, bin edges with reference
proportions. Bins are right-closed on interior edges, like Prometheus ``le`` buckets: bin ``i`` holds
``edges[i-1] < x <= edges[i]``, with ``-inf`` and ``+inf`` outside the first and last edge.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnx
import onnxruntime as ort
import xgboost as xgb
from onnx import helper
from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from sklearn.pipeline import Pipeline

from ml.errors import ExportParityError
from ml.evaluate import bin_edges, bin_shares
from ml.schema import CALENDAR_FEATURES, FEATURE_NAMES, MONOTONE_DIRECTIONS

log = logging.getLogger(__name__)

INPUT_NAME = "features"
OUTPUT_NAME = "probability"
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
METADATA_KEYS = (
    "feature_names",
    "model_name",
    "model_version",
    "model_type",
    "target_mode",
    "data_digest",
    "trained_at",
    "threshold",
    "risk_bands",
    "metrics",
    "score_reference",
    "feature_reference",
    "observation_design",
    "ignored_features",
    "monotone_directions",
)

_BOOSTER_OPTIONS = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
update_registered_converter(
    xgb.XGBClassifier,
    "XGBoostXGBClassifier",
    calculate_linear_classifier_output_shapes,
    convert_xgboost,
    options=_BOOSTER_OPTIONS,
)
update_registered_converter(
    lgb.LGBMClassifier,
    "LightGbmLGBMClassifier",
    calculate_linear_classifier_output_shapes,
    convert_lightgbm,
    options=_BOOSTER_OPTIONS,
)


def to_onnx(pipeline: Pipeline, name: str = "credit-risk") -> onnx.ModelProto:
    """The whole fitted pipeline as one graph: ``features`` [N, 26] → ``probability`` [N]."""
    classifier = pipeline.steps[-1][1]
    model = convert_sklearn(
        pipeline,
        name=name,
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURE_NAMES)]))],
        target_opset=TARGET_OPSET,
        options={id(classifier): {"zipmap": False}},
    )
    graph = model.graph
    probabilities = next(o.name for o in graph.output if o.name == "probabilities")
    # Keep only column 1 of [N, 2]: P(is_high_risk = 1), as a rank-1 tensor.
    graph.initializer.append(helper.make_tensor("positive_class", onnx.TensorProto.INT64, [], [1]))
    graph.node.append(
        helper.make_node(
            "Gather", [probabilities, "positive_class"], [OUTPUT_NAME], axis=1, name="take_positive"
        )
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, [None]))
    onnx.checker.check_model(model)
    return model


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def onnx_scores(model: onnx.ModelProto, X: np.ndarray) -> np.ndarray:
    return session(model).run([OUTPUT_NAME], {INPUT_NAME: np.asarray(X, dtype=np.float32)})[0]


def check_parity(pipeline: Pipeline, model: onnx.ModelProto, X: np.ndarray, tolerance: float = 1e-5) -> float:
    """Max |sklearn − onnxruntime| of P(high risk) over ``X``; raises :class:`ExportParityError` above tolerance."""
    X = np.asarray(X, dtype=np.float32)
    expected = pipeline.predict_proba(X)[:, 1]
    got = onnx_scores(model, X)
    diff = np.abs(expected - got)
    worst = float(diff.max()) if len(diff) else 0.0
    if not worst <= tolerance:
        row = int(np.nanargmax(diff))
        raise ExportParityError(
            f"ONNX export disagrees with scikit-learn: max |diff| {worst:.3g} > tolerance {tolerance:g} "
            f"({int((diff > tolerance).sum())} of {len(diff)} held-out rows; worst row {row}: sklearn "
            f"{expected[row]:.6f}, onnxruntime {got[row]:.6f}). Nothing was registered."
        )
    return worst


def check_ignored(model: onnx.ModelProto, X: np.ndarray, features: tuple[str, ...] = CALENDAR_FEATURES,
                  seed: int = 0) -> float:  # fmt: skip
    """Max |score change| when ``features`` are replaced by arbitrary values (other days, months, years,
    weeks); raises :class:`ExportParityError` unless it is exactly 0 — the graph must not read them."""
    X = np.asarray(X, dtype=np.float32)
    rng = np.random.default_rng(seed)
    changed = X.copy()
    for name in features:
        j = FEATURE_NAMES.index(name)
        changed[:, j] = rng.integers(1, 3_000, len(X)).astype(np.float32)
    worst = float(np.max(np.abs(onnx_scores(model, X) - onnx_scores(model, changed)))) if len(X) else 0.0
    if worst != 0.0:
        raise ExportParityError(
            f"the exported model reads {', '.join(features)}: changing them moves a score by {worst:.3g}. "
            "Nothing was registered."
        )
    return worst


def check_directions(model: onnx.ModelProto, X: np.ndarray, directions: dict[str, int] = MONOTONE_DIRECTIONS,
                     grid_points: int = 25, tolerance: float = 1e-6) -> dict[str, float]:  # fmt: skip
    """Sweep each constrained feature over its observed range for every row of ``X`` (an ICE curve) and
    measure the worst step against its direction. Returns the worst step per feature; raises
    :class:`ExportParityError` when one exceeds ``tolerance`` (float32 noise)."""
    X = np.asarray(X, dtype=np.float32)
    worst: dict[str, float] = {}
    for name, direction in directions.items():
        j = FEATURE_NAMES.index(name)
        grid = np.unique(np.quantile(X[:, j], np.linspace(0, 1, grid_points)).astype(np.float32))
        swept = np.repeat(X, len(grid), axis=0)
        swept[:, j] = np.tile(grid, len(X))
        curves = onnx_scores(model, swept).reshape(len(X), len(grid)).astype(np.float64)
        steps = -np.diff(curves, axis=1) * direction  # positive: a step against the direction
        worst[name] = float(max(steps.max(initial=0.0), 0.0))
        if worst[name] > tolerance:
            row = int(np.argmax(steps.max(axis=1)))
            raise ExportParityError(
                f"the exported model breaks the monotone direction of {name} ({direction:+d}): on row {row} the "
                f"score moves {worst[name]:.3g} the wrong way over {name} in [{grid[0]:g}, {grid[-1]:g}]. "
                "Nothing was registered."
            )
    return worst


def score_reference(scores: np.ndarray, n_bins: int = 10) -> dict[str, object]:
    """Reference score histogram on fixed equal-width bins over [0, 1]."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    return {
        "edges": _round(edges),
        "proportions": _round(bin_shares(scores, edges)),
        "count": int(len(scores)),
    }


def feature_reference(X: np.ndarray, n_bins: int = 10) -> dict[str, dict[str, object]]:
    """Per feature: interior edges at the reference quantiles (deduplicated) and the share in each bin.

    Edges are float32 values, so a float32 request lands in exactly the bin it did here. A feature with a
    single value gets no edges and one bin holding everything.
    """
    X = np.asarray(X, dtype=np.float32)
    reference = {}
    for j, name in enumerate(FEATURE_NAMES):
        edges = bin_edges(X[:, j], n_bins)
        reference[name] = {"edges": edges.tolist(), "proportions": _round(bin_shares(X[:, j], edges))}
    return reference


def _round(values: np.ndarray) -> list[float]:
    return [round(float(v), 10) for v in values]


def serving_metadata(
    *,
    model_name: str,
    model_version: int | str,
    model_type: str,
    target_mode: str,
    data_digest: str,
    threshold: float,
    risk_bands: dict[str, float],
    metrics: dict[str, float],
    scores: np.ndarray,
    X_reference: np.ndarray,
    score_bins: int = 10,
    feature_bins: int = 10,
    observation_design: str = "",
) -> dict[str, object]:
    """Everything the predictor reads from the model.

    Drift references: the score histogram (``scores``) and per-feature bins of ``X_reference`` — the
    out-of-time rows in the training job: the latest complete period, scored by a model that never saw them,
    and per transaction, as live traffic arrives.
    """
    return {
        "feature_names": list(FEATURE_NAMES),
        "model_name": model_name,
        "model_version": str(model_version),
        "model_type": model_type,
        "target_mode": target_mode,
        "data_digest": data_digest,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "threshold": threshold,
        "risk_bands": risk_bands,
        "metrics": metrics,
        "score_reference": score_reference(scores, score_bins),
        "feature_reference": feature_reference(X_reference, feature_bins),
        "observation_design": observation_design,
        "ignored_features": list(CALENDAR_FEATURES),
        "monotone_directions": dict(MONOTONE_DIRECTIONS),
    }


def attach_metadata(model: onnx.ModelProto, metadata: dict[str, object]) -> onnx.ModelProto:
    """Write ``metadata`` into ``metadata_props`` (each value JSON-encoded) and the model's version field."""
    unknown = set(metadata) - set(METADATA_KEYS)
    missing = set(METADATA_KEYS) - set(metadata)
    if unknown or missing:
        raise ValueError(f"ONNX metadata keys: unknown {sorted(unknown)}, missing {sorted(missing)}")
    del model.metadata_props[:]
    for key in METADATA_KEYS:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(metadata[key])
    model.model_version = int(metadata["model_version"])
    model.producer_name = "bati-credit-risk"
    model.doc_string = (
        f"{metadata['model_name']} v{metadata['model_version']}: P(high risk) from the 26 Xente features "
        f"({metadata['model_type']}, {metadata['target_mode']} proxy target)."
    )
    return model


def read_metadata(model: onnx.ModelProto) -> dict[str, object]:
    return {entry.key: json.loads(entry.value) for entry in model.metadata_props}


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".onnx.tmp")
    onnx.save_model(model, str(tmp))
    tmp.replace(path)  # never leave a half-written model where the predictor looks
    return path
