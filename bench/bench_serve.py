"""Serving benchmark: this predictor against MLServer, a naive kserve predictor, the kserve floor and raw
onnxruntime — one run, the same fitted model, the same request rows — over HTTP and V2 gRPC. Run with
``make bench-serve`` or

    .venv/bin/python bench/bench_serve.py [--duration 10] [--warmup 2] [--quick] [--workers 1]
        [--contenders ours,ours-grpc,...] [--grpc-channels 1] [--grpc-processes 1] [--output PATH]

Contenders (each HTTP one alone on the machine while it is measured, on loopback, ``--workers`` processes):

1. ``ours``         ``python -m serving`` on the ONNX export of the pipeline (4 outputs, validation, metrics);
2. ``mlserver``     MLServer 1.7 + mlserver-sklearn on the joblib pipeline (``predict_fn: predict_proba``),
                    from its own venv ``bench/.venv-mlserver`` (created here on first use, with the project's
                    scikit-learn / lightgbm / xgboost / numpy / scipy / pandas / joblib versions pinned);
3. ``kserve-naive`` the usual hand-written ``kserve.Model``: joblib pipeline, ``as_numpy()``, ``predict_proba``;
4. ``kserve-floor`` the same kserve stack returning a constant: the cost of the stack alone;
5. ``onnxruntime``  ``InferenceSession.run`` in-process (no HTTP), 1 intra-op thread (the predictor's default)
                    and onnxruntime's default thread count;
plus, on the same server processes (each gets free ports of its own: HTTP, gRPC, MLServer's metrics):

* ``ours-grpc``     our predictor over V2 gRPC (``--grpc-port``), ``raw_input_contents``;
* ``mlserver-grpc`` MLServer over its V2 gRPC (the same ``inference.GRPCInferenceService`` proto; it reads
                    ``raw_input_contents`` and answers in ``raw_output_contents`` in kind);
* ``ours-binary``   (informational) our HTTP with the V2 binary tensor extension request bodies.

The kserve contenders run ``kserve.ModelServer(enable_grpc=False)``: no gRPC port, nothing to collide.

The model: one family of ``ml.train.MODEL_SPECS`` (``--model-type``, default LightGBM) fitted on the
default synthetic data (``ml.synthetic.generate_transactions()``, forward target, ``TrainSettings()``),
exported to ONNX with the serving metadata and pickled with joblib. Requests are held-out rows; every
contender's answers are checked (status 200, the outputs, probabilities equal to sklearn's) before timing.

HTTP load comes from ``wrk`` (Debian package, apt-installed if missing) in a separate process, one wrk
thread; a Lua ``done()`` hook prints the latency percentiles as one JSON line. gRPC load comes from
``bench/serve/grpc_load.py`` in a separate process (grpc.aio; C callers on ``--grpc-channels`` HTTP/2
connections in ``--grpc-processes`` processes; one pre-serialised request, answers not parsed — wrk's way).
Each point is a warm-up then a measured run: 1-row requests at concurrency 1 (p50/p99 latency, req/s), 8 and
32 (req/s); 1,000- and 10,000-row requests at concurrency 1 (rows/s = req/s × rows). The CPU other processes
use during each point is measured (``/proc/stat`` minus this benchmark and the server's process group); a
point disturbed beyond ``--noise-limit`` is measured again (``--noisy-retries``) and the least disturbed
result is kept. Each point also records the load generator's and the server's CPU (cores): a load generator
near a full core per process (or as busy as the server on a saturated machine) may have set the pace rather
than the server; such points are listed in the contender's ``client_bound`` and ``note`` and printed.

Writes ``bench/results/serve.json`` (or ``--output``: raw numbers, versions, machine, goal checks, gRPC
comparisons) and prints a table, PASS/FAIL for the three goals (HTTP) and one informational gRPC line.
Exits 1 if a contender fails to start, answers wrongly or returns errors under load (goal failures alone
exit 0; ``--strict`` makes them exit 3). Every server started is stopped (its whole process group) on any
exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.machine import cpu_seconds, machine  # noqa: E402
from harness.net import free_port, http, stop, wait_ready  # noqa: E402
from harness.predictor import v2_binary_body, v2_body  # noqa: E402
from harness.processes import group_cpu_seconds  # noqa: E402
from harness.wrk import NoiseMeter, ensure_wrk, failed_requests, post_script, run_wrk  # noqa: E402

BENCH = ROOT / "bench"
SERVE_HELPERS = BENCH / "serve"
MLSERVER_VENV = BENCH / ".venv-mlserver"
RESULTS = BENCH / "results" / "serve.json"
MODEL_NAME = "credit-risk"
INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"
READY_PATH = f"/v2/models/{MODEL_NAME}/ready"
N_FEATURES = 26
# uvloop 0.22+ raises in asyncio.get_event_loop() without a running loop, which kills MLServer 1.7's
# parallel inference workers at start ("There is no current event loop"): parallel_workers >= 1 needs < 0.22.
MLSERVER_SPECS = ("mlserver==1.7.*", "mlserver-sklearn==1.7.*", "uvloop<0.22")
# Pinned in the MLServer venv to the project venv's versions, so the pickled pipeline loads and predicts
# the same. The model libraries and joblib are essential for the pickle; the others keep the numerics identical.
PINNED_ESSENTIAL = ("scikit-learn", "lightgbm", "xgboost-cpu", "xgboost", "joblib")
PINNED_NICE = ("numpy", "scipy", "pandas")
HTTP_CONTENDERS = ("ours", "mlserver", "kserve-naive", "kserve-floor")
# V2 gRPC, measured on the process of the HTTP contender of the same stem (its gRPC port).
GRPC_CONTENDERS = ("ours-grpc", "mlserver-grpc")
# Informational: ours with binary tensor extension bodies; raw onnxruntime in-process (the goal (c) reference).
EXTRA_CONTENDERS = ("ours-binary", "onnxruntime")
# What each server process is measured for besides its own HTTP JSON points, in this order.
HOSTED = {"ours": ("ours-grpc", "ours-binary"), "mlserver": ("mlserver-grpc",)}
GRPC_LOAD = SERVE_HELPERS / "grpc_load.py"
GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"
GRPC_MAX_MESSAGE = 64 * 2**20
# A load generator at this share of the cores it can use (one per wrk thread or grpc_load process) is
# the limit of the point rather than the server.
CLIENT_SATURATED = 0.85
CONCURRENCIES = (1, 8, 32)
BATCHES = (1_000, 10_000)
PARITY = 1e-4  # |served probability - sklearn predict_proba| allowed (ONNX float32 vs sklearn float64)

GOAL_FLOOR_RATIO = 1.3
GOAL_MLSERVER_RATIO = 2.0
GOAL_ORT_RATIO = 0.5


def say(message: str) -> None:
    print(f"[bench-serve {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A contender failed to start, answered wrongly or returned errors under load."""


# ---------------------------------------------------------------------------------------------- processes


class Processes:
    """Every server process the benchmark started (each in its own session), stopped on any exit."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []

    def start(self, argv: list[str], **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen, timeout: float = 20) -> None:
        stop(process, timeout)  # the whole group: uvicorn/MLServer workers outlive their leader otherwise
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        for process in list(self.running):
            self.stop(process, timeout=10)


PROCESSES = Processes()


def _on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# ---------------------------------------------------------------------------------------------- environment


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def mlserver_requirements() -> tuple[list[str], list[str]]:
    """(full pins, essential-only pins) for the MLServer venv, from this (the project's) venv."""
    essential = [f"{n}=={v}" for n in PINNED_ESSENTIAL if (v := _installed(n))]
    nice = [f"{n}=={v}" for n in PINNED_NICE if (v := _installed(n))]
    return [*MLSERVER_SPECS, *essential, *nice], [*MLSERVER_SPECS, *essential]


def ensure_mlserver_venv() -> dict[str, object]:
    """Create (or reuse) ``bench/.venv-mlserver`` with MLServer 1.7 and the project's model libraries."""
    python = MLSERVER_VENV / "bin" / "python"
    stamp = MLSERVER_VENV / ".bench-requirements.json"
    full, essential = mlserver_requirements()
    if python.exists() and stamp.exists():
        recorded = json.loads(stamp.read_text())
        if recorded.get("wanted") == full:
            return recorded
    say(f"creating {MLSERVER_VENV.relative_to(ROOT)} (first run only; ~1 min): {' '.join(full)}")
    subprocess.run(
        [sys.executable, "-m", "venv", "--clear", str(MLSERVER_VENV)], check=True, capture_output=True
    )
    log = MLSERVER_VENV / "bench-install.log"
    with log.open("w") as out:
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
        subprocess.run([*pip, "--quiet", "--upgrade", "pip"], stdout=out, stderr=out)
        used = full
        if subprocess.run([*pip, *full], stdout=out, stderr=out).returncode != 0:
            say("the fully pinned MLServer install failed; retrying with only the model libraries pinned")
            used = essential
            if subprocess.run([*pip, *essential], stdout=out, stderr=out).returncode != 0:
                stamp.unlink(missing_ok=True)
                raise SystemExit(f"cannot install MLServer into {MLSERVER_VENV}; see {log}")
    probe = subprocess.run(
        [str(python), "-c", "import json, importlib.metadata as m; import mlserver, mlserver_sklearn, sklearn; "
         "print(json.dumps({n: m.version(n) for n in ('mlserver', 'mlserver-sklearn', 'scikit-learn', "
         "'numpy', 'pandas', 'joblib', 'fastapi', 'uvicorn', 'uvloop')}))"],
        capture_output=True, text=True,
    )  # fmt: skip
    if probe.returncode != 0:
        raise SystemExit(f"the MLServer venv does not import:\n{probe.stderr[-3000:]}")
    recorded = {"wanted": full, "installed_with": used, "versions": json.loads(probe.stdout)}
    stamp.write_text(json.dumps(recorded, indent=2))
    return recorded


# ---------------------------------------------------------------------------------------------- model


@dataclass
class BenchModel:
    model_type: str
    onnx_path: Path
    joblib_path: Path
    train_rows: int
    test_rows: int
    parity: float
    bodies: dict[int, bytes]  # rows per request -> V2 JSON body
    binary_bodies: dict[
        int, bytes
    ]  # rows per request -> V2 binary tensor extension body (JSON header + FP32)
    binary_header_lengths: dict[int, int]
    expected: dict[int, np.ndarray]  # rows per request -> sklearn predict_proba[:, 1]
    rows: dict[int, np.ndarray]  # rows per request -> float32 [N, 26] (as sent)
    onnx_bytes: int = 0
    train_seconds: float = 0.0


def train_model(folder: Path, model_type: str, rows: int | None) -> BenchModel:
    """The project's default data and target, one model family, exported to ONNX and pickled with joblib."""
    import joblib

    from ml import export
    from ml.job import fit_and_export, prepare
    from ml.settings import TrainSettings
    from ml.synthetic import SyntheticSpec, generate_transactions
    from ml.train import as_model_input

    started = time.perf_counter()
    settings = (
        TrainSettings(rows=rows, registered_model=MODEL_NAME)
        if rows
        else TrainSettings(registered_model=MODEL_NAME)
    )
    spec = SyntheticSpec(rows=settings.synthetic_rows, seed=settings.seed)
    design = prepare(generate_transactions(spec), "forward", settings)
    pipeline, model = fit_and_export(design, model_type, settings, data_digest="bench-serve")
    X_train, X_test = as_model_input(design.train.X), as_model_input(design.test.X)
    parity = export.check_parity(pipeline, model, X_test, settings.parity_tolerance)
    onnx_path = export.save(model, folder / f"{MODEL_NAME}-v1.onnx")
    joblib_path = folder / "mlserver-repo" / MODEL_NAME / "model.joblib"
    joblib_path.parent.mkdir(parents=True)
    joblib.dump(pipeline, joblib_path)
    seconds = time.perf_counter() - started

    # Requests: held-out rows (tiled if the held-out set is smaller than the largest batch).
    request_rows = {}
    for n in (1, *BATCHES):
        X = X_test[:n] if len(X_test) >= n else np.resize(X_test, (n, X_test.shape[1]))
        # Round-trip through the JSON spelling, so "expected" is computed on exactly what is sent.
        request_rows[n] = np.array([float(str(v)) for v in X.ravel()], dtype=np.float32).reshape(X.shape)
    return BenchModel(
        model_type=model_type,
        onnx_path=onnx_path,
        joblib_path=joblib_path,
        train_rows=len(X_train),
        test_rows=len(X_test),
        parity=parity,
        bodies={n: v2_body(X) for n, X in request_rows.items()},
        binary_bodies={n: v2_binary_body(X)[0] for n, X in request_rows.items()},
        binary_header_lengths={n: v2_binary_body(X)[1] for n, X in request_rows.items()},
        expected={n: pipeline.predict_proba(X)[:, 1] for n, X in request_rows.items()},
        rows=request_rows,
        onnx_bytes=onnx_path.stat().st_size,
        train_seconds=seconds,
    )


# ---------------------------------------------------------------------------------------------- contenders


@dataclass
class Contender:
    name: str
    label: str
    argv: list[str]
    env: dict[str, str]
    check: Callable[[dict, int, np.ndarray], str | None]  # response JSON, rows, expected -> problem or None
    scores: bool = True  # False: the floor (constant answer, nothing to compare)
    notes: str = ""
    port: int = 0
    extra_ports: dict[str, int] = field(default_factory=dict)
    pgid: int | None = None  # the running server's process group (its session leader's pid)


def _close(name: str, values: list, n: int, expected: np.ndarray) -> str | None:
    got = np.asarray(values, dtype=np.float64)
    if got.shape != (n,):
        return f"{name}: expected {n} values, got shape {got.shape}"
    worst = float(np.max(np.abs(got - expected)))
    if not worst <= PARITY:
        return f"{name}: probabilities differ from sklearn predict_proba by up to {worst:.3g}"
    return None


def _output(body: dict, name: str) -> dict | None:
    return next((o for o in body.get("outputs", []) if o.get("name") == name), None)


def check_ours(body: dict, n: int, expected: np.ndarray) -> str | None:
    names = sorted(o.get("name") for o in body.get("outputs", []))
    if names != sorted(["probability", "prediction", "risk_level", "decision"]):
        return f"expected outputs probability, prediction, risk_level, decision; got {names}"
    for o in body["outputs"]:
        if len(o.get("data", [])) != n:
            return f"output {o['name']} has {len(o.get('data', []))} values for {n} rows"
    return _close("probability", _output(body, "probability")["data"], n, expected)


def check_mlserver(body: dict, n: int, expected: np.ndarray) -> str | None:
    outputs = body.get("outputs", [])
    if len(outputs) != 1 or outputs[0].get("name") != "predict_proba":
        return f"expected one output predict_proba; got {[o.get('name') for o in outputs]}"
    out = outputs[0]
    if list(out.get("shape", [])) != [n, 2]:
        return f"predict_proba has shape {out.get('shape')}, expected [{n}, 2]"
    return _close("predict_proba[:, 1]", np.asarray(out["data"]).reshape(n, 2)[:, 1], n, expected)


def check_naive(body: dict, n: int, expected: np.ndarray) -> str | None:
    out = _output(body, "probability")
    if out is None or len(body.get("outputs", [])) != 1:
        return f"expected one output probability; got {[o.get('name') for o in body.get('outputs', [])]}"
    return _close("probability", out["data"], n, expected)


def check_floor(body: dict, n: int, expected: np.ndarray) -> str | None:
    outputs = body.get("outputs", [])
    if len(outputs) != 1 or outputs[0].get("data") != [0.5]:
        return f"expected the constant output [0.5]; got {outputs}"
    return None


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "PYTHONPATH")}
    env.update(extra)
    return env


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now."""
    ports: list[int] = []
    while len(ports) < n:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def build_contenders(
    model: BenchModel, workdir: Path, workers: int, mlserver_parallel_workers: int
) -> dict[str, Contender]:
    py = sys.executable
    contenders = {}
    # Its own gRPC port, as deployed (gRPC on): the default 8081 would collide with anything else there.
    port, grpc = free_ports(2)
    contenders["ours"] = Contender(
        "ours", "this server",
        [py, "-m", "serving", "--model-uri", str(model.onnx_path), "--model-name", MODEL_NAME,
         "--http-port", str(port), "--grpc-port", str(grpc), "--workers", str(workers),
         "--metrics-dir", str(workdir / "metrics-ours")],
        clean_env(PYTHONPATH=str(ROOT)), check_ours,
        notes="python -m serving (defaults: --intra-op-threads 1, --max-batch-rows 10000), HTTP and gRPC ports",
        port=port, extra_ports={"grpc": grpc},
    )  # fmt: skip

    # MLServer: one process does HTTP and inference with parallel_workers 0 (what our single uvicorn worker
    # does); with N > 1 workers, N inference processes behind MLServer's one HTTP process.
    repo = model.joblib_path.parent.parent
    shutil.copy(SERVE_HELPERS / "mlserver" / "settings.json", repo / "settings.json")
    shutil.copy(
        SERVE_HELPERS / "mlserver" / "model-settings.json", model.joblib_path.parent / "model-settings.json"
    )
    port, grpc, metrics = free_ports(3)
    contenders["mlserver"] = Contender(
        "mlserver", "MLServer",
        [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(repo)],
        clean_env(
            MLSERVER_HTTP_PORT=str(port), MLSERVER_GRPC_PORT=str(grpc), MLSERVER_METRICS_PORT=str(metrics),
            MLSERVER_PARALLEL_WORKERS=str(mlserver_parallel_workers), MLSERVER_METRICS_DIR=str(workdir / "metrics-mlserver"),
            VIRTUAL_ENV=str(MLSERVER_VENV), PATH=f"{MLSERVER_VENV / 'bin'}:{os.environ.get('PATH', '')}",
        ),
        check_mlserver,
        notes=f"mlserver start; parallel_workers={mlserver_parallel_workers}, debug=false (no access log), "
        "predict_fn=predict_proba, default codec (NumpyRequestCodec)",
        port=port, extra_ports={"grpc": grpc, "metrics": metrics},
    )  # fmt: skip
    (workdir / "metrics-mlserver").mkdir(exist_ok=True)

    helper_env = clean_env(PYTHONPATH=str(SERVE_HELPERS))
    port = free_port()
    contenders["kserve-naive"] = Contender(
        "kserve-naive", "naive kserve",
        [py, "-m", "kserve_naive", "--model-path", str(model.joblib_path), "--model-name", MODEL_NAME,
         "--http-port", str(port), "--workers", str(workers)],
        helper_env, check_naive, notes="kserve.Model + joblib pipeline predict_proba (bench/serve/kserve_naive.py)",
        port=port,
    )  # fmt: skip
    port = free_port()
    contenders["kserve-floor"] = Contender(
        "kserve-floor", "kserve floor",
        [py, "-m", "kserve_floor", "--model-name", MODEL_NAME, "--http-port", str(port), "--workers", str(workers)],
        helper_env, check_floor, scores=False,
        notes="kserve.Model returning a constant (bench/serve/kserve_floor.py)", port=port,
    )  # fmt: skip
    return contenders


def describe(key: str, contender: Contender, grpc_load: GrpcLoad) -> tuple[str, str]:
    """The label and notes of what ``key`` measures on ``contender``'s server process."""
    if key == "ours-binary":
        return "ours, binary in", (
            "the same server process, requests with the V2 binary tensor extension (JSON outputs); "
            "informational, not used by the goals"
        )
    if key.endswith("-grpc"):
        return f"{contender.label} gRPC", (
            f"the same server process, V2 gRPC ModelInfer on its gRPC port: the held-out rows in "
            f"raw_input_contents, one pre-serialised request; load from bench/serve/grpc_load.py (grpc.aio, "
            f"{grpc_load.channels} channel(s), {grpc_load.processes} process(es), answers not parsed, "
            f"checked once before)"
        )
    return contender.label, contender.notes


@contextlib.contextmanager
def serving(contender: Contender, workdir: Path, ready_timeout: float = 120) -> Iterator[str]:
    log = workdir / f"{contender.name}.log"
    with log.open("wb") as out:
        process = PROCESSES.start(
            contender.argv, stdout=out, stderr=subprocess.STDOUT, env=contender.env, cwd=workdir
        )
    contender.pgid = process.pid
    url = f"http://127.0.0.1:{contender.port}"
    try:
        wait_ready(url + READY_PATH, contender.name, ready_timeout, process, log, error=BenchError)
        yield url
    finally:
        PROCESSES.stop(process)


def payload(model: BenchModel, kind: str, n: int) -> tuple[bytes, dict[str, str]]:
    """The request body and headers of ``kind`` ("json" or "binary") for ``n`` rows."""
    if kind == "binary":
        return model.binary_bodies[n], {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(model.binary_header_lengths[n]),
        }
    return model.bodies[n], {"Content-Type": "application/json"}


def verify(contender: Contender, url: str, model: BenchModel, kind: str = "json") -> dict[int, int]:
    """Each request size once: status 200 and the right outputs (the right probabilities where it scores)."""
    sizes = {}
    for n in model.bodies:
        body, headers = payload(model, kind, n)
        status, _, raw = http("POST", url + INFER_PATH, body, headers, timeout=60)
        if status != 200:
            raise BenchError(f"{contender.name}: {n}-row request answered {status}: {raw[:500]!r}")
        try:
            problem = contender.check(json.loads(raw), n, model.expected[n])
        except (ValueError, KeyError, TypeError) as exc:
            problem = f"unreadable response ({exc}): {raw[:300]!r}"
        if problem:
            raise BenchError(f"{contender.name}: {n}-row request: {problem}")
        sizes[n] = len(raw)
    return sizes


# ---------------------------------------------------------------------------------------------- gRPC answers

# numpy's little-endian dtype of each fixed-size V2 datatype (BYTES: 4-byte length prefix per element).
RAW_DTYPES = {"BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "<i1",
              "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}  # fmt: skip
CONTENTS_FIELDS = {"BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
                   "UINT32": "uint_contents", "UINT64": "uint64_contents", "INT8": "int_contents",
                   "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
                   "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}  # fmt: skip


def _raw_values(datatype: str, raw: bytes) -> list:
    if datatype != "BYTES":
        return np.frombuffer(raw, dtype=RAW_DTYPES[datatype]).tolist()
    values, at = [], 0
    while at < len(raw):
        size = int.from_bytes(raw[at : at + 4], "little")
        values.append(raw[at + 4 : at + 4 + size].decode())
        at += 4 + size
    return values


def grpc_answer_json(raw: bytes) -> dict:
    """A ``ModelInferResponse`` in the shape of a V2 JSON answer (``outputs``: name, datatype, shape, data),
    so the HTTP checks judge it; outputs read from ``raw_output_contents`` or typed ``contents``."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    response = pb.ModelInferResponse.FromString(raw)
    outputs = []
    for i, tensor in enumerate(response.outputs):
        if response.raw_output_contents:
            data = _raw_values(tensor.datatype, response.raw_output_contents[i])
        else:
            data = list(getattr(tensor.contents, CONTENTS_FIELDS[tensor.datatype]))
            data = [v.decode() for v in data] if tensor.datatype == "BYTES" else data
        outputs.append(
            {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape), "data": data}
        )
    return {"id": response.id, "model_name": response.model_name, "outputs": outputs}


def grpc_request(model: BenchModel, n: int) -> bytes:
    """The serialised ``ModelInferRequest`` grpc_load sends for ``n`` rows (raw_input_contents)."""
    if str(SERVE_HELPERS) not in sys.path:
        sys.path.insert(0, str(SERVE_HELPERS))
    from grpc_load import build_request

    return build_request(model.rows[n], MODEL_NAME, contents=False).SerializeToString()


def verify_grpc(name: str, contender: Contender, target: str, model: BenchModel) -> dict[int, int]:
    """Each request size once over V2 gRPC: status OK and the right outputs (as :func:`verify` over HTTP)."""
    import grpc

    options = [
        ("grpc.max_send_message_length", GRPC_MAX_MESSAGE),
        ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE),
    ]
    sizes = {}
    with grpc.insecure_channel(target, options=options) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=30)
        except grpc.FutureTimeoutError:
            raise BenchError(f"{name}: no gRPC server at {target} after 30 s") from None
        call = channel.unary_unary(GRPC_INFER)  # bytes in, bytes out
        for n in model.bodies:
            try:
                raw = call(grpc_request(model, n), timeout=60)
            except grpc.RpcError as exc:
                raise BenchError(
                    f"{name}: {n}-row request answered {exc.code().name}: {exc.details()}"
                ) from None
            try:
                problem = contender.check(grpc_answer_json(raw), n, model.expected[n])
            except (ValueError, KeyError, TypeError) as exc:
                problem = f"unreadable response ({type(exc).__name__}: {exc})"
            if problem:
                raise BenchError(f"{name}: {n}-row request: {problem}")
            sizes[n] = len(raw)
    return sizes


# ---------------------------------------------------------------------------------------------- noise


def least_noisy(measure: Callable[[], dict], pgid: int | None, retries: int, limit: float) -> dict:
    """``measure()`` up to ``1 + retries`` times until other processes used at most ``limit`` of the CPU;
    the least disturbed result, with its ``foreign_cpu_share`` and ``attempts``."""
    best = None
    for attempt in range(1, retries + 2):
        with NoiseMeter(pgid) as meter:
            result = measure()
        result = {**result, "foreign_cpu_share": round(meter.foreign, 3), "attempts": attempt}
        if best is None or result["foreign_cpu_share"] < best["foreign_cpu_share"]:
            best = result
        if meter.foreign <= limit:
            break
        say(f"  (other processes used {meter.foreign:.0%} of the CPU during that point: measuring it again)")
    return best


# ---------------------------------------------------------------------------------------------- client or server


def children_cpu_seconds() -> float:
    """CPU seconds of this process's reaped children (wrk, grpc_load and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_use(client: float | None, server: float | None, seconds: float, requests: int, threads: int) -> dict:
    """Where a point's CPU went: the load generator's and the server's (cores, over ``seconds``), the server's
    per request, and ``client_limit``: why the load generator rather than the server may have set the pace
    (None when nothing says so). ``threads``: the cores the load generator can use (wrk threads,
    grpc_load processes)."""
    if client is None or server is None or seconds <= 0:
        keys = (
            "client_cpu_cores",
            "server_cpu_cores",
            "server_cpu_ms_per_request",
            "client_cpu_ms_per_request",
        )
        return {**dict.fromkeys(keys), "client_limit": None}
    client_cores, server_cores = client / seconds, server / seconds
    cores = len(os.sched_getaffinity(0))
    limit = None
    if client_cores >= CLIENT_SATURATED * threads:
        limit = (
            f"the load generator was saturated ({client_cores:.2f} cores in {threads} process(es)/thread(s); "
            f"the server used {server_cores:.2f}): the server may answer more than this"
        )
    elif client_cores + server_cores >= CLIENT_SATURATED * cores and client_cores >= server_cores:
        limit = (
            f"the machine's {cores} cores were busy and the load generator took as much of them "
            f"({client_cores:.2f}) as the server ({server_cores:.2f}): the server may answer more than this"
        )
    return {
        "client_cpu_cores": round(client_cores, 3),
        "server_cpu_cores": round(server_cores, 3),
        "server_cpu_ms_per_request": round(1000 * server / requests, 4) if requests else None,
        "client_cpu_ms_per_request": round(1000 * client / requests, 4) if requests else None,
        "client_limit": limit,
    }


# ---------------------------------------------------------------------------------------------- load (wrk)


class Wrk:
    """``wrk`` with one Lua script per payload (kind, rows): the body is read from a file, sent on every request."""

    def __init__(self, binary: str, folder: Path, model: BenchModel) -> None:
        self.binary = binary
        self.scripts = {}
        for kind in ("json", "binary"):
            for n in model.bodies:
                body, headers = payload(model, kind, n)
                body_path = folder / f"body-{n}.{kind}"
                body_path.write_bytes(body)
                script = folder / f"post-{n}-{kind}.lua"
                script.write_text(post_script(body_path, headers))
                self.scripts[kind, n] = script

    def run(
        self,
        url: str,
        rows: int,
        connections: int,
        seconds: float,
        kind: str = "json",
        pgid: int | None = None,
    ) -> dict[str, float]:
        """One wrk run; with ``pgid`` (the server's process group), where the CPU went (:func:`cpu_use`)."""
        # wrk takes whole seconds only.
        argv = [self.binary, "-t1", f"-c{connections}", f"-d{max(round(seconds), 1)}s", "--timeout", "60s",
                "--latency", "-s", str(self.scripts[kind, rows]), url + INFER_PATH]  # fmt: skip
        client, server = children_cpu_seconds(), group_cpu_seconds(pgid)
        raw = run_wrk(argv, timeout=seconds + 120, error=BenchError)
        client, server = children_cpu_seconds() - client, group_cpu_seconds(pgid) - server
        errors = failed_requests(raw)
        seconds_run = raw["duration_us"] / 1e6
        cpu = cpu_use(client, server if pgid else None, seconds_run, raw["requests"], threads=1)
        return {
            **raw,
            "errors": errors,
            "requests_per_second": raw["requests"] / seconds_run if seconds_run else 0.0,
            "rows_per_second": raw["requests"] * rows / seconds_run if seconds_run else 0.0,
            "p50_ms": raw["p50_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000,
            **cpu,
        }


def measure_http(
    contender: Contender,
    url: str,
    wrk: Wrk,
    duration: float,
    warmup: float,
    kind: str = "json",
    retries: int = 0,
    noise_limit: float = 1.0,
) -> dict[str, object]:
    """The five points: (1 row × concurrency 1, 8, 32) and (1,000 / 10,000 rows × concurrency 1); with binary
    bodies (informational) only the concurrency-1 points."""
    concurrencies = CONCURRENCIES if kind == "json" else (1,)
    points = [(1, c) for c in concurrencies] + [(n, 1) for n in BATCHES]
    name = contender.name if kind == "json" else f"{contender.name}-binary"
    out: dict[str, object] = {"payload": kind}
    for rows, connections in points:
        if warmup > 0:
            wrk.run(url, rows, connections, warmup, kind)
        result = least_noisy(
            lambda rows=rows, connections=connections: wrk.run(
                url, rows, connections, duration, kind, contender.pgid
            ),
            contender.pgid,
            retries,
            noise_limit,
        )
        record_point(out, name, rows, connections, result)
    return finish_points(out)


def record_point(out: dict, name: str, rows: int, connections: int, result: dict) -> None:
    """Store one measured point of ``name`` (no errors allowed) as ``rows{N}_c{C}``, and log it."""
    if result["errors"]:
        raise BenchError(
            f"{name}: {result['errors']} errors under load at {rows} row(s) × {connections} "
            f"connection(s): {json.dumps(result)}"
        )
    out[f"rows{rows}_c{connections}"] = result
    cpu = ""
    if result.get("client_cpu_cores") is not None:
        cpu = f", client {result['client_cpu_cores']:.2f} / server {result['server_cpu_cores']:.2f} cores"
    say(
        f"  {name:<13} {rows:>6} row(s) c={connections:<3} {result['requests_per_second']:>9.1f} req/s "
        f"{result['rows_per_second']:>11.0f} rows/s  p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms"
        f"  (other CPU use {result['foreign_cpu_share']:.0%}{cpu})"
    )
    if result.get("client_limit"):
        say(f"  {name}: {rows} row(s) c={connections}: {result['client_limit']}")


def finish_points(out: dict, client: str = "wrk") -> dict:
    """``client_bound``: the points whose load generator may have set the pace; a ``note`` saying so and, for
    the Python gRPC client, how much of the 1-row latency is its own work."""
    bound = [k for k, v in out.items() if isinstance(v, dict) and v.get("client_limit")]
    out["client_bound"] = bound
    notes = []
    if bound:
        notes.append(
            f"load generator possibly the limit at {', '.join(bound)} (see each point's client_limit): "
            "those requests/s are a lower bound on the server's"
        )
    per_call = (out.get("rows1_c1") or {}).get("client_cpu_ms_per_request")
    if client != "wrk" and per_call is not None:
        notes.append(
            f"{client} used about {per_call:.3f} ms of CPU per 1-row call at c=1 (wrk's: the HTTP points' "
            "client_cpu_ms_per_request): part of these latencies is the client's own work, more than over HTTP"
        )
    out["note"] = "; ".join(notes)
    return out


# ---------------------------------------------------------------------------------------------- load (gRPC)


class GrpcLoad:
    """``bench/serve/grpc_load.py`` in a process of its own, as wrk is for HTTP: C callers on one
    pre-serialised ``ModelInferRequest`` (raw_input_contents) of the held-out rows also sent over HTTP."""

    def __init__(self, folder: Path, model: BenchModel, channels: int, processes: int) -> None:
        self.channels, self.processes = channels, processes
        self.rows_files = {}
        for n, X in model.rows.items():
            self.rows_files[n] = folder / f"rows-{n}.npy"
            np.save(self.rows_files[n], X)
        self.request_bytes = {n: len(grpc_request(model, n)) for n in model.rows}

    def run(self, target: str, rows: int, connections: int, seconds: float, warmup: float,
            pgid: int | None) -> dict:  # fmt: skip
        channels, processes = min(self.channels, connections), min(self.processes, connections)
        argv = [sys.executable, str(GRPC_LOAD), "--target", target, "--model", MODEL_NAME, "--rows", str(rows),
                "--rows-file", str(self.rows_files[rows]), "--concurrency", str(connections),
                "--seconds", str(seconds), "--warmup", str(warmup), "--channels", str(channels),
                "--processes", str(processes)]  # fmt: skip
        if pgid:
            argv += ["--cpu-group", str(pgid)]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + warmup + 180, env=clean_env()
        )
        if done.returncode != 0 or not done.stdout.strip():
            raise BenchError(
                f"grpc_load failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        raw = json.loads(done.stdout.strip().splitlines()[-1])
        cpu = cpu_use(
            raw["client_cpu_seconds"], raw["server_cpu_seconds"], seconds, raw["requests"], processes
        )
        return {
            **raw,
            "requests_per_second": raw["requests_per_s"],
            "rows_per_second": raw["rows_per_s"],
            **cpu,
        }


def measure_grpc(
    name: str,
    contender: Contender,
    target: str,
    load: GrpcLoad,
    duration: float,
    warmup: float,
    retries: int = 0,
    noise_limit: float = 1.0,
) -> dict[str, object]:
    """The HTTP JSON points over V2 gRPC: (1 row × concurrency 1, 8, 32) and (1,000 / 10,000 rows × 1); each
    run warms up for ``warmup`` seconds on its own connections before its measured window."""
    points = [(1, c) for c in CONCURRENCIES] + [(n, 1) for n in BATCHES]
    out: dict[str, object] = {"payload": "grpc-raw", "channels": load.channels, "processes": load.processes}
    for rows, connections in points:
        result = least_noisy(
            lambda rows=rows, connections=connections: load.run(
                target, rows, connections, duration, warmup, contender.pgid
            ),
            contender.pgid,
            retries,
            noise_limit,
        )
        record_point(out, name, rows, connections, result)
    return finish_points(out, "grpc_load (Python, grpc.aio)")


# ---------------------------------------------------------------------------------------------- onnxruntime


def measure_onnxruntime(
    model: BenchModel,
    threads: int,
    duration: float,
    warmup: float,
    retries: int = 0,
    noise_limit: float = 1.0,
) -> dict[str, object]:
    """``InferenceSession.run`` in this process: per-call latency of 1 row, rows/s of the batches."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model.onnx_path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    out: dict[str, object] = {"intra_op_num_threads": threads}
    for rows in (1, *BATCHES):
        feed = {input_name: np.ascontiguousarray(model.rows[rows])}
        got = session.run(["probability"], feed)[0]
        worst = float(np.max(np.abs(got - model.expected[rows])))
        if not worst <= PARITY:
            raise BenchError(f"onnxruntime disagrees with sklearn by {worst:.3g} on {rows} rows")
        end = time.perf_counter() + warmup
        while time.perf_counter() < end:
            session.run(["probability"], feed)

        def measure(feed: dict = feed, rows: int = rows) -> dict[str, float]:
            times = []
            started = time.perf_counter()
            end = started + duration
            while True:
                t0 = time.perf_counter_ns()
                session.run(["probability"], feed)
                times.append(time.perf_counter_ns() - t0)
                if time.perf_counter() >= end:
                    break
            elapsed = time.perf_counter() - started
            ns = np.asarray(times)
            return {
                "calls": len(times),
                "seconds": elapsed,
                "calls_per_second": len(times) / elapsed,
                "rows_per_second": len(times) * rows / elapsed,
                "p50_ms": float(np.percentile(ns, 50)) / 1e6,
                "p99_ms": float(np.percentile(ns, 99)) / 1e6,
                "mean_ms": float(ns.mean()) / 1e6,
            }

        result = least_noisy(measure, None, retries, noise_limit)
        out[f"rows{rows}"] = result
        say(
            f"  onnxruntime t={threads} {rows:>6} row(s) {result['calls_per_second']:>10.1f} calls/s "
            f"{result['rows_per_second']:>11.0f} rows/s  p50 {result['p50_ms']:.4f} ms  p99 {result['p99_ms']:.4f} ms"
            f"  (other CPU use {result['foreign_cpu_share']:.0%})"
        )
    return out


# ---------------------------------------------------------------------------------------------- report


def goals(results: dict[str, dict]) -> dict[str, dict]:
    http_ = results
    ours = http_.get("ours")
    checks: dict[str, dict] = {}
    floor = http_.get("kserve-floor")
    if ours and floor:
        mine, base = ours["rows1_c1"]["p50_ms"], floor["rows1_c1"]["p50_ms"]
        checks["a_latency_vs_floor"] = {
            "goal": f"our 1-row p50 <= {GOAL_FLOOR_RATIO} x the kserve floor's 1-row p50",
            "ours_p50_ms": mine, "floor_p50_ms": base, "ratio": mine / base, "limit": GOAL_FLOOR_RATIO,
            "pass": mine <= GOAL_FLOOR_RATIO * base,
        }  # fmt: skip
    mls = http_.get("mlserver")
    if ours and mls:
        per = {}
        for c in CONCURRENCIES:
            a, b = ours[f"rows1_c{c}"]["requests_per_second"], mls[f"rows1_c{c}"]["requests_per_second"]
            per[f"c{c}"] = {
                "ours_rps": a,
                "mlserver_rps": b,
                "ratio": a / b,
                "pass": a >= GOAL_MLSERVER_RATIO * b,
            }
        checks["b_throughput_vs_mlserver"] = {
            "goal": f"our 1-row req/s >= {GOAL_MLSERVER_RATIO} x MLServer's at concurrency {', '.join(map(str, CONCURRENCIES))}",
            "limit": GOAL_MLSERVER_RATIO, "per_concurrency": per, "pass": all(p["pass"] for p in per.values()),
        }  # fmt: skip
    ort1 = results.get("onnxruntime-1thread")
    if ours and ort1:
        per = {}
        for n in BATCHES:
            a, b = ours[f"rows{n}_c1"]["rows_per_second"], ort1[f"rows{n}"]["rows_per_second"]
            per[f"rows{n}"] = {
                "ours_rows_per_s": a,
                "onnxruntime_rows_per_s": b,
                "ratio": a / b,
                "pass": a >= GOAL_ORT_RATIO * b,
            }
        checks["c_batch_vs_onnxruntime"] = {
            "goal": f"our batch rows/s >= {GOAL_ORT_RATIO} x raw onnxruntime's (1 intra-op thread, the server's "
            "default) at 1,000 and 10,000 rows",
            "limit": GOAL_ORT_RATIO, "per_batch": per, "pass": all(p["pass"] for p in per.values()),
        }  # fmt: skip
    return checks


def table(results: dict[str, dict], labels: dict[str, str]) -> str:
    order = ("ours", "ours-grpc", "mlserver", "mlserver-grpc", "kserve-naive", "kserve-floor", "ours-binary",
             "onnxruntime-1thread", "onnxruntime-default")  # fmt: skip
    columns = [c for c in order if c in results]
    heads = [labels.get(c, c) for c in columns]

    def cell(name: str, getter: Callable[[dict], float | None], fmt: str) -> str:
        with contextlib.suppress(KeyError, TypeError):
            value = getter(results[name])
            if value is not None:
                return format(value, fmt)
        return "-"

    rows_spec = [
        ("1 row, c=1: p50 latency (ms)", lambda r: r["rows1_c1"]["p50_ms"], lambda r: r["rows1"]["p50_ms"], ".3f"),
        ("1 row, c=1: p99 latency (ms)", lambda r: r["rows1_c1"]["p99_ms"], lambda r: r["rows1"]["p99_ms"], ".3f"),
        ("1 row, c=1: throughput (req/s)", lambda r: r["rows1_c1"]["requests_per_second"],
         lambda r: r["rows1"]["calls_per_second"], ",.0f"),
        ("1 row, c=8: throughput (req/s)", lambda r: r["rows1_c8"]["requests_per_second"], lambda r: None, ",.0f"),
        ("1 row, c=32: throughput (req/s)", lambda r: r["rows1_c32"]["requests_per_second"], lambda r: None, ",.0f"),
        ("1,000 rows, c=1: p50 (ms)", lambda r: r["rows1000_c1"]["p50_ms"], lambda r: r["rows1000"]["p50_ms"], ".2f"),
        ("1,000 rows, c=1: rows/s", lambda r: r["rows1000_c1"]["rows_per_second"],
         lambda r: r["rows1000"]["rows_per_second"], ",.0f"),
        ("10,000 rows, c=1: p50 (ms)", lambda r: r["rows10000_c1"]["p50_ms"], lambda r: r["rows10000"]["p50_ms"], ".1f"),
        ("10,000 rows, c=1: rows/s", lambda r: r["rows10000_c1"]["rows_per_second"],
         lambda r: r["rows10000"]["rows_per_second"], ",.0f"),
    ]  # fmt: skip
    rows_spec.append(
        (
            "1 row, c=32: client / server CPU (cores)",
            lambda r: f"{r['rows1_c32']['client_cpu_cores']:.2f} / {r['rows1_c32']['server_cpu_cores']:.2f}",
            lambda r: None,
            "s",
        )
    )
    rows_spec.append(
        (
            "other processes' CPU, worst point (%)",
            lambda r: 100 * max(v.get("foreign_cpu_share", 0) for v in r.values() if isinstance(v, dict)),
            lambda r: 100 * max(v.get("foreign_cpu_share", 0) for v in r.values() if isinstance(v, dict)),
            ".0f",
        )
    )
    first = max(len(r[0]) for r in rows_spec)
    widths = [max(len(h), 12) for h in heads]
    lines = [" " * first + " | " + " | ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    lines.append("-" * len(lines[0]))
    for title, http_get, ort_get, fmt in rows_spec:
        cells = [
            cell(c, ort_get if c.startswith("onnxruntime") else http_get, fmt).rjust(w)
            for c, w in zip(columns, widths, strict=True)
        ]
        lines.append(title.ljust(first) + " | " + " | ".join(cells))
    return "\n".join(lines)


def grpc_comparisons(results: dict[str, dict]) -> dict[str, dict]:
    """Informational (not goals): our gRPC numbers against our HTTP, MLServer's gRPC and raw onnxruntime."""
    ours, grpc_, mls, ort1 = (
        results.get(k) for k in ("ours", "ours-grpc", "mlserver-grpc", "onnxruntime-1thread")
    )
    out: dict[str, dict] = {}

    def pair(a: float, b: float, names: tuple[str, str]) -> dict[str, float]:
        return {names[0]: a, names[1]: b, "ratio": a / b if b else float("nan")}

    if grpc_ and ours:
        per = {
            f"{q}_ms": pair(grpc_["rows1_c1"][f"{q}_ms"], ours["rows1_c1"][f"{q}_ms"], ("grpc", "http"))
            for q in ("p50", "p99")
        }
        for c in CONCURRENCIES:
            key = f"rows1_c{c}"
            per[f"rps_c{c}"] = pair(
                grpc_[key]["requests_per_second"], ours[key]["requests_per_second"], ("grpc", "http")
            )
        for n in BATCHES:
            key = f"rows{n}_c1"
            per[f"rows_per_s_{n}"] = pair(
                grpc_[key]["rows_per_second"], ours[key]["rows_per_second"], ("grpc", "http")
            )
        out["ours_grpc_vs_ours_http"] = per
    if grpc_ and mls:
        out["ours_grpc_vs_mlserver_grpc"] = {
            f"c{c}": pair(grpc_[f"rows1_c{c}"]["requests_per_second"], mls[f"rows1_c{c}"]["requests_per_second"],
                          ("ours_rps", "mlserver_rps"))
            for c in CONCURRENCIES
        }  # fmt: skip
    if grpc_ and ort1:
        out["ours_grpc_vs_onnxruntime"] = {
            f"rows{n}": pair(grpc_[f"rows{n}_c1"]["rows_per_second"], ort1[f"rows{n}"]["rows_per_second"],
                             ("ours_rows_per_s", "onnxruntime_rows_per_s"))
            for n in BATCHES
        }  # fmt: skip
    return out


def grpc_summary(comparisons: dict[str, dict]) -> str:
    """One line of :func:`grpc_comparisons`."""
    parts = []
    if http_ := comparisons.get("ours_grpc_vs_ours_http"):
        parts.append(
            f"1-row p50 {http_['p50_ms']['grpc']:.3f} ms (HTTP {http_['p50_ms']['http']:.3f}), "
            f"p99 {http_['p99_ms']['grpc']:.3f} ms (HTTP {http_['p99_ms']['http']:.3f}); req/s vs our HTTP "
            + ", ".join(f"c{c}: {http_[f'rps_c{c}']['ratio']:.2f}x" for c in CONCURRENCIES)
        )
    if mls := comparisons.get("ours_grpc_vs_mlserver_grpc"):
        parts.append("req/s vs MLServer gRPC " + ", ".join(f"{c}: {p['ratio']:.2f}x" for c, p in mls.items()))
    if ort := comparisons.get("ours_grpc_vs_onnxruntime"):
        parts.append(
            "rows/s vs onnxruntime 1t "
            + ", ".join(f"{n.removeprefix('rows')}: {p['ratio']:.2f}x" for n, p in ort.items())
        )
    return "; ".join(parts)


def git_state() -> dict[str, object]:
    """The commit measured, and whether the server's code differed from it (uncommitted changes)."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "serving_uncommitted_changes": bool(git("status", "--porcelain", "--", "serving")),
    }


def versions(mlserver_env: dict | None) -> dict[str, object]:
    names = ("kserve", "onnxruntime", "scikit-learn", "lightgbm", "xgboost-cpu", "xgboost", "numpy", "fastapi",
             "uvicorn", "pydantic", "prometheus-client", "orjson")  # fmt: skip
    out: dict[str, object] = {"project_venv": {n: v for n in names if (v := _installed(n))}}
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    out["wrk"] = (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else "?"
    if mlserver_env:
        out["mlserver_venv"] = mlserver_env["versions"]
        out["mlserver_install"] = mlserver_env["installed_with"]
    return out


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="serving benchmark (see the module docstring)")
    parser.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="measured seconds per point (whole seconds for wrk; default 10)",
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="warm-up seconds before each point (0: none; default 2)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 s per point, 1 s warm-up")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes per HTTP contender (default 1)"
    )
    parser.add_argument(
        "--mlserver-parallel-workers", type=int, default=None,
        help="MLServer parallel_workers (default: 0 with --workers 1 — HTTP and inference in one process, like "
        "our one uvicorn worker; else --workers)",
    )  # fmt: skip
    parser.add_argument(
        "--model-type", default="lightgbm", help="model family from ml.train.MODEL_SPECS (default lightgbm)"
    )
    parser.add_argument(
        "--rows", type=int, default=None, help="synthetic transactions (default: the full 95,662)"
    )
    parser.add_argument(
        "--contenders",
        default=",".join((*HTTP_CONTENDERS, *GRPC_CONTENDERS, *EXTRA_CONTENDERS)),
        help="comma-separated subset of: ours, ours-grpc, mlserver, mlserver-grpc, kserve-naive, kserve-floor, "
        "ours-binary, onnxruntime (default: all; a -grpc or -binary one starts its server without measuring its "
        "HTTP JSON points unless that is named too)",
    )  # fmt: skip
    parser.add_argument(
        "--no-ort-default-threads", action="store_true", help="skip onnxruntime with default threads"
    )
    parser.add_argument(
        "--grpc-channels", type=int, default=1,
        help="HTTP/2 connections grpc_load's callers share (at most one per caller; default 1, as one client "
        "application would use)",
    )  # fmt: skip
    parser.add_argument(
        "--grpc-processes", type=int, default=1,
        help="grpc_load processes the callers are split over (at most one per caller; default 1). One Python "
        "client drives about one core: raise it when the report says the load generator was the limit and the "
        "machine has cores to spare",
    )  # fmt: skip
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS.relative_to(ROOT)})"
    )
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep the temp folder (model, bodies, server logs)"
    )
    parser.add_argument(
        "--noise-limit",
        type=float,
        default=0.05,
        help="share of the CPU other processes may use during a point before it is measured again (default 0.05)",
    )
    parser.add_argument(
        "--noisy-retries",
        type=int,
        default=1,
        help="re-measurements of a disturbed point (default 1; 0: none)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 3 when a goal fails")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 1.0, 1.0
    if args.mlserver_parallel_workers is None:
        args.mlserver_parallel_workers = 0 if args.workers == 1 else args.workers
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = set(args.contenders) - {*HTTP_CONTENDERS, *GRPC_CONTENDERS, *EXTRA_CONTENDERS}
    if unknown:
        parser.error(f"unknown contender(s): {', '.join(sorted(unknown))}")
    if args.grpc_channels < 1 or args.grpc_processes < 1:
        parser.error("--grpc-channels and --grpc-processes must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    started = time.perf_counter()
    load_before = os.getloadavg()
    busy_before, own_before = cpu_seconds()
    git_at_start = git_state()
    if load_before[0] > 0.5:
        say(
            f"warning: load average {load_before[0]:.2f} before starting: other work on this machine will add noise "
            "(the numbers assume the cores are otherwise idle)"
        )
    workdir = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    failures: dict[str, str] = {}
    results: dict[str, dict] = {}
    labels: dict[str, str] = {}
    notes: dict[str, str] = {}
    response_bytes: dict[str, dict] = {}
    mlserver_env = None
    try:
        wrk_binary = ensure_wrk(say)
        if {"mlserver", "mlserver-grpc"} & set(args.contenders):
            mlserver_env = ensure_mlserver_venv()
        say(f"training {args.model_type} on the default synthetic data (forward target) in {workdir}")
        model = train_model(workdir, args.model_type, args.rows)
        say(
            f"model: {args.model_type}, {model.train_rows:,} training rows, ONNX {model.onnx_bytes:,} "
            f"bytes, parity {model.parity:.2e}; trained in {model.train_seconds:.1f}s; request bodies "
            + ", ".join(f"{n} row(s) {len(b):,} B" for n, b in model.bodies.items())
        )
        wrk = Wrk(wrk_binary, workdir, model)
        contenders = build_contenders(model, workdir, args.workers, args.mlserver_parallel_workers)
        grpc_load = GrpcLoad(workdir, model, args.grpc_channels, args.grpc_processes)
        noise = {"retries": args.noisy_retries, "noise_limit": args.noise_limit}
        for name in HTTP_CONTENDERS:
            # This server's own HTTP JSON points, then what else is measured on the same process.
            wanted = [c for c in (name, *HOSTED.get(name, ())) if c in args.contenders]
            if not wanted:
                continue
            contender = contenders[name]
            say(f"{name}: starting ({' '.join(contender.argv[:4])} …) for {', '.join(wanted)}")
            try:
                with serving(contender, workdir) as url:
                    for key in wanted:
                        labels[key], notes[key] = describe(key, contender, grpc_load)
                        try:
                            if key == name:
                                response_bytes[key] = verify(contender, url, model)
                                results[key] = measure_http(
                                    contender, url, wrk, args.duration, args.warmup, **noise
                                )
                            elif key.endswith("-binary"):
                                response_bytes[key] = verify(contender, url, model, "binary")
                                results[key] = measure_http(
                                    contender, url, wrk, args.duration, args.warmup, "binary", **noise
                                )
                            else:
                                target = f"127.0.0.1:{contender.extra_ports['grpc']}"
                                response_bytes[key] = verify_grpc(key, contender, target, model)
                                results[key] = measure_grpc(
                                    key, contender, target, grpc_load, args.duration, args.warmup, **noise
                                )
                        except BenchError as exc:
                            failures[key] = str(exc)
                            say(f"{key}: FAILED: {exc}")
            except BenchError as exc:  # the server did not start
                for key in wanted:
                    failures.setdefault(key, str(exc))
                say(f"{name}: FAILED: {exc}")
        if "onnxruntime" in args.contenders:
            for threads, key, label in (
                (1, "onnxruntime-1thread", "onnxruntime 1t"),
                (0, "onnxruntime-default", "onnxruntime dflt"),
            ):
                if threads == 0 and args.no_ort_default_threads:
                    continue
                labels[key] = label
                notes[key] = (
                    f"in-process InferenceSession.run, intra_op_num_threads={threads} (0: onnxruntime decides)"
                )
                try:
                    results[key] = measure_onnxruntime(
                        model, threads, args.duration, args.warmup, args.noisy_retries, args.noise_limit
                    )
                except BenchError as exc:
                    failures[key] = str(exc)
    except KeyboardInterrupt as exc:
        say(f"interrupted ({exc}); stopping servers")
        PROCESSES.stop_all()
        return 130
    finally:
        PROCESSES.stop_all()
        if args.keep_workdir:
            say(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    checks = goals(results)
    comparisons = grpc_comparisons(results)
    busy_after, own_after = cpu_seconds()
    wall = time.perf_counter() - started
    # CPU used by other processes while the benchmark ran: noise in every number above when it is not ~0.
    foreign = max(0.0, (busy_after - busy_before) - (own_after - own_before)) / (wall * (os.cpu_count() or 1))
    report = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_seconds": round(wall, 1),
        "machine": {
            **machine(),
            "loadavg_1_5_15_before": load_before,
            "loadavg_1_5_15_after": os.getloadavg(),
            "foreign_cpu_share_during_run": round(foreign, 3),
        },
        "git": git_at_start,
        "versions": versions(mlserver_env),
        "model": {
            "type": args.model_type,
            "train_rows": model.train_rows,
            "heldout_rows": model.test_rows,
            "onnx_bytes": model.onnx_bytes,
            "onnx_parity_max_abs_diff": model.parity,
            "features": N_FEATURES,
            "data": "ml.synthetic.generate_transactions (default spec), forward target, ml.settings.TrainSettings()",
        },  # fmt: skip
        "settings": {
            "duration_seconds": args.duration,
            "warmup_seconds": args.warmup,
            "quick": args.quick,
            "workers": args.workers,
            "mlserver_parallel_workers": args.mlserver_parallel_workers,
            "load_generator": "wrk -t1 -cC -dDs --latency (separate process), keep-alive, loopback",
            "grpc_load_generator": "bench/serve/grpc_load.py (separate process, grpc.aio): C callers, one "
            "pre-serialised ModelInferRequest (raw_input_contents), answers' status only, loopback, insecure",
            "grpc_channels": args.grpc_channels,
            "grpc_processes": args.grpc_processes,
            "client_saturated_share": CLIENT_SATURATED,
            "request_bytes": {str(n): len(b) for n, b in model.bodies.items()},
            "grpc_request_bytes": {str(n): b for n, b in grpc_load.request_bytes.items()},
            "response_bytes": response_bytes,
        },  # fmt: skip
        "contenders": {k: {"label": labels.get(k, k), "notes": notes.get(k, "")} for k in labels},
        "results": results,
        "failures": failures,
        "goals": checks,
        "grpc_comparisons": comparisons,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=float) + "\n")

    print()
    print(
        f"Serving benchmark — {args.model_type} ({model.train_rows:,} training rows), {args.workers} worker(s) "
        f"per server, {args.duration:g} s per point after {args.warmup:g} s warm-up, wrk on loopback"
    )
    print(table(results, labels))
    print("(onnxruntime columns: in-process calls, no HTTP; 'req/s' there is calls/s of one thread)")
    for name, result in results.items():
        if result.get("note"):
            print(f"note {name}: {result['note']}")
    print()
    for key, check in checks.items():
        verdict = "PASS" if check["pass"] else "FAIL"
        if key.startswith("a_"):
            detail = f"{check['ours_p50_ms']:.3f} ms vs floor {check['floor_p50_ms']:.3f} ms = {check['ratio']:.2f}x"
        elif key.startswith("b_"):
            detail = ", ".join(f"{c}: {p['ratio']:.2f}x" for c, p in check["per_concurrency"].items())
        else:
            detail = ", ".join(f"{n}: {p['ratio']:.2f}x" for n, p in check["per_batch"].items())
        print(f"{verdict}  ({key[0]}) {check['goal']}: {detail}")
    if comparisons:
        print(f"gRPC (informational, not goals): {grpc_summary(comparisons)}")
    if foreign > 0.05:
        print(
            f"warning: other processes used {foreign:.0%} of the machine's CPU during the run: the numbers are noisy"
        )
    for name, problem in failures.items():
        print(f"ERROR {name}: {problem.splitlines()[0]}")
    print(f"\nwrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    if failures:
        return 1
    if args.strict and not all(c["pass"] for c in checks.values()):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
