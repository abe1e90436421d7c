"""The uvicorn behaviours the server relies on, each checked directly, so an upgrade that changes one fails
here with its name rather than as a lost request somewhere else.

The touchpoints (serving/server.py, serving/limits.py), all public names:

* ``uvicorn.Config(http=<class>)`` builds each connection with the protocol class given;
* ``HttpToolsProtocol.connection_made / data_received / connection_lost`` (asyncio's Protocol interface)
  and its ``transport`` attribute;
* ``Server.serve`` installs ``Server.handle_exit`` as the SIGTERM/SIGINT handler, so a subclass's override
  receives the signal, and only the override decides what happens;
* asyncio sets ``TCP_NODELAY`` on accepted connections of a listener made with ``IPPROTO_TCP``;
* ``Server.servers`` holds the listening ``asyncio.Server`` objects once started;
* ``Server.should_exit`` ends the main loop; ``Config.timeout_graceful_shutdown`` is read when shutdown
  begins, so a drain can hand uvicorn the rest of the grace period;
* uvicorn answers ``Expect: 100-continue`` only when the application first reads the body (tested over raw
  sockets in test_limits.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.limits import Connections, guarded_protocol
from serving.server import DrainingServer, bind


async def _hello(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    if scope["path"] == "/stall":
        await asyncio.sleep(60)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _server(grace: float = 5.0) -> tuple[DrainingServer, Connections, socket.socket]:
    connections = Connections(max_connections=10, header_timeout_seconds=5)
    config = uvicorn.Config(_hello, http=guarded_protocol(connections), lifespan="off", log_config=None,
                            timeout_graceful_shutdown=int(grace))  # fmt: skip
    sock = bind("127.0.0.1", 0)
    return DrainingServer(config, connections), connections, sock


def _get(port: int, path: str = "/") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := client.recv(4096):
            data += chunk
        return data


def test_the_protocol_class_given_to_config_is_the_one_uvicorn_uses() -> None:
    protocol = guarded_protocol(Connections(1, 1))
    config = uvicorn.Config(_hello, http=protocol)
    config.load()
    assert config.http_protocol_class is protocol and issubclass(protocol, HttpToolsProtocol)
    for method in ("connection_made", "data_received", "connection_lost"):
        assert getattr(protocol, method) is not getattr(HttpToolsProtocol, method)


def test_a_sigterm_reaches_the_override_and_drains_to_a_clean_return() -> None:
    server, connections, sock = _server()
    port = sock.getsockname()[1]
    seen: dict[str, object] = {}

    async def scenario() -> None:
        async def client() -> None:
            while not server.started:
                await asyncio.sleep(0.01)
            seen["servers"] = list(server.servers)
            answer = await asyncio.to_thread(_get, port)
            seen["answer"] = answer
            opened = socket.create_connection(("127.0.0.1", port))  # an idle kept-alive connection
            await asyncio.sleep(0.1)
            seen["open"] = len(connections.open)
            (connection,) = connections.open.values()
            accepted = connection.transport.get_extra_info("socket")
            seen["nodelay"] = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's handler, i.e. our handle_exit, receives it
            await asyncio.sleep(0.05)
            seen["draining"] = connections.draining
            seen["idle_closed"] = await asyncio.to_thread(opened.recv, 10) == b""  # closed by the drain
            opened.close()

        task = asyncio.create_task(client())
        started = time.monotonic()
        await server.run_until_drained([sock])
        seen["seconds"] = time.monotonic() - started
        await task

    previous = signal.getsignal(signal.SIGTERM)
    asyncio.run(scenario())
    assert signal.getsignal(signal.SIGTERM) == previous  # uvicorn restored the handler, re-raised nothing
    assert seen["servers"] and all(isinstance(s, asyncio.Server) for s in seen["servers"])  # type: ignore[union-attr]
    assert seen["answer"].startswith(b"HTTP/1.1 200")  # type: ignore[union-attr]
    assert seen["open"] == 1 and seen["draining"] is True and seen["idle_closed"] is True
    # asyncio turns Nagle off only on sockets made with IPPROTO_TCP (bind() does): else every answer written
    # in two pieces (uvicorn writes the head, then the body) waits ~40 ms for the client's delayed ACK.
    assert seen["nodelay"] == 1
    assert server.should_exit and not server.force_exit


def test_should_exit_ends_the_loop_and_the_grace_set_during_the_drain_is_honoured() -> None:
    server, _, sock = _server(grace=1.0)
    port = sock.getsockname()[1]

    async def scenario() -> float:
        async def stall_then_signal() -> None:
            while not server.started:
                await asyncio.sleep(0.01)
            stalled = socket.create_connection(("127.0.0.1", port))
            stalled.sendall(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.sleep(0.2)
            server.handle_exit(signal.SIGTERM, None)

        task = asyncio.create_task(stall_then_signal())
        started = time.monotonic()
        await server.run_until_drained([sock])
        await task
        return time.monotonic() - started

    seconds = asyncio.run(scenario())
    assert 1.0 <= seconds < 3.5  # the stalled request held the exit for the grace period, and no longer
