"""Closed-loop load on a V2 gRPC server: C concurrent callers send one pre-built ``ModelInferRequest`` of N
rows for S seconds and print one JSON line.

    python bench/serve/grpc_load.py --target HOST:PORT --rows N --concurrency C --seconds S
        [--model credit-risk] [--contents] [--rows-file X.npy] [--channels 1] [--processes 1] [--warmup 1]
        [--cpu-group PGID] [--ca-file CA.pem]

Output: ``{"requests_per_s", "rows_per_s", "p50_ms", "p99_ms", "errors", "error_codes", "requests", "rows",
"concurrency", "channels", "processes", "seconds", "client_cpu_seconds", "server_cpu_seconds", "encoding"}``
— latencies of the successful calls in the measured window (after ``--warmup`` seconds); ``errors`` counts
calls that did not answer OK (their codes in ``error_codes``). ``client_cpu_seconds``: the CPU this load
generator (all its processes and threads) used in the measured window; ``server_cpu_seconds``: the CPU of
process group ``--cpu-group`` (the server's, read from ``/proc``) in the same window, ``null`` without it —
so a run can tell whether the client or the server was the limit.

The request is serialised once and reused, and the answer is not parsed (only its status is looked at), as
wrk replays one body and reads only the status: the client's cost per call is the RPC itself. Rows come
from ``--rows-file`` (an ``[M, 26]`` float matrix, cycled to N rows) or a seeded standard normal matrix; the
predictor scores any finite row. Inputs travel in ``raw_input_contents`` (tritonclient's way), or as typed
``fp32_contents`` with ``--contents``.

One Python process drives at most about one core (grpc.aio's event loop is one thread), which against a
fast server can cap what is measured; ``--processes P`` splits the callers (and channels) over P spawned
processes that start their clocks together, and merges their latencies. ``--channels K``: HTTP/2
connections (callers take them in turn); one by default, as one client application would use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

FEATURES = 26
INFER = "/inference.GRPCInferenceService/ModelInfer"
MAX_MESSAGE = 2**31 - 1


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


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of process group ``pgid`` (its processes and the children they reaped), from ``/proc``."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "(comm)": state ppid pgrp ...
            if int(fields[2]) == pgid:
                ticks += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


async def _calls(target: str, body: bytes, concurrency: int, seconds: float, warmup: float, channels: int,
                 ca_file: Path | None = None, cpu_group: int | None = None, barrier=None) -> dict:  # fmt: skip
    """``latencies`` (seconds) of the successful calls in the measured window, the other calls' ``errors``
    (codes), and the window's ``client_cpu_seconds`` (this process) and ``server_cpu_seconds``."""
    options = [
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.max_receive_message_length", MAX_MESSAGE),
    ]
    credentials = grpc.ssl_channel_credentials(ca_file.read_bytes()) if ca_file else None
    opened = [
        grpc.aio.secure_channel(target, credentials, options=options)
        if credentials
        else grpc.aio.insecure_channel(target, options=options)
        for _ in range(max(1, channels))
    ]
    # Bytes in, bytes out: no Python protobuf encoder or parser on the client's side of a call.
    calls = [c.unary_unary(INFER, request_serializer=None, response_deserializer=None) for c in opened]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    cpu: dict[str, float | None] = {"client_cpu_seconds": None, "server_cpu_seconds": None}
    loop = asyncio.get_running_loop()
    try:
        for channel in opened:  # connect before the clock starts
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
            await pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=30)
        if barrier is not None:  # every process connected: start the clocks together
            await loop.run_in_executor(None, barrier.wait, 60)
        start = time.perf_counter()
        begin, end = start + warmup, start + warmup + seconds

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

        async def window() -> None:  # the CPU used between begin and end
            group = (lambda: group_cpu_seconds(cpu_group)) if cpu_group else (lambda: 0.0)
            await asyncio.sleep(max(0.0, begin - time.perf_counter()))
            client, server = time.process_time(), await loop.run_in_executor(None, group)
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            cpu["client_cpu_seconds"] = round(time.process_time() - client, 3)
            if cpu_group:
                cpu["server_cpu_seconds"] = round(await loop.run_in_executor(None, group) - server, 3)

        await asyncio.gather(window(), *(caller(calls[i % len(calls)]) for i in range(concurrency)))
    finally:
        for channel in opened:
            await channel.close()
    return {"latencies": latencies, "errors": errors, **cpu}


def summary(runs: list[dict], rows: int, concurrency: int, seconds: float) -> dict:
    """The one JSON result of one or more processes' ``_calls``."""
    latencies = [t for run in runs for t in run["latencies"]]
    errors = sum((Counter(run["errors"]) for run in runs), Counter())
    ordered = np.sort(np.array(latencies)) if latencies else np.array([np.nan])
    servers = [run["server_cpu_seconds"] for run in runs if run["server_cpu_seconds"] is not None]
    return {
        "requests_per_s": round(len(latencies) / seconds, 1),
        "rows_per_s": round(len(latencies) * rows / seconds, 1),
        "p50_ms": round(float(np.percentile(ordered, 50)) * 1000, 3),
        "p99_ms": round(float(np.percentile(ordered, 99)) * 1000, 3),
        "errors": sum(errors.values()),
        "error_codes": dict(errors),
        "requests": len(latencies),
        "rows": rows,
        "concurrency": concurrency,
        "seconds": seconds,
        "client_cpu_seconds": round(sum(run["client_cpu_seconds"] or 0.0 for run in runs), 3),
        "server_cpu_seconds": servers[0] if servers else None,
    }


async def load(target: str, request: pb.ModelInferRequest, concurrency: int, seconds: float,
               warmup: float = 1.0, channels: int = 1, ca_file: Path | None = None,
               cpu_group: int | None = None) -> dict:  # fmt: skip
    """Run the load in this process; the measurement starts after ``warmup`` seconds and lasts ``seconds``."""
    run = await _calls(
        target, request.SerializeToString(), concurrency, seconds, warmup, channels, ca_file, cpu_group
    )
    rows = int(request.inputs[0].shape[0])
    return {**summary([run], rows, concurrency, seconds), "channels": max(1, channels), "processes": 1}


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def _child(queue, barrier, *args) -> None:
    try:
        run = asyncio.run(_calls(*args, barrier=barrier))
        queue.put(({**run, "errors": dict(run["errors"])}, None))
    except BaseException as exc:  # reported to the parent, which fails the run
        barrier.abort()
        queue.put((None, f"{type(exc).__name__}: {exc}"))


def load_processes(target: str, request: pb.ModelInferRequest, concurrency: int, seconds: float,
                   warmup: float, channels: int, processes: int, ca_file: Path | None = None,
                   cpu_group: int | None = None) -> dict:  # fmt: skip
    """The same load from ``processes`` spawned processes, callers and channels split between them (the
    server's CPU read by the first)."""
    processes = max(1, min(processes, concurrency))
    body = request.SerializeToString()
    context = multiprocessing.get_context("spawn")  # grpc's threads do not survive a fork
    queue, barrier = context.Queue(), context.Barrier(processes)
    split = [
        (_share(concurrency, processes, i), max(1, _share(channels, processes, i))) for i in range(processes)
    ]
    children = [
        context.Process(
            target=_child,
            args=(
                queue,
                barrier,
                target,
                body,
                callers,
                seconds,
                warmup,
                links,
                ca_file,
                cpu_group if i == 0 else None,
            ),
        )  # fmt: skip
        for i, (callers, links) in enumerate(split)
    ]
    for child in children:
        child.start()
    runs, problems = [], []
    for _ in children:
        run, problem = queue.get(timeout=seconds + warmup + 180)
        runs += [run] if run else []
        problems += [problem] if problem else []
    for child in children:
        child.join(30)
    if problems:
        raise RuntimeError("; ".join(problems))
    rows = int(request.inputs[0].shape[0])
    return {
        **summary(runs, rows, concurrency, seconds),
        "channels": sum(links for _, links in split),
        "processes": processes,
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
    parser.add_argument(
        "--processes", type=int, default=1, help="client processes the callers are split over (default 1)"
    )
    parser.add_argument(
        "--cpu-group", type=int, help="process group (the server's) whose CPU in the window is reported"
    )
    parser.add_argument("--ca-file", type=Path, help="TLS: the root certificate (PEM) to trust")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.concurrency < 1 or args.seconds <= 0 or args.channels < 1 or args.processes < 1:
        parser.error("--rows, --concurrency, --channels and --processes must be >= 1 and --seconds > 0")
    request = build_request(make_rows(args.rows, args.rows_file), args.model, args.contents)
    common = (args.target, request, args.concurrency, args.seconds, args.warmup, args.channels)
    if args.processes > 1:
        result = load_processes(*common, args.processes, args.ca_file, args.cpu_group)
    else:
        result = asyncio.run(load(*common, args.ca_file, args.cpu_group))
    result["encoding"] = "contents" if args.contents else "raw"
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
