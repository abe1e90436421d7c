"""The transformer's V2 gRPC ModelInfer under the machinery of :mod:`reliability.fuzz_grpc` (its client,
its judgement, its ``wire`` and ``names`` families): raw transaction tensors, one per Xente field, in typed
``contents`` or ``raw_input_contents``, valid (``OK``, the answer checked: the served name and version, the
id echoed, the outputs asked for, one row per transaction, probabilities in [0, 1]) or with one mistake —
a datatype, a missing, repeated or unknown field, columns of different lengths, a value training's
validation refuses (``INVALID_ARGUMENT``). :func:`families` and :func:`sample_calls` are what
:func:`reliability.fuzz_grpc.run_grpc` takes for another server."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from credit_features.schema import AMOUNT_COLUMNS, INTEGER_COLUMNS, RAW_COLUMNS
from reliability.fuzz_grpc import (
    INVALID,
    OK,
    Call,
    Family,
    ids,
    infer_call,
    message_call,
    name_mistakes,
    wire_calls,
)
from reliability.target import MODEL, OUTPUTS
from reliability.transformer_requests import Pool, bytes_elements

CONTENTS = {"BYTES": "bytes_contents", "FP64": "fp64_contents", "INT64": "int64_contents"}
# Datatypes a field of this datatype does not take (ids and times: BYTES only; CountryCode, PricingStrategy,
# FraudResult: integers; Amount and Value: any number)
WRONG_DATATYPES = {
    "BYTES": ("FP64", "INT64", "UINT8", "BOOL", "bytes", "STRING", ""),
    "INT64": ("FP64", "FP32", "BYTES", "BOOL", "int64", ""),
    "FP64": ("BYTES", "BOOL", "fp64", "STRING", "FLOAT64", ""),
}
NUMPY = {"FP64": "<f8", "INT64": "<i8"}


def datatype_of(name: str) -> str:
    return "FP64" if name in AMOUNT_COLUMNS else "INT64" if name in INTEGER_COLUMNS else "BYTES"


def tensors(rows: list[dict], raw: bool, names: list[str] | None = None) -> pb.ModelInferRequest:
    """A ModelInferRequest of one ``[N]`` tensor per field of ``rows`` (``names``: these fields only)."""
    request = pb.ModelInferRequest(model_name=MODEL)
    for name in names or list(RAW_COLUMNS):
        values = [r[name] for r in rows]
        datatype = datatype_of(name)
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[len(values)])
        if raw:
            request.raw_input_contents.append(
                bytes_elements(values)
                if datatype == "BYTES"
                else np.asarray(values, NUMPY[datatype]).tobytes()
            )
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(str(v).encode() for v in values)
        else:
            getattr(tensor.contents, CONTENTS[datatype]).extend(values)
    return request


@st.composite
def valid_calls(draw: st.DrawFn, pool: Pool) -> Call:
    """1-40 valid transactions of the pool (distinct TransactionIds), typed or raw, with an id and the
    predictor's outputs (some, in any order, or none: all four)."""
    count = draw(st.sampled_from([1, 1, 2, 5]) | st.integers(1, 40))
    picks = {
        draw(st.tuples(st.integers(0, pool.customers - 1), st.integers(0, pool.ids - 1)))
        for _ in range(count)
    }
    rows = [pool.record(i, j) for i, j in sorted(picks)]
    request = tensors(rows, raw=draw(st.booleans()))
    request.id = draw(ids())
    for name in draw(st.lists(st.sampled_from(OUTPUTS), unique=True, max_size=4)):
        request.outputs.add(name=name)
    return infer_call("valid", request, OK, f"valid: {len(rows)} transactions", rows=len(rows))


@st.composite
def mistakes(draw: st.DrawFn, pool: Pool) -> Call:
    """Valid tensors but one mistake: a datatype, a missing, repeated or unknown field, a column of
    another length or shape, typed and raw mixed, a value the validation refuses."""
    rows = [pool.record(draw(st.integers(0, pool.customers - 1)), j) for j in range(draw(st.integers(1, 5)))]
    raw = draw(st.booleans())
    names = list(RAW_COLUMNS)
    kind = draw(st.sampled_from(
        ["datatype", "missing", "repeated", "unknown", "length", "shape", "mixed", "value", "value", "time"]
    ))  # fmt: skip
    if kind == "missing":
        names.remove(draw(st.sampled_from(["TransactionId", "CustomerId", "Amount", "TransactionStartTime"])))
    elif kind == "value":
        field, value = draw(st.sampled_from([("FraudResult", 2), ("Value", -1.0), ("TransactionId", ""),
                                             ("ProductCategory", "groceries"), ("CustomerId", " ")]))  # fmt: skip
        rows[0] = {**rows[0], field: value}
    elif kind == "time":
        rows[0] = {
            **rows[0],
            "TransactionStartTime": draw(st.sampled_from(["15/11/2018", "", "2018-13-01T00:00:00Z"])),
        }
    if kind == "datatype":
        raw = True  # the bytes stay; only the datatype is one the field does not take
    request = tensors(rows, raw, names)
    tensor = request.inputs[draw(st.integers(0, len(request.inputs) - 1))]
    if kind == "datatype":
        tensor.datatype = draw(st.sampled_from(WRONG_DATATYPES[tensor.datatype]))
    elif kind == "repeated":
        request.inputs.append(request.inputs[0])
        if raw:
            request.raw_input_contents.append(request.raw_input_contents[0])
    elif kind == "unknown":
        extra = request.inputs.add(name=draw(st.sampled_from(["features", "amount", "Amount ", "CustomerID"])),
                                   datatype="FP64", shape=[len(rows)])  # fmt: skip
        if raw:
            request.raw_input_contents.append(np.ones(len(rows), "<f8").tobytes())
        else:
            extra.contents.fp64_contents.extend([1.0] * len(rows))
    elif kind == "length":
        shorter = tensors(rows[:-1] or rows * 2, raw, [tensor.name])
        index = [t.name for t in request.inputs].index(tensor.name)
        request.inputs[index].CopyFrom(shorter.inputs[0])
        if raw:
            request.raw_input_contents[index] = shorter.raw_input_contents[0]
    elif kind == "shape":
        del tensor.shape[:]
        tensor.shape.extend(draw(st.sampled_from([[len(rows), 2], [1, 1, len(rows)], [], [len(rows) + 1]])))
    elif kind == "mixed" and raw:
        tensor.contents.fp64_contents.append(1.0)
    elif kind == "mixed":
        request.raw_input_contents.append(b"\x00" * 8)
    return infer_call("mistakes", request, INVALID, f"mistakes: {kind} {tensor.name}")


@st.composite
def health(draw: st.DrawFn) -> Call:
    method = draw(st.sampled_from(["ServerLive", "ServerReady"]))
    return Call("health", f"/inference.GRPCInferenceService/{method}", b"", OK, note=f"health: {method}")


def families(pool: Pool):
    """``families_of`` for :func:`reliability.fuzz_grpc.run_grpc`: (name, share, strategy) per limit."""

    def of(limit: int) -> list[Family]:
        return [
            ("valid", 0.35, valid_calls(pool)),
            ("mistakes", 0.35, mistakes(pool)),
            ("names", 0.10, name_mistakes()),
            # the predictor's metadata judgement does not fit the transformer's (raw fields in, five outputs)
            ("wire", 0.15, wire_calls().filter(lambda call: call.method != "ModelMetadata")),
            ("health", 0.05, health()),
        ]

    return of


def sample_calls(pool: Pool):
    """``samples`` for :func:`reliability.fuzz_grpc.run_grpc`: typed and raw valid calls, a mistake."""

    def samples() -> list[Call]:
        rows = [pool.record(pool.customers - 1, j) for j in range(3)]
        typed, raw = tensors(rows, raw=False), tensors(rows, raw=True)
        typed.id = "warm-up"
        wrong = tensors(rows, raw=False)
        wrong.inputs[0].datatype = "bytes"
        return [
            infer_call("sample", typed, OK, "typed", rows=3),
            infer_call("sample", raw, OK, "raw", rows=3),
            message_call("sample", "ServerLive", pb.ServerLiveRequest(), OK),
            infer_call("sample", wrong, INVALID, "lowercase datatype"),
        ]

    return samples
