#!/usr/bin/env python
"""Load and graceful-shutdown experiments on the transformer, in front of a real predictor and a real
Redis. Run with

    .venv/bin/python reliability/load_transformer.py [--seconds 30] [--probe-seconds 5] [--json OUT]

1. **``/score`` under load.** The store first gets a history (``--customers`` customers, five
   transactions each, through ``POST /v1/transactions``); then ``wrk`` (one thread, keep-alive, closed
   loop: :class:`reliability.load.Wrk`) sends one fresh transaction of one of those customers per request
   at concurrency 1, 2, 4, 8, 16 and 32 for ``--probe-seconds`` each, and ``--seconds`` at the knee (the
   lowest concurrency within 5 % of the best throughput, :func:`reliability.load.choose_knee`). Zero
   failed requests allowed (non-2xx, socket errors, timeouts). req/s and p50 / p99 from wrk; the CPU of
   the transformer, the predictor and Redis sampled from ``/proc`` — on this machine the three and wrk
   share the cores.
2. **SIGTERM under ingestion load.** A fresh transformer on the same store each time, loaded by the
   predictor experiments' asyncio client (:class:`reliability.load.KeepAliveClient`): many kept-alive
   connections, each posting batches of fresh transactions (with the bearer token) and recording which
   were acknowledged (200). SIGTERM mid-load, judged as the predictor's experiments are
   (:func:`reliability.load.judge_shutdown`: requests in flight answered 200, none reset on a kept-alive
   connection, new connections refused, the exit within the grace period with code 0); then a new
   transformer on the same store, and every acknowledged batch must be there: each of its transactions in
   the store, and each customer's ``transaction_count`` (from ``/score`` on the new transformer) exactly
   the stored transactions — the acknowledged ones, plus any of a batch that got no answer (written or
   not: the client cannot know), and nothing else. Experiments: 5-transaction batches on 64 connections,
   200-transaction batches on 16, and one ingestion stalled half-way through its body (the exit waits the
   grace period, 5 s, and no longer; nothing acknowledged is lost).

Prints tables, writes ``reliability/results/load_transformer.json`` and exits 1 when a check fails. Every
process started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.net import http, wait_ready  # noqa: E402
from harness.predictor import running_server, train_small_model  # noqa: E402
from harness.redis import RedisServer, redis_server  # noqa: E402
from harness.transformer import TOKEN, running_transformer, transaction  # noqa: E402
from reliability.load import (  # noqa: E402
    CONCURRENCIES,
    GroupSampler,
    Request,
    ShutdownResult,
    ShutdownSpec,
    Wrk,
    choose_knee,
    judge_shutdown,
    reap,
    report_header,
    say,
    shutdown_table,
    shutdown_under_load,
    write_report,
)
from reliability.store_state import stored  # noqa: E402

RESULTS = ROOT / "reliability" / "results" / "load_transformer.json"
SCORE, INGEST = "/score", "/v1/transactions"
ACKNOWLEDGED = b'"received"'  # in the body of an ingestion's 200
CUSTOMERS_PER_CONNECTION = 8


# ---------------------------------------------------------------------------------------------- requests


def ingest_batches(tag: str, connections: int, count: int, size: int, token: str = TOKEN) -> list[Request]:
    """``count`` ingestion requests of ``size`` fresh transactions each. Request ``i`` goes out on
    connection ``i % connections`` (:class:`~reliability.load.KeepAliveClient`'s order) and holds
    transactions of one customer of that connection's own ``CUSTOMERS_PER_CONNECTION``."""
    auth = (("Authorization", f"Bearer {token}"),)
    out = []
    for i in range(count):
        slot, turn = i % connections, i // connections
        customer = f"CustomerId_{tag}_{slot}_{turn % CUSTOMERS_PER_CONNECTION}"
        batch = [
            transaction(customer, turn + t, TransactionId=f"TransactionId_{tag}_{i}_{t}", Amount=100.0 + t,
                        Value=100 + t)
            for t in range(size)
        ]  # fmt: skip
        out.append(Request(INGEST, orjson.dumps(batch), auth))
    return out


def batch_keys(request: Request) -> list[tuple[str, str]]:
    return [(t["CustomerId"], t["TransactionId"]) for t in orjson.loads(request.body)]


def ingest(url: str, transactions: list[dict], token: str = TOKEN, batch: int = 500) -> None:
    for start in range(0, len(transactions), batch):
        status, _, body = http("POST", url + INGEST, transactions[start : start + batch],
                               headers={"Authorization": f"Bearer {token}"}, timeout=60)  # fmt: skip
        if status != 200:
            raise RuntimeError(f"ingestion answered {status}: {body[:300]!r}")


def score_requests(tag: str, customers: int, history: int = 5) -> tuple[list[dict], list[Request]]:
    """A history of ``history`` transactions for each of ``customers`` customers, and one fresh transaction
    per customer as a ``/score`` body (single-line JSON, for wrk)."""
    names = [f"CustomerId_{tag}_{c}" for c in range(customers)]
    past = [transaction(n, k, TransactionId=f"TransactionId_{tag}_{c}_{k}") for c, n in enumerate(names)
            for k in range(history)]  # fmt: skip
    fresh = [
        Request(SCORE, orjson.dumps(transaction(n, history, TransactionId=f"TransactionId_{tag}_{c}_new")))
        for c, n in enumerate(names)
    ]
    return past, fresh


# ---------------------------------------------------------------------------------------------- /score load


def stack_point(wrk: Wrk, url: str, pgids: dict[str, int], connections: int, seconds: int) -> dict:
    """One wrk run, with the CPU and memory of each process group of the stack sampled meanwhile."""
    samplers = {name: GroupSampler(pgid) for name, pgid in pgids.items()}
    for sampler in samplers.values():
        sampler.__enter__()
    try:
        result = wrk.run(url, connections, seconds)
    finally:
        for sampler in samplers.values():
            sampler.__exit__()
    return {**result, "server": samplers["transformer"].summary(),
            "stack": {name: s.summary() for name, s in samplers.items()}}  # fmt: skip


def cpu(point: dict, name: str) -> float:
    return point["stack"][name]["cpu_percent_total"]


def score_table(points: list[dict], sustained: dict | None, knee: int | None) -> str:
    lines = [
        f"{'conc':>5} {'seconds':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'failed':>7} "
        f"{'transformer CPU %':>18} {'predictor CPU %':>16} {'redis CPU %':>12}"
    ]
    rows = [(f"{p['connections']}{'*' if p['connections'] == knee else ''}", p) for p in points]
    if sustained:
        rows.append((f"={sustained['connections']}", sustained))
    for label, p in rows:
        lines.append(
            f"{label:>5} {p['duration_us'] / 1e6:>7.1f} {p['requests_per_second']:>8.0f} {p['p50_ms']:>8.2f} "
            f"{p['p99_ms']:>8.2f} {p['p999_ms']:>9.2f} {p['failed']:>7} {cpu(p, 'transformer'):>18.0f} "
            f"{cpu(p, 'predictor'):>16.0f} {cpu(p, 'redis'):>12.0f}"
        )
    return "\n".join(lines)


def score_load(url: str, pgids: dict[str, int], workdir: Path, customers: int, probe_seconds: int,
               seconds: int, p99_budget_ms: float, concurrencies: tuple[int, ...] = CONCURRENCIES) -> dict:  # fmt: skip
    """The knee probe and the sustained hold on ``/score`` (the store gets its history first)."""
    history, requests = score_requests(f"load{int(time.time())}", customers)
    started = time.perf_counter()
    ingest(url, history)
    backfill = time.perf_counter() - started
    status, _, body = http("POST", url + SCORE, orjson.loads(requests[0].body))
    answer = orjson.loads(body) if status == 200 else {}
    if status != 200 or answer.get("features", {}).get("transaction_count") != 6:
        raise RuntimeError(f"/score does not see the history: {status} {body[:300]!r}")
    wrk = Wrk(workdir, requests)
    say("warm-up: 2 s at concurrency 4")
    wrk.run(url, 4, 2)
    points = []
    for c in concurrencies:
        point = stack_point(wrk, url, pgids, c, probe_seconds)
        points.append(point)
        say(f"  c={c:<3} {point['requests_per_second']:>7.0f} req/s  p50 {point['p50_ms']:.2f} ms  p99 "
            f"{point['p99_ms']:.2f} ms  failed {point['failed']}  CPU % transformer {cpu(point, 'transformer'):.0f} "
            f"predictor {cpu(point, 'predictor'):.0f} redis {cpu(point, 'redis'):.0f}")  # fmt: skip
    knee = choose_knee(points, p99_budget_ms)["connections"]
    sustained = None
    if seconds > 0:
        say(f"knee: concurrency {knee}; {seconds} s there")
        sustained = stack_point(wrk, url, pgids, knee, seconds)
        say(f"  sustained c={knee}: {sustained['requests']} requests, {sustained['requests_per_second']:.0f} req/s, "
            f"p50 {sustained['p50_ms']:.2f} ms, p99 {sustained['p99_ms']:.2f} ms, failed {sustained['failed']}")  # fmt: skip
    return {
        "mix": f"POST /score, one fresh transaction of one of {customers} customers with 5 stored transactions "
        f"each ({len(requests)} distinct bodies)",
        "generator": "wrk -t1 (separate process), keep-alive, closed loop",
        "history_ingest_seconds": round(backfill, 2),
        "probe": points,
        "knee_connections": knee,
        "sustained": sustained,
    }


# ---------------------------------------------------------------------------------------------- SIGTERM


def default_specs(grace: int) -> list[ShutdownSpec]:
    return [
        ShutdownSpec("ingest-5-per-batch", "parent", workers=1, grace=grace, connections=64, rows=5, load_seconds=3.0),
        ShutdownSpec("ingest-200-per-batch", "parent", workers=1, grace=grace, connections=16, rows=200,
                     load_seconds=3.0),
        ShutdownSpec("ingest-stalled-grace5", "parent", workers=1, grace=5, connections=16, rows=5, load_seconds=2.0,
                     stall=True),
    ]  # fmt: skip


def verify_acknowledged(url: str, store_url: str, requests: list[Request], records: list,
                        prefix: str) -> dict[str, object]:  # fmt: skip
    """After the experiment, on a new transformer (``url``) over the same store: every transaction of every
    acknowledged batch stored; nothing stored that no batch sent; each customer's ``transaction_count`` from
    ``/score`` the stored transactions, and exactly the acknowledged ones where every batch of the customer
    was answered. ``prefix``: the experiment's customer ids start with it."""
    sent = [r.request for r in records if r.sent is not None]
    acknowledged = {r.request for r in records if r.outcome == "ok"}
    unanswered = {r.request for r in records if r.outcome != "ok" and r.sent is not None} - acknowledged
    sent_keys = {k for i in acknowledged | unanswered for k in batch_keys(requests[i])}
    ack_keys = {k for i in acknowledged for k in batch_keys(requests[i])}
    unknown_keys = sent_keys - ack_keys
    state = {c: set(t) for c, t in stored(store_url).items() if c.startswith(prefix)}
    stored_keys = {(c, t) for c, ts in state.items() for t in ts}
    lost = ack_keys - stored_keys
    phantom = stored_keys - sent_keys
    customers = sorted({c for c, _ in sent_keys})
    expected = Counter(c for c, _ in ack_keys)
    uncertain = {c for c, _ in unknown_keys}
    body = [transaction(c, 99, TransactionId=f"TransactionId_probe_{n}") for n, c in enumerate(customers)]
    counts: dict[str, int] = {}
    for start in range(0, len(body), 500):
        status, _, content = http("POST", url + SCORE, body[start : start + 500], timeout=60)
        if status != 200:
            raise RuntimeError(f"/score on the new transformer answered {status}: {content[:300]!r}")
        for answer in orjson.loads(content):
            counts[answer["transaction_id"]] = int(answer["features"]["transaction_count"]) - 1
    scored = {c: counts[f"TransactionId_probe_{n}"] for n, c in enumerate(customers)}
    wrong_counts = [
        {"customer": c, "scored_history": scored[c], "stored": len(state.get(c, ())), "acknowledged": expected[c]}
        for c in customers
        if scored[c] != len(state.get(c, ())) or (c not in uncertain and scored[c] != expected[c])
        or scored[c] < expected[c]
    ]  # fmt: skip
    checks = {
        "every_acknowledged_transaction_stored": not lost,
        "nothing_stored_that_was_not_sent": not phantom,
        "transaction_count_per_customer_exact": not wrong_counts,
    }
    return {
        "batches_sent": len(acknowledged | unanswered),
        "batches_acknowledged": len(acknowledged),
        "batches_unanswered": len(unanswered),
        "transactions_acknowledged": len(ack_keys),
        "transactions_of_unanswered_batches": len(unknown_keys),
        "of_which_stored": len(unknown_keys & stored_keys),
        "transactions_stored": len(stored_keys),
        "customers": len(customers),
        "customers_exact": len(customers) - len(uncertain),
        "lost": sorted(lost)[:10],
        "phantom": sorted(phantom)[:10],
        "wrong_counts": wrong_counts[:10],
        "batches_sent_twice": len(sent) - len(set(sent)),  # the client cycled through its requests
        "checks": checks,
    }


def ingest_shutdown_experiment(spec: ShutdownSpec, predictor_host: str, store: RedisServer, workdir: Path,
                               exit_tolerance: float = 2.0, count: int | None = None) -> dict:  # fmt: skip
    """A fresh transformer on ``store``, ingestion load, SIGTERM; then a new transformer on the same store
    and the acknowledged batches checked there. Returns ``{"shutdown": ..., "store": ..., "passed": ...}``."""
    tag = f"{spec.name.replace('-', '')}{int(time.time() * 1000) % 10**8}"
    # More fresh batches than the load can send (``batches_sent_twice`` says if it did not).
    requests = ingest_batches(
        tag, spec.connections, count or max(spec.connections * 20, 150_000 // spec.rows), spec.rows
    )
    stall = ingest_batches(tag + "stall", 1, 1, 2_000)[0] if spec.stall else None
    args = ("--grace-period-seconds", str(spec.grace))
    with running_transformer(predictor_host, store.url, *args, workdir=workdir) as t:
        wait_ready(t.url + "/v2/health/ready", "the transformer", 30, t.process, t.log)
        port = int(t.url.rsplit(":", 1)[1])
        run = asyncio.run(shutdown_under_load(t.process, port, spec, requests, stall, ok_body=ACKNOWLEDGED))
        survivors, exit_code = reap(t.process)
        logs = t.logs()
    result: ShutdownResult = judge_shutdown(spec, run, survivors, exit_code, logs, exit_tolerance)
    with running_transformer(predictor_host, store.url, workdir=workdir) as again:
        wait_ready(again.url + "/v2/health/ready", "the new transformer", 30, again.process, again.log)
        check = verify_acknowledged(again.url, store.url, requests, run[0].records, f"CustomerId_{tag}_")
    passed = result.passed and all(check["checks"].values())
    return {"shutdown": asdict(result), "store": check, "passed": passed}


def store_table(experiments: list[dict]) -> str:
    lines = [f"{'experiment':<24} {'batches ok/sent':>16} {'unanswered':>10} {'transactions acked':>18} "
             f"{'stored':>7} {'lost':>5} {'phantom':>7} {'counts exact':>12}"]  # fmt: skip
    for e in experiments:
        s = e["store"]
        lines.append(
            f"{e['shutdown']['name']:<24} {s['batches_acknowledged']:>7}/{s['batches_sent']:<8} {s['batches_unanswered']:>10} "
            f"{s['transactions_acknowledged']:>18} {s['transactions_stored']:>7} {len(s['lost']):>5} "
            f"{len(s['phantom']):>7} {'yes' if s['checks']['transaction_count_per_customer_exact'] else 'NO':>12}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=int, default=30, help="sustained /score load at the knee (default 30)"
    )
    parser.add_argument("--probe-seconds", type=int, default=5, help="per knee-probe point (default 5)")
    parser.add_argument("--p99-budget-ms", type=float, default=50.0, help="p99 a knee point may reach")
    parser.add_argument(
        "--customers", type=int, default=2_000, help="customers with a history (default 2,000)"
    )
    parser.add_argument("--grace", type=int, default=30, help="--grace-period-seconds (default 30)")
    parser.add_argument("--model", type=Path, help="an ONNX model (default: train a small one)")
    parser.add_argument(
        "--json", type=Path, default=RESULTS, help=f"results (default {RESULTS.relative_to(ROOT)})"
    )
    parser.add_argument("--skip-load", action="store_true", help="only the SIGTERM experiments")
    parser.add_argument("--skip-shutdown", action="store_true", help="only the /score load")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="reliability-load-transformer-"))
    report = report_header(args)
    failures: list[str] = []
    try:
        say("training a small model; starting the predictor (--workers 1) and redis-server")
        model = args.model or train_small_model(workdir, rows=6_000).path
        with (
            running_server("--model-uri", str(model), "--workers", "1", workdir=workdir) as predictor,
            redis_server(workdir / "redis") as store,
        ):
            host = predictor.url.removeprefix("http://")
            if not args.skip_load:
                with running_transformer(host, store.url, workdir=workdir) as t:
                    wait_ready(t.url + "/v2/health/ready", "the transformer", 30, t.process, t.log)
                    pgids = {"transformer": t.process.pid, "predictor": predictor.process.pid,
                             "redis": store.process.pid}  # fmt: skip
                    load = score_load(t.url, pgids, workdir, args.customers, args.probe_seconds, args.seconds,
                                      args.p99_budget_ms)  # fmt: skip
                report["score_load"] = load
                for point in [*load["probe"], *([load["sustained"]] if load["sustained"] else [])]:
                    if point["failed"]:
                        failures.append(f"/score c={point['connections']}: {point['failed']} failed requests")
                print(score_table(load["probe"], load["sustained"], load["knee_connections"]))
            if not args.skip_shutdown:
                experiments = []
                for spec in default_specs(args.grace):
                    say(f"SIGTERM under ingestion: {spec.name} ({spec.connections} connections, {spec.rows} "
                        f"transactions per batch, grace {spec.grace} s{', one stalled' if spec.stall else ''})")  # fmt: skip
                    experiment = ingest_shutdown_experiment(spec, host, store, workdir)
                    experiments.append(experiment)
                    shutdown, check = experiment["shutdown"], experiment["store"]
                    say(f"  exit {shutdown['exit_seconds']} s (code {shutdown['exit_code']}); in flight "
                        f"{shutdown['in_flight_ok']}/{shutdown['in_flight_at_sigterm']} ok; {check['batches_acknowledged']} "
                        f"batches acknowledged, {len(check['lost'])} lost; checks {shutdown['checks']} {check['checks']}")  # fmt: skip
                    failures += [
                        f"{spec.name}: {n}"
                        for n, ok in {**shutdown["checks"], **check["checks"]}.items()
                        if not ok
                    ]
                report["ingest_shutdown"] = experiments
                print(shutdown_table([ShutdownResult(**e["shutdown"]) for e in experiments]))
                print(store_table(experiments))
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return write_report(report, failures, args.json)


if __name__ == "__main__":
    sys.exit(main())
