"""``--workers N``: a supervisor process and N worker processes sharing the listening socket.

The parent binds the HTTP port, then spawns the workers (``multiprocessing``'s spawn start method; each
receives the pickled model — see :meth:`serving.model.CreditRiskModel.__getstate__` — and the socket) and
watches them: a worker that exits while the server is running is replaced — unless workers keep exiting
(a crash loop: the supervisor then stops with exit code 1, for Kubernetes to restart and count). gRPC has
no shared socket: each worker binds the gRPC port itself with ``SO_REUSEPORT`` and the kernel spreads the
connections.

On SIGTERM or SIGINT the parent first closes its own copy of the listening socket (the kernel refuses
new connections once the workers close theirs: none is queued for nobody), then passes SIGTERM on to the
workers, which drain (:mod:`serving.server`), and waits for them for the grace period (plus a margin),
then kills any left. The exit code is 0 when every worker ended cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from serving.model import CreditRiskModel
from serving.server import worker

log = logging.getLogger(__name__)

CLEAN_EXIT = (0, -signal.SIGTERM)  # a worker stopped by the SIGTERM passed on before it could drain


class Supervisor:
    """Runs ``count`` workers serving ``model`` on ``sockets`` until a signal, replacing any that die."""

    stop_margin_seconds = 5.0
    poll_seconds = 0.2
    crash_loop = (5, 60.0)  # this many replacements within this many seconds: give up, exit 1

    def __init__(self, model: CreditRiskModel, sockets: list[socket.socket], count: int) -> None:
        self.model = model
        self.sockets = sockets
        self.count = count
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[BaseProcess] = []
        self.stopping = False
        self.restarts: list[float] = []  # when each replacement was started

    def _spawn(self) -> BaseProcess:
        process = self.context.Process(
            target=worker, args=(self.model, self.sockets), name="credit-risk-worker"
        )
        process.start()
        return process

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("received %s: draining %d worker(s)", signal.Signals(sig).name, len(self.processes))
        self.stopping = True

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.processes = [self._spawn() for _ in range(self.count)]
            log.info("started %d workers: %s", self.count, ", ".join(str(p.pid) for p in self.processes))
            while not self.stopping:
                multiprocessing.connection.wait(
                    [p.sentinel for p in self.processes], timeout=self.poll_seconds
                )
                for index, process in enumerate(self.processes):
                    if process.exitcode is not None and not self.stopping:
                        if self._crash_looping():
                            log.error(
                                "workers keep exiting (%d replacements in %.0f s; the log above says why): "
                                "stopping", *self.crash_loop,
                            )  # fmt: skip
                            self._stop()
                            return 1
                        log.warning(
                            "worker %s exited with code %s; starting a new one", process.pid, process.exitcode
                        )
                        self.processes[index] = self._spawn()
                        self.restarts.append(time.monotonic())
            return self._stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _crash_looping(self) -> bool:
        count, seconds = self.crash_loop
        now = time.monotonic()
        return len([t for t in self.restarts if now - t < seconds]) >= count

    def _stop(self) -> int:
        for sock in self.sockets:
            sock.close()
        for process in self.processes:
            if process.exitcode is None and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.model.settings.grace_period_seconds + self.stop_margin_seconds
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in self.processes:
            if process.exitcode is None:
                log.error("worker %s did not stop within the grace period: killed", process.pid)
                process.kill()
                process.join(5)
        codes = [p.exitcode for p in self.processes]
        failed = [c for c in codes if c not in CLEAN_EXIT]
        if failed:
            log.error("worker exit codes: %s", codes)
        return 1 if failed else 0
