"""The server's side of a fuzz run, whatever protocol the requests used: its memory (RSS of the server
process and every descendant), its worker PIDs and its liveness sampled throughout (:class:`Monitor`), and
its own account afterwards — its requests counter (``credit_risk_requests_total``, the transformer's
``credit_risk_transformer_requests_total``) from ``/metrics`` and the tracebacks in its log.
:class:`ServerWatch` brackets a run with them and says what failed."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path

import numpy as np

from harness.net import http
from harness.processes import cmdline, descendants, proc_stat, role, worker_pids
from reliability.target import LIVE


def live_status(base_url: str, timeout: float = 5.0) -> tuple[int | None, float]:
    """``GET /v2/health/live`` on a fresh connection (so that either worker may answer)."""
    started = time.perf_counter()
    try:
        status: int | None = http("GET", base_url + LIVE, timeout=timeout).status
    except (OSError, HTTPException):  # no answer
        status = None
    return status, time.perf_counter() - started


REQUESTS_METRIC = "credit_risk_requests_total"  # the predictor's requests counter


def server_side_statuses(base_url: str, metric: str = REQUESTS_METRIC) -> Counter[str]:
    """``metric`` (a counter labelled ``route`` and ``status_code``) by "status route" from ``/metrics``
    (aggregated over the workers): what the server counted, including answers no client received (a client
    that disconnected mid-body)."""
    text = http("GET", base_url + "/metrics", timeout=30).body.decode()
    sample = re.compile(rf"^{re.escape(metric)}\{{(.*)\}}\s+([0-9.eE+-]+)$", re.MULTILINE)
    counts: Counter[str] = Counter()
    for labels, value in sample.findall(text):
        parsed = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        counts[f"{parsed.get('status_code')} {parsed.get('route')}"] += int(float(value))
    return counts


class Monitor(threading.Thread):
    """Samples the server's memory (RSS of the server process and every descendant), its worker PIDs, and
    its liveness, until stopped."""

    def __init__(self, base_url: str, server_pid: int, interval: float = 0.25, live_every: int = 2) -> None:
        super().__init__(daemon=True, name="monitor")
        self.base_url, self.server_pid = base_url, server_pid
        self.interval, self.live_every = interval, live_every
        self.stopping = threading.Event()
        self.workers = worker_pids(server_pid)
        self.worker_changes: list[dict] = []
        self.samples: list[tuple[float, float]] = []  # (seconds since start, total RSS MB)
        self.per_process_peak: dict[int, float] = {}
        self.live_checks = 0
        self.live_failures: list[dict] = []
        self.live_latency: list[float] = []
        self.started = time.monotonic()

    def total_rss(self) -> tuple[float, dict[int, float]]:
        per = {}
        for pid in [self.server_pid, *descendants(self.server_pid)]:
            stat = proc_stat(pid)
            if stat is not None:
                per[pid] = stat.rss_bytes / 2**20
        return sum(per.values()), per

    def sample(self, tick: int) -> None:
        total, per = self.total_rss()
        now = time.monotonic() - self.started
        self.samples.append((now, total))
        for pid, value in per.items():
            self.per_process_peak[pid] = max(self.per_process_peak.get(pid, 0.0), value)
        workers = worker_pids(self.server_pid)
        if workers != self.workers:
            self.worker_changes.append(
                {"at_seconds": round(now, 2), "before": self.workers, "after": workers}
            )
            self.workers = workers
        if tick % self.live_every == 0:
            status, seconds = live_status(self.base_url)
            self.live_checks += 1
            self.live_latency.append(seconds)
            if status != 200:
                self.live_failures.append({"at_seconds": round(now, 2), "status": status})

    def run(self) -> None:
        tick = 0
        while not self.stopping.wait(self.interval):
            self.sample(tick)
            tick += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def _cpu_seconds(pid: int) -> float | None:
    stat = proc_stat(pid)
    return None if stat is None else stat.cpu_seconds


class ServerWatch:
    """:meth:`start` before the first request of a run (the baseline: memory, workers, their CPU, the
    server's counts and tracebacks so far, then the :class:`Monitor`), :meth:`finish` after the last: the
    report's ``server_side``, ``liveness``, ``workers`` and ``memory_mb`` sections, and :attr:`failures` —
    a 5xx the server counted, a traceback it logged, a failed liveness check, a restarted worker or exited
    server, memory growth (end or peak minus start) above ``memory_bound_mb``."""

    def __init__(self, base_url: str, server_pid: int, memory_bound_mb: float,
                 server_log: Callable[[], str] | None = None, metric: str = REQUESTS_METRIC) -> None:  # fmt: skip
        self.base_url, self.server_pid, self.metric = base_url, server_pid, metric
        self.memory_bound_mb = memory_bound_mb
        self.server_log = server_log
        self.failures: list[str] = []

    def start(self) -> None:
        self.tracebacks_before = self.server_log().count("Traceback") if self.server_log else 0
        self.counted_before = server_side_statuses(self.base_url, self.metric)
        self.monitor = Monitor(self.base_url, self.server_pid)
        baseline = [self.monitor.total_rss()[0] for _ in range(3) if time.sleep(0.2) is None]
        self.start_mb = float(np.median(baseline))
        self.initial_workers = list(self.monitor.workers)
        self.cpu_before = {pid: _cpu_seconds(pid) or 0.0 for pid in self.initial_workers}
        self.monitor.start()

    def finish(self) -> dict[str, dict]:
        monitor, server_pid, initial_workers = self.monitor, self.server_pid, self.initial_workers
        start_mb, bound = self.start_mb, self.memory_bound_mb
        time.sleep(1.5)  # let in-flight work settle before the last memory sample
        monitor.stop()
        final_live, _ = live_status(self.base_url)
        end_mb = float(np.median([monitor.total_rss()[0] for _ in range(3) if time.sleep(0.2) is None]))
        peak_mb = max([start_mb, end_mb, *(v for _, v in monitor.samples)])
        final_workers = worker_pids(server_pid)
        server_alive = Path(f"/proc/{server_pid}").exists() and "serving" in cmdline(server_pid)
        cpu_after = {pid: _cpu_seconds(pid) for pid in initial_workers}
        time.sleep(1.0)  # workers flush their per-request counters to the shared metrics files
        counted = server_side_statuses(self.base_url, self.metric) - self.counted_before
        server_side_5xx = {k: v for k, v in sorted(counted.items()) if k.startswith("5")}
        tail = self.server_log() if self.server_log else ""
        new_tracebacks = tail.count("Traceback") - self.tracebacks_before if self.server_log else None

        failures = self.failures = []
        if server_side_5xx:
            failures.append(f"the server counted 5xx answers in /metrics: {server_side_5xx}")
        if new_tracebacks:
            failures.append(
                f"{new_tracebacks} tracebacks (unhandled exceptions) in the server log during the run"
            )
        if monitor.live_failures or final_live != 200:
            failures.append(
                f"liveness failed {len(monitor.live_failures)} time(s); final /v2/health/live: {final_live}"
            )
        if final_workers != initial_workers or monitor.worker_changes:
            failures.append(f"worker processes changed: {initial_workers} -> {final_workers}")
        if not server_alive:
            failures.append("the server process exited")
        if end_mb - start_mb > bound:
            failures.append(f"memory grew by {end_mb - start_mb:.1f} MB (bound {bound} MB)")
        if peak_mb - start_mb > bound:
            failures.append(f"peak memory {peak_mb - start_mb:.1f} MB above the start (bound {bound} MB)")

        return {
            "server_side": {
                "requests_counted_in_metrics": {k: v for k, v in sorted(counted.items())},
                "5xx_counted_in_metrics": server_side_5xx,
                "413_counted_as_unmatched": counted.get("413 unmatched", 0),
                "tracebacks_logged": new_tracebacks,
                "what": f"{self.metric} deltas over the run (status route), from /metrics; "
                "tracebacks: 'Traceback' lines the server logged during the run",
            },
            "liveness": {
                "checks": monitor.live_checks + 1,
                "failures": monitor.live_failures,
                "final_status": final_live,
                "max_latency_ms": round(max(monitor.live_latency, default=0) * 1000, 1),
            },
            "workers": {
                "server_pid": server_pid,
                "initial": initial_workers,
                "final": final_workers,
                "changes": monitor.worker_changes,
                "server_alive": server_alive,
                "cpu_seconds_during_run": {
                    str(pid): round((cpu_after[pid] or 0) - self.cpu_before[pid], 2)
                    for pid in initial_workers
                },
            },
            "memory_mb": {
                "start": round(start_mb, 1),
                "peak": round(peak_mb, 1),
                "end": round(end_mb, 1),
                "growth": round(end_mb - start_mb, 1),
                "peak_growth": round(peak_mb - start_mb, 1),
                "bound": bound,
                "samples": len(monitor.samples),
                "per_process_peak": {
                    f"{pid} {role(pid, server_pid)}": round(v, 1)
                    for pid, v in monitor.per_process_peak.items()
                },
                "what": "sum of VmRSS of the server process and all its descendants (workers, resource tracker)",
            },
        }
