"""Closed-loop load on a V2 gRPC server: C concurrent callers send one pre-built ``ModelInferRequest`` of N
rows for S seconds and print one JSON line.

    python bench/serve/grpc_load.py --target HOST:PORT --rows N --concurrency C --seconds S
        [--model credit-risk] [--contents] [--rows-file X.npy] [--channels 1] [--warmup 1] [--ca-file CA.pem]

Output: ``{"requests_per_s", "p50_ms", "p99_ms", "errors", "requests", "rows", "concurrency", "seconds",
"encoding"}`` — latencies of the successful calls in the measured window (after ``--warmup`` seconds);
``errors`` counts calls that did not answer OK (their codes in ``error_codes``). The request is serialised
once and reused, as wrk replays one body: the client's cost per call is the RPC itself. Rows come from
``--rows-file`` (an ``[M, 26]`` float matrix, cycled to N rows) or a seeded standard normal matrix; the
predictor scores any finite row. Inputs travel in ``raw_input_contents`` (tritonclient's way), or as typed
``fp32_contents`` with ``--contents``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

FEATURES = 26


def build_request(rows: np.ndarray, model: str, contents: bool) -> pb.ModelInferRequest:
    matrix = np.ascontiguousarray(rows, dtype=np.float32)
    request = pb.ModelInferRequest(model_name=model, id="load")
    tensor = request.inputs.add(name="features", datatype="FP32", shape=list(matrix.shape))
    if contents:
        tensor.contents.fp32_contents.extend(matrix.ravel().tolist())
    else:
        request.raw_input_contents.append(matrix.astype("<f4", copy=False).tobytes())
    return request


def make_rows(n: int, rows_file: Path | None, seed: int = 0) -> np.ndarray:
    if rows_file is None:
        return np.random.default_rng(seed).standard_normal((n, FEATURES)).astype(np.float32)
    source = np.load(rows_file).astype(np.float32)
    return source[np.arange(n) % len(source)]


async def load(target: str, request: pb.ModelInferRequest, concurrency: int, seconds: float,
               warmup: float = 1.0, channels: int = 1, ca_file: Path | None = None,
               max_message: int = 2**31 - 1) -> dict:  # fmt: skip
    """Run the load; the measurement starts after ``warmup`` seconds and lasts ``seconds``."""
    options = [
        ("grpc.max_send_message_length", max_message),
        ("grpc.max_receive_message_length", max_message),
    ]
    credentials = grpc.ssl_channel_credentials(ca_file.read_bytes()) if ca_file else None
    opened = [
        grpc.aio.secure_channel(target, credentials, options=options)
        if credentials
        else grpc.aio.insecure_channel(target, options=options)
        for _ in range(max(1, channels))
    ]
    # Serialise once: each call hands grpc the same bytes and skips the Python protobuf encoder.
    body = request.SerializeToString()
    calls = [
        c.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=lambda b: b,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        for c in opened
    ]
    try:
        for channel in opened:  # connect before the clock starts
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
            await pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=30)
        start = time.perf_counter()
        begin, end = start + warmup, start + warmup + seconds
        latencies: list[float] = []
        errors: Counter[str] = Counter()

        async def caller(call) -> None:
            while True:
                sent = time.perf_counter()
                if sent >= end:
                    return
                try:
                    await call(body, timeout=60)
                    code = None
                except grpc.aio.AioRpcError as exc:
                    code = exc.code().name
                done = time.perf_counter()
                if sent >= begin and done <= end:
                    if code is None:
                        latencies.append(done - sent)
                    else:
                        errors[code] += 1

        await asyncio.gather(*(caller(calls[i % len(calls)]) for i in range(concurrency)))
    finally:
        for channel in opened:
            await channel.close()
    ordered = np.sort(np.array(latencies)) if latencies else np.array([np.nan])
    return {
        "requests_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(float(np.percentile(ordered, 50)) * 1000, 3),
        "p99_ms": round(float(np.percentile(ordered, 99)) * 1000, 3),
        "errors": sum(errors.values()),
        "error_codes": dict(errors),
        "requests": len(latencies),
        "concurrency": concurrency,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--model", default="credit-risk")
    parser.add_argument("--contents", action="store_true", help="typed fp32_contents instead of raw bytes")
    parser.add_argument("--rows-file", type=Path, help=".npy [M, 26] rows to send (default: seeded normal)")
    parser.add_argument("--channels", type=int, default=1, help="HTTP/2 connections the callers share")
    parser.add_argument("--ca-file", type=Path, help="TLS: the root certificate (PEM) to trust")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.concurrency < 1 or args.seconds <= 0:
        parser.error("--rows and --concurrency must be >= 1 and --seconds > 0")
    request = build_request(make_rows(args.rows, args.rows_file), args.model, args.contents)
    result = asyncio.run(
        load(args.target, request, args.concurrency, args.seconds, args.warmup, args.channels, args.ca_file)
    )
    result.update(rows=args.rows, encoding="contents" if args.contents else "raw")
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
