"""The gRPC fuzz target: V2 (``inference.GRPCInferenceService``) calls built from kserve's generated
messages, sent by a pool of :class:`GrpcClient` threads as serialized bytes (so that bytes protobuf would
refuse to build can be sent too), every answer judged and counted in :class:`~reliability.accounting.Stats`.

Each :class:`Call` carries the status codes it may get (``expect``):

* valid calls (ModelInfer in typed ``contents`` or ``raw_input_contents``, one ``features`` tensor or one
  tensor per feature, every numeric datatype; health and metadata of the served model) must be ``OK``, and
  the answer must be right: the served name and version, the ``id`` echoed, the outputs asked for in the
  order asked (or all four), each of shape ``[N]``, probabilities in [0, 1], predictions 0 or 1;
* client mistakes must be ``INVALID_ARGUMENT`` (a bad tensor, datatype, shape, value, requested output, or
  a message protobuf cannot decode), ``NOT_FOUND`` (another model or version), ``RESOURCE_EXHAUSTED`` (a
  message over ``max_request_bytes``) or ``UNIMPLEMENTED`` (the repository RPCs, unknown methods), with a
  message of 1 byte to 2 kB saying why.

Any other code — ``INTERNAL``, ``UNKNOWN``, ``UNAVAILABLE`` while the server is up, ``DEADLINE_EXCEEDED``
(no answer within :data:`DEADLINE_SECONDS`: a hang) — is a server error; an acceptable code other than the
expected one, or a wrong answer, is a wrong answer. Both fail the run.

The families (:func:`families`): ``valid``, ``contents``, ``shapes``, ``datatypes``, ``values``, ``names``,
``outputs``, ``metadata``, ``oversize``, ``wire``. :func:`run_grpc` is the whole gRPC part of a run (the
caller brackets it with a :class:`~reliability.monitor.ServerWatch`).

kserve's generated modules declare the same protobuf names as tritonclient's: tritonclient must not be
imported in this process.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError, Message
from hypothesis import assume
from hypothesis import strategies as st
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from reliability.accounting import Stats, table
from reliability.dispatch import dispatch_families
from reliability.target import FEATURES, MODEL, NP_DTYPE, NUMERIC, OUTPUTS, VERSION, WIDTH

SERVICE = "inference.GRPCInferenceService"
DEADLINE_SECONDS = 30.0
# (request, response) message types of the service's RPCs
METHODS: dict[str, tuple[type[Message], type[Message]]] = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
    "RepositoryModelLoad": (pb.RepositoryModelLoadRequest, pb.RepositoryModelLoadResponse),
    "RepositoryModelUnload": (pb.RepositoryModelUnloadRequest, pb.RepositoryModelUnloadResponse),
}
# methods other V2 servers (Triton) have, other services, nonsense: not served here
UNKNOWN_METHODS = (
    f"/{SERVICE}/ModelStreamInfer", f"/{SERVICE}/ModelConfig", f"/{SERVICE}/ModelStatistics",
    f"/{SERVICE}/RepositoryIndex", f"/{SERVICE}/TraceSetting", f"/{SERVICE}/LogSettings",
    f"/{SERVICE}/CudaSharedMemoryStatus", f"/{SERVICE}/modelinfer", f"/{SERVICE}/", "/inference.Other/ModelInfer",
    "/grpc.health.v1.Health/Check", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/inference.GRPCInferenceService.v2/ModelInfer", "/x",
)  # fmt: skip

OK = frozenset({"OK"})
INVALID = frozenset({"INVALID_ARGUMENT"})
NOT_FOUND = frozenset({"NOT_FOUND"})
TOO_LARGE = frozenset({"RESOURCE_EXHAUSTED"})
UNIMPLEMENTED = frozenset({"UNIMPLEMENTED"})
CLIENT_ERRORS = INVALID | NOT_FOUND | TOO_LARGE | UNIMPLEMENTED
ACCEPTABLE = OK | CLIENT_ERRORS  # every other code is a server error
MAX_DETAILS_BYTES = 2048  # the server caps its messages (they travel in a trailer)

OUTPUT_TYPES = {"probability": "FP32", "prediction": "INT64", "risk_level": "BYTES", "decision": "BYTES"}
# where each datatype's values travel in InferTensorContents (FP16 has no field: raw only)
CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip
ALL_FIELDS = tuple(sorted(set(CONTENTS_FIELD.values())))
V2_DATATYPES = frozenset({*NUMERIC, "BOOL", "BYTES"})
FLOAT32_MAX = float(np.finfo(np.float32).max)

Tensor = pb.ModelInferRequest.InferInputTensor
RequestedOutput = pb.ModelInferRequest.InferRequestedOutputTensor


# ---------------------------------------------------------------------------------------------- the call


@dataclass
class Call:
    """One RPC: ``path`` (``/service/method``), the serialized ``payload``, the codes it may get, and what
    a right answer holds (``rows``: rows scored; ``outputs``: output names in answer order; ``id``: the
    id to echo; None: not checked)."""

    family: str
    path: str
    payload: bytes
    expect: frozenset[str]
    note: str = ""
    rows: int | None = None
    outputs: tuple[str, ...] | None = None
    id: str | None = None

    @property
    def method(self) -> str:
        method = self.path.rsplit("/", 1)[-1] if self.path.startswith(f"/{SERVICE}/") else ""
        return method if method in METHODS else "unknown method"

    def fingerprint(self) -> str:
        return hashlib.sha1(self.path.encode() + b"\n" + self.payload).hexdigest()

    def describe(self, limit: int = 3_000) -> dict[str, Any]:
        out: dict[str, Any] = {
            "family": self.family,
            "path": self.path,
            "note": self.note,
            "expect": sorted(self.expect),
            "message_bytes": len(self.payload),
            "message_sha256": hashlib.sha256(self.payload).hexdigest(),
        }
        if len(self.payload) <= limit:
            out["message_base64"] = base64.b64encode(self.payload).decode()
        types = METHODS.get(self.method)
        if types is not None:
            try:
                out["message_text"] = text_format.MessageToString(
                    types[0].FromString(self.payload), as_utf8=True
                )[:limit]
            except DecodeError:
                out["message_text"] = "(protobuf cannot decode it)"
        return out


def message_call(family: str, method: str, message: Message, expect: frozenset[str], **kw: Any) -> Call:
    return Call(family, f"/{SERVICE}/{method}", message.SerializeToString(), expect, **kw)


def infer_call(family: str, request: pb.ModelInferRequest, expect: frozenset[str], note: str,
               rows: int | None = None, outputs: tuple[str, ...] | None = None) -> Call:  # fmt: skip
    """A ModelInfer call; a valid one (``expect`` OK) checks ``rows`` rows, ``outputs`` and the id."""
    answer = (tuple(o.name for o in request.outputs) or OUTPUTS) if outputs is None else outputs
    return message_call(family, "ModelInfer", request, expect, note=note, rows=rows, outputs=answer,
                        id=request.id)  # fmt: skip


# ---------------------------------------------------------------------------------------------- valid requests


def int_range(datatype: str) -> tuple[int, int]:
    info = np.iinfo(NP_DTYPE[datatype])
    return int(info.min), int(info.max)


def values_for(rng: np.random.Generator, datatype: str, count: int, profile: str) -> np.ndarray:
    """``count`` values of ``datatype`` that a strict server must accept: finite, within the type and
    within float32 (the model's input type)."""
    dtype = np.dtype(NP_DTYPE[datatype])
    if dtype.kind == "f":
        top = 65_504.0 if datatype == "FP16" else 3.0e38
        if profile == "extremes":
            pool = np.array([0.0, -0.0, 1e-30, -1e-30, top, -top, 1.0, 65_504.0, 6e-8], np.float64)
            values = rng.choice(pool, count)
        elif profile == "zeros":
            values = np.zeros(count)
        else:
            values = rng.uniform(-1_000, 1_000, count)
        return values.astype(dtype)
    low, high = int_range(datatype)
    if profile == "extremes":
        pool = np.array([low, high, 0, 1, low + 1, high - 1], dtype=object)
        return np.array(rng.choice(pool, count), dtype=dtype)
    if profile == "zeros":
        return np.zeros(count, dtype)
    return rng.integers(max(low, -1_000), min(high, 1_000), count, endpoint=True).astype(dtype)


def set_values(tensor: Tensor, datatype: str, values: np.ndarray) -> None:
    getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(values.tolist())


def raw_of(values: np.ndarray) -> bytes:
    return values.astype(values.dtype.newbyteorder("<")).tobytes()


@dataclass
class Valid:
    """A valid ModelInfer request and what its answer must hold."""

    request: pb.ModelInferRequest
    rows: int
    layout: str  # "matrix": one tensor features [N, 26]; "columns": one [N] or [N, 1] tensor per feature
    raw: bool
    datatype: str
    values: list[np.ndarray] = field(default_factory=list)  # per input, flat


def ids() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(""),
        st.text(max_size=40),
        st.sampled_from(["req-1", "\U0001f4a5", "\x00", "a" * 1_000, "i\u0307d", " id "]),
    )


@st.composite
def valid_infer(draw: st.DrawFn, max_rows: int = 64) -> Valid:
    rows = draw(st.sampled_from([1, 1, 1, 2, 3, 8]) | st.integers(1, max_rows))
    datatype = draw(st.sampled_from(["FP32", "FP32", "FP32", "FP64"]) | st.sampled_from(NUMERIC))
    raw = datatype == "FP16" or draw(st.booleans())
    layout = draw(st.sampled_from(["matrix", "matrix", "columns"]))
    profile = draw(st.sampled_from(["plain", "plain", "plain", "extremes", "zeros"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    request = pb.ModelInferRequest(model_name=MODEL, model_version=draw(st.sampled_from(["", "", VERSION])))
    if draw(st.integers(0, 99)) < 60:
        request.id = draw(ids())
    valid = Valid(request, rows, layout, raw, datatype)
    if layout == "matrix":
        specs = [("features", [rows, WIDTH], rows * WIDTH)]
    else:
        column_shape = draw(st.sampled_from([[rows], [rows, 1]]))
        names = list(draw(st.permutations(FEATURES))) if draw(st.booleans()) else list(FEATURES)
        specs = [(name, column_shape, rows) for name in names]
    for name, shape, count in specs:
        values = values_for(rng, datatype, count, profile)
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        if raw:
            request.raw_input_contents.append(raw_of(values))
        else:
            set_values(tensor, datatype, values)
        valid.values.append(values)
    if draw(st.integers(0, 99)) < 30:
        asked = draw(st.lists(st.sampled_from(OUTPUTS), min_size=1, max_size=4, unique=True))
        for name in asked:
            output = request.outputs.add(name=name)
            if draw(st.integers(0, 99)) < 20:  # an HTTP extension's flag: ignored over gRPC
                output.parameters["binary_data"].bool_param = draw(st.booleans())
    if draw(st.integers(0, 99)) < 15:  # parameters the server does not use
        for key in draw(st.lists(st.sampled_from(["binary_data_output", "priority", "timeout", "x", ""]),
                                 max_size=3, unique=True)):  # fmt: skip
            parameter = request.parameters[key]
            kind = draw(st.sampled_from(["bool", "int", "string", "unset"]))
            if kind == "bool":
                parameter.bool_param = draw(st.booleans())
            elif kind == "int":
                parameter.int64_param = draw(st.integers(-(2**63), 2**63 - 1))
            elif kind == "string":
                parameter.string_param = draw(st.text(max_size=10))
    if draw(st.integers(0, 99)) < 5:
        request.inputs[0].parameters["content_type"].string_param = "str"
    return valid


def valid_calls(limit: int) -> st.SearchStrategy[Call]:
    return _valid_calls(limit)


@st.composite
def _valid_calls(draw: st.DrawFn, limit: int) -> Call:
    """Valid ModelInfer calls, now and then a batch of up to 10,000 rows (``max_batch_rows``) that fits in
    ``limit`` bytes."""
    big = draw(st.integers(0, 99)) < 4
    valid = draw(valid_infer(max_rows=draw(st.sampled_from([2_000, 10_000])) if big else 64))
    assume(valid.request.ByteSize() <= limit)
    note = f"valid: {valid.layout} {valid.datatype} {'raw' if valid.raw else 'typed'} x{valid.rows}"
    return infer_call("valid", valid.request, OK, note, rows=valid.rows)


# ---------------------------------------------------------------------------------------------- mistakes


def wrong_field(datatype: str, draw: st.DrawFn) -> str:
    return draw(st.sampled_from([f for f in ALL_FIELDS if f != CONTENTS_FIELD.get(datatype)]))


def fill(contents: pb.InferTensorContents, name: str, count: int) -> None:
    values: list[Any] = {"bool_contents": [True], "bytes_contents": [b"1"]}.get(name, [1])
    getattr(contents, name).extend(values * count)


@st.composite
def contents_mistakes(draw: st.DrawFn) -> Call:
    """Values in the wrong field, in two fields, nowhere; raw and typed mixed; raw entries that do not
    match the inputs; a datatype that has no typed field; no inputs; names that do not make the rows."""
    valid = draw(valid_infer(max_rows=8))
    request, rows = valid.request, valid.rows
    first = request.inputs[0]
    kind = draw(st.sampled_from(
        ["wrong field", "two fields", "no contents", "empty contents", "raw and typed", "raw count",
         "raw without inputs", "no inputs", "fp16 typed", "bool", "bytes", "duplicate name", "unknown name",
         "missing column", "features and columns", "rows disagree"]
    ))  # fmt: skip
    count = len(valid.values[0])
    if kind in ("wrong field", "two fields", "no contents", "empty contents", "fp16 typed"):
        del request.raw_input_contents[:]
        for tensor, values in zip(request.inputs, valid.values, strict=True):
            tensor.ClearField("contents")
            if valid.datatype != "FP16":
                set_values(tensor, valid.datatype, values)
        if kind == "wrong field":
            first.ClearField("contents")
            fill(first.contents, wrong_field(valid.datatype, draw), count)
        elif kind == "two fields":
            fill(first.contents, wrong_field(valid.datatype, draw), draw(st.integers(1, count)))
        elif kind == "no contents":
            first.ClearField("contents")
        elif kind == "empty contents":
            first.ClearField("contents")
            first.contents.SetInParent()  # present, every field empty
        else:
            for tensor in request.inputs:
                tensor.datatype = "FP16"
                tensor.ClearField("contents")
                fill(tensor.contents, draw(st.sampled_from(["fp32_contents", "fp64_contents"])), count)
    elif kind == "raw and typed":
        if not valid.raw:
            request.raw_input_contents.extend(raw_of(v) for v in valid.values)
        else:
            fill(first.contents, CONTENTS_FIELD.get(valid.datatype, "fp32_contents"), count)
    elif kind == "raw count":
        raws = [raw_of(v) for v in valid.values]
        del request.raw_input_contents[:]
        for tensor in request.inputs:
            tensor.ClearField("contents")
        change = draw(st.sampled_from([-1, 1, 2, 30]))
        raws = raws[:change] if change < 0 else raws + [raws[0]] * change
        request.raw_input_contents.extend(raws)
    elif kind == "raw without inputs":
        raws = [raw_of(v) for v in valid.values]
        del request.inputs[:]
        del request.raw_input_contents[:]
        request.raw_input_contents.extend(raws)
    elif kind == "no inputs":
        del request.inputs[:]
        del request.raw_input_contents[:]
    elif kind in ("bool", "bytes"):
        datatype, typed = kind.upper(), draw(st.booleans())
        del request.raw_input_contents[:]
        for tensor in request.inputs:
            tensor.datatype = datatype
            tensor.ClearField("contents")
            if typed:
                fill(tensor.contents, CONTENTS_FIELD[datatype], math.prod(tensor.shape))
            else:
                request.raw_input_contents.append(
                    b"\x01" * math.prod(tensor.shape)
                    if datatype == "BOOL"
                    else b"\x01\x00\x00\x001" * math.prod(tensor.shape)
                )
    elif kind == "duplicate name":
        request.inputs.append(request.inputs[draw(st.integers(0, len(request.inputs) - 1))])
        if request.raw_input_contents:
            request.raw_input_contents.append(request.raw_input_contents[-1])
    elif kind == "unknown name":
        index = draw(st.integers(0, len(request.inputs) - 1))
        request.inputs[index].name = draw(
            st.sampled_from(["Features", "features ", "feature", "", "f\u0435atures", "\x00", "x" * 5_000])
            | st.text(max_size=12)
        )
        assume(request.inputs[index].name not in (*FEATURES, "features"))
    elif kind == "missing column" and valid.layout == "columns":
        index = draw(st.integers(0, WIDTH - 1))
        del request.inputs[index]
        if valid.raw:
            del request.raw_input_contents[index]
    elif kind == "features and columns" or kind == "missing column":
        extra = request.inputs.add(
            name=draw(st.sampled_from(FEATURES)), datatype=valid.datatype, shape=[rows]
        )
        if valid.raw:
            request.raw_input_contents.append(raw_of(valid.values[0][:rows]))
        else:
            set_values(extra, valid.datatype, valid.values[0][:rows])
        if valid.layout == "columns":  # now also the matrix
            matrix = request.inputs.add(name="features", datatype=valid.datatype, shape=[rows, WIDTH])
            values = np.resize(valid.values[0], rows * WIDTH)
            if valid.raw:
                request.raw_input_contents.append(raw_of(values))
            else:
                set_values(matrix, valid.datatype, values)
    else:  # rows disagree: one column longer (the matrix: one feature more)
        index = draw(st.integers(0, len(request.inputs) - 1))
        tensor = request.inputs[index]
        shape = [rows + 1, *list(tensor.shape)[1:]] if valid.layout == "columns" else [rows, WIDTH + 1]
        del tensor.shape[:]
        tensor.shape.extend(shape)
        values = np.resize(valid.values[index], math.prod(shape))
        if valid.raw:
            request.raw_input_contents[index] = raw_of(values)
        else:
            tensor.ClearField("contents")
            set_values(tensor, valid.datatype, values)
    return infer_call("contents", request, INVALID, f"contents: {kind} ({valid.layout} {valid.datatype})")


HUGE_SHAPES = (
    [2**62, 2**62], [2**63 - 1, WIDTH], [0, 2**63 - 1], [2**32, 2**32, 0], [2**31, WIDTH], [10**18, 10**18],
    [-1, WIDTH], [1, -WIDTH], [-(2**63), WIDTH], [-1, -1], [0, -1],
)  # fmt: skip


@st.composite
def shape_mistakes(draw: st.DrawFn) -> Call:
    """A shape that does not match the values, or is not [N, 26] / [N] / [N, 1]; huge, negative, empty or
    hundreds of dimensions; raw bytes of the wrong length; more rows than ``max_batch_rows``; thousands of
    inputs."""
    valid = draw(valid_infer(max_rows=8))
    request, rows = valid.request, valid.rows
    index = draw(st.integers(0, len(request.inputs) - 1))
    tensor = request.inputs[index]
    width = WIDTH if valid.layout == "matrix" else 1
    kind = draw(st.sampled_from(
        ["count", "count", "transposed", "flat", "scalar", "extra dim", "width", "huge", "huge", "many dims",
         "raw length", "zero rows", "too many rows", "many inputs"]
    ))  # fmt: skip
    shape: list[int] | None = None
    if kind == "count":  # the values are right, the declared shape is not
        shape = [
            rows + draw(st.sampled_from([-1, 1, 2, rows * 3])),
            *([width] if len(tensor.shape) > 1 else []),
        ]
        assume(shape[0] != rows)
    elif kind == "transposed":
        shape = [width, rows] if valid.layout == "matrix" else [1, rows]
        assume(
            shape != list(tensor.shape) and (valid.layout == "matrix" or rows > 1)
        )  # [1, 1]: a valid column
    elif kind == "flat":
        shape = [rows * width] if valid.layout == "matrix" else [rows, 1, 1]
    elif kind == "scalar":
        shape = []
    elif kind == "extra dim":
        shape = draw(st.sampled_from([[rows, width, 1], [1, rows, width], [rows, 1, width]]))
    elif kind == "width":
        change = draw(st.sampled_from([-1, 1, -WIDTH + 1, WIDTH]))
        shape = [rows, WIDTH + change] if valid.layout == "matrix" else [rows, 1 + change]
    elif kind == "huge":
        shape = list(
            draw(st.sampled_from(HUGE_SHAPES) | st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4))
        )
    elif kind == "many dims":
        shape = [1] * draw(st.sampled_from([32, 33, 64, 65, 1_000, 10_000]))
        shape[draw(st.integers(0, len(shape) - 1))] = rows * width
    elif kind == "raw length":
        raws = [raw_of(v) for v in valid.values]
        del request.raw_input_contents[:]
        for t in request.inputs:
            t.ClearField("contents")
        cut = draw(st.sampled_from([-1, 1, -len(raws[index]), 7]) | st.integers(-len(raws[index]), 64))
        assume(cut != 0)
        raws[index] = raws[index][:cut] if cut < 0 else raws[index] + b"\x00" * cut
        request.raw_input_contents.extend(raws)
    elif kind == "zero rows":
        for t in request.inputs:
            t.ClearField("contents")
            dims = [0, *list(t.shape)[1:]]
            del t.shape[:]
            t.shape.extend(dims)
        del request.raw_input_contents[:]
        if valid.raw:
            request.raw_input_contents.extend(b"" for _ in request.inputs)
    elif kind == "too many rows":  # max_batch_rows is 10,000: 10,001 INT8 rows are 260 kB
        del request.inputs[:]
        del request.raw_input_contents[:]
        many = draw(st.sampled_from([10_001, 10_002, 12_000]))
        request.inputs.add(name="features", datatype="INT8", shape=[many, WIDTH])
        request.raw_input_contents.append(bytes(many * WIDTH))
    else:  # thousands of inputs (the codec reads each before it finds the names wrong)
        del request.inputs[:]
        del request.raw_input_contents[:]
        for i in range(draw(st.sampled_from([1_000, 5_000, 20_000]))):
            request.inputs.add(name=f"f{i}", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    if shape is not None:
        del tensor.shape[:]
        tensor.shape.extend(shape)
    return infer_call(
        "shapes", request, INVALID, f"shapes: {kind} ({valid.layout}, {list(tensor.shape)[:8]})"
    )


HOSTILE_DATATYPES = (
    "", " ", "FP32 ", " FP32", "fp32", "Fp32", "int64", "FLOAT32", "FLOAT", "DOUBLE", "FP8", "BF16", "FP128",
    "INT128", "UINT1", "STRING", "STR", "float32", "\u0130NT8", "FP\uff13\uff12", "FP32\x00", "\x00", "F" * 10_000,
    "TYPE_FP32", "np.float32", "<f4",
)  # fmt: skip


@st.composite
def datatype_mistakes(draw: st.DrawFn) -> Call:
    """A datatype that is not one of the V2 datatypes as spelled by the spec (lowercase, aliases, unknown,
    padded, non-ASCII, long), on one tensor or all, values typed or raw."""
    valid = draw(valid_infer(max_rows=8))
    request = valid.request
    hostile = draw(
        st.sampled_from(HOSTILE_DATATYPES)
        | st.sampled_from(NUMERIC).map(str.lower)
        | st.text(max_size=8).filter(lambda t: t not in V2_DATATYPES)
    )
    targets = request.inputs if draw(st.booleans()) else [request.inputs[0]]
    for tensor in targets:
        tensor.datatype = hostile
    return infer_call(
        "datatypes", request, INVALID, f"datatypes: {hostile[:20]!r} on {len(targets)} input(s)"
    )


@st.composite
def value_mistakes(draw: st.DrawFn) -> Call:
    """Values a strict server must refuse: NaN and infinities (typed and raw, FP16 included), FP64 beyond
    float32, integers beyond INT8/INT16/UINT8/UINT16 in the 32-bit typed fields."""
    valid = draw(valid_infer(max_rows=8))
    request = valid.request
    index = draw(st.integers(0, len(request.inputs) - 1))
    tensor, values = request.inputs[index], valid.values[index].copy()
    position = draw(st.integers(0, len(values) - 1))
    floating = values.dtype.kind == "f"
    narrow = valid.datatype in ("INT8", "INT16", "UINT8", "UINT16")
    kind = draw(st.sampled_from(["special float"] * 3 + (["beyond float32"] if valid.datatype == "FP64" else [])
                                + (["beyond range"] * 2 if narrow else [])))  # fmt: skip
    if kind == "beyond range":  # only typed contents can carry it: int_contents / uint_contents are 32-bit
        low, high = int_range(valid.datatype)
        unsigned = valid.datatype.startswith("U")
        bad = draw(
            st.sampled_from([high + 1, 2**32 - 1 if unsigned else 2**31 - 1] + ([] if unsigned else [low - 1, -(2**31)]))
            | (st.integers(high + 1, 2**32 - 1) if unsigned else st.integers(-(2**31), low - 1))
        )  # fmt: skip
        del request.raw_input_contents[:]
        for t, v in zip(request.inputs, valid.values, strict=True):
            t.ClearField("contents")
            set_values(t, valid.datatype, v)
        getattr(tensor.contents, CONTENTS_FIELD[valid.datatype])[position] = bad
        note = f"{valid.datatype} element {position} = {bad}"
    else:
        if not floating:  # NaN needs a floating datatype: make every input FP32 (or FP64, FP16)
            datatype = draw(st.sampled_from(["FP32", "FP64", "FP16"]))
            valid = convert(valid, datatype)
            request = valid.request
            tensor, values = request.inputs[index], valid.values[index].copy()
        if kind == "beyond float32":
            bad = draw(
                st.sampled_from([3.5e38, -3.5e38, 1e39, 1e308, float(np.finfo(np.float32).max) * 1.0000001])
            )
        else:
            bad = draw(st.sampled_from([math.nan, math.inf, -math.inf, -math.nan]))
        with np.errstate(all="ignore"):
            values[position] = bad
        if valid.raw:
            request.raw_input_contents[index] = raw_of(values)
        else:
            tensor.ClearField("contents")
            set_values(tensor, valid.datatype, values)
        note = f"{valid.datatype} {'raw' if valid.raw else 'typed'} element {position} = {bad}"
    return infer_call("values", request, INVALID, f"values: {note}")


def convert(valid: Valid, datatype: str) -> Valid:
    """``valid`` with every input of ``datatype`` (FP16 raw)."""
    request = valid.request
    raw = valid.raw or datatype == "FP16"
    del request.raw_input_contents[:]
    converted = []
    for tensor, values in zip(request.inputs, valid.values, strict=True):
        with np.errstate(all="ignore"):  # INT64 extremes become FP16 infinities: still a mistake
            new = values.astype(NP_DTYPE[datatype])
        tensor.datatype = datatype
        tensor.ClearField("contents")
        if raw:
            request.raw_input_contents.append(raw_of(new))
        else:
            set_values(tensor, datatype, new)
        converted.append(new)
    return Valid(request, valid.rows, valid.layout, raw, datatype, converted)


HOSTILE_NAMES = (
    "", " ", "credit-risk ", " credit-risk", "Credit-Risk", "CREDIT-RISK", "credit_risk", "credit-risk\x00",
    "credit-risk/1", "../credit-risk", "cr\u0435dit-risk", "\U0001f4a5", "credit-risk" * 1_000, "x" * 100_000,
    "%63redit-risk", "*", "\u202ecredit-risk",
)  # fmt: skip
HOSTILE_VERSIONS = ("2", "0", "01", "1.0", " 1", "1 ", "latest", "v1", "-1", "\u0661", "\uff11", "1\x00", "1" * 10_000,
                    "\U0001f4a5")  # fmt: skip


def hostile_name() -> st.SearchStrategy[str]:
    return st.sampled_from(HOSTILE_NAMES) | st.text(max_size=30).filter(lambda t: t != MODEL)


def hostile_version() -> st.SearchStrategy[str]:
    return st.sampled_from(HOSTILE_VERSIONS) | st.text(min_size=1, max_size=8).filter(lambda t: t != VERSION)


@st.composite
def name_mistakes(draw: st.DrawFn) -> Call:
    """ModelInfer naming another model or version (long, non-ASCII, padded, lookalikes): NOT_FOUND, even
    when the tensors are wrong too."""
    valid = draw(valid_infer(max_rows=4))
    request = valid.request
    which = draw(st.sampled_from(["name", "name", "version", "both"]))
    if which in ("name", "both"):
        request.model_name = draw(hostile_name())
    if which in ("version", "both"):
        request.model_version = draw(hostile_version())
    broken = draw(st.integers(0, 99)) < 25
    if broken:
        request.inputs[0].datatype = "fp32"
    note = f"names: {which} {request.model_name[:20]!r}/{request.model_version[:10]!r}{' + bad tensor' if broken else ''}"
    return infer_call("names", request, NOT_FOUND, note)


@st.composite
def output_mistakes(draw: st.DrawFn) -> Call:
    """Requested outputs the model does not have (alone or among known ones), or one asked twice."""
    valid = draw(valid_infer(max_rows=4))
    request = valid.request
    del request.outputs[:]
    names = list(draw(st.lists(st.sampled_from(OUTPUTS), max_size=3, unique=True)))
    kind = draw(st.sampled_from(["unknown", "unknown", "twice"]))
    if kind == "twice" and names:
        names.insert(draw(st.integers(0, len(names))), names[draw(st.integers(0, len(names) - 1))])
    else:
        kind = "unknown"
        bad = draw(
            st.sampled_from(["", "Probability", "probability ", "probabilities", "features", "score", "risk-level",
                             "\U0001f4a5", "p" * 10_000, "probability\x00"])
            | st.text(max_size=12).filter(lambda t: t not in OUTPUTS)
        )  # fmt: skip
        names.insert(draw(st.integers(0, len(names))), bad)
    for name in names:
        request.outputs.add(name=name)
    return infer_call("outputs", request, INVALID, f"outputs: {kind} {[n[:16] for n in names]}")


@st.composite
def metadata_calls(draw: st.DrawFn) -> Call:
    """Health and metadata of the server and the served model (OK, and checked), of other models and
    versions (NOT_FOUND), the repository RPCs (UNIMPLEMENTED), methods not served (UNIMPLEMENTED)."""
    kind = draw(st.sampled_from(
        ["ServerLive", "ServerReady", "ServerMetadata", "ModelReady", "ModelReady", "ModelMetadata",
         "ModelMetadata", "repository", "unknown method"]
    ))  # fmt: skip
    if kind in ("ServerLive", "ServerReady", "ServerMetadata"):
        payload = unknown_fields(draw) if draw(st.booleans()) else b""
        return Call("metadata", f"/{SERVICE}/{kind}", payload, OK, note=f"metadata: {kind}")
    if kind in ("ModelReady", "ModelMetadata"):
        target = draw(st.sampled_from(["served", "served", "other version", "other model"]))
        name = MODEL if target != "other model" else draw(hostile_name())
        version = draw(hostile_version() if target == "other version" else st.sampled_from(["", VERSION]))
        payload = METHODS[kind][0](name=name, version=version).SerializeToString()
        if draw(st.booleans()):  # fields this message does not have: protobuf skips them
            payload += unknown_fields(draw)
        return Call("metadata", f"/{SERVICE}/{kind}", payload, OK if target == "served" else NOT_FOUND,
                    note=f"metadata: {kind} {name[:20]!r}/{version[:10]!r}")  # fmt: skip
    if kind == "repository":
        method = draw(st.sampled_from(["RepositoryModelLoad", "RepositoryModelUnload"]))
        name = draw(st.sampled_from([MODEL, MODEL]) | hostile_name())
        return message_call("metadata", method, METHODS[method][0](model_name=name), UNIMPLEMENTED,
                            note=f"metadata: {method} {name[:20]!r}")  # fmt: skip
    path = draw(st.sampled_from(UNKNOWN_METHODS))
    payload = draw(st.sampled_from([b"", pb.ModelInferRequest(model_name=MODEL).SerializeToString()]))
    return Call("metadata", path, payload, UNIMPLEMENTED, note=f"metadata: {path}")


def pad_to(message: Message, size: int, set_pad: Callable[[int], None]) -> int:
    """Grow the padding (``set_pad(n)``: n characters) until ``message`` serializes to ``size`` bytes, or
    as near as varint lengths allow; returns the size reached."""
    pad = 0
    for _ in range(6):
        set_pad(pad)
        gap = size - message.ByteSize()
        if gap == 0:
            break
        pad = max(0, pad + gap)
    return message.ByteSize()


def oversize(limit: int) -> st.SearchStrategy[Call]:
    @st.composite
    def build(draw: st.DrawFn) -> Call:
        """Messages of an exact size near ``max_request_bytes`` (at most: answered; above: refused with
        RESOURCE_EXHAUSTED before the server reads them), up to 3x over, padded in the id (echoed), a
        parameter, or the model name."""
        size = draw(
            st.sampled_from([limit, limit, limit + 1, limit + 1, limit - 1, 2 * limit, 3 * limit + 7])
            | st.integers(limit - 256, limit + 256)
            | st.integers(limit // 2, 3 * limit)
        )
        where = draw(
            st.sampled_from(["id", "parameter", "parameter", "tensor parameter", "model name", "metadata"])
        )
        if where == "metadata":
            message: Message = pb.ModelMetadataRequest(name=MODEL)
            reached = pad_to(message, size, lambda n: setattr(message, "name", MODEL + "x" * n))
            expect = TOO_LARGE if reached > limit else NOT_FOUND
            return message_call("oversize", "ModelMetadata", message, expect,
                                note=f"oversize: ModelMetadata name, {reached:,} bytes")  # fmt: skip
        fill_share = draw(st.sampled_from([0.0, 0.5, 0.9, 0.99]))
        rows = max(1, min(9_000, int(min(size, limit) * fill_share) // (4 * WIDTH)))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        request = pb.ModelInferRequest(model_name=MODEL)
        request.inputs.add(name="features", datatype="FP32", shape=[rows, WIDTH])
        request.raw_input_contents.append(raw_of(rng.uniform(-100, 100, rows * WIDTH).astype(np.float32)))
        pads: dict[str, Callable[[int], None]] = {
            "id": lambda n: setattr(request, "id", "i" * n),
            "parameter": lambda n: setattr(request.parameters["padding"], "string_param", "p" * n),
            "tensor parameter": lambda n: setattr(
                request.inputs[0].parameters["padding"], "string_param", "p" * n
            ),
            "model name": lambda n: setattr(request, "model_name", MODEL + "x" * n if n else MODEL),
        }
        reached = pad_to(request, size, pads[where])
        expect = TOO_LARGE if reached > limit else NOT_FOUND if request.model_name != MODEL else OK
        return infer_call("oversize", request, expect, f"oversize: {reached:,} bytes, {rows} rows, padded in {where}",
                          rows=rows)  # fmt: skip

    return build()


def wire_expectation(path: str, payload: bytes) -> frozenset[str]:
    """What the bytes may get: INVALID_ARGUMENT if protobuf cannot decode them as the method's request;
    else anything acceptable (they decode to some request, which may even be valid)."""
    method = path.rsplit("/", 1)[-1]
    try:
        METHODS[method][0].FromString(payload)
    except DecodeError:
        return INVALID
    return ACCEPTABLE


@st.composite
def wire_calls(draw: st.DrawFn) -> Call:
    """Bytes that are not (or barely) the method's message: random bytes, a valid message truncated, with
    bytes flipped, inserted or deleted, invalid UTF-8 in a string field, unknown fields, wrong wire types,
    deeply nested groups. Protobuf's own parser (the server's) decides what decodes."""
    method = draw(
        st.sampled_from(["ModelInfer"] * 6 + ["ModelMetadata", "ModelReady", "ServerLive", "ServerMetadata"])
    )
    if method == "ModelInfer":
        valid = draw(valid_infer(max_rows=4))
        base = valid.request.SerializeToString()
    else:
        base = METHODS[method][0](
            **({"name": MODEL} if method.startswith("Model") else {})
        ).SerializeToString()
    kind = draw(st.sampled_from(
        ["random", "truncated", "truncated", "flipped", "inserted", "deleted", "bad utf-8", "bad utf-8",
         "unknown field", "wrong wire type", "nested groups", "huge length"]
    ))  # fmt: skip
    payload = base
    if kind == "random":
        payload = draw(st.binary(min_size=1, max_size=128))
    elif kind == "truncated" and len(base) > 1:
        payload = base[: draw(st.integers(1, len(base) - 1))]
    elif kind in ("flipped", "inserted", "deleted") and base:
        at = draw(st.integers(0, len(base) - 1))
        byte = bytes([draw(st.integers(0, 255))])
        payload = {"flipped": base[:at] + byte + base[at + 1 :], "inserted": base[:at] + byte + base[at:],
                   "deleted": base[:at] + base[at + 1 :]}[kind]  # fmt: skip
    elif kind == "bad utf-8":
        bad = draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]))
        spot = base.find(MODEL.encode())
        if spot >= 0:  # the model name, same length: only its bytes change
            payload = (
                base[:spot] + (MODEL.encode()[: -len(bad)] + bad)[: len(MODEL)] + base[spot + len(MODEL) :]
            )
        else:  # ServerLive/ServerMetadata have no string: an unknown field then, which must decode
            payload = base + b"\xfa\x07" + bytes([len(bad)]) + bad
    elif kind == "unknown field":
        number = draw(st.sampled_from([15, 99, 1_000, 536_870_911]))
        wire = draw(st.sampled_from([0, 2, 5]))
        value = {0: b"\x01", 2: b"\x03abc", 5: b"\x00\x00\x80\x3f"}[wire]
        payload = base + encode_varint(number << 3 | wire) + value
    elif kind == "wrong wire type":
        number = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7]))
        payload = encode_varint(number << 3 | draw(st.sampled_from([0, 1, 5]))) + b"\x01" * 8 + base
    elif kind == "nested groups":
        depth = draw(st.sampled_from([10, 99, 100, 101, 1_000, 100_000]))
        payload = base + encode_varint(15 << 3 | 3) * depth + encode_varint(15 << 3 | 4) * depth
    elif kind == "huge length":
        payload = (
            base + encode_varint(4 << 3 | 2) + encode_varint(draw(st.sampled_from([2**31, 2**63, 2**64 - 1])))
        )
    path = f"/{SERVICE}/{method}"
    expect = wire_expectation(path, payload)
    return Call("wire", path, payload, expect, note=f"wire: {kind} {method}")


def unknown_fields(draw: st.DrawFn) -> bytes:
    """One to three length-delimited fields with numbers no V2 message uses."""
    out = b""
    for _ in range(draw(st.integers(1, 3))):
        value = draw(st.binary(max_size=24))
        out += encode_varint(draw(st.integers(100, 100_000)) << 3 | 2) + encode_varint(len(value)) + value
    return out


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


Family = tuple[str, float, st.SearchStrategy[Call]]


def families(limit: int) -> list[Family]:
    """(name, share of the calls, strategy). About a quarter of the calls are valid and must be OK (all of
    ``valid``, half of ``metadata``, the ``oversize`` ones at or under the limit, some ``wire`` ones)."""
    return [
        ("valid", 0.22, valid_calls(limit)),
        ("contents", 0.12, contents_mistakes()),
        ("shapes", 0.12, shape_mistakes()),
        ("values", 0.09, value_mistakes()),
        ("datatypes", 0.07, datatype_mistakes()),
        ("names", 0.07, name_mistakes()),
        ("outputs", 0.06, output_mistakes()),
        ("metadata", 0.10, metadata_calls()),
        ("oversize", 0.05, oversize(limit)),
        ("wire", 0.10, wire_calls()),
    ]


# ---------------------------------------------------------------------------------------------- the client


@dataclass
class Answer:
    code: str | None  # the status code's name; None: no answer (``error`` says why)
    details: str = ""
    data: bytes = b""  # the serialized response (OK)
    error: str | None = None
    seconds: float = 0.0


class GrpcClient:
    """Sends :class:`Call` payloads as bytes on one channel of its own (its own connection: no subchannel
    shared with the other threads' channels), reopened every ``reconnect_every`` calls so that every worker
    process (they share the port) gets traffic."""

    def __init__(self, target: str, reconnect_every: int = 100, deadline: float = DEADLINE_SECONDS) -> None:
        self.target, self.reconnect_every, self.deadline = target, reconnect_every, deadline
        self._channel: grpc.Channel | None = None
        self._callables: dict[str, Any] = {}
        self._used = 0

    def _open(self) -> grpc.Channel:
        if self._channel is None or self._used >= self.reconnect_every:
            self.close()
            self._channel = grpc.insecure_channel(
                self.target,
                options=[
                    ("grpc.max_send_message_length", -1),
                    ("grpc.max_receive_message_length", -1),
                    ("grpc.use_local_subchannel_pool", 1),
                ],
            )
            self._used = 0
        self._used += 1
        return self._channel

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel, self._callables = None, {}

    def send(self, call: Call) -> Answer:
        started = time.perf_counter()
        channel = self._open()
        method = self._callables.get(call.path)
        if method is None:
            method = self._callables[call.path] = channel.unary_unary(call.path)  # bytes in, bytes out
        try:
            data = method(call.payload, timeout=self.deadline)
            answer = Answer("OK", data=data)
        except grpc.RpcError as error:
            answer = Answer(error.code().name, details=error.details() or "")
        except Exception as exc:  # the client refused to send it: a bug of this script
            self.close()
            answer = Answer(None, error=f"client error {type(exc).__name__}: {exc}"[:200])
        answer.seconds = time.perf_counter() - started
        return answer


# ---------------------------------------------------------------------------------------------- judging


def strings(raw: bytes) -> list[bytes] | None:
    """BYTES elements (each after a 4-byte little-endian length), or None if ``raw`` is not that."""
    out, at = [], 0
    while at < len(raw):
        if at + 4 > len(raw):
            return None
        (length,) = struct.unpack_from("<I", raw, at)
        if at + 4 + length > len(raw):
            return None
        out.append(raw[at + 4 : at + 4 + length])
        at += 4 + length
    return out


def infer_problem(call: Call, data: bytes) -> str | None:
    """Why a ModelInfer answer is wrong, or None."""
    try:
        answer = pb.ModelInferResponse.FromString(data)
    except DecodeError:
        return "the answer is not a ModelInferResponse"
    if answer.model_name != MODEL or answer.model_version != VERSION:
        return "model name or version not the served one"
    if call.id is not None and answer.id != call.id:
        return "id not echoed"
    names = [o.name for o in answer.outputs]
    if call.outputs is not None and tuple(names) != call.outputs:
        return "outputs not those asked for, in the order asked"
    if len(set(names)) != len(names) or not set(names) <= set(OUTPUTS):
        return "unknown or repeated outputs"
    if len(answer.raw_output_contents) != len(names):
        return "raw_output_contents do not match the outputs"
    rows = call.rows
    for output, raw in zip(answer.outputs, answer.raw_output_contents, strict=True):
        if output.datatype != OUTPUT_TYPES[output.name]:
            return f"{output.name} is {output.datatype[:10]}, not {OUTPUT_TYPES[output.name]}"
        shape = list(output.shape)
        if len(shape) != 1 or (rows is not None and shape[0] != rows):
            return f"{output.name} shape is not [rows]"
        rows = shape[0]
        if output.datatype == "BYTES":
            elements = strings(raw)
            if elements is None or len(elements) != rows or not all(elements):
                return f"{output.name} is not {rows} length-prefixed non-empty strings"
            continue
        dtype = "<f4" if output.datatype == "FP32" else "<i8"
        if len(raw) != rows * np.dtype(dtype).itemsize:
            return f"{output.name} carries {len(raw)} bytes for {rows} rows"
        values = np.frombuffer(raw, dtype)
        if output.name == "probability" and not bool(np.all((values >= 0) & (values <= 1))):
            return "a probability outside [0, 1] (or NaN)"
        if output.name == "prediction" and not bool(np.isin(values, (0, 1)).all()):
            return "a prediction other than 0 or 1"
    return None


def metadata_problem(method: str, data: bytes) -> str | None:
    try:
        answer = METHODS[method][1].FromString(data)
    except DecodeError:
        return f"the answer is not a {METHODS[method][1].__name__}"
    if method == "ServerLive" and not answer.live:
        return "live is false"
    if method in ("ServerReady", "ModelReady") and not answer.ready:
        return "ready is false"
    if method == "ServerMetadata" and (not answer.name or "model_repository" in answer.extensions):
        return "no server name, or a repository extension that is not served"
    if method == "ModelMetadata":
        if answer.name != MODEL or list(answer.versions) != [VERSION]:
            return "model name or versions not the served ones"
        if [t.name for t in answer.outputs] != list(OUTPUTS) or not answer.inputs:
            return "inputs or outputs not the model's"
    if method.startswith("Repository"):
        return "a repository RPC answered OK"
    return None


def judge(call: Call, answer: Answer) -> tuple[bool, str | None]:
    """(server error?, why the answer is wrong or None)."""
    code = answer.code
    if code is None:
        return False, None
    if code not in ACCEPTABLE:
        return True, None
    if code not in call.expect:
        return False, f"{code} where {' or '.join(sorted(call.expect))} was due"
    if code == "OK":
        return False, infer_problem(call, answer.data) if call.method == "ModelInfer" else metadata_problem(
            call.method, answer.data
        )
    if not 1 <= len(answer.details.encode()) <= MAX_DETAILS_BYTES:
        return False, "an error message empty or over 2 kB"
    return False, None


def send_and_record(stats: Stats, client: GrpcClient, call: Call) -> None:
    answer = client.send(call)
    server_error, wrong = judge(call, answer)
    content = answer.details.encode()
    if wrong is not None and answer.code == "OK":
        types = METHODS.get(call.method)
        try:
            content = text_format.MessageToString(types[1].FromString(answer.data), as_utf8=True).encode()
        except (DecodeError, TypeError):
            content = answer.data
    stats.record(
        "grpc", call.family, call.method, answer.code, content, error=answer.error, seconds=answer.seconds,
        body_bytes=len(call.payload), evidence=call.describe, server_error=server_error, wrong_answer=wrong,
        silence_is_failure=True,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- the run


def fuzz_grpc(target: str, stats: Stats, requests: int, seed: int, concurrency: int, max_request_bytes: int,
              only: list[str] | None = None, log: Callable[[str], None] = print,
              families_of: Callable[[int], list[Family]] | None = None) -> dict[str, int]:  # fmt: skip
    """About ``requests`` distinct calls (the families named in ``only``, or all, of ``families_of(limit)``:
    the predictor's by default) on ``concurrency`` channels; returns how many each family generated."""
    return dispatch_families(
        (families_of or families)(max_request_bytes), only, requests, seed, concurrency,
        open_client=lambda: GrpcClient(target),
        handle=lambda client, call: send_and_record(stats, client, call),
        key=Call.fingerprint, log=log,
    )  # fmt: skip


def sample_calls() -> list[Call]:
    """A few fixed calls: valid ones (typed and raw), metadata, a mistake."""
    rows = np.full((3, WIDTH), 0.5, np.float32)
    typed = pb.ModelInferRequest(model_name=MODEL, id="warm-up")
    typed.inputs.add(name="features", datatype="FP32", shape=[3, WIDTH]).contents.fp32_contents.extend(
        rows.ravel()
    )
    raw = pb.ModelInferRequest(model_name=MODEL, model_version=VERSION)
    raw.inputs.add(name="features", datatype="FP32", shape=[3, WIDTH])
    raw.raw_input_contents.append(rows.tobytes())
    wrong = pb.ModelInferRequest(model_name=MODEL)
    wrong.inputs.add(name="features", datatype="fp32", shape=[3, WIDTH]).contents.fp32_contents.extend(
        rows.ravel()
    )
    return [
        infer_call("sample", typed, OK, "typed", rows=3),
        infer_call("sample", raw, OK, "raw", rows=3),
        message_call("sample", "ServerLive", pb.ServerLiveRequest(), OK),
        message_call("sample", "ModelMetadata", pb.ModelMetadataRequest(name=MODEL), OK),
        infer_call("sample", wrong, INVALID, "lowercase datatype"),
    ]


def warm_up_grpc(target: str, rounds: int = 20, samples: Callable[[], list[Call]] = sample_calls) -> None:
    """The sample calls on fresh channels (both workers), so that first-use allocations are in the
    memory baseline."""
    for _ in range(rounds):
        client = GrpcClient(target)
        for call in samples():
            client.send(call)
        client.close()


def check_after(
    target: str, made: Counter[str], samples: Callable[[], list[Call]] = sample_calls
) -> dict[str, str]:
    """The sample calls on fresh channels after the run: each must get what it is due (the gRPC port still
    serves, whatever the HTTP liveness says). Returns ``{call: "ok" or what went wrong}``; counts the calls
    per method in ``made``."""
    out: dict[str, str] = {}
    for attempt in range(4):  # four channels: more than one worker, very likely
        client = GrpcClient(target)
        for call in samples():
            answer = client.send(call)
            made[call.method] += 1
            server_error, wrong = judge(call, answer)
            verdict = (
                "ok"
                if answer.code is not None and not server_error and wrong is None
                else (f"{answer.code or answer.error}: {wrong or answer.details[:200]}")
            )
            key = f"{call.method} {call.note}".strip()
            if verdict != "ok" or attempt == 0:
                out[key] = verdict if out.get(key, "ok") == "ok" else out[key]
        client.close()
    return out


def run_grpc(target: str, requests: int, seed: int, concurrency: int, max_request_bytes: int,
             only: list[str] | None = None, log: Callable[[str], None] = print,
             families_of: Callable[[int], list[Family]] | None = None,
             samples: Callable[[], list[Call]] = sample_calls) -> dict[str, Any]:  # fmt: skip
    """The gRPC part of a fuzz run against ``target`` (``host:port``): the calls, then :func:`check_after`.
    Returns the report's ``grpc`` section; ``passed`` and ``failures`` say whether it held. ``families_of``
    and ``samples``: another server's call families and sample calls (the transformer's)."""
    stats = Stats()
    started = time.monotonic()
    generated = fuzz_grpc(
        target, stats, requests, seed, concurrency, max_request_bytes, only, log, families_of
    )
    duration = time.monotonic() - started
    log(f"  gRPC: {stats.total} calls in {duration:.1f} s")
    after_calls: Counter[str] = Counter()
    after = check_after(target, after_calls, samples)
    answers = stats.report(generated)
    failures = [f.replace("HTTP response", "answer") for f in stats.failures()]
    failures = [f.replace("with a 5xx status", "with a server-error status") for f in failures]
    if stats.total < requests:
        failures.append(f"only {stats.total} calls were made ({requests} asked)")
    if any(v != "ok" for v in after.values()):
        failures.append(f"after the run: {after}")
    requests_section = answers["requests"]
    valid_share = sum(counts.get("OK", 0) for counts in requests_section["by_family"].values()) / max(
        1, stats.total
    )
    return {
        "passed": not failures,
        "failures": failures,
        "target": target,
        "duration_seconds": round(duration, 1),
        "requests": requests_section,
        "ok_share": round(valid_share, 3),
        "server_errors": answers["server_errors"],
        "wrong_answers": answers["wrong_answers"],
        "no_response": answers["no_response"],
        "after_the_run": after,
        "after_the_run_calls": dict(after_calls),
        "what": "V2 gRPC calls by status code name; a server error is any code but OK, INVALID_ARGUMENT, "
        "NOT_FOUND, RESOURCE_EXHAUSTED, UNIMPLEMENTED (or no answer within "
        f"{DEADLINE_SECONDS:.0f} s); a wrong answer is an acceptable code other than the one due, or an OK "
        "whose result is wrong",
    }


def metrics_gap(report: dict[str, Any], counted: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per method: calls the clients made and calls the server counted in ``credit_risk_requests_total``
    (``counted``: "status route" -> count over the run, from :class:`~reliability.monitor.ServerWatch`).
    Calls grpc refuses before the servicer runs (undecodable, over the size limit, unknown methods) make
    the difference."""
    by_route: Counter[str] = Counter()
    for key, value in counted.items():
        _, _, route = key.partition(" ")
        if route.startswith(f"/{SERVICE}/"):
            by_route[route.rsplit("/", 1)[-1]] += value
    seen = Counter({method: sum(codes.values()) for method, codes in report["requests"]["by_route"].items()})
    seen.update(report.get("after_the_run_calls", {}))
    return {
        method: {"made": seen.get(method, 0), "counted": by_route.get(method, 0)}
        for method in sorted(set(seen) | set(by_route))
    }


def grpc_summary(report: dict[str, Any]) -> str:
    requests = report["requests"]
    lines = ["gRPC " + "=" * 60, *table(requests), ""]
    lines.append(
        f"calls: {requests['total']} in {report['duration_seconds']} s ({requests['body_megabytes_sent']} MB), "
        f"OK {report['ok_share']:.0%}; latency p50 {requests['latency_ms']['p50']} ms, p99 "
        f"{requests['latency_ms']['p99']} ms, max {requests['latency_ms']['max']} ms"
    )
    lines.append(
        f"server errors: {report['server_errors']['count']}; wrong answers: "
        f"{sum(report['wrong_answers']['by_route'].values())}; no answer: "
        f"{sum(report['no_response']['by_family'].values())}"
    )
    for answer, count in list(report["server_errors"]["by_answer"].items())[:10]:
        lines.append(f"  {count:>5} x {answer}")
    for wrong, count in list(report["wrong_answers"]["by_route"].items())[:10]:
        lines.append(f"  {count:>5} x {wrong}")
    if "metrics" in report:
        lines.append(f"made / counted in /metrics: {report['metrics']}")
    lines.append("gRPC PASSED" if report["passed"] else "gRPC FAILED: " + "; ".join(report["failures"]))
    return "\n".join(lines)
