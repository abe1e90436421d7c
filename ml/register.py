"""MLflow tracking and the Model Registry: where runs go, how a model is registered, when the alias moves.

The champion alias moves only when the new version beats the current champion on the *same* held-out
rows (the current champion is re-scored on this run's held-out set), or with ``--force``. The replaced
champion keeps the ``previous`` alias, so a rollback is one alias move.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.onnx
import numpy as np
import onnx
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from sklearn.metrics import roc_auc_score

from ml.errors import RegistryError
from ml.export import INPUT_NAME, OUTPUT_NAME, onnx_scores

log = logging.getLogger(__name__)


def configure_tracking(tracking_uri: str | None, mlflow_dir: Path, experiment: str) -> str:
    """Point MLflow at ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite file in ``mlflow_dir``.

    For the local default the experiment's artifacts live beside the database (``mlflow_dir/artifacts``)
    rather than in a ``./mlruns`` folder wherever the job happens to run. Returns the URI in use.
    """
    local = tracking_uri is None and not os.environ.get("MLFLOW_TRACKING_URI")
    if local:
        mlflow_dir = mlflow_dir.resolve()
        mlflow_dir.mkdir(parents=True, exist_ok=True)
        tracking_uri = f"sqlite:///{mlflow_dir / 'mlflow.db'}"
    uri = tracking_uri or os.environ["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        location = (mlflow_dir / "artifacts").as_uri() if local else None
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return uri


def next_version(client: MlflowClient, name: str) -> int:
    """The version number the registry will give the next registration of ``name``."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return 1
    return max((int(v.version) for v in versions), default=0) + 1


def log_and_register(
    model: onnx.ModelProto, name: str, example: np.ndarray, expected_version: int, tags: dict[str, str]
) -> ModelVersion:
    """Log the ONNX model to the active run (signature, input example) and register it as ``name``.

    The model's metadata already names ``expected_version``; if the registry assigned another number (a
    concurrent registration), the version is tagged invalid and :class:`RegistryError` is raised.
    """
    example = np.asarray(example, dtype=np.float32)
    signature = infer_signature({INPUT_NAME: example}, {OUTPUT_NAME: onnx_scores(model, example)})
    info = mlflow.onnx.log_model(
        model,
        name="model",
        signature=signature,
        input_example={INPUT_NAME: example},
        registered_model_name=name,
        save_as_external_data=False,
        onnx_execution_providers=["CPUExecutionProvider"],
    )
    client = MlflowClient()
    version = client.get_model_version(name, str(info.registered_model_version))
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    if int(version.version) != expected_version:
        client.set_model_version_tag(name, version.version, "invalid", "metadata names another version")
        raise RegistryError(
            f"the registry assigned {name} version {version.version}, but the exported model's metadata says "
            f"{expected_version} (another registration ran concurrently). The alias was not moved; re-run training."
        )
    return version


@dataclass(frozen=True)
class Promotion:
    """What happened to the alias, and why."""

    promoted: bool
    reason: str
    alias: str | None
    previous_version: str | None
    champion_auc: float | None  # the old champion's AUC on this run's held-out rows


def promote(
    name: str,
    version: str,
    new_auc: float,
    X_holdout: np.ndarray,
    y_holdout: np.ndarray,
    alias: str = "champion",
    previous_alias: str = "previous",
    force: bool = False,
) -> Promotion:
    """Move ``alias`` to ``version`` if it beats the current holder on the same held-out rows (or ``force``)."""
    client = MlflowClient()
    try:
        current = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        current = None
    if current is None:
        client.set_registered_model_alias(name, alias, version)
        return Promotion(True, f"first {alias} of {name}", alias, None, None)
    current_version = str(current.version)

    try:
        old = mlflow.onnx.load_model(f"models:/{name}/{current.version}")
        champion_auc = float(roc_auc_score(y_holdout, onnx_scores(old, X_holdout)))
    except Exception as exc:  # a champion we cannot score is reported, never silently replaced
        if not force:
            return Promotion(
                False,
                f"the current {alias} (v{current.version}) could not be scored on the held-out set ({exc}); "
                "alias left in place — use --force to replace it",
                None,
                current_version,
                None,
            )
        champion_auc = None

    better = champion_auc is not None and new_auc > champion_auc
    if not (better or force):
        return Promotion(
            False,
            f"held-out ROC-AUC {new_auc:.4f} does not beat the current {alias} v{current.version} "
            f"({champion_auc:.4f}) on the same rows; alias left in place (use --force to move it)",
            None,
            current_version,
            champion_auc,
        )
    client.set_registered_model_alias(name, previous_alias, current.version)
    client.set_registered_model_alias(name, alias, version)
    why = "forced" if not better else f"held-out ROC-AUC {new_auc:.4f} > {champion_auc:.4f}"
    return Promotion(
        True,
        f"{why}; v{current_version} keeps alias '{previous_alias}'",
        alias,
        current_version,
        champion_auc,
    )
