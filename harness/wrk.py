"""``wrk`` (the Debian package, a separate process) and the share of the machine's CPU other processes took
while it ran — shared by ``bench/bench_serve.py`` and ``reliability/load.py``, which each bring their own
Lua script. A script's ``done()`` hook prints one ``WRK_RESULT {json}`` line; :func:`run_wrk` returns it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

from harness.machine import cpu_seconds
from harness.processes import group_cpu_seconds


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_wrk(log: Callable[[str], None] = _stderr) -> str:
    """The path of ``wrk``, apt-installed first if it is missing (as root; otherwise ``SystemExit``)."""
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk not found: apt-get install -y wrk")
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing and this is not root: run `sudo apt-get install -y wrk` first")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        result = subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"cannot install wrk:\n{result.stderr[-2000:]}")
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is still not on PATH after apt-get install")
    return found


# The done() hook every benchmark script shares: latency percentiles and error counts as one JSON line.
DONE_LUA = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "status_errors": %d, "connect_errors": %d, '
    .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, "min_us": %.1f, "mean_us": %.1f, "p50_us": %.1f, '
    .. '"p90_us": %.1f, "p99_us": %.1f, "p999_us": %.1f, "max_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency.min, latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""


def post_script(body_path: object, headers: dict[str, str]) -> str:
    """A wrk script POSTing the file ``body_path`` on every request, with ``headers``, and :data:`DONE_LUA`."""
    lines = ['wrk.method = "POST"', *(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
             f'local f = assert(io.open("{body_path}", "rb"))', 'wrk.body = f:read("*a")', "f:close()"]  # fmt: skip
    return "\n".join(lines) + "\n" + DONE_LUA


def run_wrk(argv: list[str], timeout: float, error: type[Exception] = RuntimeError) -> dict:
    """Run ``wrk`` with a Lua script whose ``done()`` prints one ``WRK_RESULT {json}`` line; that JSON.
    Raises ``error`` (with wrk's output) when wrk fails or prints no such line."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise error(f"wrk failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return json.loads(line.removeprefix("WRK_RESULT "))


ERROR_FIELDS = ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts")


def failed_requests(raw: dict) -> int:
    """Requests of a :data:`DONE_LUA` result that failed: a status >= 400, a socket error or a timeout."""
    return sum(raw[k] for k in ERROR_FIELDS)


class NoiseMeter:
    """Share of the machine's CPU used by processes other than this one (and its reaped children, such as
    wrk) and the server's process group ``pgid`` over a block: ~0 on an idle machine; above a few percent,
    the block's numbers are disturbed."""

    def __init__(self, pgid: int | None = None) -> None:
        self.pgid = pgid
        self.foreign = 0.0

    def __enter__(self) -> NoiseMeter:
        self._busy, self._own = cpu_seconds()
        self._group = group_cpu_seconds(self.pgid)
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        busy, own = cpu_seconds()
        wall = time.perf_counter() - self._wall
        ours = (own - self._own) + (group_cpu_seconds(self.pgid) - self._group)
        self.foreign = max(0.0, (busy - self._busy) - ours) / max(wall * (os.cpu_count() or 1), 1e-9)
