"""Slow, greedy and hostile clients against the real server, over raw sockets: each gets a clean answer
(or a clean close) within the configured time, and the server goes on serving everyone else."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from harness.net import http
from harness.predictor import Server, TrainedModel, running_server
from serving.limits import LINGER_SECONDS

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
MAX_BYTES = 100_000
MAX_CONNECTIONS = 4


@pytest.fixture(scope="module")
def server(trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        "--model-uri", str(trained.path), "--header-timeout-seconds", str(HEADER_TIMEOUT),
        "--body-timeout-seconds", str(BODY_TIMEOUT), "--max-request-bytes", str(MAX_BYTES),
        "--max-connections", str(MAX_CONNECTIONS), "--keep-alive-seconds", "30", "--grpc-port", "0",
        workdir=tmp_path_factory.mktemp("limits"),
    ) as running:  # fmt: skip
        yield running


def _connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data + b"<reset>"
        if not chunk:
            return data
        data += chunk


def _read_response(sock: socket.socket) -> bytes:
    """One whole answer on a kept-alive connection: the head, then Content-Length bytes of body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _exchange(server: Server, payload: bytes) -> tuple[bytes, float]:
    """Send ``payload``, then read until the server closes; the answer and the seconds it took."""
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(payload)
        answer = _read_all(sock)
        return answer, time.monotonic() - started


def _status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"]


def test_partial_headers_get_408_after_the_header_timeout(server: Server) -> None:
    answer, seconds = _exchange(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le")
    status, error = _status_and_error(answer)
    assert status == 408 and "headers did not arrive within 1 s" in error
    assert HEADER_TIMEOUT * 0.9 <= seconds < HEADER_TIMEOUT + 1.5
    assert b"connection: close" in answer.lower()


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(server: Server) -> None:
    answer, seconds = _exchange(server, b"")
    assert answer == b"" and HEADER_TIMEOUT * 0.9 <= seconds < HEADER_TIMEOUT + 1.5


def test_a_body_shorter_than_its_length_gets_408_after_the_body_timeout(server: Server) -> None:
    answer, seconds = _exchange(
        server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"1" * 100
    )
    status, error = _status_and_error(answer)
    assert status == 408 and "body did not arrive within 1.5 s (100 bytes received)" in error
    assert BODY_TIMEOUT * 0.9 <= seconds < BODY_TIMEOUT + 1.5


def test_an_over_limit_length_gets_413_at_once_then_the_connection_closes(server: Server) -> None:
    payload = (
        b"POST /v2/models/credit-risk/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
        + b"1" * 10
    )
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(payload)
        answer = _read_response(sock)
        answered = time.monotonic() - started
        assert _read_all(sock) == b""  # then the server closes
        closed = time.monotonic() - started
    status, error = _status_and_error(answer)
    assert status == 413 and f"exceeds the limit of {MAX_BYTES:,} bytes" in error
    assert answered < 0.5 and closed < LINGER_SECONDS + 1.0  # never waiting for the 100 MB


def test_a_client_that_sends_its_whole_over_limit_body_first_still_reads_the_413(server: Server) -> None:
    """Python's http.client (and many others) read the answer only after sending the body: the server reads
    and drops what keeps coming after its 413, instead of resetting the connection under the client."""
    import http.client

    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request(
        "POST", "/predict", body=b"1" * (3 * MAX_BYTES), headers={"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    assert response.status == 413 and "exceeds the limit" in json.loads(response.read())["error"]
    assert response.will_close
    connection.close()


def test_expect_100_continue_over_the_limit_gets_413_and_no_100_continue(server: Server) -> None:
    payload = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n"
               b"Expect: 100-continue\r\n\r\n")  # fmt: skip
    answer, seconds = _exchange(server, payload)
    assert not answer.startswith(b"HTTP/1.1 100")
    assert _status_and_error(answer)[0] == 413 and seconds < 0.5


def test_expect_100_continue_within_the_limit_is_told_to_continue(server: Server, row: list[float]) -> None:
    body = json.dumps({"features": row}).encode()
    with _connect(server) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
            % len(body)
        )
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 200") and b'"probability"' in answer


def test_a_chunked_body_is_cut_off_at_the_limit(server: Server) -> None:
    chunk = b"1.0, " * 4000
    with _connect(server) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        answer = b""
        for _ in range(MAX_BYTES // len(chunk) + 2):
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = _read_all(sock)
    status, error = _status_and_error(answer)
    assert status == 413 and "exceeds the limit" in error


def test_connections_beyond_the_cap_get_503_and_the_server_recovers(server: Server) -> None:
    held = [_connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        answer, seconds = _exchange(server, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        status, error = _status_and_error(answer)
        assert status == 503 and f"limit of {MAX_CONNECTIONS} connections" in error and seconds < 0.5
        assert b"retry-after: 1" in answer.lower()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert http("GET", server.url + "/v2/health/live")[0] == 200


def test_kept_alive_connections_keep_working_and_idle_ones_are_not_timed_out(
    server: Server, row: list[float]
) -> None:
    body = json.dumps({"features": row}).encode()
    request = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (
            len(body),
            body,
        )
    )
    with _connect(server) as sock:
        for _ in range(3):
            sock.sendall(request)
            assert _read_response(sock).startswith(b"HTTP/1.1 200")
            time.sleep(HEADER_TIMEOUT * 1.3)  # idle between requests: longer than the header timeout
    assert "Traceback" not in server.logs()


def test_a_forwarded_for_header_does_not_hide_the_connection(server: Server, row: list[float]) -> None:
    """The limits find a request's connection by its TCP peer: a proxy's X-Forwarded-For (uvicorn rewrites the
    client from it by default) must not make a kept-alive connection look unknown and time out."""
    body = json.dumps({"features": row}).encode()
    request = (b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s") % (len(body), body)  # fmt: skip
    with _connect(server) as sock:
        sock.sendall(request)
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(HEADER_TIMEOUT * 1.5)
        sock.sendall(request)
        assert _read_response(sock).startswith(b"HTTP/1.1 200")


def test_an_answer_before_the_body_is_read_keeps_the_connection(server: Server, row: list[float]) -> None:
    """A 404 for an unknown model comes before the body is read: the server drops the body itself, so the
    kept-alive connection goes on (closing with it unread would reset the connection under the client)."""
    body = json.dumps({"features": row}).encode() * 20
    wrong = b"POST /v2/models/nope/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    good = json.dumps({"features": row}).encode()
    right = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(good), good)
    with _connect(server) as sock:
        sock.sendall(wrong)
        answer = _read_response(sock)
        assert answer.startswith(b"HTTP/1.1 404") and b"connection: close" not in answer.lower()
        sock.sendall(right)
        assert _read_response(sock).startswith(b"HTTP/1.1 200")


def test_a_whole_chunked_body_over_the_limit_gets_its_413_at_once(server: Server) -> None:
    """The rest of an over-limit chunked body is read and dropped, and the answer follows at once: the
    connection is then in order (no wait for a body timeout that can no longer come)."""
    import http.client

    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    chunks = (b"1" * 65_536 for _ in range(3 * MAX_BYTES // 65_536))
    started = time.monotonic()
    connection.request(
        "POST", "/predict", body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True
    )
    response = connection.getresponse()
    assert response.status == 413 and "exceeds the limit" in json.loads(response.read())["error"]
    assert time.monotonic() - started < 1.0
    connection.close()
