"""Micro-benchmark of the V2 codec (``serving/protocol/v2.py``) against onnxruntime on the same rows.

What one inference request costs the codec — parse and check (``read_json_request`` /
``read_binary_request``), ``decode`` to the float32 matrix, ``write_response`` — beside what
``InferenceSession.run`` costs on those rows (1 intra-op thread, the predictor's default), for 1, 1,000 and
10,000 rows of a small LightGBM model trained by ``ml``. No HTTP: this isolates the codec's share of the
batch goal (1,000-row JSON requests at >= 0.5x raw onnxruntime rows/s end to end, issue 12).

    .venv/bin/python bench/serve/codec.py [--seconds 0.3] [--repeats 5]

Prints microseconds per request (median of ``--repeats`` timed runs of about ``--seconds`` each) and, for
each size, the bound the codec alone puts on the server: ort / (ort + codec) of raw onnxruntime's rows/s.
Used by no test; nothing is written.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from harness.predictor import train_small_model  # noqa: E402
from serving.protocol import v2  # noqa: E402

SIZES = (1, 1_000, 10_000)
LEVELS = np.array(["low", "medium", "high"], dtype=object)
DECISIONS = np.array(["approve", "review", "reject"], dtype=object)


def json_body(X: np.ndarray, nested: bool = False, binary_output: bool = False) -> bytes:
    """A V2 JSON request as ``bench/bench_serve.py`` sends it: one FP32 tensor, values as their shortest
    float32 spelling (``nested``: one list per row; ``binary_output``: the answer in binary)."""
    values = [float(str(v)) for v in X.astype(np.float32).ravel()]
    data = [values[i : i + X.shape[1]] for i in range(0, len(values), X.shape[1])] if nested else values
    document: dict[str, object] = {
        "inputs": [{"name": "features", "shape": list(X.shape), "datatype": "FP32", "data": data}]
    }
    if binary_output:
        document["parameters"] = {"binary_data_output": True}
    return orjson.dumps(document)


def binary_body(X: np.ndarray) -> tuple[bytes, str]:
    raw = np.ascontiguousarray(X, dtype="<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": list(X.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    return header + raw, str(len(header))


def per_call_us(call: Callable[[], object], seconds: float, repeats: int) -> float:
    """Median over ``repeats`` runs of the mean time of one call, in microseconds."""
    call()
    started, calls = time.perf_counter(), 0
    while time.perf_counter() - started < seconds / 4:  # size the runs
        call()
        calls += 1
    loops = max(1, int(calls * 4))
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            call()
        runs.append((time.perf_counter() - t0) / loops * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (the median is shown)")
    args = parser.parse_args()

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as folder:
        trained = train_small_model(Path(folder))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(trained.path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    names = tuple(f"f{i}" for i in range(trained.X_test.shape[1]))
    pool = np.resize(trained.X_test.astype(np.float32), (max(SIZES), trained.X_test.shape[1]))

    def outputs_for(rows: np.ndarray) -> v2.Outputs:
        probability = session.run(["probability"], {input_name: rows})[0].astype(np.float32, copy=False)
        level = (probability >= 0.3).astype(np.intp) + (probability > 0.7)
        return v2.Outputs(probability, (probability >= 0.5).astype(np.int64), LEVELS[level], DECISIONS[level])

    def json_codec(body: bytes, outputs: v2.Outputs) -> Callable[[], object]:
        def call() -> object:
            request = v2.read_json_request(body)
            v2.decode(request, names, 100_000)
            return v2.write_response(request, outputs, "credit-risk", "1")

        return call

    print(
        f"V2 codec vs onnxruntime (1 intra-op thread), microseconds per request; median of {args.repeats} runs"
    )
    header = (
        f"{'rows':>6} {'body KB':>8} {'parse':>8} {'decode':>8} {'write':>8} {'codec':>8} "
        f"{'nested':>8} {'bin-out':>8} {'binary':>8} {'ort':>9} {'codec/ort':>9} {'bound':>6}"
    )
    print(header)
    for rows in SIZES:
        X = np.ascontiguousarray(pool[:rows])
        outputs = outputs_for(X)
        body = json_body(X)
        request = v2.read_json_request(body)
        np.testing.assert_array_equal(v2.decode(request, names, 100_000), X)
        parse = per_call_us(lambda b=body: v2.read_json_request(b), args.seconds, args.repeats)
        decode = per_call_us(lambda r=request: v2.decode(r, names, 100_000), args.seconds, args.repeats)
        write = per_call_us(
            lambda r=request, o=outputs: v2.write_response(r, o, "credit-risk", "1"),
            args.seconds,
            args.repeats,
        )
        codec = per_call_us(json_codec(body, outputs), args.seconds, args.repeats)
        nested = per_call_us(json_codec(json_body(X, nested=True), outputs), args.seconds, args.repeats)
        binary_out = per_call_us(
            json_codec(json_body(X, binary_output=True), outputs), args.seconds, args.repeats
        )
        raw, length = binary_body(X)

        def binary_codec(raw: bytes = raw, length: str = length, outputs: v2.Outputs = outputs) -> object:
            request = v2.read_binary_request(raw, length)
            v2.decode(request, names, 100_000)
            return v2.write_response(request, outputs, "credit-risk", "1")

        binary = per_call_us(binary_codec, args.seconds, args.repeats)
        onnx = per_call_us(
            lambda x=X: session.run(["probability"], {input_name: x}), args.seconds, args.repeats
        )
        print(
            f"{rows:>6} {len(body) / 1000:>8.1f} {parse:>8.1f} {decode:>8.1f} {write:>8.1f} {codec:>8.1f} "
            f"{nested:>8.1f} {binary_out:>8.1f} {binary:>8.1f} {onnx:>9.1f} {codec / onnx:>9.2f} "
            f"{onnx / (onnx + codec):>6.2f}"
        )
    print(
        "parse = read_json_request; codec = parse + decode + write_response (JSON answer); nested = the same "
        "with one list per row;\nbin-out = JSON request asking binary_data_output: true; binary = binary "
        "tensor extension both ways;\nbound = ort / (ort + codec): the fraction of raw onnxruntime rows/s "
        "left once the codec is paid (HTTP not counted)."
    )


if __name__ == "__main__":
    main()
