#!/usr/bin/env python
"""Fuzz the predictor with malformed and hostile requests; the server must answer every one without a 5xx,
stay live on the same worker processes, and keep its memory bounded.

    python reliability/fuzz.py [--requests N] [--grpc-requests G] [--json OUT] [--seed S] [--schemathesis-examples M]

Trains a small model (``harness.predictor.train_small_model``), starts ``python -m serving --workers 2
--max-request-bytes 1000000`` on a loopback port, then sends:

* ``N`` (default 10,000) requests generated with hypothesis strategies, to ``/v2/models/credit-risk/infer``,
  ``/v2/models/credit-risk/versions/1/infer`` and ``/predict``: random V2 documents (shapes, datatypes,
  names, huge numbers, NaN / Infinity literals, duplicate keys, unicode), the binary tensor extension with
  lying ``Inference-Header-Content-Length`` and ``binary_data_size``, deep nesting (up to 100,000 levels),
  bodies above ``--max-request-bytes`` (with Content-Length and chunked), wrong content types, random bytes,
  random paths and methods, and malformed HTTP framing;
* a schemathesis run against the server's ``/openapi.json`` as served (positive and negative data, the
  "not a server error" check). The run also fails when the document does not describe what is served
  (:func:`reliability.openapi.openapi_gaps`): the /predict body, the versioned infer path, the 400/404/413 error answers, the
  binary tensor extension, and no repository (load / unload) or explain operations;
* then ``G`` (default 2,000) V2 gRPC calls to the same server's gRPC port (:mod:`reliability.fuzz_grpc`):
  valid ModelInfer in typed ``contents`` and ``raw_input_contents`` (which must be OK, with probabilities in
  [0, 1] of the right shape), wrong, mixed or missing contents, mismatched shapes and counts, hostile
  datatypes, NaN and out-of-range values, other models and versions, unknown outputs, health and metadata
  with hostile names, the repository RPCs, messages at and above ``--max-request-bytes``, and bytes protobuf
  cannot decode. Mistakes must get INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED or UNIMPLEMENTED; any
  other code (INTERNAL, UNKNOWN, UNAVAILABLE, DEADLINE_EXCEEDED: a hang) fails the run. Reported under
  ``grpc`` in the same JSON.

Throughout, a monitor samples the RSS of the server process and its children every 0.25 s, calls
``/v2/health/live`` every 0.5 s on a fresh connection, and watches the worker PIDs (children of the server
process). Afterwards the server's own account is read too: ``credit_risk_requests_total`` from ``/metrics``
(a 5xx no client saw, e.g. for a client that disconnected mid-body, still counts) and the tracebacks in its
log. The run fails (exit 1) on any 5xx (seen or counted), a traceback, a failed liveness check, a restarted
worker or exited server, a well-formed request left without an answer, or memory growth (end or peak minus
start) above ``--memory-bound-mb``, over both protocols' requests. Results: a summary table on stdout and
JSON (default ``reliability/results/fuzz.json``); every 5xx (every gRPC server error or wrong answer) comes
with the exact request (body in base64).

Tested with hypothesis 6.170.17 and schemathesis 4.32.5 (``pip install schemathesis==4.32.5``).

This file is the command line and the run; the parts, one concern each:

* :mod:`reliability.target` — the model's name, version, routes and feature contract;
* :mod:`reliability.strategies` — hypothesis strategies for values, tensors and V2 documents, and the
  seeded drawing of distinct examples per family;
* :mod:`reliability.json_text` — hostile JSON text (NaN literals, duplicate keys, huge integers);
* :mod:`reliability.http_requests` — the families of hostile HTTP requests;
* :mod:`reliability.http_client` — the raw HTTP/1.1 client that sends them;
* :mod:`reliability.dispatch` — the pool of client threads;
* :mod:`reliability.fuzz_http` — the HTTP target: send, judge each answer, count it;
* :mod:`reliability.fuzz_grpc` — the gRPC target: its call families, client and judgement;
* :mod:`reliability.openapi` — the schemathesis run and the document's gaps;
* :mod:`reliability.accounting` — the counts of answers, the report's sections, the summary table;
* :mod:`reliability.monitor` — the server's memory, workers, liveness and own account during the run.

Each protocol is a target module recording into a :class:`~reliability.accounting.Stats` of its own,
between the same :class:`~reliability.monitor.ServerWatch` ``start()`` and ``finish()``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``harness``, ``ml`` and ``reliability`` importable
    sys.path.insert(0, str(ROOT))

from reliability.accounting import Stats, summary  # noqa: E402
from reliability.fuzz_grpc import grpc_summary, metrics_gap, run_grpc, warm_up_grpc  # noqa: E402
from reliability.fuzz_http import fuzz_http, warm_up  # noqa: E402
from reliability.monitor import ServerWatch  # noqa: E402
from reliability.openapi import run_schemathesis  # noqa: E402

DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MEMORY_BOUND_MB = 150.0
DEFAULT_JSON = ROOT / "reliability" / "results" / "fuzz.json"


@dataclass
class FuzzConfig:
    requests: int = 10_000
    schemathesis_examples: int = 1_500
    grpc_requests: int = 2_000  # made when run_fuzz is given a gRPC target
    seed: int = 20_240_601
    concurrency: int = 4
    max_request_bytes: int = DEFAULT_MAX_BYTES
    memory_bound_mb: float = DEFAULT_MEMORY_BOUND_MB
    families: list[str] | None = None  # None: all
    grpc_families: list[str] | None = None  # None: all
    extra: dict[str, Any] = field(default_factory=dict)


def run_fuzz(
    base_url: str,
    server_pid: int,
    config: FuzzConfig,
    log: Callable[[str], None] = print,
    server_log: Callable[[], str] | None = None,
    grpc_target: str = "",
) -> dict:
    """Fuzz a running server; returns the results (``passed`` and ``failures`` say whether it held).
    ``server_log`` returns the server's output so far: tracebacks logged during the run count as failures.
    ``grpc_target`` (``host:port``): its V2 gRPC port, fuzzed after HTTP (``config.grpc_requests`` calls).
    ``config.requests`` 0 skips the HTTP requests."""
    fuzz_grpc = bool(grpc_target) and config.grpc_requests > 0
    warm_up(base_url)
    if fuzz_grpc:
        warm_up_grpc(grpc_target)
    time.sleep(1.0)
    watch = ServerWatch(base_url, server_pid, config.memory_bound_mb, server_log)
    watch.start()
    stats = Stats()
    started = time.monotonic()

    generated: dict[str, int] = {}
    if config.requests > 0:
        generated = fuzz_http(
            base_url, stats, config.requests, config.seed, config.concurrency, config.max_request_bytes,
            config.families, log,
        )  # fmt: skip
        log(f"  hypothesis: {stats.total} requests in {time.monotonic() - started:.1f} s")

    schemathesis_report: dict[str, Any] = {}
    if config.schemathesis_examples > 0:
        before = stats.total
        schemathesis_report = run_schemathesis(base_url, config.schemathesis_examples, config.seed, stats)
        log(f"  schemathesis: {stats.total - before} requests")

    grpc_report: dict[str, Any] = {}
    if fuzz_grpc:
        grpc_report = run_grpc(
            grpc_target, config.grpc_requests, config.seed, config.concurrency, config.max_request_bytes,
            config.grpc_families, log,
        )  # fmt: skip
    duration = time.monotonic() - started

    server = watch.finish()
    answers = stats.report(generated)
    failures = [*stats.failures(), *watch.failures]
    if stats.total < config.requests:
        failures.append(f"only {stats.total} requests were sent ({config.requests} asked)")
    if schemathesis_report and schemathesis_report.get("gaps"):
        failures.append(f"/openapi.json does not describe what is served: {schemathesis_report['gaps']}")
    return report(
        failures, duration, answers, server, grpc_report, config, fuzz_grpc,
        sections={"schemathesis": schemathesis_report},
        config_extra={"schemathesis_examples": config.schemathesis_examples},
    )  # fmt: skip


def report(
    failures: list[str],
    duration: float,
    answers: dict,
    server: dict,
    grpc_report: dict,
    config: FuzzConfig,
    fuzzed_grpc: bool,
    sections: dict[str, object],
    config_extra: dict[str, object] | None = None,
    packages: tuple[str, ...] = (),
) -> dict:
    """A fuzz run's results, the predictor's or the transformer's: ``failures`` plus the gRPC run's,
    ``answers`` (:meth:`Stats.report`), ``server`` (:meth:`ServerWatch.finish`), the gRPC calls checked
    against the server's own request counts, the target's own ``sections``, the configuration and the
    versions (with those of ``packages``)."""
    if grpc_report:
        grpc_report["metrics"] = metrics_gap(
            grpc_report, server["server_side"]["requests_counted_in_metrics"]
        )
    failures = [*failures, *(f"gRPC: {failure}" for failure in grpc_report.get("failures", []))]
    return {
        "passed": not failures,
        "failures": failures,
        "duration_seconds": round(duration, 1),
        "requests": answers["requests"],
        "server_errors": answers["server_errors"],
        "wrong_answers": answers["wrong_answers"],
        "server_side": server["server_side"],
        "retried_on_a_new_connection": answers["retried_on_a_new_connection"],
        "no_response": answers["no_response"],
        "error_body_violations": answers["error_body_violations"],
        "liveness": server["liveness"],
        "workers": server["workers"],
        "memory_mb": server["memory_mb"],
        **sections,
        "grpc": grpc_report,
        "config": {
            "requests": config.requests,
            **(config_extra or {}),
            "grpc_requests": config.grpc_requests if fuzzed_grpc else 0,
            "seed": config.seed,
            "concurrency": config.concurrency,
            "max_request_bytes": config.max_request_bytes,
            "memory_bound_mb": config.memory_bound_mb,
            **config.extra,
        },
        "versions": versions(*packages),
    }


def finish(result: dict, path: Path, *summaries: str) -> int:
    """Write ``result`` to ``path``, print the gRPC summary, the HTTP one and ``summaries``; the exit code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if result["grpc"]:
        print(grpc_summary(result["grpc"]))
        print()
    print(summary(result))
    for text in summaries:
        print(text)
    print(f"results: {path}")
    return 0 if result["passed"] else 1


def versions(*packages: str) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("hypothesis", "schemathesis", "kserve", "fastapi", "starlette", "uvicorn", "orjson", "numpy",
                 "onnxruntime", "requests", "grpcio", "protobuf", *packages):  # fmt: skip
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@contextmanager
def fuzz_server(
    workdir: Path, max_request_bytes: int, workers: int = 2, model: Path | None = None
) -> Iterator[Any]:
    """A small trained model served by ``python -m serving`` on a loopback port."""
    from harness.predictor import running_server, train_small_model

    path = model or train_small_model(workdir).path
    with running_server(
        "--model-uri", str(path), "--workers", str(workers), "--max-request-bytes", str(max_request_bytes),
        workdir=workdir,
    ) as server:  # fmt: skip
        yield server


def add_common_arguments(parser: argparse.ArgumentParser, default_json: Path) -> None:
    """The options every fuzz script takes (this one, ``reliability/fuzz_transformer.py``)."""
    parser.add_argument(
        "--requests", type=int, default=10_000, help="hypothesis-generated requests (default 10,000)"
    )
    parser.add_argument(
        "--grpc-requests",
        type=int,
        default=2_000,
        help="V2 gRPC calls after the HTTP ones (default 2,000; 0: skip)",
    )
    parser.add_argument("--json", type=Path, default=default_json, help=f"results (default {default_json})")
    parser.add_argument("--seed", type=int, default=FuzzConfig.seed)
    parser.add_argument("--concurrency", type=int, default=4, help="client connections (default 4)")
    parser.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.add_argument("--memory-bound-mb", type=float, default=DEFAULT_MEMORY_BOUND_MB)
    parser.add_argument("--model", type=Path, help="an exported .onnx model (default: train a small one)")


def server_log_section(logs: str) -> dict[str, object]:
    """The report's ``server_log``: tracebacks, ERROR lines, restarts logged, the first traceback."""
    return {
        "tracebacks": logs.count("Traceback"),
        "error_lines": sum(" ERROR " in line for line in logs.splitlines()),
        "worker_restarts_logged": logs.count("exited with code"),
        "first_traceback": logs[max(0, logs.find("Traceback") - 300) :][:4000] if "Traceback" in logs else "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, DEFAULT_JSON)
    parser.add_argument(
        "--schemathesis-examples", type=int, default=1_500, help="schemathesis requests (0: skip)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--family", action="append", help="only these HTTP request families (repeatable)")
    parser.add_argument("--grpc-family", action="append", help="only these gRPC call families (repeatable)")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be positive")
    if args.grpc_requests < 0:
        parser.error("--grpc-requests must not be negative")

    config = FuzzConfig(
        requests=args.requests, schemathesis_examples=args.schemathesis_examples, grpc_requests=args.grpc_requests,
        seed=args.seed, concurrency=args.concurrency, max_request_bytes=args.max_request_bytes,
        memory_bound_mb=args.memory_bound_mb, families=args.family, grpc_families=args.grpc_family,
        extra={"workers": args.workers},
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="credit-risk-fuzz-") as folder:
        print(f"training a small model and starting the server (--workers {args.workers}, "
              f"--max-request-bytes {args.max_request_bytes:,}) ...", flush=True)  # fmt: skip
        with fuzz_server(Path(folder), args.max_request_bytes, args.workers, args.model) as server:
            print(
                f"fuzzing {server.url} and gRPC {server.grpc} (server pid {server.process.pid}) ...",
                flush=True,
            )
            result = run_fuzz(
                server.url,
                server.process.pid,
                config,
                log=lambda m: print(m, flush=True),
                server_log=server.logs,
                grpc_target=server.grpc,
            )
            logs = server.logs()
        result["server_log"] = server_log_section(logs)
    return finish(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
