"""The predictor under malformed and hostile input (``reliability/fuzz.py`` at test-suite size): named hostile
cases asserted exactly, then ~1,500 hypothesis- and schemathesis-generated requests with no 5xx, the server
live throughout on the same worker processes, and memory bounded; then 400 V2 gRPC calls on its gRPC port
(:mod:`reliability.fuzz_grpc`) with no server error and no wrong answer, and the cases that fuzzing found
over gRPC. Two workers and a 1 MB body limit, as in the full run (``python reliability/fuzz.py``)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import grpc
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from harness.net import http
from harness.predictor import Server, running_server, train_small_model
from harness.processes import worker_pids
from reliability.fuzz import FuzzConfig, run_fuzz
from reliability.fuzz_grpc import METHODS, SERVICE, families
from reliability.monitor import server_side_statuses
from reliability.target import INFER, INFER_VERSIONED, PREDICT

MAX_BYTES = 1_000_000
WIDTH = 26
ROW = [0.5] * WIDTH


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("fuzz")
    model = train_small_model(folder, rows=6_000)
    with running_server(
        "--model-uri", str(model.path), "--workers", "2", "--max-request-bytes", str(MAX_BYTES), workdir=folder
    ) as running:  # fmt: skip
        yield running


@pytest.fixture(scope="module")
def workers_at_start(server: Server) -> list[int]:
    return worker_pids(server.process.pid)


def _v2(data: str, shape: str = f"[1,{WIDTH}]", datatype: str = "FP32", extra: str = "") -> bytes:
    return f'{{"inputs":[{{"name":"features","shape":{shape},"datatype":"{datatype}","data":{data}}}]{extra}}}'.encode()


def _row(first: str) -> str:
    return "[" + ",".join([first] + ["1"] * (WIDTH - 1)) + "]"


def _binary(header: dict, tensor: bytes, length: str | bytes | None = None) -> tuple[bytes, dict]:
    text = json.dumps(header).encode()
    declared = str(len(text)) if length is None else length
    return text + tensor, {
        "Inference-Header-Content-Length": declared,
        "Content-Type": "application/octet-stream",
    }


def _features_header(size: int, shape: list[int] | None = None) -> dict:
    return {"inputs": [{"name": "features", "shape": shape or [1, WIDTH], "datatype": "FP32",
                        "parameters": {"binary_data_size": size}}]}  # fmt: skip


ONE_ROW = np.ones((1, WIDTH), np.float32).tobytes()
NAN_ROW = np.full((1, WIDTH), np.nan, np.float32).tobytes()
DEEP = "[" * 10_000 + "]" * 10_000
JSON = {"Content-Type": "application/json"}

# (id, path, body, headers, status, words in the error)
HOSTILE = [
    # deep nesting: 10,000 nested lists, as the body, inside a tensor, inside a binary header
    ("deep body v2", INFER, DEEP.encode(), JSON, 400, "malformed JSON: depth limit exceeded"),
    ("deep body versioned", INFER_VERSIONED, DEEP.encode(), JSON, 400, "malformed JSON: depth limit exceeded"),
    ("deep body predict", PREDICT, DEEP.encode(), JSON, 400, "not valid JSON: depth limit exceeded"),
    ("deep data", INFER, _v2(DEEP), JSON, 400, "malformed JSON: depth limit exceeded"),
    ("deep features", PREDICT, f'{{"features":{DEEP}}}'.encode(), JSON, 400, "depth limit exceeded"),
    ("deep binary header", INFER, (b'{"inputs":' + DEEP.encode() + b"}"),
     {"Inference-Header-Content-Length": str(len(DEEP) + 11)}, 400, "JSON header is malformed"),
    # NaN / Infinity literals (not JSON) and NaN in binary tensors
    ("NaN literal v2", INFER, _v2(_row("NaN")), JSON, 400, "malformed JSON"),
    ("Infinity literal v2", INFER_VERSIONED, _v2(_row("-Infinity")), JSON, 400, "malformed JSON"),
    ("NaN literal predict", PREDICT, f'{{"features":{_row("NaN")}}}'.encode(), JSON, 400, "not valid JSON"),
    ("NaN binary tensor", INFER, *_binary(_features_header(len(NAN_ROW)), NAN_ROW), 400,
     "26 value(s) are NaN, infinite or beyond float32 range"),
    # lying lengths in the binary tensor extension
    ("header length past the body", INFER, *_binary(_features_header(len(ONE_ROW)), ONE_ROW, "100000"), 400,
     "Inference-Header-Content-Length is 100000 but the body has only"),
    ("header length not a number", INFER, *_binary(_features_header(len(ONE_ROW)), ONE_ROW, "abc"), 400,
     "without a valid Inference-Header-Content-Length"),
    ("header length negative", INFER, *_binary(_features_header(len(ONE_ROW)), ONE_ROW, "-1"), 400,
     "without a valid Inference-Header-Content-Length"),
    ("header length short", INFER, *_binary(_features_header(len(ONE_ROW)), ONE_ROW, "10"), 400,
     "JSON header is malformed"),
    ("binary_data_size too big", INFER, *_binary(_features_header(10 * len(ONE_ROW)), ONE_ROW), 400,
     "declares 1040 bytes of binary data but only 104 remain"),
    ("binary_data_size too small", INFER, *_binary(_features_header(len(ONE_ROW) - 4), ONE_ROW), 400,
     "4 unexpected bytes after the last binary input"),
    ("binary_data_size negative", INFER, *_binary(_features_header(-1), ONE_ROW), 400,
     "neither 'data' nor a valid 'binary_data_size'"),
    ("binary size not the shape's", INFER, *_binary(_features_header(len(ONE_ROW), [2, WIDTH]), ONE_ROW), 400,
     "carries 104 bytes of binary data; shape [2, 26] of FP32 needs 208"),
    # huge numbers
    ("1e400 v2", INFER, _v2(_row("1e400")), JSON, 400, "malformed JSON: number is infinity"),
    ("5000-digit integer v2", INFER, _v2(_row("1" + "0" * 5_000)), JSON, 400, "malformed JSON: number is infinity"),
    ("1e39 FP64 v2", INFER, _v2(_row("1e39"), datatype="FP64"), JSON, 400, "beyond float32 range"),
    ("1e39 predict", PREDICT, f'{{"features":{_row("1e39")}}}'.encode(), JSON, 400, "beyond float32 range"),
    ("1e400 predict", PREDICT, f'{{"features":{_row("1e400")}}}'.encode(), JSON, 400, "not valid JSON"),
    ("shape 2^64-1", INFER, _v2(_row("1"), shape=f"[{2**64 - 1},{WIDTH}]"), JSON, 400, "has 26 values but its shape"),
    # wrong content types (and bodies in those formats)
    ("form-urlencoded predict", PREDICT, b"features=" + b"&features=".join([b"1"] * WIDTH),
     {"Content-Type": "application/x-www-form-urlencoded"}, 400, "not valid JSON"),
    ("form-urlencoded v2", INFER, b"features=" + b"&features=".join([b"1"] * WIDTH),
     {"Content-Type": "application/x-www-form-urlencoded"}, 400, "malformed JSON"),
    ("xml v2", INFER_VERSIONED, b"<features><f>1</f></features>", {"Content-Type": "application/xml"}, 400,
     "malformed JSON"),
    ("multipart predict", PREDICT,
     b'--x\r\nContent-Disposition: form-data; name="features"\r\n\r\n1\r\n--x--\r\n',
     {"Content-Type": "multipart/form-data; boundary=x"}, 400, "not valid JSON"),
    ("utf-16 json predict", PREDICT, json.dumps({"features": ROW}).encode("utf-16"),
     {"Content-Type": "application/json; charset=utf-16"}, 400, "not valid JSON"),
    # empty bodies
    ("empty v2", INFER, b"", JSON, 400, "malformed JSON: Input is a zero-length, empty document"),
    ("empty versioned", INFER_VERSIONED, b"", {}, 400, "malformed JSON: Input is a zero-length, empty document"),
    ("empty predict", PREDICT, b"", {}, 400, "not valid JSON: Input is a zero-length, empty document"),
    ("empty binary", INFER, b"", {"Inference-Header-Content-Length": "0"}, 400, "JSON header is malformed"),
    # above --max-request-bytes
    ("oversized v2", INFER, b"[" + b"1," * (MAX_BYTES // 2) + b"1]", JSON, 413, "exceeds the limit of 1,000,000"),
    ("oversized predict", PREDICT, b" " * (MAX_BYTES + 1), JSON, 413, "exceeds the limit of 1,000,000"),
    # found by the fuzzer: answered 500 before the fix in the report (serving/protocol/v2.py)
    ("shape [0, 2^63]", INFER, _v2("[]", shape=f"[0,{2**63}]"), JSON, 400, "shape"),
    ("shape [0, 2^62, 2^62]", INFER_VERSIONED, _v2("[]", shape=f"[0,{2**62},{2**62}]"), JSON, 400, "shape"),
    ("binary shape [0, 2^63]", INFER, *_binary(_features_header(0, [0, 2**63]), b""), 400, "shape"),
    ("header length superscript one", INFER, *_binary(_features_header(len(ONE_ROW)), ONE_ROW, b"\xb9"), 400,
     "Inference-Header-Content-Length"),
    ("output parameters a string", INFER, _v2(_row("1"), extra=',"outputs":[{"name":"probability","parameters":"binary_data"}]'),
     JSON, 400, "outputs"),
    ("output parameters a list", INFER, _v2(_row("1"), extra=',"outputs":[{"name":"probability","parameters":["binary_data"]}]'),
     JSON, 400, "outputs"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "headers", "status", "words"), [c[1:] for c in HOSTILE],
                         ids=[c[0] for c in HOSTILE])  # fmt: skip
def test_hostile_request_gets_a_client_error_that_says_why(
    server: Server,
    workers_at_start: list[int],
    path: str,
    body: bytes,
    headers: dict,
    status: int,
    words: str,
) -> None:
    answer, _, content = http("POST", server.url + path, body, headers=headers)
    assert answer == status, content[:500]
    document = json.loads(content)
    assert set(document) == {"error"} and isinstance(document["error"], str), document
    assert words in document["error"], document["error"]


def test_a_valid_request_with_another_content_type_is_scored(server: Server) -> None:
    """The server reads every body as JSON (or binary with the header), whatever Content-Type says."""
    status, _, content = http("POST", server.url + PREDICT, json.dumps({"features": ROW}).encode(),
                              headers={"Content-Type": "text/plain"})  # fmt: skip
    assert status == 200 and set(json.loads(content)) >= {"probability", "decision"}


def test_a_client_that_disconnects_mid_body_is_not_a_server_error(server: Server) -> None:
    """Nobody receives an answer, but the server must not count a 5xx (it would page CreditRiskHighErrorRatio)
    nor log a traceback."""
    before, tracebacks = server_side_statuses(server.url), server.logs().count("Traceback")
    target = urlsplit(server.url)
    for path in (INFER, INFER_VERSIONED, PREDICT):
        with socket.create_connection((target.hostname, target.port), timeout=10) as sock:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{".encode())
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1000) == b""  # closed without an answer
    time.sleep(1.5)  # the workers flush their counters
    counted = server_side_statuses(server.url) - before
    assert not {k: v for k, v in counted.items() if k.startswith("5")}, counted
    assert server.logs().count("Traceback") == tracebacks


def test_fuzzing_gets_no_server_error_and_the_server_stays_up(
    server: Server, workers_at_start: list[int]
) -> None:
    config = FuzzConfig(
        requests=1_200, schemathesis_examples=300, seed=7, concurrency=4, max_request_bytes=MAX_BYTES
    )
    result = run_fuzz(server.url, server.process.pid, config, log=lambda _: None, server_log=server.logs)
    requests = result["requests"]
    assert requests["total"] >= 1_400
    assert {"v2 infer", "v2 infer (versioned)", "/predict"} <= set(requests["by_route"])
    assert result["server_errors"]["count"] == 0, json.dumps(
        result["server_errors"]["examples"][:3], indent=1
    )
    assert not result["server_side"]["5xx_counted_in_metrics"]  # none either that no client saw
    assert result["schemathesis"]["gaps"] == []  # /openapi.json describes what is served
    assert result["server_side"]["tracebacks_logged"] == 0, server.logs()[-3000:]
    assert result["no_response"]["unexpected"] == 0, result["no_response"]
    assert not result["error_body_violations"]["by_status_route"], result["error_body_violations"][
        "examples"
    ][:3]
    assert not result["retried_on_a_new_connection"]["by_family"]  # the server never dropped a connection
    assert result["liveness"]["failures"] == [] and result["liveness"]["final_status"] == 200
    workers = result["workers"]
    assert workers["initial"] == workers["final"] == workers_at_start and workers["server_alive"]
    assert len(workers["initial"]) == 2 and all(s > 0 for s in workers["cpu_seconds_during_run"].values())
    memory = result["memory_mb"]
    assert memory["growth"] < 150 and memory["peak_growth"] < 150, memory
    assert result["passed"], result["failures"]
    assert server.process.poll() is None
    assert "Traceback" not in server.logs()


def test_grpc_fuzzing_gets_no_server_error_and_the_server_stays_up(
    server: Server, workers_at_start: list[int]
) -> None:
    config = FuzzConfig(
        requests=0, schemathesis_examples=0, grpc_requests=400, seed=11, max_request_bytes=MAX_BYTES
    )
    result = run_fuzz(server.url, server.process.pid, config, log=lambda _: None, server_log=server.logs,
                      grpc_target=server.grpc)  # fmt: skip
    report = result["grpc"]
    requests = report["requests"]
    assert requests["total"] >= 400
    assert set(requests["by_family"]) == {name for name, _, _ in families(MAX_BYTES)}
    assert {"ModelInfer", "ModelMetadata", "ModelReady", "ServerLive"} <= set(requests["by_route"])
    assert report["ok_share"] >= 0.15  # the OK path is exercised, and its answers checked
    assert {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "UNIMPLEMENTED"} <= set(
        requests["by_status"]
    )
    assert report["server_errors"]["count"] == 0, json.dumps(
        report["server_errors"]["examples"][:3], indent=1
    )
    assert not report["wrong_answers"]["by_route"], json.dumps(
        report["wrong_answers"]["examples"][:3], indent=1
    )
    assert report["no_response"]["by_family"] == {}
    assert set(report["after_the_run"].values()) == {"ok"}
    assert not result["server_side"]["5xx_counted_in_metrics"]
    assert result["server_side"]["tracebacks_logged"] == 0, server.logs()[-3000:]
    assert result["liveness"]["failures"] == [] and result["liveness"]["final_status"] == 200
    workers = result["workers"]
    assert workers["initial"] == workers["final"] == workers_at_start and workers["server_alive"]
    memory = result["memory_mb"]
    assert memory["growth"] < 150 and memory["peak_growth"] < 150, memory
    assert result["passed"], result["failures"]


# found by the gRPC fuzzer (reliability/fuzz_grpc.py)

UNDECODABLE = [
    ("random bytes", b"\xff\xff\xff\xff"),
    ("truncated", pb.ModelInferRequest(model_name="credit-risk", id="abc").SerializeToString()[:-1]),
    ("invalid UTF-8 in a string", b"\x0a\x02\xff\xfe"),  # field 1: the model name (ServerLive has none)
]
UNDECODABLE_CALLS = [
    pytest.param(method, payload, id=f"{method} {name}")
    for method in ("ModelInfer", "ModelMetadata", "ModelReady", "ServerLive")
    for name, payload in UNDECODABLE
    if not (method == "ServerLive" and name.startswith("invalid UTF-8"))
]


@pytest.mark.parametrize(("method", "payload"), UNDECODABLE_CALLS)
def test_a_message_protobuf_cannot_decode_is_invalid_argument(
    server: Server, method: str, payload: bytes
) -> None:
    """A client mistake like any other: INVALID_ARGUMENT, nothing logged. grpc's own answer, when the
    deserializer the servicer is registered with raises, is UNKNOWN ("Unexpected <class DecodeError>") with
    a traceback in the log, and the call is not counted in /metrics."""
    with pytest.raises(DecodeError):  # protobuf's own verdict, the server's parser
        METHODS[method][0].FromString(payload)
    tracebacks = server.logs().count("Traceback")
    with grpc.insecure_channel(server.grpc) as channel, pytest.raises(grpc.RpcError) as raised:
        channel.unary_unary(f"/{SERVICE}/{method}")(payload, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    time.sleep(0.5)
    assert server.logs().count("Traceback") == tracebacks


def test_a_request_within_the_limit_is_answered_even_when_its_echoed_id_fills_it(server: Server) -> None:
    """A ModelInfer of exactly ``max_request_bytes``, its id filling it, is scored (and counted 200), but
    its answer — the id echoed and four outputs — is 4 bytes over the same limit, which grpc applies to
    answers too: the client gets RESOURCE_EXHAUSTED ("SERVER: Sent message larger than max"), the server
    logs an ExecuteBatchError. Over HTTP the same request is answered 200."""
    request = pb.ModelInferRequest(model_name="credit-risk")
    request.inputs.add(name="features", datatype="FP32", shape=[1, WIDTH]).contents.fp32_contents.extend(ROW)
    request.id = "i" * (MAX_BYTES - request.ByteSize() - 4)
    while request.ByteSize() < MAX_BYTES:
        request.id += "i"
    assert request.ByteSize() == MAX_BYTES
    with grpc.insecure_channel(server.grpc, options=[("grpc.max_receive_message_length", -1)]) as channel:
        answer = channel.unary_unary(f"/{SERVICE}/ModelInfer")(request.SerializeToString(), timeout=30)
    assert pb.ModelInferResponse.FromString(answer).id == request.id
