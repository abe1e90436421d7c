"""Find the ONNX model behind a URI and read the serving contract from its metadata.

A URI is a local ``.onnx`` file or model folder (see :func:`find_onnx` for the rule), a storage URI
(``s3://``, ``gs://``, ``https://``: downloaded at start-up, :mod:`serving.storage`), or a registry URI
``models:/NAME@ALIAS`` / ``models:/NAME/VERSION`` resolved through MLflow at start-up
(:mod:`serving.registry`). In a cluster the chart fetches storage URIs before the predictor starts
(KServe's storage initializer, or the same downloader as an init container) and pins registry aliases to
a version at deploy time, so every replica serves the same files.
The metadata (``metadata_props``, one JSON value per key, written by the training package) gives the
feature order, threshold, risk bands, drift references and identity; anything missing or inconsistent is a
:class:`ModelLoadError` that names the key, so a bad model never starts serving.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from serving import registry, storage
from serving.errors import ModelLoadError
from serving.registry import is_registry_uri

log = logging.getLogger(__name__)

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
class ModelCard:
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
    def from_metadata(cls, metadata: dict[str, str]) -> ModelCard:
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


@dataclass(frozen=True)
class ResolvedModel:
    """The model's bytes and where they came from."""

    content: bytes
    source: str
    registry_version: str | None = None


def resolve(uri: str, registry_retries: int = 3, registry_timeout_seconds: int = 10) -> ResolvedModel:
    """Read the ONNX model behind ``uri`` (see the module docstring for the accepted forms)."""
    if is_registry_uri(uri):
        registry.fail_fast(registry_retries, registry_timeout_seconds)
        with tempfile.TemporaryDirectory(prefix="credit-risk-model-") as tmp:
            model, folder = registry.download(uri, Path(tmp))
            path = find_onnx(folder)
            content = path.read_bytes()
        return ResolvedModel(content, f"{uri} (version {model.version}, {path.name})", model.version)
    if uri.startswith("pvc://") or storage.is_remote(uri):
        with tempfile.TemporaryDirectory(prefix="credit-risk-model-") as tmp:
            path = find_onnx(storage.download(uri, Path(tmp)))
            return ResolvedModel(path.read_bytes(), f"{uri} ({path.name})")
    path = find_onnx(Path(uri.removeprefix("file://")))
    return ResolvedModel(content=path.read_bytes(), source=str(path))


def find_onnx(path: Path) -> Path:
    """The one model file at ``path``. The rule for a folder, in order:

    1. an MLflow model folder (an ``MLmodel`` file with an ``onnx`` flavour): the file that flavour names;
    2. otherwise the folder, searched recursively, must hold exactly one ``.onnx`` file.

    Several candidates are an error naming them, never a guess: serving the wrong one of two models is
    worse than not starting. Choose one with ``--model-uri FOLDER/FILE`` (chart: ``model.file``).
    """
    if path.is_file():
        return path
    if not path.is_dir():
        raise ModelLoadError(f"model file {path} does not exist (check --model-uri and the volume mount)")
    mlmodel = path / "MLmodel"
    if mlmodel.is_file():
        named = _mlflow_onnx_file(mlmodel)
        if named is not None:
            return named
    found = sorted(p for p in path.rglob("*.onnx") if p.is_file() and not _hidden(p.relative_to(path)))
    if len(found) != 1:
        listed = ", ".join(str(p.relative_to(path)) for p in found) or "none"
        raise ModelLoadError(
            f"{path} holds {len(found)} .onnx files ({listed}): a model folder must hold exactly one, or be an "
            "MLflow model folder; name the file with --model-uri FOLDER/FILE (chart: model.file)"
        )
    return found[0]


def _hidden(relative: Path) -> bool:
    # Kubernetes ConfigMap/Secret volumes keep their payload in ..data/ and timestamped ..2026_… folders.
    return any(part.startswith(".") for part in relative.parts)


def _mlflow_onnx_file(mlmodel: Path) -> Path | None:
    import yaml

    try:
        flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors") or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"{mlmodel} is not a readable MLflow model file: {exc}") from exc
    data = (flavors.get("onnx") or {}).get("data")
    if not data:
        return None
    named = mlmodel.parent / str(data)
    if not named.is_file():
        raise ModelLoadError(f"{mlmodel} names {data} as its ONNX model, but {named} does not exist")
    return named
