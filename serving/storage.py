"""Fetch a model folder from object storage, the way KServe's storage initializer does.

``python -m serving.storage URI OUT_DIR`` downloads ``URI`` into ``OUT_DIR`` and exits 0, or prints one
line and exits 1. It is the init container of the chart's deployment mode; in kserve mode KServe's own
storage initializer does the same job into ``/mnt/models``. Both run KServe's downloader library
(``kserve-storage``), so one set of environment variables configures either:

=========================  ==================================================================
``AWS_ACCESS_KEY_ID``,     S3 credentials (from a Secret; without them boto3's chain applies:
``AWS_SECRET_ACCESS_KEY``  IRSA web identity, instance profile)
``AWS_ENDPOINT_URL``       an S3-compatible endpoint (MinIO, Ceph, ...), e.g. http://minio:9000
``AWS_DEFAULT_REGION``     the bucket's region
``S3_USE_HTTPS``,          ``0`` for a plain-HTTP endpoint / to skip certificate checks
``S3_VERIFY_SSL``
``S3_USER_VIRTUAL_BUCKET`` ``true`` for virtual-hosted-style addressing (default: path-style)
``AWS_CA_BUNDLE``          a private CA for the endpoint
``GOOGLE_APPLICATION_      GCS service-account key file (without it: workload identity / ADC)
CREDENTIALS``
``REQUESTS_CA_BUNDLE``     a private CA for ``https://`` downloads
=========================  ==================================================================

``pvc://`` is not a download: Kubernetes mounts the claim (the chart does it in both modes).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from serving.errors import ModelLoadError

log = logging.getLogger(__name__)

#: Schemes fetched over the network (the chart's ``model.storageUri`` adds ``pvc://``, a mount).
REMOTE_SCHEMES = ("s3://", "gs://", "https://", "http://")


def is_remote(uri: str) -> bool:
    return uri.startswith(REMOTE_SCHEMES)


def download(uri: str, out_dir: Path) -> Path:
    """Copy the object or folder at ``uri`` into ``out_dir``; return the folder holding the files."""
    if uri.startswith("pvc://"):
        raise ModelLoadError(
            f"{uri} is a PersistentVolumeClaim: Kubernetes mounts it, nothing downloads it. Set the chart's "
            "model.storageUri to it (the claim is mounted at /mnt/models), or point --model-uri at the mount path"
        )
    if not is_remote(uri):
        raise ModelLoadError(f"{uri!r} is not a storage URI: expected one of {', '.join(REMOTE_SCHEMES)}")
    from kserve_storage import Storage  # imports boto3 / google-cloud-storage only for their scheme

    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        folder = Path(Storage.download(uri, str(out_dir)))
    except Exception as exc:  # kserve-storage raises bare Exception/RuntimeError and the SDKs' own types
        raise ModelLoadError(f"cannot download {uri}: {type(exc).__name__}: {exc}") from exc
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise ModelLoadError(
            f"{uri} holds no files (check the bucket, the prefix and the credentials' reach)"
        )
    size = sum(p.stat().st_size for p in files)
    log.info(
        "downloaded %s: %d file(s), %.1f MB in %.2fs to %s",
        uri, len(files), size / 1e6, time.perf_counter() - started, folder,
    )  # fmt: skip
    return folder


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0].startswith("-"):
        print("usage: python -m serving.storage URI OUT_DIR   (URI: s3://, gs://, https://)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kserve_storage", "botocore", "urllib3", "google"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        download(args[0], Path(args[1]))
    except ModelLoadError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:  # OUT_DIR not writable, disk full
        log.error("cannot write to %s: %s", args[1], exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
