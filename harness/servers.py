"""Real protocol servers on loopback for the storage tests and ``bench/bench_rollout.py``, started and stopped
by their callers.

- S3: moto's S3 server (the S3 REST protocol; no MinIO binary is reachable here, the kind job runs the
  real MinIO), optionally behind TLS with a private CA (trustme), path-style addressing.
- GCS: gcp-storage-emulator (the GCS JSON API), reached through ``STORAGE_EMULATOR_HOST``.
- HTTPS: the standard library's HTTP server behind TLS with a private CA.
- MLflow: a real ``mlflow server`` process, with an S3 artifact root (direct or proxied).
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from harness.net import free_port, stop, wait_ready

KEY_ID, SECRET = "testing-key-id", "testing-secret"  # moto accepts any pair; never a real credential


@dataclass(frozen=True)
class S3:
    endpoint: str
    ca_bundle: Path | None  # the private CA of a TLS endpoint

    def env(self) -> dict[str, str]:
        """What the predictor / the storage initializer gets (the chart's names, KServe's names)."""
        env = {
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "S3_USER_VIRTUAL_BUCKET": "false",
        }
        if self.ca_bundle:
            env["AWS_CA_BUNDLE"] = str(self.ca_bundle)
        return env

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
            region_name="us-east-1", verify=str(self.ca_bundle) if self.ca_bundle else None,
        )  # fmt: skip

    def upload(self, bucket: str, folder: Path, prefix: str) -> str:
        client = self.client()
        with suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}")
        return f"s3://{bucket}/{prefix}"


@dataclass(frozen=True)
class PrivateCA:
    bundle: Path  # the CA certificate clients trust
    server_context: ssl.SSLContext


def private_ca(folder: Path) -> PrivateCA:
    import trustme

    ca = trustme.CA()
    bundle = folder / "private-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return PrivateCA(bundle, context)


@contextmanager
def s3_server(ca: PrivateCA | None = None) -> Iterator[S3]:
    """moto's S3 server in a thread of this process (plain HTTP, or TLS signed by ``ca``)."""
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request on stderr
    port = free_port()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", port, app, threaded=True, ssl_context=ca.server_context if ca else None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield S3(f"{'https' if ca else 'http'}://127.0.0.1:{port}", ca.bundle if ca else None)
    finally:
        server.shutdown()
        thread.join(10)


@contextmanager
def gcs_server() -> Iterator[str]:
    """gcp-storage-emulator in a thread; yields the ``STORAGE_EMULATOR_HOST`` value."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


class _OctetStream(SimpleHTTPRequestHandler):
    """Model files as ``application/octet-stream`` (KServe's HTTP downloader insists on it)."""

    def guess_type(self, path) -> str:
        return "application/octet-stream"

    def log_message(self, *args) -> None:
        pass


@contextmanager
def https_server(folder: Path, ca: PrivateCA) -> Iterator[str]:
    """``folder`` over HTTPS with a certificate of ``ca``; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), partial(_OctetStream, directory=str(folder)))
    server.socket = ca.server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(10)


@contextmanager
def mlflow_server(workdir: Path, s3: S3, *, proxied: bool, bucket: str = "mlflow") -> Iterator[str]:
    """A real ``mlflow server`` whose artifact store is ``s3://bucket/`` on ``s3``.

    ``proxied=False``: ``--default-artifact-root s3://…  --no-serve-artifacts``: the registry hands out
    ``s3://`` locations and every client reads the bucket itself. ``proxied=True``:
    ``--artifacts-destination s3://…``: clients get ``mlflow-artifacts:/`` locations and download through
    the server, which alone holds the bucket's credentials.
    """
    s3.client().create_bucket(Bucket=bucket)
    port = free_port()
    store = ["--artifacts-destination", f"s3://{bucket}/proxied"] if proxied else [
        "--default-artifact-root", f"s3://{bucket}/direct", "--no-serve-artifacts"]  # fmt: skip
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    log = workdir / f"mlflow-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{workdir / f'mlflow-{port}.db'}", *store],
            stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True,
            env={**os.environ, **s3.env()},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/health", "mlflow server", 120, process, log)
        yield url
    finally:
        stop(process)
