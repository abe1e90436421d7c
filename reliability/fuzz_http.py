"""The HTTP fuzz target: the families of :mod:`reliability.http_requests` sent over HTTP/1.1 by a pool of
:class:`~reliability.http_client.Sender` threads, every answer judged (a 5xx, an application error without
its ``{"error": ...}`` body, silence where the client broke nothing) and counted in
:class:`~reliability.accounting.Stats`. A second protocol's target is a module of the same shape: its
request families, its client, its judgement, the same ``Stats``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import numpy as np

from reliability.accounting import Stats
from reliability.dispatch import dispatch_families
from reliability.http_client import Outcome, Request, Sender
from reliability.http_requests import VALID_PREDICT, VALID_V2, families
from reliability.json_text import to_bytes
from reliability.target import INFER, INFER_VERSIONED, PREDICT, WIDTH

UVICORN_400 = b"Invalid HTTP request received."  # uvicorn's answer to malformed HTTP (before the application)


def route_of(path: str) -> str:
    path = unquote(urlsplit(path).path)  # routes match the decoded path
    if re.fullmatch(r"/v2/models/[^/]+/versions/[^/]+/infer", path):
        return "v2 infer (versioned)"
    if re.fullmatch(r"/v2/models/[^/]+/infer", path):
        return "v2 infer"
    if path == PREDICT:
        return "/predict"
    return "other"


def is_error_body(content: bytes) -> bool:
    try:
        document = json.loads(content)
    except ValueError:
        return False
    return isinstance(document, dict) and set(document) == {"error"} and isinstance(document["error"], str)


def bad_error_body(status: int | None, route: str, content: bytes,
                   statuses: frozenset[int] = frozenset({400, 404, 413}), unchecked: frozenset[str] = frozenset({"other"})) -> bool:  # fmt: skip
    """The application's own answers on the scoring routes carry ``{"error": "..."}`` (README); uvicorn's
    answers to malformed HTTP and Starlette's 405 are not the application's and are not checked."""
    return (
        status in statuses
        and route not in unchecked
        and content != UVICORN_400
        and not is_error_body(content)
    )


@dataclass(frozen=True)
class Judge:
    """How a server's HTTP answers are told apart and judged: its routes (``route_of``: path → a bounded
    route name), the statuses whose body must be ``{"error"}`` and the routes where that is not checked."""

    route_of: Callable[[str], str] = route_of
    error_statuses: frozenset[int] = frozenset({400, 404, 413})
    unchecked_routes: frozenset[str] = frozenset({"other"})


PREDICTOR_JUDGE = Judge()


def acceptable_without_response(family: str, mode: str, error: str | None) -> bool:
    """No HTTP response is a correct outcome only where the client broke HTTP itself, or kept sending a
    chunked body past the limit after the server's 413 (the README: such a client is cut off)."""
    return family == "http-framing" or (mode == "chunked" and family == "oversized")


def record(stats: Stats, source: str, family: str, path: str, status: int | None, content: bytes, *,
           error: str | None = None, seconds: float, body_bytes: int, evidence: Callable[[], dict],
           retried: bool = False, silence_is_failure: bool = False, judge: Judge = PREDICTOR_JUDGE,
           wrong_answer: str | None = None) -> None:  # fmt: skip
    """One HTTP answer into ``stats``, judged: a 5xx is a server error, a client error of the application
    must carry its ``{"error"}`` body; ``wrong_answer``: why the answer is not the one due (the caller's
    judgement, e.g. an ingestion without the token answered other than 401)."""
    route = judge.route_of(path)
    stats.record(
        source, family, route, status, content, error=error, seconds=seconds, body_bytes=body_bytes,
        evidence=evidence, server_error=status is not None and status >= 500,
        bad_error_body=bad_error_body(status, route, content, judge.error_statuses, judge.unchecked_routes),
        retried=retried, silence_is_failure=silence_is_failure, wrong_answer=wrong_answer,
    )  # fmt: skip


def send(sender: Sender, request: Request) -> Outcome:
    """``sender.send(request)``; a request the client library refuses to send is an outcome too."""
    try:
        return sender.send(request)
    except Exception as exc:  # a request the client library refuses to send: a bug of this script
        sender.close()
        return Outcome(None, error=f"client error {type(exc).__name__}: {exc}"[:200])


def record_outcome(stats: Stats, request: Request, outcome: Outcome, judge: Judge = PREDICTOR_JUDGE,
                   wrong_answer: str | None = None) -> None:  # fmt: skip
    """A generated request's outcome into ``stats`` (no answer is a failure unless the client broke HTTP)."""
    record(
        stats, "hypothesis", request.family, request.path, outcome.status, outcome.body, error=outcome.error,
        seconds=outcome.seconds, body_bytes=len(request.body), evidence=request.describe,
        retried=outcome.retried, judge=judge, wrong_answer=wrong_answer,
        silence_is_failure=not acceptable_without_response(request.family, request.mode, outcome.error),
    )  # fmt: skip


def send_and_record(stats: Stats, sender: Sender, request: Request) -> None:
    record_outcome(stats, request, send(sender, request))


def fuzz_http(base_url: str, stats: Stats, requests: int, seed: int, concurrency: int, max_request_bytes: int,
              only: list[str] | None = None, log: Callable[[str], None] = print) -> dict[str, int]:  # fmt: skip
    """About ``requests`` distinct hostile requests (the families named in ``only``, or all) sent on
    ``concurrency`` connections; returns how many each family generated."""
    return dispatch_families(
        families(max_request_bytes), only, requests, seed, concurrency,
        open_client=lambda: Sender(base_url),
        handle=lambda sender, request: send_and_record(stats, sender, request),
        key=Request.fingerprint, log=log,
    )  # fmt: skip


def warm_up(base_url: str, rounds: int = 60) -> None:
    """Valid and invalid requests on fresh connections (both workers), so that lazy imports and first-use
    allocations are in the baseline rather than counted as growth."""
    rows = np.full((3, WIDTH), 0.5, np.float32)
    header = to_bytes({"inputs": [{"name": "features", "shape": [3, WIDTH], "datatype": "FP32",
                                    "parameters": {"binary_data_size": rows.nbytes}}]})  # fmt: skip
    requests = [
        Request("warm-up", "POST", INFER, to_bytes(VALID_V2)),
        Request("warm-up", "POST", INFER_VERSIONED, to_bytes(VALID_V2)),
        Request("warm-up", "POST", PREDICT, to_bytes(VALID_PREDICT)),
        Request("warm-up", "POST", INFER, header + rows.tobytes(), (("Inference-Header-Content-Length", str(len(header))),)),
        Request("warm-up", "POST", INFER, b"{"),
        Request("warm-up", "POST", PREDICT, b"[]"),
    ]  # fmt: skip
    for _ in range(rounds):
        sender = Sender(base_url)
        for request in requests:
            sender.send(request)
        sender.close()
