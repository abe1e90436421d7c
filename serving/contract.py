"""The serving contract an ONNX model carries in its metadata: feature order, threshold, risk bands, drift
references and identity.

The metadata (``metadata_props``, one JSON value per key, written by the training package) is read once at
load; anything missing or inconsistent is a :class:`ModelLoadError` that names the key, so a bad model never
starts serving. (The training package's *model card* is the human-readable report; this is the machine
contract the predictor enforces.)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from serving.errors import ModelLoadError

REQUIRED_KEYS = (
    "feature_names",
    "model_name",
    "model_version",
    "threshold",
    "risk_bands",
    "score_reference",
    "feature_reference",
)


@dataclass(frozen=True)
class Reference:
    """A binned reference distribution. Bins are right-closed on interior ``edges`` (Prometheus ``le``):
    bin ``i`` holds ``edges[i-1] < x <= edges[i]``; the last bin is ``+Inf``."""

    edges: np.ndarray
    proportions: np.ndarray
    count: int = 0  # reference rows behind the proportions, when known
    labels: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", (*(_label(e) for e in self.edges), "+Inf"))

    @classmethod
    def parse(cls, value: object, what: str) -> Reference:
        try:
            edges = np.asarray(value["edges"], dtype=np.float64)  # type: ignore[index]
            proportions = np.asarray(value["proportions"], dtype=np.float64)  # type: ignore[index]
        except (TypeError, KeyError, ValueError) as exc:
            raise ModelLoadError(
                f"{what}: expected {{'edges': [...], 'proportions': [...]}} ({exc})"
            ) from exc
        if edges.ndim != 1 or proportions.shape != (len(edges) + 1,):
            raise ModelLoadError(
                f"{what}: {len(edges)} edges need {len(edges) + 1} proportions, got {proportions.shape}"
            )
        if np.any(np.diff(edges) <= 0) or not np.all(np.isfinite(edges)):
            raise ModelLoadError(f"{what}: edges must be finite and strictly increasing")
        if np.any(proportions < 0) or not math.isclose(proportions.sum(), 1.0, abs_tol=1e-6):
            raise ModelLoadError(
                f"{what}: proportions must be non-negative and sum to 1, got {proportions.sum():.6f}"
            )
        return cls(edges=edges, proportions=proportions, count=int(value.get("count", 0)))  # type: ignore[union-attr]

    def bin_of(self, values: np.ndarray) -> np.ndarray:
        """Bin index of each value (0 … len(edges))."""
        return np.searchsorted(self.edges, values, side="left")

    def counts(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.bin_of(values), minlength=len(self.edges) + 1)


def _label(edge: float) -> str:
    return repr(float(edge))


@dataclass(frozen=True)
class ModelContract:
    """The serving contract carried by the ONNX model."""

    name: str
    version: str
    feature_names: tuple[str, ...]
    threshold: float
    low_below: float
    high_above: float
    score: Reference
    features: dict[str, Reference]
    model_type: str = ""
    target_mode: str = ""
    data_digest: str = ""
    trained_at: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> ModelContract:
        missing = [k for k in REQUIRED_KEYS if k not in metadata]
        if missing:
            raise ModelLoadError(
                f"the ONNX model lacks metadata {', '.join(missing)}: it was not exported by the credit-risk "
                "training package (python -m ml train), so its feature order and references are unknown"
            )
        values: dict[str, object] = {}
        for key, raw in metadata.items():
            try:
                values[key] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ModelLoadError(f"ONNX metadata {key!r} is not JSON: {exc}") from exc
        names = values["feature_names"]
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise ModelLoadError("ONNX metadata 'feature_names' must be a non-empty list of strings")
        if len(set(names)) != len(names):
            raise ModelLoadError("ONNX metadata 'feature_names' repeats a name")
        bands = values["risk_bands"]
        try:
            low, high, threshold = (
                float(bands["low_below"]),
                float(bands["high_above"]),
                float(values["threshold"]),
            )
        except (TypeError, KeyError, ValueError) as exc:
            raise ModelLoadError(f"ONNX metadata 'risk_bands'/'threshold' malformed: {exc}") from exc
        if not (0 < low < high < 1 and 0 < threshold < 1):
            raise ModelLoadError(f"risk bands must satisfy 0 < low_below < high_above < 1, got {bands}")
        references = values["feature_reference"]
        if not isinstance(references, dict) or set(references) != set(names):
            raise ModelLoadError("ONNX metadata 'feature_reference' must hold one reference per feature name")
        return cls(
            name=str(values["model_name"]),
            version=str(values["model_version"]),
            feature_names=tuple(names),
            threshold=threshold,
            low_below=low,
            high_above=high,
            score=Reference.parse(values["score_reference"], "score_reference"),
            features={n: Reference.parse(references[n], f"feature_reference[{n!r}]") for n in names},
            model_type=str(values.get("model_type", "")),
            target_mode=str(values.get("target_mode", "")),
            data_digest=str(values.get("data_digest", "")),
            trained_at=str(values.get("trained_at", "")),
            metrics=dict(values.get("metrics") or {}),
        )
