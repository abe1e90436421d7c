"""Find the ONNX model behind a URI and read the serving contract from its metadata.

A URI is a local ``.onnx`` file or model folder (see :func:`find_onnx` for the rule), a storage URI
(``s3://``, ``gs://``, ``https://``: downloaded at start-up, :mod:`serving.storage`), or a registry URI
``models:/NAME@ALIAS`` / ``models:/NAME/VERSION`` resolved through MLflow at start-up
(:mod:`serving.registry`). In a cluster the chart fetches storage URIs before the predictor starts
(KServe's storage initializer, or the same downloader as an init container) and pins registry aliases to
a version at deploy time, so every replica serves the same files.
The serving contract in the model's metadata is read by :mod:`serving.contract`.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from serving import registry, storage
from serving.errors import ModelLoadError
from serving.registry import is_registry_uri

log = logging.getLogger(__name__)


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
