"""The MLflow registry side of a ``models:/`` URI: which version an alias names, and where its files live.

``python -m serving.registry resolve models:/credit-risk@champion`` prints one JSON object::

    {"name": "credit-risk", "alias": "champion", "version": "3", "model_uri": "models:/credit-risk/3",
     "storage_uri": "s3://mlflow/1/models/m-…/artifacts", "source": "models:/m-…"}

It is how a promotion becomes a rollout (``k8s/rollout.sh``): the alias is resolved once, at deploy time,
into an immutable version that every replica then serves. ``storage_uri`` is the version's artifact
location when the registry hands out a location a storage initializer can read (``s3://``, ``gs://``,
``https://``); it is null when the tracking server proxies artifacts (``mlflow-artifacts:/``): then
serve ``model_uri``, which the predictor downloads through the server.

The predictor uses :func:`download` for ``--model-uri models:/…`` at start-up. Tracking server from
``$MLFLOW_TRACKING_URI``; an S3 artifact store needs boto3 (in the ``serve`` extra) and the AWS_* /
``MLFLOW_S3_ENDPOINT_URL`` variables.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from serving.errors import ModelLoadError
from serving.storage import is_remote

log = logging.getLogger(__name__)

_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def is_registry_uri(uri: str) -> bool:
    return uri.startswith("models:")


@dataclass(frozen=True)
class RegisteredModel:
    """One registered model version, as a deployment needs it."""

    name: str
    alias: str | None
    version: str
    model_uri: str  # models:/NAME/VERSION: immutable
    storage_uri: str | None  # the artifact location, when a storage initializer can read it
    source: str  # the version's source as MLflow records it


def _parse(uri: str) -> re.Match[str]:
    match = _REGISTRY_URI.match(uri)
    if not match:
        raise ModelLoadError(
            f"malformed registry URI {uri!r}: use models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    return match


def fail_fast(retries: int = 3, timeout_seconds: int = 10) -> None:
    """MLflow's own defaults (7 retries, backoff to 2 minutes, 120 s timeouts) hold a pod in start-up for
    minutes when the registry is down; fail fast instead, unless the operator set them."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout_seconds))


def _mlflow(uri: str):
    try:
        import mlflow
    except ImportError as exc:  # the serve extra ships mlflow-skinny
        raise ModelLoadError(f"{uri} needs MLflow to resolve; install the 'serve' extra") from exc
    return mlflow


def resolve(uri: str) -> RegisteredModel:
    """The version ``uri`` names now, and its artifact location."""
    match = _parse(uri)
    mlflow = _mlflow(uri)
    name, alias, version = match["name"], match["alias"], match["version"]
    try:
        client = mlflow.MlflowClient()
        found = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
        location = client.get_model_version_download_uri(name, found.version)
    except Exception as exc:  # MLflow raises many types: unreachable server, unknown alias or version
        raise ModelLoadError(
            f"cannot resolve {uri} through MLflow at {mlflow.get_tracking_uri()}: {exc}"
        ) from exc
    return RegisteredModel(
        name=name,
        alias=alias,
        version=str(found.version),
        model_uri=f"models:/{name}/{found.version}",
        storage_uri=location if is_remote(location) else None,
        source=str(found.source),
    )


def download(uri: str, out_dir: Path) -> tuple[RegisteredModel, Path]:
    """Resolve ``uri`` and download that exact version (by number, so an alias moving meanwhile cannot
    change what is downloaded) into ``out_dir``."""
    model = resolve(uri)
    mlflow = _mlflow(uri)
    try:
        folder = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=model.model_uri, dst_path=str(out_dir))
        )
    except Exception as exc:
        hint = " (an s3:// artifact store needs AWS_* credentials and MLFLOW_S3_ENDPOINT_URL for MinIO)"
        raise ModelLoadError(
            f"cannot download {model.model_uri} (from {uri}) through MLflow at {mlflow.get_tracking_uri()}: "
            f"{exc}{hint if model.source.startswith('s3://') or (model.storage_uri or '').startswith('s3://') else ''}"
        ) from exc
    log.info(
        "resolved %s to %s version %s (tracking %s)",
        uri,
        model.name,
        model.version,
        mlflow.get_tracking_uri(),
    )
    return model, folder


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "resolve":
        print(
            "usage: python -m serving.registry resolve models:/NAME@ALIAS|models:/NAME/VERSION",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    fail_fast()
    try:
        model = resolve(args[1])
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(model)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
