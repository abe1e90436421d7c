"""A raw HTTP/1.1 client for hostile requests: what ``urllib`` and ``requests`` refuse to send (chunked
bodies of any size, repeated or non-ASCII header values, whole hand-written requests on a fresh socket),
on one keep-alive connection per :class:`Sender`, and every outcome kept, "no response" included."""

from __future__ import annotations

import base64
import hashlib
import http.client
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Request:
    """One HTTP request. ``mode``: ``length`` (Content-Length set from the body), ``chunked`` (the body sent
    in ``chunk`` sized chunks), ``raw`` (``body`` is the whole HTTP request, sent as is on a new
    connection; ``half_close`` then shuts the write side after sending)."""

    family: str
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str | bytes], ...] = ()
    mode: str = "length"
    chunk: int = 65_536
    half_close: bool = False

    def describe(self, limit: int = 3_000) -> dict[str, Any]:
        body = self.body
        out: dict[str, Any] = {
            "family": self.family,
            "method": self.method,
            "path": self.path,
            "mode": self.mode,
            "headers": [[k, v.decode("latin-1") if isinstance(v, bytes) else v] for k, v in self.headers],
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        if len(body) <= limit:
            out["body_base64"] = base64.b64encode(body).decode()
        out["body_preview"] = body[:limit].decode("utf-8", "backslashreplace")
        return out

    def fingerprint(self) -> str:
        """Equal for requests that send the same bytes the same way (``family`` aside)."""
        return hashlib.sha1(repr((self.method, self.path, self.headers, self.mode,
                                  self.chunk)).encode() + self.body).hexdigest()  # fmt: skip


@dataclass
class Outcome:
    status: int | None  # None: no HTTP response (see ``error``)
    body: bytes = b""
    error: str | None = None
    seconds: float = 0.0
    retried: bool = False


class Sender:
    """Sends :class:`Request` objects on one keep-alive connection (reopened when the server closes it,
    and every ``reconnect_every`` requests so that every worker gets traffic)."""

    def __init__(self, base_url: str, timeout: float = 60.0, reconnect_every: int = 50) -> None:
        target = urlsplit(base_url)
        self.host, self.port = target.hostname or "127.0.0.1", target.port or 80
        self.timeout = timeout
        self.reconnect_every = reconnect_every
        self._connection: http.client.HTTPConnection | None = None
        self._used = 0

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _conn(self) -> http.client.HTTPConnection:
        if self._connection is None or self._used >= self.reconnect_every:
            self.close()
            self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._used = 0
        self._used += 1
        return self._connection

    def send(self, request: Request) -> Outcome:
        """Send ``request``; if a reused keep-alive connection turns out to be closed (the server closes a
        connection after an unhandled exception, or after an idle timeout), send it once more on a new one
        and mark the outcome ``retried``, as HTTP clients do."""
        started = time.perf_counter()
        reused = self._connection is not None and self._used < self.reconnect_every
        outcome = self._once(request)
        if outcome.status is None and reused and request.mode != "raw":
            outcome = self._once(request)
            outcome.retried = True
        outcome.seconds = time.perf_counter() - started
        return outcome

    def _once(self, request: Request) -> Outcome:
        try:
            return self._raw(request) if request.mode == "raw" else self._http(request)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return Outcome(None, error=type(exc).__name__)

    def _http(self, request: Request) -> Outcome:
        connection = self._conn()
        connection.putrequest(request.method, request.path, skip_accept_encoding=True)
        for name, value in request.headers:
            connection.putheader(name, value)
        send_error = None
        if request.mode == "chunked":
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            try:
                body = request.body
                for start in range(0, len(body), request.chunk):
                    piece = body[start : start + request.chunk]
                    connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                connection.send(b"0\r\n\r\n")
            except OSError as exc:  # the server answered (413) and closed while the body was still coming
                send_error = type(exc).__name__
        else:
            connection.putheader("Content-Length", str(len(request.body)))
            try:
                connection.endheaders(request.body or None)
            except OSError as exc:
                send_error = type(exc).__name__
        try:
            response = connection.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            error = (
                f"{send_error} while sending, then {type(exc).__name__}" if send_error else type(exc).__name__
            )
            return Outcome(None, error=error)
        if response.will_close or send_error:
            self.close()
        return Outcome(response.status, content)

    def _raw(self, request: Request) -> Outcome:
        with socket.create_connection((self.host, self.port), timeout=10) as sock:
            try:
                sock.sendall(request.body)
                if request.half_close:
                    sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server may answer and close before reading everything: read what it said
            response = http.client.HTTPResponse(sock, method=request.method)
            try:
                response.begin()
                content = response.read()
            except http.client.RemoteDisconnected:
                return Outcome(None, error="closed without a response")
            except TimeoutError:
                return Outcome(None, error="no response within 10 s")
            return Outcome(response.status, content)
