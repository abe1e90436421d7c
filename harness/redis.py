"""A real ``redis-server`` on loopback for the feature-store tests and measurements.

Debian's ``redis-server`` (CI installs it with ``.ci/tools.sh``) runs in the foreground in its own process
group, bound to 127.0.0.1, with RDB snapshots off (``--save ""``) and the append-only file on unless asked
otherwise, so :meth:`RedisServer.stop` then :meth:`RedisServer.start` (same port, same directory) brings the
data back: the recovery test relies on it. Readiness is a RESP ``PING`` answered ``+PONG`` (after ``AUTH``
when a password is set); a server still loading its data answers ``-LOADING`` and is not ready yet.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from harness.net import free_port, stop, tail

INSTALL_HINT = (
    "redis-server is not installed: install Debian's `redis-server` package "
    "(`sudo bash .ci/tools.sh`, or `apt-get install redis-server`)"
)


def redis_binary() -> str:
    """The ``redis-server`` executable; a RuntimeError that says how to install it when it is missing."""
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).is_file()), None
    )
    if found is None:
        raise RuntimeError(INSTALL_HINT)
    return found


def _command(*words: str) -> bytes:
    """One RESP command (an array of bulk strings)."""
    encoded = [w.encode() for w in words]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in encoded)


def answers_ping(port: int, password: str | None, timeout: float = 1.0) -> bool:
    """Whether the server on ``port`` answers ``PING`` with ``+PONG`` right now."""
    request = (_command("AUTH", password) if password else b"") + _command("PING")
    with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(request)
        received = b""
        while received.count(b"\r\n") < (2 if password else 1):
            chunk = connection.recv(4096)
            if not chunk:
                break
            received += chunk
        return received.splitlines()[-1:] == [b"+PONG"]
    return False


@dataclass
class RedisServer:
    """One ``redis-server`` on 127.0.0.1:``port`` keeping its data in ``dir``."""

    port: int
    dir: Path
    appendonly: bool = True
    password: str | None = None
    startup_timeout: float = 30.0
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.dir / f"redis-{self.port}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start (or restart after :meth:`stop`) on the same port and directory; wait for ``PING``."""
        if self.running:
            return
        arguments = [
            redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--daemonize", "no",
        ]  # fmt: skip
        if self.password:
            arguments += ["--requirepass", self.password]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                arguments, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + self.startup_timeout
        while not answers_ping(self.port, self.password):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{tail(self.log)}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"redis-server not answering PING on port {self.port} after {self.startup_timeout:.0f} s:"
                    f"\n{tail(self.log)}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM (redis flushes its append-only file and exits), wait; idempotent."""
        if self.process is not None:
            stop(self.process)


@contextmanager
def redis_server(
    directory: Path | None = None,
    port: int | None = None,
    appendonly: bool = True,
    password: str | None = None,
) -> Iterator[RedisServer]:
    """A started ``redis-server`` (data in ``directory``, a temporary folder by default, removed after),
    stopped on exit."""
    redis_binary()  # fail with the install hint before anything else
    temporary = None if directory is not None else tempfile.mkdtemp(prefix="redis-")
    folder = Path(temporary) if temporary else Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    server = RedisServer(port or free_port(), folder, appendonly, password)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
