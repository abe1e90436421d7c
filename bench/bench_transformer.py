"""Transformer benchmark: scoring a raw transaction through transformer + Redis + predictor, the
transformer's overhead over calling the predictor directly, backfill and online ingest rates, memory per
customer, and the store's time per transaction as a customer's history grows to 100,000. Run with
``make bench-transformer`` or

    .venv/bin/python bench/bench_transformer.py [--duration 10] [--quick] [--output PATH]

Everything runs on loopback on this machine: a real ``redis-server`` (Debian's, append-only file on, as in
production), the predictor (``python -m serving``, 1 worker, the small model of ``harness.predictor``) and
the transformer (``python -m serving.transformer``, one process), each a process of its own; load from
``wrk`` (one thread, keep-alive, closed loop) in another.

1. **Backfill** of the default history (``ml.synthetic.generate_transactions()``: 95,662 transactions)
   into an empty Redis: training's CSV validation, then the writes (5,000 transactions per atomic script
   call), timed apart; then the store's memory per customer.
2. **Scoring** one transaction (``POST /score``, a customer with a backfilled history) at concurrency 1
   and 8, with the predictor called over HTTP and over gRPC; the predictor alone (``POST /v2/.../infer``, the
   same 26 features as one FP32 tensor) at the same concurrencies: the transformer's overhead is the
   difference. The stage histograms of ``/metrics`` split the transformer's time into store and predictor.
3. **Online ingest** (``POST /v1/transactions``, every request fresh TransactionIds, made by the wrk
   script): batches of 1 and of 100 transactions.
4. **History size**: one customer with 100,000 transactions (Redis and SQLite), the time of one lookup and
   of one ingestion at 100 and at 100,000 stored transactions: bounded (logarithmic), not linear.

Writes ``bench/results/transformer.json`` and prints a table with PASS/FAIL for the issue's goals: p50 ≤
1.5 ms and p99 ≤ 5 ms at concurrency 8, backfill ≥ 50,000 transactions/s into Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.machine import machine  # noqa: E402
from harness.net import http  # noqa: E402
from harness.predictor import running_server, train_small_model  # noqa: E402
from harness.redis import redis_server  # noqa: E402
from harness.transformer import records, running_transformer  # noqa: E402
from harness.wrk import DONE_LUA, ensure_wrk, failed_requests, post_script, run_wrk  # noqa: E402

GOALS = {"p50_ms_c8": 1.5, "p99_ms_c8": 5.0, "backfill_per_second": 50_000}

INGEST_LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer TOKEN"
local template = [[TEMPLATE]]
local batch = BATCH
local counter = 0
request = function()
  local items = {}
  for i = 1, batch do
    counter = counter + 1
    items[i] = string.gsub(template, "SEQ", tostring(counter))
  end
  return wrk.format(nil, nil, nil, "[" .. table.concat(items, ",") .. "]")
end
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wrk(binary: str, script: Path, url: str, connections: int, seconds: float) -> dict:
    argv = [binary, "-t1", f"-c{connections}", f"-d{max(round(seconds), 1)}s", "--timeout", "30s", "--latency",
            "-s", str(script), url]  # fmt: skip
    raw = run_wrk(argv, timeout=seconds + 60)
    errors = failed_requests(raw)
    run_seconds = raw["duration_us"] / 1e6
    return {"requests_per_second": raw["requests"] / run_seconds, "p50_ms": raw["p50_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000, "requests": raw["requests"], "errors": errors}  # fmt: skip


def stage_means(url: str) -> dict[str, float]:
    """Mean seconds of each transformer stage so far, from its /metrics histograms."""
    text = http("GET", f"{url}/metrics").body.decode()
    out = {}
    for stage in ("store_lookup", "predictor"):
        total = re.search(
            rf'^credit_risk_transformer_stage_duration_seconds_sum\{{stage="{stage}"\}} (\S+)$', text, re.M
        )
        count = re.search(
            rf'^credit_risk_transformer_stage_duration_seconds_count\{{stage="{stage}"\}} (\S+)$', text, re.M
        )
        if total and count and float(count.group(1)):
            out[stage] = float(total.group(1)) / float(count.group(1))
    return out


async def history_size_times(url: str, sizes: tuple[int, ...], repeats: int) -> dict[str, dict[str, float]]:
    """µs per lookup and per single ingestion for one customer as its history grows through ``sizes``."""
    from serving.transformer.store import Key, open_store

    store = open_store(url, timeout_seconds=60)
    out: dict[str, dict[str, float]] = {}
    stored = 0
    try:
        for size in sizes:
            while stored < size:
                n = min(5_000, size - stored)
                await store.ingest(
                    [Key("big", f"t{stored + i}", float((stored + i) * 7919 % 100_003)) for i in range(n)]
                )
                stored += n
            lookups = []
            for i in range(repeats):
                started = time.perf_counter()
                await store.lookup([Key("big", f"probe{i}", 50_000.5)])
                lookups.append(time.perf_counter() - started)
            ingests = []
            for i in range(repeats):
                started = time.perf_counter()
                await store.ingest([Key("big", f"x{size}-{i}", float(i))])
                ingests.append(time.perf_counter() - started)
            stored += repeats
            out[str(size)] = {"lookup_us": statistics.median(lookups) * 1e6,
                              "ingest_us": statistics.median(ingests) * 1e6}  # fmt: skip
        out["memory_bytes"] = {"total": float(await store.memory_bytes() or 0)}
    finally:
        await store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="transformer benchmark (see the module docstring)")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="3 s points, 20,000-transaction history")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "transformer.json")
    args = parser.parse_args(argv)
    seconds = 3.0 if args.quick else args.duration
    binary = ensure_wrk(log)

    from ml.synthetic import SyntheticSpec, generate_transactions
    from serving.transformer.backfill import backfill
    from serving.transformer.store import open_store

    results: dict[str, object] = {"machine": machine(), "duration_seconds": seconds}
    with tempfile.TemporaryDirectory(prefix="bench-transformer-") as tmp:
        folder = Path(tmp)
        history = generate_transactions(SyntheticSpec(rows=20_000) if args.quick else None)
        csv = folder / "history.csv"
        history.assign(
            TransactionStartTime=history["TransactionStartTime"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        ).to_csv(csv, index=False)
        log(f"history: {len(history):,} transactions of {history['CustomerId'].nunique():,} customers")
        model = train_small_model(folder)
        with redis_server(folder / "redis") as redis:
            # 1. backfill
            store = open_store(redis.url, timeout_seconds=60)
            empty = asyncio.run(_memory(redis.url))
            started = time.perf_counter()
            report = asyncio.run(backfill(csv, store))
            total_seconds = time.perf_counter() - started
            used = asyncio.run(_memory(redis.url)) - empty
            results["backfill"] = {
                "transactions": report.transactions, "customers": report.customers, "added": report.added,
                "validation_seconds": report.validation_seconds, "write_seconds": report.write_seconds,
                "write_per_second": report.transactions / report.write_seconds,
                "end_to_end_per_second": report.transactions / total_seconds,
                "store_bytes": used, "bytes_per_customer": used / report.customers,
                "bytes_per_transaction": used / report.transactions,
            }  # fmt: skip
            log(f"backfill: {results['backfill']}")
            # 2. scoring
            counts = history["CustomerId"].value_counts()
            customer = counts.index[len(counts) // 10]  # an engaged customer, not the largest
            sample = history[history["CustomerId"] == customer].iloc[-1:].copy()
            sample["TransactionId"] = "bench-score-1"
            body = folder / "score.json"
            body.write_text(json.dumps(records(sample)[0]))
            score_lua = folder / "score.lua"
            score_lua.write_text(post_script(body, {"Content-Type": "application/json"}))
            with running_server("--model-uri", str(model.path), workdir=folder) as predictor:
                host = predictor.url.removeprefix("http://")
                results["scoring"] = {}
                for protocol, address in (("v2", host), ("grpc-v2", predictor.grpc)):
                    with running_transformer(
                        address, redis.url, "--predictor-protocol", protocol, workdir=folder
                    ) as t:
                        first = json.loads(http("POST", f"{t.url}/score", json.loads(body.read_text())).body)
                        features = [first["features"][k] for k in first["features"]]
                        points = {}
                        for c in (1, 8):
                            wrk(binary, score_lua, f"{t.url}/score", c, 2)  # warm-up
                            points[f"c{c}"] = wrk(binary, score_lua, f"{t.url}/score", c, seconds)
                            log(f"transformer ({protocol}) c={c}: {points[f'c{c}']}")
                        points["stages_mean_seconds"] = stage_means(t.url)
                        points["history_count"] = first["features"]["transaction_count"]
                        if protocol == "v2":
                            # 3. online ingest
                            template = dict(records(sample)[0])
                            template["TransactionId"] = "bench-ingest-SEQ"
                            template["CustomerId"] = "bench-ingest-customer-SEQ"
                            ingest = {}
                            for batch in (1, 100):
                                script = folder / f"ingest-{batch}.lua"
                                script.write_text(INGEST_LUA.replace("TOKEN", t.token).replace(
                                    "TEMPLATE", json.dumps(template).replace("SEQ", f"{batch}-SEQ")
                                ).replace("BATCH", str(batch)) + DONE_LUA)  # fmt: skip
                                point = wrk(binary, script, f"{t.url}/v1/transactions", 8, seconds)
                                point["transactions_per_second"] = point["requests_per_second"] * batch
                                ingest[f"batch_{batch}"] = point
                                log(f"ingest batch {batch}: {point}")
                            results["ingest"] = ingest
                    results["scoring"][protocol] = points
                # the predictor alone, on the same features
                direct_body = folder / "direct.json"
                direct_body.write_text(json.dumps({"inputs": [{"name": "features", "datatype": "FP32",
                                                               "shape": [1, 26], "data": features}]}))  # fmt: skip
                direct_lua = folder / "direct.lua"
                direct_lua.write_text(post_script(direct_body, {"Content-Type": "application/json"}))
                direct = {}
                for c in (1, 8):
                    wrk(binary, direct_lua, f"{predictor.url}/v2/models/credit-risk/infer", c, 2)
                    direct[f"c{c}"] = wrk(
                        binary, direct_lua, f"{predictor.url}/v2/models/credit-risk/infer", c, seconds
                    )
                    log(f"predictor alone c={c}: {direct[f'c{c}']}")
                results["predictor_alone"] = direct
            # 4. history size
            sizes = (100, 10_000) if args.quick else (100, 100_000)
            results["history_size"] = {
                "redis": asyncio.run(history_size_times(redis.url.replace("/0", "/1"), sizes, 200)),
                "sqlite": asyncio.run(history_size_times(f"sqlite:///{folder / 'big.db'}", sizes, 200)),
            }
            log(f"history size: {results['history_size']}")

    http_c8 = results["scoring"]["v2"]["c8"]
    checks = {
        "p50_ms_c8": (http_c8["p50_ms"], http_c8["p50_ms"] <= GOALS["p50_ms_c8"]),
        "p99_ms_c8": (http_c8["p99_ms"], http_c8["p99_ms"] <= GOALS["p99_ms_c8"]),
        "backfill_per_second": (results["backfill"]["write_per_second"],
                                results["backfill"]["write_per_second"] >= GOALS["backfill_per_second"]),
    }  # fmt: skip
    results["goals"] = {k: {"value": v, "goal": GOALS[k], "pass": ok} for k, (v, ok) in checks.items()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print_table(results)
    return 0


async def _memory(url: str) -> int:
    from serving.transformer.store import open_store

    store = open_store(url)
    try:
        return int(await store.memory_bytes() or 0)
    finally:
        await store.close()


def print_table(results: dict) -> None:
    b = results["backfill"]
    print(f"backfill: {b['transactions']:,} transactions, {b['customers']:,} customers: validation "
          f"{b['validation_seconds']:.2f} s, writes {b['write_seconds']:.2f} s = {b['write_per_second']:,.0f}/s "
          f"({b['end_to_end_per_second']:,.0f}/s end to end); {b['bytes_per_customer']:,.0f} B per customer, "
          f"{b['bytes_per_transaction']:,.0f} B per transaction")  # fmt: skip
    print(f"{'one transaction':<32} {'c=1 p50/p99 ms':>16} {'req/s':>8} {'c=8 p50/p99 ms':>16} {'req/s':>8}")
    rows = [(f"transformer → predictor ({p})", results["scoring"][p]) for p in results["scoring"]]
    rows.append(("predictor alone (26 features)", results["predictor_alone"]))
    for name, point in rows:
        one, eight = point["c1"], point["c8"]
        print(f"{name:<32} {one['p50_ms']:>7.3f}/{one['p99_ms']:<8.3f} {one['requests_per_second']:>8,.0f} "
              f"{eight['p50_ms']:>7.3f}/{eight['p99_ms']:<8.3f} {eight['requests_per_second']:>8,.0f}")  # fmt: skip
    for p, point in results["scoring"].items():
        stages = point.get("stages_mean_seconds", {})
        print(f"  stages ({p}): " + ", ".join(f"{k} {v * 1000:.3f} ms" for k, v in stages.items()))
    for batch, point in results.get("ingest", {}).items():
        print(f"ingest {batch}: {point['transactions_per_second']:,.0f} transactions/s "
              f"(p50 {point['p50_ms']:.2f} ms, {point['errors']} errors)")  # fmt: skip
    for backend, times in results["history_size"].items():
        sizes = [k for k in times if k != "memory_bytes"]
        print(f"history size ({backend}): " + ", ".join(
            f"{int(k):,} stored: lookup {times[k]['lookup_us']:.0f} µs, ingest {times[k]['ingest_us']:.0f} µs" for k in sizes))  # fmt: skip
    for name, goal in results["goals"].items():
        print(f"{'PASS' if goal['pass'] else 'FAIL'} {name}: {goal['value']:,.3f} (goal {goal['goal']:,})")


if __name__ == "__main__":
    sys.exit(main())
