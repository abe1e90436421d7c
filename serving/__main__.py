"""``python -m serving --model-uri URI [--http-port 8080] [--grpc-port 8081] [--workers N]``.

Start-up order matters: the multi-process metrics folder is chosen before anything imports
``prometheus_client`` (kserve does, on import), so the settings module is the only import above
:func:`main`. A model that cannot be loaded ends the process with exit code 1 and one clear log line,
so Kubernetes restarts the pod and ``kubectl logs`` says why.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from serving.settings import ServingSettings, from_cli

log = logging.getLogger("serving")


def prepare_metrics_dir(settings: ServingSettings) -> Path:
    """A clean folder for multi-process metrics, exported as ``PROMETHEUS_MULTIPROC_DIR`` for the workers."""
    configured = settings.metrics_dir or (
        Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]) if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else None
    )
    folder = configured or Path(tempfile.mkdtemp(prefix="credit-risk-metrics-"))
    if configured is None:  # ours alone: gone with the server
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():  # samples of a previous run would be summed into this one
        if stale.is_file():
            stale.unlink()
        else:
            shutil.rmtree(stale)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    settings = from_cli(ServingSettings, sys.argv[1:] if argv is None else argv, "python -m serving")
    if settings is None:
        return 2
    try:
        metrics_dir = prepare_metrics_dir(settings)
    except OSError as exc:  # a read-only root filesystem without a writable /tmp, most often
        print(
            f"error: cannot prepare the metrics folder ({exc.strerror}: {exc.filename or tempfile.gettempdir()}): "
            "the predictor needs one writable folder: mount an emptyDir at /tmp (the chart does), "
            "or pass --metrics-dir / set PROMETHEUS_MULTIPROC_DIR to a writable path",
            file=sys.stderr,
        )
        return 2

    from serving.errors import ModelLoadError
    from serving.model import CreditRiskModel
    from serving.server import bind, configure_logging, worker
    from serving.workers import Supervisor

    configure_logging()
    model = CreditRiskModel(settings)
    try:
        model.load()
    except ModelLoadError as exc:
        log.error("cannot serve %s: %s", settings.model_uri, exc)
        return 1
    try:
        sockets = [bind(settings.host, settings.http_port)]
        if settings.grpc_port:  # each worker binds it; fail here, once, if it is taken
            bind(settings.host, settings.grpc_port, reuse_port=settings.workers > 1).close()
    except OSError as exc:
        log.error("cannot listen on %s: %s", settings.host, exc.strerror or exc)
        return 1
    grpc = f", gRPC on {settings.grpc_port}" if settings.grpc_port else ""
    log.info(
        "serving %s v%s: HTTP on %s:%d%s, %d worker(s), metrics aggregated from %s",
        model.name, model.version, settings.host, settings.http_port, grpc, settings.workers, metrics_dir,
    )  # fmt: skip
    if settings.workers == 1:
        worker(model, sockets)
        return 0
    return Supervisor(model, sockets, settings.workers).run()


if __name__ == "__main__":
    sys.exit(main())
