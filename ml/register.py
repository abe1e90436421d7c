"""MLflow tracking and the Model Registry: where runs go, how a model is registered, when the alias moves.

Whether the alias moves is the champion gate's decision (:mod:`ml.gate`); this module does the registry
I/O around it: it finds and re-scores the current champion, records the decision as model-version tags, and
moves the aliases. The replaced champion keeps the ``previous`` alias, so a rollback is one alias move.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import mlflow.onnx
import numpy as np
import onnx
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from ml.errors import RegistryError
from ml.evaluate import CustomerBootstrap
from ml.export import INPUT_NAME, OUTPUT_NAME, onnx_scores
from ml.gate import Challenger, Champion, Decision, decide

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
    """What happened to the alias, and why (the gate's decision and its tags)."""

    promoted: bool
    reason: str
    alias: str | None
    previous_version: str | None
    champion_auc: float | None  # the old champion's per-customer AUC on this run's out-of-time rows
    decision: Decision


def _alias_holder(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def promote(
    name: str,
    version: str,
    challenger: Challenger,
    scores: np.ndarray,
    X_test: np.ndarray,
    bootstrap: CustomerBootstrap,
    alias: str = "champion",
    previous_alias: str = "previous",
    force: bool = False,
) -> Promotion:
    """Run the champion gate (:mod:`ml.gate`) for ``version`` and move ``alias`` if it says so.

    A current champion of the same target mode and observation design is loaded from the registry and
    re-scored on this run's test rows (``X_test``), so both models are compared on the same customers, with
    the same bootstrap resamples. The decision's tags are written on the new model version.
    """
    client = MlflowClient()
    current = _alias_holder(client, name, alias)
    champion = None
    if current is not None:
        tags = current.tags or {}
        champion = Champion(
            version=str(current.version), mode=tags.get("target_mode"), design=tags.get("observation_design")
        )
        if champion.mode == challenger.mode and champion.design == challenger.design:
            try:
                old = onnx_scores(mlflow.onnx.load_model(f"models:/{name}/{current.version}"), X_test)
                champion = replace(
                    champion,
                    oot_customer_auc=bootstrap.auc(old).estimate,
                    difference=bootstrap.difference(scores, old),
                )
            except Exception as exc:  # a champion we cannot score is reported, never silently replaced
                champion = replace(champion, error=f"{type(exc).__name__}: {exc}")
    decision = decide(challenger, champion, force, alias)
    for key, value in decision.tags.items():
        client.set_model_version_tag(name, version, key, value)
    previous = None if current is None else str(current.version)
    if decision.promote:
        if current is not None:
            client.set_registered_model_alias(name, previous_alias, current.version)
        client.set_registered_model_alias(name, alias, version)
    reason = decision.reason + (
        f"; v{previous} keeps alias '{previous_alias}'" if decision.promote and previous else ""
    )
    return Promotion(
        promoted=decision.promote,
        reason=reason,
        alias=alias if decision.promote else None,
        previous_version=previous,
        champion_auc=None if champion is None else champion.oot_customer_auc,
        decision=decision,
    )
