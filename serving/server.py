"""One worker: the HTTP application (uvicorn) and V2 gRPC in one event loop, with a shutdown that loses no
request.

On the first SIGTERM (or SIGINT) a worker **drains**: it stops accepting (the listeners close, so the
kernel refuses new connections rather than queueing them for nobody), every answer from then on carries
``Connection: close``, and each kept-alive connection is closed by the server once it is idle with nothing
unread in its socket for :attr:`DrainingServer.idle_seconds` — a client in mid-exchange gets the answer to
the request it already sent. gRPC stops accepting new calls and finishes those running. When no connection
is left, or the grace period is over, uvicorn's own shutdown runs (it cancels what still runs; such a
request is answered 503). A second SIGINT forces the exit. The exit code is 0 after a drain.

uvicorn's public surface used here: ``Config`` (``http=`` takes a protocol class, see
:mod:`serving.limits`), ``Server.serve``, the ``servers`` it listens with, ``should_exit``/``force_exit``,
and :meth:`DrainingServer.handle_exit`, the signal handler uvicorn installs, overridden. tests/serving/
test_upstream.py fails if any of these changes behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import grpc
import uvicorn

from serving.app import create_app
from serving.limits import Connections, guarded_protocol
from serving.model import CreditRiskModel
from serving.protocol.grpc import create_server
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, force=True)


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket, made before the workers start (so a busy port fails at once, in the parent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY only then
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose first exit signal starts a drain instead of uvicorn's immediate shutdown."""

    idle_seconds = 0.5
    tick_seconds = 0.02

    def __init__(self, config: uvicorn.Config, connections: Connections) -> None:
        super().__init__(config)
        self.connections = connections
        self.drain_requested = asyncio.Event()
        self.grpc: grpc.aio.Server | None = None  # started beside uvicorn, stopped with the drain
        self.peers: list[DrainingServer] = []  # servers of the same process's other ports, drained together
        self._loop: asyncio.AbstractEventLoop | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """uvicorn's signal handler. uvicorn's own sets ``should_exit`` at once and re-raises the signal after
        shutdown (exit code -15); here the first signal drains and the process ends with 0. Servers of one
        process (one per port) are each other's ``peers``: whichever holds the handler drains them all."""
        for server in (self, *self.peers):
            server._on_signal(sig)

    def _on_signal(self, sig: int) -> None:
        if self.drain_requested.is_set():
            if sig == signal.SIGINT:
                self.force_exit = self.should_exit = True
            return
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.drain_requested.set)
        else:  # no loop yet: nothing to drain
            self.should_exit = True

    async def run_until_drained(self, sockets: list[socket.socket]) -> None:
        self._loop = asyncio.get_running_loop()
        watcher = asyncio.create_task(self._drain_when_asked(sockets))
        try:
            await self.serve(sockets=sockets)
        finally:
            watcher.cancel()

    async def _drain_when_asked(self, sockets: list[socket.socket]) -> None:
        await self.drain_requested.wait()
        loop = asyncio.get_running_loop()
        grace = self.config.timeout_graceful_shutdown or 0  # the grace period, shared by every wait below
        deadline = loop.time() + grace
        log.info("draining: no new connections; answering what was sent (grace %ss)", grace)
        self.connections.drain()
        for server in self.servers:
            server.close()
        for sock in sockets:
            sock.close()  # this worker's copy: the kernel refuses new connections once every copy is closed
        grpc_stopped = None
        if self.grpc is not None:
            grpc_stopped = asyncio.create_task(self.grpc.stop(grace))
        while (
            loop.time() < deadline and self.connections.close_idle(self.idle_seconds) and not self.force_exit
        ):
            await asyncio.sleep(self.tick_seconds)
        if grpc_stopped is not None:
            await asyncio.wait([grpc_stopped], timeout=max(0.0, deadline - loop.time()))
        # uvicorn's shutdown proper waits for what still runs, for the rest of the grace period.
        self.config.timeout_graceful_shutdown = max(0, round(deadline - loop.time()))
        self.should_exit = True


def tls(settings, certfile: str = "ssl_certfile", keyfile: str = "ssl_keyfile") -> dict[str, str]:
    """uvicorn's TLS arguments from ``settings``' certificate and key fields (none when they are unset)."""
    cert, key = getattr(settings, certfile), getattr(settings, keyfile)
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)} if cert and key else {}


def uvicorn_config(app, connections: Connections, settings, tls_arguments: dict) -> uvicorn.Config:
    """How every port of this project is served: the guarded protocol (:mod:`serving.limits`), the
    settings' keep-alive and grace period, no lifespan, no Server header, and the TCP peer as the client."""
    return uvicorn.Config(
        app,
        http=guarded_protocol(connections),
        lifespan="off",
        access_log=settings.access_log,
        log_config=None,
        timeout_keep_alive=settings.keep_alive_seconds,  # type: ignore[arg-type]
        timeout_graceful_shutdown=settings.grace_period_seconds,
        server_header=False,
        # The scope's client must be the TCP peer: serving.limits finds the connection by it. (uvicorn would
        # otherwise take X-Forwarded-For from a proxy on 127.0.0.1 — a sidecar or Knative's queue-proxy.)
        proxy_headers=False,
        **tls_arguments,
    )


def worker(model: CreditRiskModel, sockets: list[socket.socket]) -> None:
    """Serve ``model`` on the given listening socket(s) until drained (a worker process, or the only one)."""
    configure_logging()
    asyncio.run(_serve(model, sockets))


async def _serve(model: CreditRiskModel, sockets: list[socket.socket]) -> None:
    settings: ServingSettings = model.settings
    connections = Connections(settings.max_connections, settings.header_timeout_seconds)
    config = uvicorn_config(create_app(model, connections), connections, settings, tls(settings))
    server = DrainingServer(config, connections)
    if settings.grpc_port:
        server.grpc = create_server(model, settings)
        await server.grpc.start()
    await server.run_until_drained(sockets)
    if server.grpc is not None:
        await server.grpc.stop(0)
    if model.metrics is not None:
        model.metrics.close()
