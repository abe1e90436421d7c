"""Limits for slow, greedy or hostile HTTP clients, per worker process.

* **Connection cap** (``max_connections``): a connection beyond it is answered 503 ``{"error"}`` and closed
  at once, before any byte is read.
* **Header timeout** (``header_timeout_seconds``): a connection that has not completed a request's headers
  that long after its first byte (or after opening, for one that sends nothing) is answered 408 and
  closed; one that never sent a byte is just closed. An idle kept-alive connection is left to the
  keep-alive timeout.
* **Body limit** (``max_request_bytes``): a ``Content-Length`` above it is answered 413 at once, before the
  body is read (with ``Expect: 100-continue``, before the client is told to send it). The answer goes out
  first; then what the client still sends is read and dropped — until it stops, or for at most
  :data:`LINGER_SECONDS` — so that a client that only reads once it has sent everything sees the 413 rather
  than a reset. A chunked body is cut off with 413 as soon as it passes the limit, after the same linger.
* **Unread bodies**: an answer given before the application read the body (an unknown route or model) first
  reads and drops the rest of it — it is within the limit — so the connection stays usable.
* **Body timeout** (``body_timeout_seconds``): a body not received in full that long after its headers is
  answered 408 and the connection closed.
* **Draining**: once :meth:`Connections.drain` began, every answer carries ``Connection: close``.

:class:`Connections` keeps this worker's open connections; :func:`guarded_protocol` makes uvicorn's
httptools protocol report to it (the only uvicorn class extended, through asyncio's public ``Protocol``
methods, and passed to uvicorn as ``Config(http=...)``, a documented option); :class:`LimitsMiddleware`
does the rest in ASGI.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import logging
import termios
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.errors import PayloadTooLarge, RequestTimeout, ServerBusy, ServingError

log = logging.getLogger(__name__)

LINGER_SECONDS = 2.0
REFUSED_LINGER_SECONDS = 1.0

Peer = tuple[str, int]


Headers = list[tuple[bytes, bytes]]


def error_answer(error: ServingError, extra_headers: Headers | None = None) -> tuple[Headers, bytes]:
    """The headers and body of an answer ``{"error": ...}`` that closes the connection."""
    body = orjson.dumps({"error": str(error)})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *(extra_headers or [])]  # fmt: skip
    return headers, body


def error_bytes(error: ServingError, extra_headers: Headers | None = None) -> bytes:
    """The same answer as raw HTTP/1.1, for writing straight to a transport (no request was parsed)."""
    headers, body = error_answer(error, extra_headers)
    status = f"HTTP/1.1 {int(error.status)} {error.status.phrase}".encode()
    return b"\r\n".join([status, *(name + b": " + value for name, value in headers)]) + b"\r\n\r\n" + body


class Connection:
    """One open connection: its transport and whether a request is being answered on it."""

    __slots__ = ("transport", "in_request", "received", "header_timer", "idle_since")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.in_request = False
        self.received = False  # a byte arrived since the last request began
        self.header_timer: asyncio.TimerHandle | None = None
        self.idle_since: float | None = None

    def unread_bytes(self) -> int:
        """Bytes the kernel holds for this connection that the server has not read yet (FIONREAD)."""
        sock = self.transport.get_extra_info("socket")
        if sock is None or self.transport.is_closing():
            return 0
        count = array.array("i", [0])
        try:
            fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
        except OSError:
            return 0
        return count[0]


class Connections:
    """This worker's open HTTP connections, keyed by the client's address (the ASGI scope's ``client``)."""

    def __init__(self, max_connections: int, header_timeout_seconds: float) -> None:
        self.max_connections = max_connections
        self.header_timeout_seconds = header_timeout_seconds
        self.open: dict[Peer, Connection] = {}
        self.draining = False

    # ---------------------------------------------------------------- reported by the protocol

    def opened(self, transport: asyncio.Transport) -> None:
        if len(self.open) >= self.max_connections or self.draining:
            reason = (
                "shutting down" if self.draining else f"at its limit of {self.max_connections} connections"
            )
            transport.write(
                error_bytes(
                    ServerBusy(f"the server is {reason}: retry on another replica"), [(b"retry-after", b"1")]
                )
            )
            # Half-close and read nothing more: the client reads the answer and the end of the stream; a
            # close with its request unread would reset the connection, and could drop the answer with it.
            transport.pause_reading()
            if transport.can_write_eof():
                transport.write_eof()
            asyncio.get_running_loop().call_later(REFUSED_LINGER_SECONDS, transport.close)
            return
        connection = Connection(transport)
        self.open[_peer(transport)] = connection
        self._start_header_timer(connection)

    def received(self, transport: asyncio.Transport) -> None:
        connection = self.open.get(_peer(transport))
        if connection is None or connection.in_request:
            return
        connection.received = True
        connection.idle_since = None
        if connection.header_timer is None:
            self._start_header_timer(connection)

    def closed(self, transport: asyncio.Transport) -> None:
        connection = self.open.pop(_peer(transport), None)
        if connection is not None and connection.header_timer is not None:
            connection.header_timer.cancel()

    # ---------------------------------------------------------------- reported by the middleware

    def request_started(self, peer: Peer | None) -> Connection | None:
        connection = self.open.get(peer) if peer else None
        if connection is not None:
            connection.in_request, connection.received, connection.idle_since = True, False, None
            if connection.header_timer is not None:
                connection.header_timer.cancel()
                connection.header_timer = None
        return connection

    def request_ended(self, connection: Connection | None) -> None:
        if connection is not None:
            connection.in_request = False
            connection.idle_since = asyncio.get_running_loop().time()

    # ---------------------------------------------------------------- timers and draining

    def _start_header_timer(self, connection: Connection) -> None:
        loop = asyncio.get_running_loop()
        connection.header_timer = loop.call_later(
            self.header_timeout_seconds, self._header_timeout, connection
        )

    def _header_timeout(self, connection: Connection) -> None:
        connection.header_timer = None
        if connection.in_request or connection.transport.is_closing():
            return
        if connection.idle_since is not None and not connection.received:
            return  # idle after an answer: the keep-alive timeout's business
        log.info(
            "closed a connection from %s: no complete request headers within %g s",
            connection.transport.get_extra_info("peername"), self.header_timeout_seconds,
        )  # fmt: skip
        if connection.received:
            seconds = self.header_timeout_seconds
            connection.transport.write(
                error_bytes(RequestTimeout(f"the request headers did not arrive within {seconds:g} s"))
            )
        connection.transport.close()

    def drain(self) -> None:
        """From now on every answer closes its connection, and new connections are refused."""
        self.draining = True

    def close_idle(self, idle_seconds: float) -> bool:
        """Close the connections idle for ``idle_seconds`` with nothing unread; True if any remain."""
        now = asyncio.get_running_loop().time()
        for connection in list(self.open.values()):
            if connection.in_request or connection.received or connection.unread_bytes():
                continue  # answering, or a request is arriving: it is answered, then closed
            if connection.idle_since is None:
                connection.idle_since = now
            elif now - connection.idle_since >= idle_seconds:
                connection.transport.close()
        return bool(self.open)


def _peer(transport: asyncio.Transport) -> Peer:
    peer = transport.get_extra_info("peername")
    return (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else ("", id(transport))


def guarded_protocol(connections: Connections) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol reporting each connection's life to ``connections``."""

    class GuardedProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            connections.opened(transport)

        def data_received(self, data: bytes) -> None:
            connections.received(self.transport)
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            connections.closed(self.transport)
            super().connection_lost(exc)

    return GuardedProtocol


Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class LimitsMiddleware:
    """Body limit, body timeout, early 413 and ``Connection: close`` while draining (see the module)."""

    def __init__(
        self, app: Any, connections: Connections | None, max_request_bytes: int, body_timeout_seconds: float
    ) -> None:
        self.app = app
        self.connections = connections
        self.limit = max_request_bytes
        self.body_timeout = body_timeout_seconds

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connections = self.connections
        connection = connections.request_started(scope.get("client")) if connections else None
        try:
            await self._handle(scope, receive, send)
        finally:
            if connections is not None:
                connections.request_ended(connection)

    async def _handle(self, scope: dict, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        length_header = headers.get(b"content-length")
        limit = self.limit
        if length_header is not None and (not length_header.isdigit() or int(length_header) > limit):
            error = PayloadTooLarge(
                f"the request body of {length_header.decode(errors='replace')} bytes exceeds the limit of "
                f"{limit:,} bytes: send smaller batches"
                if length_header.isdigit()
                else f"invalid Content-Length {length_header.decode(errors='replace')!r}"
            )
            # The whole answer now (its Content-Length says so), the end of the exchange after the linger.
            await _send_error(send, error, more_body=True)
            if headers.get(b"expect", b"").lower() != b"100-continue":  # else no body is coming
                await _linger(receive)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        state = {"received": 0, "complete": False, "started": False, "over": False}
        connections = self.connections

        def too_large() -> PayloadTooLarge:
            return PayloadTooLarge(
                f"the request body exceeds the limit of {limit:,} bytes: send smaller batches"
            )

        async def guarded_receive() -> dict:
            if state["complete"]:
                return await receive()
            if state["over"]:
                raise too_large()
            remaining = deadline - loop.time()
            try:
                async with asyncio.timeout(max(remaining, 0.0)):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {self.body_timeout:g} s "
                    f"({state['received']:,} bytes received)"
                ) from None
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
                    state["complete"] = not message.get("more_body", False) or await _linger(receive)
                    raise too_large()
                if not message.get("more_body", False):
                    state["complete"] = True
            return message

        async def rest_of_body_dropped() -> bool:
            """Read and drop what the application left unread (within the limit and the body deadline), so
            the connection stays usable; False if that fails (then the answer closes it)."""
            try:
                while not state["complete"]:
                    if (await guarded_receive())["type"] != "http.request":
                        return False
            except (PayloadTooLarge, RequestTimeout):
                return False
            return True

        async def guarded_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                body_expected = (
                    length_header not in (None, b"0") or headers.get(b"transfer-encoding") is not None
                )
                # An answer before the body was read (an unknown route or model, say): closing with the body
                # unread would reset the connection, and the client could lose the answer with it.
                body_unread = body_expected and not state["complete"] and not await rest_of_body_dropped()
                if body_unread or (connections is not None and connections.draining):
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except asyncio.CancelledError:
            # The grace period ended with this request unfinished (uvicorn cancels it): say so if we still can.
            if not state["started"]:
                with contextlib.suppress(Exception):
                    await _send_error(
                        send, ServerBusy("the server shut down before the request was answered")
                    )
            raise


async def _linger(receive: Receive) -> bool:
    """Read and drop the rest of the body, for at most LINGER_SECONDS; True if it ended."""
    try:
        async with asyncio.timeout(LINGER_SECONDS):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return False
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        return False


async def _send_error(send: Send, error: ServingError, more_body: bool = False) -> None:
    headers, body = error_answer(error)
    await send({"type": "http.response.start", "status": int(error.status), "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": more_body})
