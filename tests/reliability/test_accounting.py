"""The fuzz run's bookkeeping without a server: how an HTTP answer is judged and counted, a status that is
not HTTP's (what a gRPC target records) counted the same way, and the seeded drawing of distinct requests
that makes a run repeatable."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from reliability.accounting import Stats
from reliability.fuzz_http import record
from reliability.http_client import Request
from reliability.http_requests import families
from reliability.strategies import draw_families, generate
from reliability.target import INFER, PREDICT


def _record(stats: Stats, family: str, path: str, status: int | None, content: bytes = b"", **kw) -> None:
    request = Request(family, "POST", path, b"{}")
    record(stats, "hypothesis", family, path, status, content, seconds=0.01, body_bytes=2,
           evidence=request.describe, **kw)  # fmt: skip


def test_http_answers_are_judged_and_counted() -> None:
    stats = Stats()
    _record(stats, "v2-json", INFER, 200, b'{"outputs": []}')
    _record(stats, "v2-json", INFER, 400, json.dumps({"error": "inputs[0]: not a list"}).encode())
    _record(
        stats, "v2-json", INFER, 400, json.dumps({"detail": "no"}).encode()
    )  # not the application's shape
    _record(stats, "predict", PREDICT, 500, b"Internal Server Error")
    _record(stats, "path-method", "/nowhere", 404, b"Not Found")  # not a scoring route: not checked
    _record(stats, "http-framing", INFER, None, error="closed without a response", silence_is_failure=False)
    _record(stats, "v2-json", INFER, None, error="RemoteDisconnected", retried=True, silence_is_failure=True)

    report = stats.report({"v2-json": 4})
    assert report["requests"]["total"] == 7
    assert report["requests"]["by_status"] == {"200": 1, "400": 2, "404": 1, "500": 1, "no response": 2}
    assert report["requests"]["by_route"]["v2 infer"] == {"200": 1, "400": 2, "no response": 2}
    assert report["server_errors"]["count"] == 1
    assert report["server_errors"]["examples"][0]["path"] == PREDICT  # the request comes with it
    assert report["error_body_violations"]["by_status_route"] == {"400 v2 infer": 1}
    assert report["no_response"]["unexpected"] == 1
    assert report["retried_on_a_new_connection"]["by_family"] == {"v2-json": 1}
    assert stats.failures() == [
        "1 responses with a 5xx status",
        "1 well-formed requests got no HTTP response",
    ]


def test_a_status_that_is_not_http_is_counted_by_its_name() -> None:
    """What a gRPC target records: the code's name as the status, its own judgement of it."""
    stats = Stats()
    for code, server_error in (("OK", False), ("INVALID_ARGUMENT", False), ("INTERNAL", True)):
        stats.record("grpc", "grpc-infer", "grpc ModelInfer", code, b"details", seconds=0.001, body_bytes=10,
                     evidence=lambda: {"message": "..."}, server_error=server_error)  # fmt: skip
    report = stats.report({})
    assert report["requests"]["by_route"] == {
        "grpc ModelInfer": {"INTERNAL": 1, "INVALID_ARGUMENT": 1, "OK": 1}
    }
    assert report["server_errors"]["count"] == 1
    assert report["server_errors"]["examples"][0]["status"] == "INTERNAL"
    assert not report["error_body_violations"]["by_status_route"]


def test_drawing_is_seeded_and_each_draw_distinct() -> None:
    def draw(seed: int) -> tuple[list[str], dict[str, int]]:
        drawn: list[Request] = []
        counts = draw_families(
            families(1_000_000), 60, seed, drawn.append, Request.fingerprint, log=lambda _: None
        )
        return [r.fingerprint() for r in drawn], counts

    first, counts = draw(3)
    assert draw(3) == (first, counts)  # a run can be repeated
    assert draw(4)[0] != first
    assert len(first) == sum(counts.values()) >= 60
    assert set(counts) == {name for name, _, _ in families(1_000_000)}
    for name, _, strategy in families(1_000_000):
        drawn: list[Request] = []
        assert generate(strategy, 20, 5, drawn.append, Request.fingerprint) == 20
        assert len({r.fingerprint() for r in drawn}) == 20 and {r.family for r in drawn} <= {name, "at-limit"}


def test_a_family_that_runs_out_hands_what_it_has() -> None:
    handed: list[int] = []
    assert generate(st.sampled_from([1, 2, 3]), 10, seed=1, sink=handed.append, key=str) == 3
    assert sorted(handed) == [1, 2, 3]
