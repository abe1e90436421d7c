"""Loopback ports, one HTTP call, starting a server process of this checkout, waiting until it answers, and
stopping its group."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import NamedTuple


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


def http(method: str, url: str, body: bytes | dict | list | None = None, headers: dict | None = None,
         timeout: float = 30, context: ssl.SSLContext | None = None) -> Response:  # fmt: skip
    """One HTTP request; the status, headers and body whatever the status. A dict or list body is sent as
    JSON (with its ``Content-Type``); bytes are sent as they are, with ``headers`` only. Connection errors
    raise ``OSError``. ``context`` verifies an https server (e.g. against a private CA)."""
    data = json.dumps(body).encode() if isinstance(body, dict | list) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if isinstance(body, dict | list):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return Response(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, dict(error.headers), error.read())


def get_json(url: str, timeout: float = 10) -> dict:
    """GET ``url`` and parse its JSON body; a status other than 200 raises ``OSError`` with the body."""
    status, _, body = http("GET", url, timeout=timeout)
    if status != 200:
        raise OSError(f"GET {url} answered {status}: {body[:500]!r}")
    return json.loads(body)


def tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def wait_ready(url: str, what: str, timeout: float, process: subprocess.Popen | None = None,
               log: Path | None = None, error: type[Exception] = RuntimeError,
               context: ssl.SSLContext | None = None) -> None:  # fmt: skip
    """Poll ``GET url`` until it answers 200. Raises ``error`` (with the log's tail) when ``process`` exits
    first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise error(f"{what} exited with {process.returncode}:\n{tail(log) if log else ''}")
        with suppress(OSError):
            if http("GET", url, timeout=2, context=context).status == 200:
                return
        if time.monotonic() > deadline:
            raise error(f"{what} not ready at {url} after {timeout:.0f} s:\n{tail(log) if log else ''}")
        time.sleep(0.2)


def stop(process: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM the process group of ``process`` (started with ``start_new_session=True``), SIGKILL it after
    ``timeout`` seconds; then SIGKILL whatever of the group outlived its leader. Returns the exit code."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with suppress(ProcessLookupError, PermissionError):  # children (workers) share the leader's group
        os.killpg(process.pid, signal.SIGKILL)
    return process.returncode


@contextmanager
def spawned(command: list[str], log: Path, ready_url: str, what: str, workdir: Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 60,
            context: ssl.SSLContext | None = None) -> Iterator[subprocess.Popen]:  # fmt: skip
    """``command`` (a server of this checkout: ``PYTHONPATH`` is the repository, no inherited
    ``PROMETHEUS_MULTIPROC_DIR``) in a session of its own, output to ``log``, once ``GET ready_url`` answers
    200; stopped (its whole group) when the block ends."""
    from harness import ROOT

    inherited = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True,
            env={**inherited, "PYTHONPATH": str(ROOT), **(env or {})},
        )  # fmt: skip
    try:
        wait_ready(ready_url, what, timeout, process, log, context=context)
        yield process
    finally:
        stop(process)
