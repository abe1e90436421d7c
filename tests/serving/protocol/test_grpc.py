"""V2 over gRPC, in process: a real ``grpc.aio`` server (its own event loop in a thread) around a real
``CreditRiskModel``, called with kserve's generated stub, kserve's ``InferResponse.from_grpc``, and
``tritonclient.grpc`` (in its own process: its protos clash with kserve's)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from kserve.protocol.infer_type import InferResponse

import serving
from harness import ROOT
from harness.net import free_port
from harness.predictor import TrainedModel
from harness.triton_grpc import run_triton_grpc
from serving.errors import InvalidRequest
from serving.model import CreditRiskModel
from serving.protocol import v2
from serving.protocol.grpc import create_server
from serving.settings import ServingSettings

MAX_ROWS = 100
MAX_BYTES = 2**20
ROUTE = "/inference.GRPCInferenceService/"
F = 26


def settings_for(port: int, **overrides: Any) -> SimpleNamespace:
    """What create_server reads from ServingSettings (some fields are not on this branch's settings yet)."""
    values = dict(host="127.0.0.1", grpc_port=port, max_request_bytes=MAX_BYTES, workers=1,
                  header_timeout_seconds=5.0, ssl_certfile=None, ssl_keyfile=None)  # fmt: skip
    return SimpleNamespace(**{**values, **overrides})


@contextmanager
def running(model: Any, settings: SimpleNamespace) -> Iterator[str]:
    """``create_server(model, settings)`` started in an event loop of its own thread; yields host:port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="grpc-test-server", daemon=True)
    thread.start()

    async def start() -> grpc.aio.Server:
        server = create_server(model, settings)
        await server.start()
        return server

    try:
        server = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
        try:
            yield f"{settings.host}:{settings.grpc_port}"
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(None), loop).result(30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


@dataclass
class Served:
    model: CreditRiskModel
    target: str
    stub: pb_grpc.GRPCInferenceServiceStub
    rows: np.ndarray  # out-of-time rows of the trained model
    expected: np.ndarray  # onnxruntime's probabilities for them


@pytest.fixture(scope="module")
def served(trained: TrainedModel) -> Iterator[Served]:
    model = CreditRiskModel(ServingSettings(model_uri=str(trained.path), max_batch_rows=MAX_ROWS))
    model.load()
    rows = np.ascontiguousarray(trained.X_test[:20], dtype=np.float32)
    session = ort.InferenceSession(str(trained.path), providers=["CPUExecutionProvider"])
    expected = session.run(["probability"], {session.get_inputs()[0].name: rows})[0].ravel()
    with running(model, settings_for(free_port())) as target, grpc.insecure_channel(target) as channel:
        yield Served(model, target, pb_grpc.GRPCInferenceServiceStub(channel), rows, expected)


def infer_request(
    rows: np.ndarray, model: str = "credit-risk", raw: bool = True, **fields: Any
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, **fields)
    tensor = request.inputs.add(name="features", datatype="FP32", shape=list(rows.shape))
    if raw:
        request.raw_input_contents.append(np.ascontiguousarray(rows, dtype="<f4").tobytes())
    else:
        tensor.contents.fp32_contents.extend(rows.ravel().tolist())
    return request


def outputs_of(response: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    """Decoded the way kserve's own client decodes a gRPC answer."""
    return {o.name: o.as_numpy() for o in InferResponse.from_grpc(response).outputs}


def rpc_error(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return caught.value


def requests_counted(model: CreditRiskModel, method: str, label: str, status: int) -> float:
    value = model.metrics.registry.get_sample_value(
        "credit_risk_requests_total",
        {"route": ROUTE + method, "model_name": label, "status_code": str(status)},
    )
    return value or 0.0


# ------------------------------------------------------------------------------------------------ health


def test_health_and_readiness(served: Served) -> None:
    stub, model = served.stub, served.model
    assert stub.ServerLive(pb.ServerLiveRequest()).live is True
    assert stub.ServerReady(pb.ServerReadyRequest()).ready is True
    assert stub.ModelReady(pb.ModelReadyRequest(name=model.name)).ready is True
    assert stub.ModelReady(pb.ModelReadyRequest(name=model.name, version=model.version)).ready is True


def test_server_metadata_lists_no_extension(served: Served) -> None:
    got = served.stub.ServerMetadata(pb.ServerMetadataRequest())
    assert (got.name, got.version, list(got.extensions)) == ("credit-risk-predictor", serving.__version__, [])


def test_model_metadata(served: Served) -> None:
    model = served.model
    for version in ("", model.version):
        got = served.stub.ModelMetadata(pb.ModelMetadataRequest(name=model.name, version=version))
        assert (got.name, list(got.versions), got.platform) == (
            model.name,
            [model.version],
            "onnxruntime_onnx",
        )
        assert [(t.name, t.datatype, list(t.shape)) for t in got.inputs] == [("features", "FP32", [-1, F])]
        assert [(t.name, t.datatype, list(t.shape)) for t in got.outputs] == [
            ("probability", "FP32", [-1]),
            ("prediction", "INT64", [-1]),
            ("risk_level", "BYTES", [-1]),
            ("decision", "BYTES", [-1]),
        ]


# ------------------------------------------------------------------------------------------------ infer


@pytest.mark.parametrize("raw", [True, False], ids=["raw_input_contents", "contents"])
def test_infer_scores_what_onnxruntime_scores(served: Served, raw: bool) -> None:
    response = served.stub.ModelInfer(infer_request(served.rows, raw=raw, id="req-1"), timeout=30)
    assert (response.id, response.model_name, response.model_version) == (
        "req-1",
        "credit-risk",
        served.model.version,
    )
    assert [o.name for o in response.outputs] == ["probability", "prediction", "risk_level", "decision"]
    assert len(response.raw_output_contents) == 4  # every output raw, none in typed contents
    assert all(not o.HasField("contents") for o in response.outputs)
    got = outputs_of(response)
    np.testing.assert_allclose(got["probability"], served.expected, rtol=1e-6)
    assert got["probability"].dtype == np.float32 and got["prediction"].dtype == np.int64
    scored = served.model.score(served.rows)
    np.testing.assert_array_equal(got["prediction"], scored.prediction)
    assert [v.decode() for v in got["risk_level"]] == scored.risk_level.tolist()
    assert [v.decode() for v in got["decision"]] == scored.decision.tolist()
    assert [list(o.shape) for o in response.outputs] == [[len(served.rows)]] * 4


def test_an_empty_id_is_echoed_empty(served: Served) -> None:
    assert served.stub.ModelInfer(infer_request(served.rows[:1]), timeout=30).id == ""


def test_the_explicit_version_is_accepted(served: Served) -> None:
    response = served.stub.ModelInfer(infer_request(served.rows, model_version=served.model.version))
    np.testing.assert_allclose(outputs_of(response)["probability"], served.expected, rtol=1e-6)


@pytest.mark.parametrize("raw", [True, False], ids=["raw_input_contents", "contents"])
def test_one_tensor_per_feature(served: Served, raw: bool) -> None:
    request = pb.ModelInferRequest(model_name="credit-risk")
    names = served.model.contract.feature_names
    for j in reversed(range(F)):  # any order
        column = np.ascontiguousarray(served.rows[:, j], dtype=np.float64)
        tensor = request.inputs.add(name=names[j], datatype="FP64", shape=[len(column)])
        if raw:
            request.raw_input_contents.append(column.astype("<f8").tobytes())
        else:
            tensor.contents.fp64_contents.extend(column.tolist())
    got = outputs_of(served.stub.ModelInfer(request, timeout=30))
    np.testing.assert_allclose(got["probability"], served.expected, rtol=1e-6)


def test_other_numeric_datatypes_in_their_contents_field(served: Served) -> None:
    whole = np.rint(np.abs(served.rows[:3]))  # counts and indicators as integers
    expected = served.model.score(whole.astype(np.float32)).probability
    for datatype, field in [("INT32", "int_contents"), ("INT64", "int64_contents"),
                            ("UINT8", "uint_contents"), ("UINT64", "uint64_contents")]:  # fmt: skip
        if datatype == "UINT8" and whole.max() > 255:
            continue
        request = pb.ModelInferRequest(model_name="credit-risk")
        tensor = request.inputs.add(name="features", datatype=datatype, shape=[3, F])
        getattr(tensor.contents, field).extend(int(v) for v in whole.ravel())
        got = outputs_of(served.stub.ModelInfer(request, timeout=30))
        np.testing.assert_allclose(got["probability"], expected, rtol=1e-6, err_msg=datatype)


def test_requested_outputs_come_in_the_order_asked(served: Served) -> None:
    request = infer_request(served.rows)
    request.outputs.add(name="decision")
    request.outputs.add(name="probability")
    response = served.stub.ModelInfer(request, timeout=30)
    assert [o.name for o in response.outputs] == ["decision", "probability"]
    assert len(response.raw_output_contents) == 2
    got = outputs_of(response)
    np.testing.assert_allclose(got["probability"], served.expected, rtol=1e-6)


def test_binary_data_output_parameter_changes_nothing(served: Served) -> None:
    request = infer_request(served.rows)
    request.parameters["binary_data_output"].bool_param = False
    response = served.stub.ModelInfer(request, timeout=30)
    assert len(response.raw_output_contents) == 4


# ------------------------------------------------------------------------------------------------ client mistakes


def _raw(
    shape: list[int], data: bytes, datatype: str = "FP32", name: str = "features"
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="credit-risk")
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    request.raw_input_contents.append(data)
    return request


def _typed(
    shape: list[int], field: str, values: list, datatype: str = "FP32", name: str = "features"
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="credit-risk")
    tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
    getattr(tensor.contents, field).extend(values)
    return request


def _no_contents() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="credit-risk")
    request.inputs.add(name="features", datatype="FP32", shape=[1, F])
    return request


def _mixed() -> pb.ModelInferRequest:
    request = _raw([1, F], bytes(4 * F))
    other = request.inputs.add(name="second", datatype="FP32", shape=[1])
    other.contents.fp32_contents.append(1.0)
    request.raw_input_contents.append(bytes(4))
    return request


def _two_inputs_one_raw() -> pb.ModelInferRequest:
    request = _raw([1, F], bytes(4 * F))
    request.inputs.add(name="second", datatype="FP32", shape=[1])
    return request


def _unknown_output() -> pb.ModelInferRequest:
    request = _raw([1, F], bytes(4 * F))
    request.outputs.add(name="score")
    return request


ONES = [1.0] * F
MISTAKES = {
    "negative shape": (_raw([-1, F], bytes(4 * F)), r"inputs\[0\].*-1"),
    "shape and count disagree (contents)": (_typed([2, F], "fp32_contents", ONES), r"inputs\[0\].*26"),
    "shape and count disagree (raw)": (_raw([2, F], bytes(4 * F)), r"inputs\[0\].*104"),
    "an enormous shape with few bytes": (_raw([2**62, F], bytes(4 * F)), r"inputs\[0\]"),
    "lowercase datatype (contents)": (_typed([1, F], "fp32_contents", ONES, "fp32"), r"inputs\[0\].*fp32"),
    "lowercase datatype (raw)": (_raw([1, F], bytes(4 * F), "fp32"), r"inputs\[0\].*fp32"),
    "unknown datatype": (_typed([1, F], "fp32_contents", ONES, "FLOAT"), r"inputs\[0\].*FLOAT"),
    "values in the wrong field": (
        _typed([1, F], "fp64_contents", ONES),
        r"inputs\[0\] 'features'.*fp64_contents.*fp32_contents",
    ),
    "no contents at all": (_no_contents(), r"inputs\[0\] 'features'.*no contents"),
    "FP16 in typed contents": (
        _typed([1, F], "fp32_contents", ONES, "FP16"),
        r"inputs\[0\].*FP16.*raw_input_contents",
    ),
    "raw and typed contents mixed": (_mixed(), r"inputs\[1\] 'second'.*raw"),
    "fewer raw entries than inputs": (
        _two_inputs_one_raw(),
        r"raw_input_contents has 1 entries for 2 inputs",
    ),
    "NaN": (_typed([1, F], "fp32_contents", [float("nan"), *ONES[1:]]), r"NaN"),
    "infinity (raw)": (_raw([1, F], np.full((1, F), np.inf, "<f4").tobytes()), r"infinite|inf"),
    "too many rows": (_raw([MAX_ROWS + 1, F], bytes(4 * F * (MAX_ROWS + 1))), r"101 rows.*100"),
    "empty batch": (_raw([0, F], b""), r"empty"),
    "out of range for UINT8": (_typed([1, F], "uint_contents", [300] * F, "UINT8"), r"inputs\[0\].*300"),
    "a BYTES feature matrix": (_typed([1, F], "bytes_contents", [b"1"] * F, "BYTES"), r"BYTES"),
    "unknown input name": (_raw([1, F], bytes(4 * F), name="feature"), r"feature"),
    "unknown requested output": (_unknown_output(), r"score"),
    "no inputs": (pb.ModelInferRequest(model_name="credit-risk"), r"no inputs"),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_client_mistakes_are_invalid_argument(served: Served, case: str) -> None:
    request, message = MISTAKES[case]
    error = rpc_error(served.stub.ModelInfer, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert re.search(message, error.details()), error.details()


def test_unknown_model_and_version_are_not_found(served: Served) -> None:
    stub, model = served.stub, served.model
    for call, request in [
        (stub.ModelInfer, infer_request(served.rows, model="fraud")),
        (stub.ModelMetadata, pb.ModelMetadataRequest(name="fraud")),
        (stub.ModelReady, pb.ModelReadyRequest(name="fraud")),
    ]:
        error = rpc_error(call, request)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert "'fraud'" in error.details() and f"'{model.name}'" in error.details()
    for call, request in [
        (stub.ModelInfer, infer_request(served.rows, model_version="999")),
        (stub.ModelMetadata, pb.ModelMetadataRequest(name=model.name, version="999")),
        (stub.ModelReady, pb.ModelReadyRequest(name=model.name, version="999")),
    ]:
        error = rpc_error(call, request)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert '"999"' in error.details() and model.version in error.details()


def test_a_hostile_model_name_is_not_found_in_a_short_message(served: Served) -> None:
    name = "é" * 100_000  # echoed whole, the status would exceed the client's trailer limit
    for call, request in [
        (served.stub.ModelInfer, infer_request(served.rows, model=name)),
        (served.stub.ModelMetadata, pb.ModelMetadataRequest(name=name)),
    ]:
        error = rpc_error(call, request)
        assert error.code() == grpc.StatusCode.NOT_FOUND and len(error.details()) < 200, error.details()
        assert "is not served here" in error.details()


class Verbose:
    """A model object whose (client-caused) error message is far longer than a trailer may be."""

    name, version, ready, metrics = "credit-risk", "1", True, None

    async def __call__(self, request: v2.Request) -> v2.Outputs:
        raise InvalidRequest("bad: " + "x" * 100_000)


def test_a_long_message_is_cut_to_fit_a_trailer() -> None:
    with running(Verbose(), settings_for(free_port())) as target, grpc.insecure_channel(target) as channel:
        error = rpc_error(pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer, _raw([1, F], bytes(4 * F)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("bad: xxx") and len(error.details().encode()) <= 2048


def test_the_repository_extension_is_not_served(served: Served) -> None:
    error = rpc_error(
        served.stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="credit-risk")
    )
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_message_over_the_limit_is_resource_exhausted(served: Served) -> None:
    rows = np.zeros((MAX_BYTES // (4 * F) + 1, F), np.float32)
    error = rpc_error(served.stub.ModelInfer, infer_request(rows))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert served.stub.ServerLive(pb.ServerLiveRequest()).live  # and the server goes on


def test_a_compressed_message_counts_by_its_decompressed_size(served: Served) -> None:
    bomb = infer_request(np.zeros((4 * MAX_BYTES // (4 * F), F), np.float32))  # 4 MiB of zeros: ~4 kB gzipped
    with grpc.insecure_channel(served.target, compression=grpc.Compression.Gzip) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert rpc_error(stub.ModelInfer, bomb).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        response = stub.ModelInfer(infer_request(served.rows), timeout=30)  # compression itself is fine
    np.testing.assert_allclose(outputs_of(response)["probability"], served.expected, rtol=1e-6)


@pytest.mark.parametrize("sent", [b"", b"PRI * HTTP/2.0\r\n"], ids=["nothing", "half a preface"])
def test_a_silent_connection_is_closed_after_the_header_timeout(served: Served, sent: bytes) -> None:
    settings = settings_for(free_port(), header_timeout_seconds=0.5)
    with running(served.model, settings), socket.create_connection(("127.0.0.1", settings.grpc_port)) as s:
        s.settimeout(30)
        s.sendall(sent)
        started = time.monotonic()
        while s.recv(4096):  # the server's SETTINGS frame, then nothing until it closes
            pass
        waited = time.monotonic() - started
    assert 0.3 < waited < 5, waited


# ------------------------------------------------------------------------------------------------ metrics


def test_every_rpc_is_counted_with_its_status(served: Served) -> None:
    model = served.model
    before = {
        key: requests_counted(model, *key)
        for key in [
            ("ModelInfer", "credit-risk", 200),
            ("ModelInfer", "credit-risk", 400),
            ("ModelInfer", "unknown", 404),
            ("ServerLive", "credit-risk", 200),
            ("ModelMetadata", "credit-risk", 404),
        ]
    }
    served.stub.ModelInfer(infer_request(served.rows), timeout=30)
    rpc_error(served.stub.ModelInfer, _no_contents())
    rpc_error(served.stub.ModelInfer, infer_request(served.rows, model="<script>"))
    served.stub.ServerLive(pb.ServerLiveRequest())
    rpc_error(served.stub.ModelMetadata, pb.ModelMetadataRequest(name=model.name, version="999"))
    after = {key: requests_counted(model, *key) for key in before}
    assert {key: after[key] - before[key] for key in before} == dict.fromkeys(before, 1.0)
    latency = model.metrics.registry.get_sample_value(
        "credit_risk_request_duration_seconds_count",
        {"route": ROUTE + "ModelInfer", "model_name": "credit-risk"},
    )
    assert latency and latency >= 2


# ------------------------------------------------------------------------------------------------ other models


class Failing:
    """A model object whose scoring has a bug."""

    name, version, ready, metrics = "credit-risk", "1", True, None

    async def __call__(self, request: v2.Request) -> v2.Outputs:
        raise RuntimeError("a bug")


def test_a_server_bug_is_internal_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with running(Failing(), settings_for(free_port())) as target, grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with caplog.at_level(logging.ERROR, logger="serving.protocol.grpc"):
            error = rpc_error(stub.ModelInfer, _raw([1, F], bytes(4 * F)))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "a bug" not in error.details()  # the traceback is for the log, not the client
    assert any("ModelInfer" in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_model_not_loaded_is_unavailable(trained: TrainedModel) -> None:
    model = CreditRiskModel(ServingSettings(model_uri=str(trained.path)))  # not loaded
    with running(model, settings_for(free_port())) as target, grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(pb.ServerLiveRequest()).live is True
        assert stub.ServerReady(pb.ServerReadyRequest()).ready is False
        assert stub.ModelReady(pb.ModelReadyRequest(name="credit-risk")).ready is False
        error = rpc_error(stub.ModelInfer, _raw([1, F], bytes(4 * F)))
        assert error.code() == grpc.StatusCode.UNAVAILABLE and "not loaded" in error.details()
        metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="credit-risk"))  # as /v2/models/NAME does
        assert (metadata.name, list(metadata.versions)) == ("credit-risk", [])


# ------------------------------------------------------------------------------------------------ the server


def test_workers_share_the_port_only_with_reuseport(served: Served) -> None:
    port = free_port()
    shared = settings_for(port, workers=2)
    with (
        running(served.model, shared),
        running(served.model, shared) as target,
        grpc.insecure_channel(target) as c,
    ):
        assert pb_grpc.GRPCInferenceServiceStub(c).ServerLive(pb.ServerLiveRequest()).live
    alone = settings_for(port)
    with (
        running(served.model, alone),
        pytest.raises(RuntimeError, match="bind"),
        running(served.model, alone),
    ):
        pass


def _certificate(ca: Any, folder: Path, tag: str) -> tuple[Path, Path]:
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = folder / f"{tag}-cert.pem", folder / f"{tag}-key.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(key))
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    return cert, key


def test_tls_and_a_rotated_certificate(served: Served, tmp_path: Path) -> None:
    import trustme

    first, second = trustme.CA(), trustme.CA()
    cert, key = _certificate(first, tmp_path, "served")
    settings = settings_for(free_port(), ssl_certfile=str(cert), ssl_keyfile=str(key))

    def live(ca: trustme.CA) -> bool:
        credentials = grpc.ssl_channel_credentials(ca.cert_pem.bytes())
        with grpc.secure_channel(f"localhost:{settings.grpc_port}", credentials) as channel:
            return (
                pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=10).live
            )

    with running(served.model, settings):
        assert live(first)
        plaintext = grpc.insecure_channel(f"127.0.0.1:{settings.grpc_port}")
        with plaintext, pytest.raises(grpc.RpcError):  # no plaintext on a TLS port
            pb_grpc.GRPCInferenceServiceStub(plaintext).ServerLive(pb.ServerLiveRequest(), timeout=5)
        with pytest.raises(grpc.RpcError):
            live(second)
        rotated_cert, rotated_key = _certificate(second, tmp_path, "rotated")
        key.write_bytes(rotated_key.read_bytes())  # what cert-manager does to a mounted secret
        cert.write_bytes(rotated_cert.read_bytes())
        assert live(second)
        second.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        tls = run_triton_grpc(f"localhost:{settings.grpc_port}", served.rows[:2], ca_file=tmp_path / "ca.pem")
    assert tls["live"] is True and tls["infer_raw"]["outputs"]["probability"]["shape"] == [2]


# ------------------------------------------------------------------------------------------------ clients


def test_tritonclient_grpc(served: Served) -> None:
    got = run_triton_grpc(served.target, served.rows, request_id="t-1")
    assert (got["live"], got["ready"], got["model_ready"]) == (True, True, True)
    assert got["server_metadata"] == {"name": "credit-risk-predictor", "version": serving.__version__}
    metadata = got["model_metadata"]
    assert (metadata["name"], metadata["versions"], metadata["platform"]) == (
        "credit-risk", [served.model.version], "onnxruntime_onnx",
    )  # fmt: skip
    assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": ["-1", str(F)]}]
    scored = served.model.score(served.rows)
    for mode in ("infer_raw", "infer_contents"):
        result = got[mode]
        assert (result["id"], result["model_version"]) == ("t-1", served.model.version), mode
        outputs = result["outputs"]
        np.testing.assert_allclose(outputs["probability"]["data"], served.expected, rtol=1e-6, err_msg=mode)
        assert outputs["prediction"]["data"] == scored.prediction.tolist()
        assert outputs["risk_level"]["data"] == scored.risk_level.tolist()
        assert outputs["decision"]["data"] == scored.decision.tolist()


def test_tritonclient_grpc_requested_outputs(served: Served) -> None:
    got = run_triton_grpc(served.target, served.rows[:3], outputs=["decision", "probability"])
    for mode in ("infer_raw", "infer_contents"):
        assert got[mode]["order"] == ["decision", "probability"], mode
        np.testing.assert_allclose(
            got[mode]["outputs"]["probability"]["data"], served.expected[:3], rtol=1e-6
        )


def test_tritonclient_grpc_sees_the_errors(served: Served) -> None:
    got = run_triton_grpc(served.target, served.rows[:1], model="fraud", outputs=["probability"])
    assert got["model_ready"]["error"]["code"] == "NOT_FOUND"
    assert (
        got["infer_raw"]["error"]["code"] == "NOT_FOUND" and "'fraud'" in got["infer_raw"]["error"]["message"]
    )
    assert got["infer_contents"]["error"]["code"] == "NOT_FOUND"
    bad = run_triton_grpc(served.target, np.zeros((1, 25), np.float32))
    assert (
        bad["infer_raw"]["error"]["code"] == "INVALID_ARGUMENT"
        and "25" in bad["infer_raw"]["error"]["message"]
    )


def test_the_load_generator(served: Served) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "serve" / "grpc_load.py"), "--target", served.target,
         "--rows", "5", "--concurrency", "4", "--seconds", "0.5", "--warmup", "0.2"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["errors"] == 0 and result["requests"] > 0 and result["requests_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
