"""Register a model made by ``k8s/make_model.py`` as a new version in an MLflow registry, and move aliases.

    python k8s/register.py [--tracking-uri URI] [--create-bucket mlflow] register DIR [--alias champion]
    python k8s/register.py [--tracking-uri URI] alias champion 2

The registry side of the rollout flow (``k8s/e2e-rollout.sh``; ``bench/bench_rollout.py`` does the same
registration): ``register`` logs DIR's one ``.onnx`` with ``mlflow.onnx.log_model`` (the ONNX flavour, the
model in one file) as a new version of ``--name`` (credit-risk) and checks that the registry gave it the
version DIR's ``expected.json`` names — the version the ONNX metadata carries, so a predictor reports the
same number whether it loaded ``models:/NAME/N`` or that version's storage folder. Idempotent: a version
tagged with the file's sha256 is returned, not registered again (a re-run against the same registry).
``alias`` points an alias at a version (promotion, rollback). Each prints one JSON line.

Tracking server: ``--tracking-uri`` or ``$MLFLOW_TRACKING_URI``. With an ``s3://`` artifact root and no
artifact proxy (``--no-serve-artifacts``) this client writes the bucket itself: ``MLFLOW_S3_ENDPOINT_URL``
(MinIO), ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``; ``--create-bucket`` makes the bucket first when
it is missing (a fresh MinIO). Needs the training dependencies (mlflow, onnx) and boto3.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from pathlib import Path

SHA_TAG = "onnx_sha256"


class RegisterError(Exception):
    pass


def onnx_file(folder: Path) -> Path:
    found = sorted(folder.glob("*.onnx"))
    if len(found) != 1:
        raise RegisterError(f"{folder} holds {len(found)} .onnx files; make_model.py writes exactly one")
    return found[0]


def create_bucket(bucket: str) -> None:
    """Make ``bucket`` on ``$MLFLOW_S3_ENDPOINT_URL`` (or AWS) unless it exists."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("s3", endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None)
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError:
        client.create_bucket(Bucket=bucket)


def register(folder: Path, name: str = "credit-risk", experiment: str = "credit-risk-e2e",
             expected_version: str | None = None, tracking_uri: str | None = None) -> dict:  # fmt: skip
    """Log ``folder``'s model as a version of ``name``; returns name, version, model_uri, source.
    ``tracking_uri``: set as MLflow's tracking URI first (else MLflow's current one)."""
    import mlflow
    import mlflow.onnx
    import onnx
    from mlflow import MlflowClient

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    path = onnx_file(folder)
    if expected_version is None and (folder / "expected.json").is_file():
        expected_version = str(json.loads((folder / "expected.json").read_text())["model_version"])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    client = MlflowClient()
    existing = [
        v for v in client.search_model_versions(f"name = '{name}'") if (v.tags or {}).get(SHA_TAG) == digest
    ]
    if existing:
        version = min(existing, key=lambda v: int(v.version))
    else:
        mlflow.set_experiment(experiment)
        with mlflow.start_run(run_name=path.stem):
            info = mlflow.onnx.log_model(onnx.load(str(path)), name="model", registered_model_name=name,
                                         save_as_external_data=False)  # fmt: skip
        version = client.get_model_version(name, str(info.registered_model_version))
        client.set_model_version_tag(name, version.version, SHA_TAG, digest)
    if expected_version is not None and str(version.version) != expected_version:
        raise RegisterError(
            f"the registry gave {path.name} version {version.version} of {name}, but its metadata says "
            f"{expected_version}: register into a registry whose versions match (the kind job's MLflow "
            "starts empty; register v1 before v2)"
        )
    return {"name": name, "version": str(version.version), "model_uri": f"models:/{name}/{version.version}",
            "source": str(version.source)}  # fmt: skip


def set_alias(name: str, alias: str, version: str) -> dict:
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, alias, version)
    return {"name": name, "alias": alias, "version": version}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    parser.add_argument("--name", default="credit-risk", help="registered model name")
    parser.add_argument("--create-bucket", metavar="BUCKET", help="create the artifact bucket if missing")
    commands = parser.add_subparsers(dest="command", required=True)
    r = commands.add_parser("register", help="log DIR's .onnx as a new version")
    r.add_argument("folder", type=Path, metavar="DIR")
    r.add_argument("--alias", help="then point this alias at the version")
    r.add_argument("--experiment", default="credit-risk-e2e")
    a = commands.add_parser("alias", help="point ALIAS at VERSION")
    a.add_argument("alias")
    a.add_argument("version")
    args = parser.parse_args(argv)
    if not args.tracking_uri:
        parser.error("set --tracking-uri or MLFLOW_TRACKING_URI")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    try:
        if args.create_bucket:
            create_bucket(args.create_bucket)
        if args.command == "register":
            result = register(args.folder, args.name, args.experiment, tracking_uri=args.tracking_uri)
            if args.alias:
                set_alias(args.name, args.alias, result["version"])
                result["alias"] = args.alias
        else:
            result = set_alias(args.name, args.alias, args.version)
    except RegisterError as exc:
        print(f"register: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # MLflow / boto3 raise many types: unreachable server, refused credentials
        print(f"register: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
