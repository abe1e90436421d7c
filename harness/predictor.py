"""A small model trained by ``ml``, a real predictor process (``python -m serving``) on a loopback port, and
V2 request bodies for it."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.net import free_port, spawned


@dataclass(frozen=True)
class TrainedModel:
    """A LightGBM pipeline trained by ``ml`` on small synthetic data, exported with serving metadata."""

    path: Path
    pipeline: object
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_fresh: (
        np.ndarray
    )  # the drift reference's window and population, other customers: reference-like traffic
    version: str


def train_small_model(folder: Path, rows: int = 20_000, seed: int = 7, version: int = 1) -> TrainedModel:
    from ml import export
    from ml.job import fit_and_export, prepare
    from ml.settings import TrainSettings
    from ml.synthetic import SyntheticSpec, generate_transactions
    from ml.train import as_model_input

    settings = TrainSettings(rows=rows, seed=seed)
    design = prepare(generate_transactions(SyntheticSpec(rows=rows, seed=seed)), "forward", settings)
    pipeline, model = fit_and_export(design, "lightgbm", settings, version=version, data_digest="test")
    path = export.save(model, folder / f"credit-risk-v{version}.onnx")
    fresh = prepare(generate_transactions(SyntheticSpec(rows=rows, seed=seed + 94)), "forward", settings)
    return TrainedModel(
        path,
        pipeline,
        as_model_input(design.train.X),
        design.train.y,
        as_model_input(design.test.X),
        design.test.y,
        as_model_input(fresh.test.X),  # the reference is the out-of-time window: the same window, fresh data
        str(version),
    )


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path
    grpc: str = ""  # host:port of its V2 gRPC service ("" when started with --grpc-port 0)
    context: ssl.SSLContext | None = None  # with --ssl-certfile: verifies the server against the given CA

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_server(*args: str, env: dict[str, str] | None = None, workdir: Path | None = None,
                   ready_timeout: float = 90, ca_file: Path | None = None) -> Iterator[Server]:  # fmt: skip
    """``python -m serving ARGS --http-port P --grpc-port Q`` until the block ends (then SIGTERM, then kill).

    Both ports are free ones unless ARGS give ``--grpc-port``. With ``ca_file`` (ARGS then give
    ``--ssl-certfile``/``--ssl-keyfile`` signed by it) the server is reached over https."""
    port = free_port()
    if "--grpc-port" not in args:
        args = (*args, "--grpc-port", str(free_port()))
    grpc_port = int(args[list(args).index("--grpc-port") + 1])
    log = Path(workdir or "/tmp") / f"serving-{port}.log"
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    url = f"{'https' if ca_file else 'http'}://127.0.0.1:{port}"
    command = [sys.executable, "-m", "serving", *args, "--http-port", str(port)]
    with spawned(
        command, log, url + "/v2/health/ready", "the server", workdir, env, ready_timeout, context
    ) as process:
        yield Server(url, process, log, f"127.0.0.1:{grpc_port}" if grpc_port else "", context)


def v2_body(X: np.ndarray) -> bytes:
    """A V2 JSON request: one FP32 tensor ``features`` [N, 26], values as their shortest float32 spelling."""
    data = ",".join(repr(float(str(v))) for v in X.astype(np.float32).ravel())
    rows, width = X.shape
    return f'{{"inputs":[{{"name":"features","shape":[{rows},{width}],"datatype":"FP32","data":[{data}]}}]}}'.encode()


def v2_binary_body(X: np.ndarray) -> tuple[bytes, int]:
    """The same tensor with the binary tensor extension: a JSON header, then the raw little-endian FP32 bytes;
    and the header's length (the ``Inference-Header-Content-Length``)."""
    raw = np.ascontiguousarray(X, dtype="<f4").tobytes()
    header = json.dumps(
        {"inputs": [{"name": "features", "shape": list(X.shape), "datatype": "FP32",
                     "parameters": {"binary_data_size": len(raw)}}]},
        separators=(",", ":"),
    ).encode()  # fmt: skip
    return header + raw, len(header)
