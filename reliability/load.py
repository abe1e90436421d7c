"""Load and graceful-shutdown experiments on the predictor with ``--workers 2``. Run with

    .venv/bin/python reliability/load.py [--seconds 60] [--json OUT] [--probe-seconds 5] [--model PATH]

1. **Knee probe.** ``wrk`` (Debian package, a separate process, one thread, keep-alive, closed loop) at
   concurrency 1, 2, 4, 8, 16 and 32 for ``--probe-seconds`` each. The knee is the lowest concurrency whose
   throughput is within 5 % of the best point's and whose p99 stays under ``--p99-budget-ms``. The workers
   share one listening socket and the first to wake accepts every pending connection, so wrk's burst of
   connects often lands all on one worker (half the capacity): a point where one worker's CPU is under half
   the other's is *lopsided* and measured again with new connections (``--balance-retries``); every attempt
   is kept in the JSON and the table shows the lopsided ones.
2. **Sustained load.** ``--seconds`` (default 60) of ``wrk`` at the knee (once more if lopsided). Requests:
   realistic rows (unseen customers of the training population, ``X_fresh``), 1-row V2 JSON infer bodies
   with every tenth request a ``/predict`` body, all different. Zero failed requests allowed: non-2xx,
   socket (connect, read, write) errors and timeouts. Throughput and p50 / p99 / p99.9 from wrk; the
   server's CPU (per process, % of one core) and RSS (peak) sampled from ``/proc``, and the share of the
   machine's CPU other processes took meanwhile (a disturbed point is measured again, like a lopsided one).
   Closed-loop latencies understate the tail past the knee (coordinated omission): read them at the knee.
3. **Shutdown under load.** A fresh server each time, loaded by an asyncio client (in this process) that
   holds many keep-alive connections and records every request: when it was written, when it ended, and
   how: ``ok`` (200), ``status`` (another status), ``refused`` (connect refused), ``connect_error``,
   ``send_failed``, ``closed_before_response`` (EOF before a byte), ``reset`` (ECONNRESET waiting for the
   answer), ``truncated``, ``timeout``, ``bad_body``. Then SIGTERM — to the parent (PID 1 in the container,
   as Kubernetes sends it) or to the whole process group — and the time until the parent exits.

   Judged per experiment: every request written before the SIGTERM (*in flight*) ends ``ok``; every
   request written after it on a connection kept alive from before ends ``ok`` or finds its connection
   closed knowingly (``Connection: close``, or a FIN seen before writing) — never reset: Kubernetes stops
   sending *new* connections to a terminating pod after the preStop sleep, but kept-alive ones go on
   carrying requests. New connections after the SIGTERM are expected to be refused (or reset at once from
   the closing listener's backlog), not held unanswered until the parent exits (judged where worker event
   loops are responsive: not under 10,000-row batches, where the wait is reported). The parent exits
   within the grace period (a stalled request's exit: within grace + ``--exit-tolerance``), with code 0 and
   no process of its group left. Experiments: 1-row load with SIGTERM to the parent and to the group; slow
   load (10,000-row batches, seconds of queued work); one request stalled half-way through its body (it
   cannot finish, so the exit must wait the whole grace period — and no longer); the chart's default,
   ``--workers 1``.
4. **The chart.** ``helm template`` in deployment mode: terminationGracePeriodSeconds must equal
   preStopSleepSeconds + gracePeriodSeconds + terminationMarginSeconds, the container must get
   ``--grace-period-seconds`` = gracePeriodSeconds, and the slowest measured exit (the stalled request's)
   must overshoot the grace period by less than the margin.

Prints tables, writes ``reliability/results/load.json`` (``--json``: every point, attempt and request
outcome count) and exits 1 when any check fails: a failed request under load, a shutdown check above, or
the chart. ``--serving-root DIR`` serves the ``serving`` package of another checkout (to measure a fix with
the same experiments). Every server started is stopped (its process group) on any exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.machine import machine  # noqa: E402
from harness.net import http  # noqa: E402
from harness.predictor import running_server, train_small_model, v2_body  # noqa: E402
from harness.processes import group_pids, proc_stat, pss_bytes, role  # noqa: E402
from harness.wrk import NoiseMeter, ensure_wrk, run_wrk  # noqa: E402

RESULTS = ROOT / "reliability" / "results" / "load.json"
MODEL_NAME = "credit-risk"
INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"
PREDICT_PATH = "/predict"
CONCURRENCIES = (1, 2, 4, 8, 16, 32)
PREDICT_EVERY = 10  # one request in ten is a /predict body
KNEE_WITHIN = 0.95  # the knee: lowest concurrency within 5 % of the best throughput


def say(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()  # besides Host, Content-Type and Content-Length


def predict_body(row: np.ndarray) -> bytes:
    return json.dumps({"features": [float(v) for v in np.asarray(row, dtype=np.float32)]}).encode()


def mixed_requests(X: np.ndarray, count: int = 2000, seed: int = 0) -> list[Request]:
    """``count`` distinct 1-row requests on rows of ``X``: V2 infer, with every tenth a ``/predict``."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(X), size=min(count, len(X)), replace=False)
    return [
        Request(PREDICT_PATH, predict_body(X[i]))
        if k % PREDICT_EVERY == PREDICT_EVERY - 1
        else Request(INFER_PATH, v2_body(X[i : i + 1]))
        for k, i in enumerate(picks)
    ]


def batch_requests(X: np.ndarray, rows: int, count: int = 4, seed: int = 1) -> list[Request]:
    """``count`` V2 infer requests of ``rows`` rows each (rows drawn with replacement when X is smaller)."""
    rng = np.random.default_rng(seed)
    return [
        Request(INFER_PATH, v2_body(X[rng.choice(len(X), size=rows, replace=rows > len(X))]))
        for _ in range(count)
    ]


def check_answers(url: str, requests: list[Request]) -> None:
    """Each kind of request answers 200 with the expected outputs before anything is timed."""
    seen = set()
    for request in requests:
        if request.path in seen:
            continue
        status, _, body = http("POST", url + request.path, request.body, {"Content-Type": "application/json"})
        if status != 200 or b"probability" not in body:
            raise RuntimeError(f"POST {request.path} answered {status}: {body[:300]!r}")
        seen.add(request.path)


# ---------------------------------------------------------------------------------------------- processes


class GroupSampler:
    """CPU and RSS of every process in the server's process group, sampled every ``interval`` seconds in a
    thread: CPU as % of one core over the block (per process), RSS peak per process and of the sum."""

    def __init__(self, pgid: int, interval: float = 0.5) -> None:
        import threading

        self.pgid, self.interval = pgid, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.rss_peak: dict[int, int] = {}
        self.total_rss_peak = 0
        self.total_pss_peak = 0
        self.roles: dict[int, str] = {}

    def _sample(self) -> None:
        total = total_pss = 0
        for pid in group_pids(self.pgid):
            stat = proc_stat(pid)
            if stat is None:
                continue
            self.first.setdefault(pid, stat.cpu_seconds)
            self.last[pid] = stat.cpu_seconds
            self.rss_peak[pid] = max(self.rss_peak.get(pid, 0), stat.rss_bytes)
            self.roles.setdefault(pid, role(pid, self.pgid))
            total += stat.rss_bytes
            total_pss += pss_bytes(pid)
        self.total_rss_peak = max(self.total_rss_peak, total)
        self.total_pss_peak = max(self.total_pss_peak, total_pss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> GroupSampler:
        self._sample()
        self._started = time.monotonic()
        self._noise = NoiseMeter(self.pgid).__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.wall = time.monotonic() - self._started
        self._noise.__exit__()
        self.foreign_share = self._noise.foreign

    def summary(self) -> dict[str, object]:
        processes = []
        for pid in sorted(self.last):
            processes.append(
                {
                    "pid": pid,
                    "role": self.roles.get(pid, "?"),
                    "cpu_percent_of_one_core": round(100 * (self.last[pid] - self.first[pid]) / self.wall, 1),
                    "rss_peak_mib": round(self.rss_peak[pid] / 2**20, 1),
                }
            )
        workers = [p for p in processes if p["role"] == "worker"]
        return {
            "seconds": round(self.wall, 2),
            # Share of the machine's CPU used by other processes than the server, wrk and this script:
            # above a few percent, the numbers are disturbed.
            "foreign_cpu_share": round(self.foreign_share, 3),
            "cpu_percent_total": round(sum(p["cpu_percent_of_one_core"] for p in processes), 1),
            "cpu_percent_workers": [p["cpu_percent_of_one_core"] for p in workers],
            "rss_peak_total_mib": round(self.total_rss_peak / 2**20, 1),  # shared pages counted per process
            "pss_peak_total_mib": round(self.total_pss_peak / 2**20, 1),  # shared pages counted once
            "rss_peak_worker_mib": max((p["rss_peak_mib"] for p in workers), default=0.0),
            "processes": processes,
        }


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# Environment of the servers started: ``--serving-root`` points PYTHONPATH at another checkout (a fix to measure).
SERVER_ENV: dict[str, str] = {}


@contextlib.contextmanager
def server(model: Path, workdir: Path, *args: str) -> Iterator:
    """``harness.predictor.running_server`` plus a SIGKILL of its process group on the way out, so no
    worker outlives an experiment whatever happened to the parent."""
    with running_server(
        "--model-uri", str(model), *args, env=SERVER_ENV or None, workdir=workdir, ready_timeout=120
    ) as srv:
        try:
            yield srv
        finally:
            if srv.process.poll() is not None:
                kill_group(srv.process.pid)
    kill_group(srv.process.pid)


# ---------------------------------------------------------------------------------------------- wrk

LUA = r"""
-- Cycles through distinct pre-formatted requests (one "PATH<TAB>BODY" per line of BODIES) and counts
-- non-2xx answers per thread; done() prints one JSON line.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  reqs = {}
  for line in io.lines("BODIES") do
    local tab = line:find("\t", 1, true)
    reqs[#reqs + 1] = wrk.format("POST", line:sub(1, tab - 1), {["Content-Type"] = "application/json"},
                                 line:sub(tab + 1))
  end
  idx = math.random(#reqs)
  non2xx = 0
end
function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non2xx") end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "non2xx": %d, "status_errors": %d, '
    .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, "mean_us": %.1f, '
    .. '"p50_us": %.1f, "p90_us": %.1f, "p99_us": %.1f, "p999_us": %.1f, "max_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, bad, e.status, e.connect, e.read, e.write, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""


class Wrk:
    """``wrk -t1 -cC -dSs`` over the given requests, in a separate process."""

    def __init__(self, folder: Path, requests: list[Request]) -> None:
        self.binary = ensure_wrk(say)
        bodies = folder / "wrk-bodies.tsv"
        with bodies.open("wb") as out:
            for r in requests:
                if b"\n" in r.body or b"\t" in r.path.encode():
                    raise ValueError("request bodies must be single-line")
                out.write(r.path.encode() + b"\t" + r.body + b"\n")
        self.script = folder / "wrk-mixed.lua"
        self.script.write_text(LUA.replace("BODIES", str(bodies)))

    def run(self, url: str, connections: int, seconds: int, timeout_s: int = 10) -> dict[str, float]:
        argv = [self.binary, "-t1", f"-c{connections}", f"-d{max(int(seconds), 1)}s", "--timeout",
                f"{timeout_s}s", "--latency", "-s", str(self.script), url]  # fmt: skip
        raw = run_wrk(argv, timeout=seconds + 60)
        wall = raw["duration_us"] / 1e6
        # status_errors (>= 400) are a subset of non2xx; socket errors and timeouts are separate.
        failed = (
            raw["non2xx"] + raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
        )
        return {
            "connections": connections,
            **raw,
            "failed": failed,
            "requests_per_second": round(raw["requests"] / wall, 1) if wall else 0.0,
            "p50_ms": raw["p50_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000,
            "p999_ms": raw["p999_us"] / 1000,
            "max_ms": raw["max_us"] / 1000,
        }


def measured_wrk(wrk: Wrk, url: str, pgid: int, connections: int, seconds: int) -> dict[str, object]:
    with GroupSampler(pgid) as sampler:
        result = wrk.run(url, connections, seconds)
    return {**result, "server": sampler.summary()}


def lopsided(point: dict, workers: int) -> bool:
    """All (or nearly all) of a point's connections landed on one worker: the workers share one listening
    socket and the first to wake accepts every pending connection, so wrk's burst of connects can end up
    on one worker. Judged by the workers' CPU: the idler one used under half of the busier one's."""
    split = point["server"]["cpu_percent_workers"]
    return (
        workers > 1 and point["connections"] >= workers and len(split) >= 2 and min(split) < 0.5 * max(split)
    )


NOISE_LIMIT = 0.10  # other processes using more than this share of the machine's CPU disturb a point


def noisy(point: dict) -> bool:
    return point["server"]["foreign_cpu_share"] > NOISE_LIMIT


def balanced_wrk(
    wrk: Wrk, url: str, pgid: int, connections: int, seconds: int, workers: int, retries: int
) -> dict[str, object]:
    """``measured_wrk``, measured again (new connections) up to ``retries`` times while lopsided or
    disturbed by other processes: the server's capacity with its connections spread over the workers, as
    many clients spread them. Every attempt is kept (``attempts``); ``failed`` counts the failures of all."""
    attempts = []
    for _ in range(1 + retries):
        attempts.append(measured_wrk(wrk, url, pgid, connections, seconds))
        if not lopsided(attempts[-1], workers) and not noisy(attempts[-1]):
            break
    balanced = [a for a in attempts if not lopsided(a, workers)]
    chosen = min(balanced, key=lambda a: a["server"]["foreign_cpu_share"]) if balanced else attempts[-1]
    summary = [
        {
            "requests_per_second": a["requests_per_second"],
            "p99_ms": a["p99_ms"],
            "failed": a["failed"],
            "cpu_percent_workers": a["server"]["cpu_percent_workers"],
            "foreign_cpu_share": a["server"]["foreign_cpu_share"],
            "lopsided": lopsided(a, workers),
        }
        for a in attempts
    ]
    return {
        **chosen,
        "failed": sum(a["failed"] for a in attempts),
        "lopsided": lopsided(chosen, workers),
        "attempts": summary,
    }


def choose_knee(points: list[dict], p99_budget_ms: float) -> dict:
    """The lowest concurrency within 5 % of the best error-free throughput whose p99 fits the budget."""
    clean = [p for p in points if p["failed"] == 0] or points
    fitting = [p for p in clean if p["p99_ms"] <= p99_budget_ms] or clean
    best = max(p["requests_per_second"] for p in fitting)
    return min(
        (p for p in fitting if p["requests_per_second"] >= KNEE_WITHIN * best), key=lambda p: p["connections"]
    )


# ---------------------------------------------------------------------------------------------- asyncio client


@dataclass
class Record:
    """One request as the client saw it (times: monotonic seconds, relative to the SIGTERM once classified)."""

    slot: int
    path: str
    new_connection: bool
    start: float
    request: int = -1  # its index in the client's requests
    sent: float | None = None
    end: float = 0.0
    outcome: str = ""
    status: int | None = None
    error: str = ""


def raw_request(request: Request, host: str) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in request.headers)
    return (
        f"POST {request.path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(request.body)}\r\n\r\n"
    ).encode() + request.body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name:
            headers[name.strip().lower()] = value.strip()
    if b"content-length" not in headers:
        raise RuntimeError(f"no content-length in the answer: {head[:300]!r}")
    body = await reader.readexactly(int(headers[b"content-length"]))
    return status, headers.get(b"connection", b"").lower() == b"close", body


class KeepAliveClient:
    """``connections`` keep-alive connections, each sending its next request as soon as the previous one ends
    (a closed loop), recording every request. A connection the server closed while idle is noticed before
    the next request is written, as a careful client does (counted in ``stale_connections``); one closed
    just after the write is a failure of that request, recorded as such. Connection ``slot`` sends requests
    ``slot``, ``slot + connections``, ... (cycling); a 200 is ``ok`` when its body holds ``ok_body``."""

    def __init__(self, host: str, port: int, requests: list[Request], connections: int, timeout: float,
                 ok_body: bytes = b"probability") -> None:  # fmt: skip
        self.host, self.port, self.timeout = host, port, timeout
        self.ok_body = ok_body
        self.raw = [(r.path, raw_request(r, f"{host}:{port}")) for r in requests]
        self.connections = connections
        self.records: list[Record] = []
        self.stale_connections = 0
        self.stop = asyncio.Event()

    async def _slot(self, slot: int) -> None:
        reader = writer = None
        index = slot
        while not self.stop.is_set():
            position = index % len(self.raw)
            path, raw = self.raw[position]
            index += self.connections
            if writer is not None and (reader.at_eof() or writer.is_closing()):
                self.stale_connections += 1
                writer.close()
                reader = writer = None
            record = Record(slot, path, writer is None, time.monotonic(), position)
            self.records.append(record)
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port), self.timeout
                    )
                except ConnectionRefusedError:
                    record.outcome, record.end = "refused", time.monotonic()
                    await asyncio.sleep(0.02)  # a client retrying elsewhere; here, the same address
                    continue
                except (OSError, TimeoutError) as exc:
                    record.outcome, record.end, record.error = "connect_error", time.monotonic(), repr(exc)
                    await asyncio.sleep(0.02)
                    continue
            try:
                writer.write(raw)
                await writer.drain()
            except (OSError, RuntimeError) as exc:
                record.outcome, record.end, record.error = "send_failed", time.monotonic(), repr(exc)
                writer.close()
                reader = writer = None
                continue
            record.sent = time.monotonic()
            close = True
            try:
                status, close, body = await asyncio.wait_for(read_response(reader), self.timeout)
                record.status = status
                if status != 200:
                    record.outcome = "status"
                elif self.ok_body not in body:
                    record.outcome = "bad_body"
                else:
                    record.outcome = "ok"
            except asyncio.IncompleteReadError as exc:
                record.outcome = "truncated" if exc.partial else "closed_before_response"
            except ConnectionResetError as exc:
                record.outcome, record.error = "reset", repr(exc)
            except TimeoutError:
                record.outcome = "timeout"
            except OSError as exc:
                record.outcome, record.error = "reset", repr(exc)
            record.end = time.monotonic()
            if close or record.outcome != "ok":
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    async def run(self) -> None:
        await asyncio.gather(*(self._slot(i) for i in range(self.connections)))


async def stalled_request(host: str, port: int, request: Request, sent_box: list) -> str:
    """Headers and half the body of ``request``, then nothing: a request the server has accepted and can
    never finish. Returns how it ended."""
    reader, writer = await asyncio.open_connection(host, port)
    raw = raw_request(request, f"{host}:{port}")
    head_end = raw.index(b"\r\n\r\n") + 4
    writer.write(raw[: head_end + (len(raw) - head_end) // 2])
    await writer.drain()
    sent_box.append(time.monotonic())
    try:
        status, _, _ = await read_response(reader)
        return f"status {status}"
    except asyncio.IncompleteReadError as exc:
        return "truncated" if exc.partial else "closed_before_response"
    except OSError as exc:
        return f"reset ({exc!r})"
    finally:
        writer.close()


# ---------------------------------------------------------------------------------------------- shutdown


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)[.,](\d{3}) ")


def log_events(log: str, t0_wall: float) -> dict[str, object]:
    """Shutdown milestones from the server log, in seconds after the SIGTERM (wall clocks of one machine)."""

    def when(line: str) -> float | None:
        match = _LOG_TIME.match(line)
        if not match:
            return None
        stamp = (
            datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(match.group(2)) / 1000
        )
        return round(stamp - t0_wall, 3)

    events: dict[str, list[float]] = {
        "worker_shutting_down": [],
        "worker_finished": [],
        "parent_stopping": [],
        "tasks_cancelled": [],
        "workers_force_killed": [],
    }
    patterns = {
        "worker_shutting_down": "Shutting down",
        "worker_finished": "Finished server process",
        "parent_stopping": "Stopping parent process",
        "tasks_cancelled": "timeout graceful shutdown exceeded",
        "workers_force_killed": "took too long to terminate",
    }
    tracebacks: list[str] = []
    lines = log.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("Traceback") or line.startswith("Exception in thread"):
            tracebacks.append("\n".join(lines[number : number + 30])[-1500:])
        for key, needle in patterns.items():
            if needle in line and (t := when(line)) is not None and t >= -1:
                events[key].append(t)
    return {**events, "tracebacks": len(tracebacks), "traceback_examples": tracebacks[:3]}


@dataclass
class ShutdownSpec:
    name: str
    target: str = "parent"  # "parent" (PID 1 in the container) or "group" (every process)
    workers: int = 2
    grace: int = 30
    connections: int = 32
    rows: int = 1  # rows per request; 1 uses the mixed 1-row requests
    load_seconds: float = 2.0  # load before the SIGTERM
    stall: bool = False  # one request stalled half-way through its body
    tail_seconds: float = 0.5  # the client keeps going this long after the parent exits
    # Check that new connections after the SIGTERM are not held unanswered (refused, or reset at once).
    # Off under 10,000-row batches, where a worker's event loop, busy scoring, notices the SIGTERM (and
    # closes its listener) only after a second or more: the wait is then reported, not judged.
    check_new_connections: bool = True


NEW_CONNECTION_WAIT_LIMIT = 1.0  # seconds a new connection may wait after the SIGTERM before its reset


@dataclass
class ShutdownResult:
    name: str
    target: str
    workers: int
    grace_seconds: int
    connections: int
    rows_per_request: int
    exit_seconds: float | None  # SIGTERM -> the parent exited
    exit_code: int | None
    group_gone_seconds: float | None  # SIGTERM -> no live process left in the server's process group
    survivors: list[int]
    in_flight_at_sigterm: int  # written before the SIGTERM, not answered yet
    in_flight_ok: int
    in_flight_failed: dict[str, int]
    before_sigterm_failed: dict[str, int]  # written and ended before the SIGTERM, not ok
    # Written after the SIGTERM: on a connection open before it (kept alive) or on a new one.
    after_sigterm: dict[str, dict[str, int]]
    # Per "kind:outcome" of the failures after the SIGTERM: when written and ended (s after the SIGTERM),
    # and the longest a request waited for that end.
    after_sigterm_failures: dict[str, dict[str, object]]
    new_connection_unserved_max_wait: float | None  # longest a new connection's request waited for its reset
    stale_connections: int  # kept-alive connections found closed by the server before the next request
    served_after_sigterm_until: float | None  # the last 200 to a request written after the SIGTERM
    first_refused_after: float | None
    stalled: str | None  # how the stalled request ended
    requests_total: int
    server_log_events: dict[str, object]
    checks: dict[str, bool] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(self.checks.values())


def classify(records: list[Record], t0: float) -> dict[str, object]:
    """Split the requests at the SIGTERM (``t0``). In flight: written before it and not answered by then."""
    before_failed: Counter = Counter()
    in_flight: Counter = Counter()
    after: dict[str, Counter] = {"kept_alive_connection": Counter(), "new_connection": Counter()}
    failures: dict[str, dict[str, object]] = {}
    served_until = first_refused = unserved_wait = None
    examples = []
    for r in records:
        written = r.sent if r.sent is not None else r.start
        end = r.end or time.monotonic()
        outcome = r.outcome or "unfinished"
        if written <= t0:
            if end > t0:
                in_flight[outcome] += 1
            elif outcome != "ok":
                before_failed[outcome] += 1
            if outcome != "ok" and len(examples) < 10:
                examples.append({**asdict(r), "start": r.start - t0, "sent": written - t0, "end": end - t0})
            continue
        kind = "new_connection" if r.new_connection else "kept_alive_connection"
        after[kind][outcome] += 1
        if outcome == "ok":
            served_until = max(served_until or 0.0, end - t0)
        elif outcome == "refused":
            first_refused = end - t0 if first_refused is None else first_refused
        else:
            entry = failures.setdefault(
                f"{kind}:{outcome}", {"written": [written - t0] * 2, "ended": [end - t0] * 2, "max_wait": 0.0}
            )
            entry["written"] = [
                min(entry["written"][0], written - t0),
                max(entry["written"][1], written - t0),
            ]
            entry["ended"] = [min(entry["ended"][0], end - t0), max(entry["ended"][1], end - t0)]
            entry["max_wait"] = max(entry["max_wait"], end - written)
            if kind == "new_connection":
                unserved_wait = max(unserved_wait or 0.0, end - written)
            if len(examples) < 10:
                examples.append({**asdict(r), "start": r.start - t0, "sent": written - t0, "end": end - t0})
    rounded = {
        key: {k: [round(x, 3) for x in v] if isinstance(v, list) else round(v, 3) for k, v in entry.items()}
        for key, entry in sorted(failures.items())
    }
    return {
        "in_flight": in_flight,
        "before_failed": before_failed,
        "after": {k: dict(v) for k, v in after.items()},
        "failures": rounded,
        "served_until": served_until,
        "first_refused": first_refused,
        "unserved_wait": unserved_wait,
        "examples": examples,
    }


async def shutdown_under_load(
    process: subprocess.Popen,
    port: int,
    spec: ShutdownSpec,
    requests: list[Request],
    stall_body: Request | None,
    ok_body: bytes = b"probability",
) -> tuple[KeepAliveClient, float, float, float | None, float | None, str | None]:
    client = KeepAliveClient(
        "127.0.0.1", port, requests, spec.connections, timeout=spec.grace + 30, ok_body=ok_body
    )
    load = asyncio.create_task(client.run())
    stall_task = None
    stall_sent: list[float] = []
    if stall_body is not None:
        stall_task = asyncio.create_task(stalled_request("127.0.0.1", port, stall_body, stall_sent))
    await asyncio.sleep(spec.load_seconds)
    if not any(r.outcome == "ok" for r in client.records):
        raise RuntimeError(
            f"{spec.name}: no request succeeded in {spec.load_seconds}s of load before the SIGTERM"
        )
    t0_wall, t0 = time.time(), time.monotonic()
    if spec.target == "group":
        os.killpg(process.pid, signal.SIGTERM)
    else:
        os.kill(process.pid, signal.SIGTERM)
    deadline = t0 + spec.grace + 20
    exited = gone = None
    while time.monotonic() < deadline:
        if exited is None and process.poll() is not None:
            exited = time.monotonic() - t0
        if exited is not None and not group_pids(process.pid):
            gone = time.monotonic() - t0
            break
        if exited is not None and time.monotonic() - t0 > exited + 5:
            break  # something outlived the parent: reported as survivors
        await asyncio.sleep(0.01)
    await asyncio.sleep(spec.tail_seconds)
    client.stop.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(load, spec.grace + 40)
    stalled = None
    if stall_task is not None:
        try:
            stalled = await asyncio.wait_for(stall_task, 5)
        except TimeoutError:
            stalled = "no answer"
    return client, t0, t0_wall, exited, gone, stalled


def shutdown_experiment(
    spec: ShutdownSpec, model: Path, workdir: Path, X: np.ndarray, exit_tolerance: float = 2.0
) -> ShutdownResult:
    """A fresh server, load, SIGTERM; what every request saw and how long the exit took."""
    requests = mixed_requests(X, 1000, seed=11) if spec.rows == 1 else batch_requests(X, spec.rows)
    stall_body = batch_requests(X, 2000, count=1, seed=5)[0] if spec.stall else None
    args = ("--workers", str(spec.workers), "--grace-period-seconds", str(spec.grace))
    with server(model, workdir, *args) as srv:
        check_answers(srv.url, requests[:PREDICT_EVERY])
        port = int(srv.url.rsplit(":", 1)[1])
        run = asyncio.run(shutdown_under_load(srv.process, port, spec, requests, stall_body))
        survivors, exit_code = reap(srv.process)
        logs = srv.logs()
    return judge_shutdown(spec, run, survivors, exit_code, logs, exit_tolerance)


def reap(process: subprocess.Popen) -> tuple[list[int], int | None]:
    """What is left of a server's process group (then killed), and the parent's exit code (None: it was
    still running, and is killed)."""
    survivors = group_pids(process.pid)
    if survivors:
        kill_group(process.pid)
    exit_code = process.poll()
    if exit_code is None:
        kill_group(process.pid)
    return survivors, exit_code


def judge_shutdown(
    spec: ShutdownSpec, run: tuple, survivors: list[int], exit_code: int | None, logs: str,
    exit_tolerance: float = 2.0,
) -> ShutdownResult:  # fmt: skip
    """The :class:`ShutdownResult` of a run of :func:`shutdown_under_load` and its checks: every request in
    flight at the SIGTERM answered 200, none failed before it, none reset on a kept-alive connection after
    it, the exit within the grace period with code 0 and nothing left, new connections not held."""
    client, t0, t0_wall, exited, gone, stalled = run
    split = classify(client.records, t0)
    in_flight: Counter = split["in_flight"]

    def r3(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    result = ShutdownResult(
        name=spec.name,
        target=spec.target,
        workers=spec.workers,
        grace_seconds=spec.grace,
        connections=spec.connections,
        rows_per_request=spec.rows,
        exit_seconds=r3(exited),
        exit_code=exit_code,
        group_gone_seconds=r3(gone),
        survivors=survivors,
        in_flight_at_sigterm=sum(in_flight.values()),
        in_flight_ok=in_flight.get("ok", 0),
        in_flight_failed={k: v for k, v in in_flight.items() if k != "ok"},
        before_sigterm_failed=dict(split["before_failed"]),
        after_sigterm=split["after"],
        after_sigterm_failures=split["failures"],
        new_connection_unserved_max_wait=r3(split["unserved_wait"]),
        stale_connections=client.stale_connections,
        served_after_sigterm_until=r3(split["served_until"]),
        first_refused_after=r3(split["first_refused"]),
        stalled=stalled,
        requests_total=len(client.records),
        server_log_events=log_events(logs, t0_wall),
        examples=split["examples"],
    )
    # The stalled request cannot finish: the exit waits the whole grace period, and must not wait longer.
    limit = spec.grace + exit_tolerance if spec.stall else spec.grace
    kept_alive = result.after_sigterm["kept_alive_connection"]
    result.checks = {
        # Every request written before the SIGTERM answered 200.
        "in_flight_all_ok": result.in_flight_at_sigterm > 0 and not result.in_flight_failed,
        "no_failure_before_sigterm": not result.before_sigterm_failed,
        # A request written on an open kept-alive connection is answered, or the server closed that
        # connection knowingly (Connection: close, or a FIN seen before the write) — never a reset.
        "kept_alive_requests_not_reset": all(k == "ok" for k in kept_alive),
        f"exit_within_{'grace+tolerance' if spec.stall else 'grace'}": exited is not None and exited <= limit,
        "exit_code_0": exit_code == 0,
        "no_process_left": not survivors,
    }
    if spec.check_new_connections:
        # New connections after the SIGTERM: refused, or reset at once from the closing listener's
        # backlog — not held open, unanswered, until the parent exits.
        wait = result.new_connection_unserved_max_wait or 0.0
        result.checks["new_connections_not_held"] = wait <= NEW_CONNECTION_WAIT_LIMIT
    if spec.stall:
        result.checks["exit_waited_for_the_stalled_request"] = (
            exited is not None and exited >= spec.grace - 0.5
        )
    return result


# ---------------------------------------------------------------------------------------------- chart


def chart_termination(measured_worst_exit: float | None = None) -> dict[str, object]:
    """terminationGracePeriodSeconds, the preStop sleep and --grace-period-seconds as rendered (deployment
    mode), checked against the values' formula and the slowest measured exit."""
    chart = ROOT / "helm" / "credit-risk"
    helm = shutil.which("helm")
    if helm is None:
        return {"skipped": "helm is not installed"}
    import yaml

    values = yaml.safe_load((chart / "values.yaml").read_text())["server"]
    rendered = subprocess.run(
        [helm, "template", "credit-risk", str(chart), "--set", "mode=deployment", "--set",
         "model.uri=/models/credit-risk.onnx"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    deployment = next(d for d in yaml.safe_load_all(rendered) if d and d.get("kind") == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    grace_arg = int(args[args.index("--grace-period-seconds") + 1])
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    sleep = int(pre_stop[1]) if len(pre_stop) == 2 and pre_stop[0] == "sleep" else 0
    tgps = int(pod["terminationGracePeriodSeconds"])
    expected = (
        int(values["preStopSleepSeconds"])
        + int(values["gracePeriodSeconds"])
        + int(values["terminationMarginSeconds"])
    )
    out: dict[str, object] = {
        "terminationGracePeriodSeconds": tgps,
        "preStop_sleep_seconds": sleep,
        "grace_period_seconds_arg": grace_arg,
        "termination_margin_seconds": int(values["terminationMarginSeconds"]),
        "workers": int(args[args.index("--workers") + 1]),
        "expected_from_values": expected,
    }
    checks = {
        "tgps_is_prestop_plus_grace_plus_margin": tgps
        == sleep + grace_arg + int(values["terminationMarginSeconds"])
        and tgps == expected,
        "grace_arg_is_values_grace": grace_arg == int(values["gracePeriodSeconds"]),
        "prestop_sleep_is_values": sleep == int(values["preStopSleepSeconds"]),
    }
    if measured_worst_exit is not None:
        # The worst exit measured with a stalled request was grace + overshoot (seconds past the grace
        # period); it must fit the margin or Kubernetes SIGKILLs the pod first.
        out["measured_worst_exit_overshoot_seconds"] = round(measured_worst_exit, 3)
        checks["worst_exit_overshoot_fits_margin"] = measured_worst_exit < int(
            values["terminationMarginSeconds"]
        )
    out["checks"] = checks
    return out


# ---------------------------------------------------------------------------------------------- report


def versions() -> dict[str, str]:
    import importlib.metadata

    out = {}
    for name in ("kserve", "uvicorn", "fastapi", "starlette", "uvloop", "httptools", "onnxruntime"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    out["wrk"] = ((wrk.stdout or wrk.stderr).splitlines() or ["?"])[0].split(" [")[0]
    return out


def report_header(args: argparse.Namespace) -> dict[str, object]:
    """What every load report starts with: the machine, the versions, when, and the command's settings."""
    return {
        "machine": machine(),
        "versions": versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }


def load_table(points: list[dict], sustained: dict | None, knee: int | None) -> str:
    lines = [
        f"{'conc':>5} {'seconds':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'failed':>7} "
        f"{'server CPU %':>13} {'worker CPU % split':>18} {'other CPU':>9} {'lopsided tries':>15}"
    ]

    def row(p: dict, label: str) -> str:
        s = p["server"]
        split = "/".join(f"{c:.0f}" for c in s["cpu_percent_workers"])
        tries = p.get("attempts", [])
        lop = (
            ", ".join(
                f"{a['requests_per_second']:.0f}/s " + "/".join(f"{c:.0f}" for c in a["cpu_percent_workers"])
                for a in tries
                if a["lopsided"]
            )
            or "-"
        )
        return (
            f"{label:>5} {p['duration_us'] / 1e6:>7.1f} {p['requests_per_second']:>9.0f} {p['p50_ms']:>8.2f} "
            f"{p['p99_ms']:>8.2f} {p['p999_ms']:>9.2f} {p['failed']:>7} {s['cpu_percent_total']:>13.0f} {split:>18} "
            f"{s['foreign_cpu_share']:>9.0%} {lop:>15}"
        )

    for p in points:
        lines.append(row(p, f"{p['connections']}{'*' if p['connections'] == knee else ''}"))
    if sustained:
        lines.append(row(sustained, f"={sustained['connections']}"))
    return "\n".join(lines)


def resources_line(point: dict) -> str:
    s = point["server"]
    parts = [
        f"{p['role']} {p['pid']}: CPU {p['cpu_percent_of_one_core']:.0f} %, RSS peak {p['rss_peak_mib']:.0f} MiB"
        for p in s["processes"]
    ]
    return (
        f"server during the sustained run ({s['seconds']:.0f} s): CPU {s['cpu_percent_total']:.0f} % of one core "
        f"(of {100 * (os.cpu_count() or 1)} %), other processes {s['foreign_cpu_share']:.0%} of the machine; "
        f"memory peak {s['pss_peak_total_mib']:.0f} MiB PSS ({s['rss_peak_total_mib']:.0f} MiB summed RSS) — "
        + "; ".join(parts)
    )


def shutdown_table(results: list[ShutdownResult]) -> str:
    lines = [
        f"{'experiment':<22} {'SIGTERM':<7} {'w':>1} {'grace':>5} {'conn':>4} {'rows':>5} {'in flight ok/n':>14} "
        f"{'kept-alive after ok/reset':>25} {'new conn after refused/reset (max wait s)':>41} {'exit s':>7} {'pass':>4}"
    ]
    for r in results:
        kept = r.after_sigterm["kept_alive_connection"]
        new = r.after_sigterm["new_connection"]
        kept_cell = f"{kept.get('ok', 0)}/{sum(v for k, v in kept.items() if k != 'ok')}"
        unserved = sum(v for k, v in new.items() if k not in ("ok", "refused"))
        wait = (
            ""
            if r.new_connection_unserved_max_wait is None
            else f" ({r.new_connection_unserved_max_wait:.2f})"
        )
        new_cell = f"{new.get('refused', 0)}/{unserved}{wait}"
        exit_s = "hung" if r.exit_seconds is None else f"{r.exit_seconds:.2f}"
        lines.append(
            f"{r.name:<22} {r.target:<7} {r.workers:>1} {r.grace_seconds:>5} {r.connections:>4} "
            f"{r.rows_per_request:>5} {f'{r.in_flight_ok}/{r.in_flight_at_sigterm}':>14} {kept_cell:>25} "
            f"{new_cell:>41} {exit_s:>7} {'yes' if r.passed else 'NO':>4}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def default_shutdown_specs(grace: int) -> list[ShutdownSpec]:
    targets = ("parent", "group")
    return [
        *(ShutdownSpec(f"{target}-1row", target, grace=grace) for target in targets),
        *(ShutdownSpec(f"{target}-10k-rows", target, grace=grace, connections=48, rows=10_000, load_seconds=3.0,
                       check_new_connections=False) for target in targets),
        *(ShutdownSpec(f"parent-stalled-grace5{suffix}", "parent", workers=workers, grace=5, connections=8,
                       stall=True) for workers, suffix in ((2, ""), (1, "-workers1"))),
        ShutdownSpec("parent-1row-workers1", "parent", workers=1, grace=grace),
    ]  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="sustained load at the knee (default 60)")
    parser.add_argument("--probe-seconds", type=int, default=5, help="per knee-probe point (default 5)")
    parser.add_argument("--p99-budget-ms", type=float, default=50.0, help="p99 a knee point may reach")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--balance-retries",
        type=int,
        default=3,
        help="measure a probe point again while its connections all landed on one worker (default 3)",
    )
    parser.add_argument(
        "--grace", type=int, default=30, help="--grace-period-seconds (default 30, the chart's)"
    )
    parser.add_argument("--exit-tolerance", type=float, default=2.0,
                        help="seconds past the grace period a stalled request's exit may take")  # fmt: skip
    parser.add_argument("--model", type=Path, help="an ONNX model (default: train a small one)")
    parser.add_argument(
        "--json", type=Path, default=RESULTS, help=f"results (default {RESULTS.relative_to(ROOT)})"
    )
    parser.add_argument(
        "--serving-root", type=Path, help="serve the `serving` package of another checkout (to measure a fix)"
    )
    parser.add_argument("--skip-load", action="store_true", help="only the shutdown experiments")
    parser.add_argument("--skip-shutdown", action="store_true", help="only the knee probe and sustained load")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    if args.serving_root:
        SERVER_ENV["PYTHONPATH"] = f"{args.serving_root.resolve()}{os.pathsep}{ROOT}"
    workdir = Path(tempfile.mkdtemp(prefix="reliability-load-"))
    report = report_header(args)
    failures: list[str] = []
    try:
        say("training a small model (harness.predictor.train_small_model)")
        trained = train_small_model(workdir)
        model = args.model or trained.path
        X = trained.X_fresh
        report["model"] = {"path": str(model), "fresh_rows": int(len(X))}

        if not args.skip_load:
            requests = mixed_requests(X, 2000)
            wrk = Wrk(workdir, requests)
            with server(model, workdir, "--workers", str(args.workers)) as srv:
                check_answers(srv.url, requests[:PREDICT_EVERY])
                pgid = srv.process.pid
                say("warm-up: 2 s at concurrency 4")
                wrk.run(srv.url, 4, 2)
                points = []
                for c in CONCURRENCIES:
                    point = balanced_wrk(
                        wrk, srv.url, pgid, c, args.probe_seconds, args.workers, args.balance_retries
                    )
                    points.append(point)
                    say(
                        f"  c={c:<3} {point['requests_per_second']:>8.0f} req/s  p50 {point['p50_ms']:.2f} ms  "
                        f"p99 {point['p99_ms']:.2f} ms  p99.9 {point['p999_ms']:.2f} ms  failed {point['failed']}  "
                        f"worker CPU {point['server']['cpu_percent_workers']}  other processes' CPU "
                        f"{point['server']['foreign_cpu_share']:.0%}  "
                        f"({len(point['attempts'])} attempt(s), lopsided: "
                        f"{[a['cpu_percent_workers'] for a in point['attempts'] if a['lopsided']]})"
                    )
                    if point["failed"]:
                        failures.append(f"knee probe c={c}: {point['failed']} failed requests")
                knee = choose_knee(points, args.p99_budget_ms)["connections"]
                say(f"knee: concurrency {knee}; {args.seconds} s of load there")
                sustained = balanced_wrk(wrk, srv.url, pgid, knee, args.seconds, args.workers, 1)
                if sustained["failed"]:
                    failures.append(f"sustained load: {sustained['failed']} failed requests")
                say(
                    f"  sustained c={knee}: {sustained['requests']} requests, {sustained['requests_per_second']:.0f} "
                    f"req/s, p50 {sustained['p50_ms']:.2f} ms p99 {sustained['p99_ms']:.2f} ms "
                    f"p99.9 {sustained['p999_ms']:.2f} ms, failed {sustained['failed']}, server CPU "
                    f"{sustained['server']['cpu_percent_total']} %, RSS {sustained['server']['rss_peak_total_mib']} MiB"
                )
                status, _, _ = http("GET", srv.url + "/v2/health/ready")
                if status != 200:
                    failures.append(f"not ready after the load: {status}")
            report["load"] = {
                "workers": args.workers,
                "mix": f"1-row V2 JSON infer, one request in {PREDICT_EVERY} POST /predict, {len(requests)} distinct rows",
                "generator": "wrk -t1 (separate process), keep-alive, closed loop",
                "knee_rule": f"lowest concurrency within {KNEE_WITHIN:.0%} of the best throughput, p99 <= "
                f"{args.p99_budget_ms} ms; a point whose connections all landed on one worker is measured again "
                f"(up to {args.balance_retries} times; every attempt kept)",
                "probe": points,
                "knee_connections": knee,
                "sustained": sustained,
            }
            print(load_table(points, sustained, knee))
            print(resources_line(sustained))

        results: list[ShutdownResult] = []
        if not args.skip_shutdown:
            for spec in default_shutdown_specs(args.grace):
                if spec.workers == 2:
                    spec.workers = args.workers
                say(f"shutdown: {spec.name} (SIGTERM to the {spec.target}, {spec.connections} connections, "
                    f"{spec.rows} row(s)/request, grace {spec.grace} s)")  # fmt: skip
                result = shutdown_experiment(spec, model, workdir, X, args.exit_tolerance)
                results.append(result)
                say(
                    f"  in flight {result.in_flight_at_sigterm}: ok {result.in_flight_ok}, failed "
                    f"{result.in_flight_failed or 0}; exit {result.exit_seconds} s (code {result.exit_code}); after "
                    f"SIGTERM {result.after_sigterm}; stale keep-alive {result.stale_connections}; "
                    f"stalled {result.stalled}; checks {result.checks}"
                )
                failures += [f"{spec.name}: {name}" for name, ok in result.checks.items() if not ok]
            report["shutdown"] = [asdict(r) for r in results]
            print(shutdown_table(results))

        stalled = [r for r in results if r.stalled is not None and r.exit_seconds is not None]
        overshoot = max((r.exit_seconds - r.grace_seconds for r in stalled), default=None)
        chart = chart_termination(overshoot)
        report["chart"] = chart
        say(f"chart: {json.dumps(chart)}")
        failures += [f"chart: {name}" for name, ok in chart.get("checks", {}).items() if not ok]
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return write_report(report, failures, args.json)


def write_report(report: dict, failures: list[str], path: Path) -> int:
    """``report`` with its ``failures`` and ``passed`` as JSON at ``path``; the exit code (1: a failure)."""
    report["failures"] = failures
    report["passed"] = not failures
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    say(f"results in {path}")
    if failures:
        say("FAILED: " + "; ".join(failures))
        return 1
    say("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
