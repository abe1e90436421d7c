"""Open Inference Protocol (KServe V2) tensors ↔ the model's float32 feature matrix and its outputs.

Accepted inputs, JSON or the binary tensor extension:

* one tensor ``features`` of shape ``[N, F]`` (F = number of features, 26), or
* F tensors named after the features, each ``[N]`` or ``[N, 1]``;

datatype FP16/FP32/FP64 or any INT/UINT type. Everything else — another shape, an unknown or missing name,
BYTES/BOOL or non-numeric JSON, NaN or infinity, an empty batch, more than ``max_rows`` rows — is an
:class:`InvalidRequest` (HTTP 400) that says what is wrong.
"""

from __future__ import annotations

import math
import struct
import uuid
from dataclasses import dataclass

import numpy as np
import orjson
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse, RequestedOutput

from serving.errors import InvalidRequest

INPUT_NAME = "features"
NUMERIC_DATATYPES = {
    "FP16",
    "FP32",
    "FP64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
}
_NP_DTYPE = {
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
}  # fmt: skip


@dataclass(frozen=True)
class Outputs:
    """Scored rows: what both wire formats return."""

    probability: np.ndarray  # float32 [N], P(high risk)
    prediction: np.ndarray  # int64 [N], probability >= threshold
    risk_level: np.ndarray  # object [N]: low / medium / high
    decision: np.ndarray  # object [N]: approve / review / reject


OUTPUT_TYPES = (
    {"name": "probability", "datatype": "FP32", "shape": [-1]},
    {"name": "prediction", "datatype": "INT64", "shape": [-1]},
    {"name": "risk_level", "datatype": "BYTES", "shape": [-1]},
    {"name": "decision", "datatype": "BYTES", "shape": [-1]},
)
OUTPUT_NAMES = tuple(o["name"] for o in OUTPUT_TYPES)


def read_json_request(body: bytes, model_name: str) -> InferRequest:
    """Parse a JSON V2 inference request (orjson; NaN is not JSON). Malformed or incomplete bodies are an
    :class:`InvalidRequest` naming the field, like a schema error."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"invalid inference request: malformed JSON: {exc}") from exc
    return _request(document, model_name)


def read_binary_request(body: bytes, header_length: str | None, model_name: str) -> InferRequest:
    """Parse the binary tensor extension: a JSON header of ``header_length`` bytes, then each input's raw
    bytes in order (``parameters.binary_data_size``). Tensors stay as bytes (decoded zero-copy later); any
    inconsistency is an :class:`InvalidRequest`, never a server error."""
    text = (header_length or "").strip()
    if not (text.isascii() and text.isdigit()):  # str.isdigit alone admits '¹', which int() refuses
        raise InvalidRequest(
            f"binary request without a valid Inference-Header-Content-Length header (got {header_length!r})"
        )
    length = int(text)
    if length > len(body):
        raise InvalidRequest(
            f"Inference-Header-Content-Length is {length} but the body has only {len(body)} bytes"
        )
    try:
        header = orjson.loads(body[:length])
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the binary request's JSON header is malformed: {exc}") from exc
    return _request(header, model_name, body, length)


def _request(document: object, model_name: str, body: bytes | None = None, offset: int = 0) -> InferRequest:
    """A kserve ``InferRequest`` from a parsed V2 document; binary inputs read from ``body`` at ``offset``."""
    if not isinstance(document, dict):
        raise InvalidRequest("invalid inference request: expected a JSON object with an 'inputs' list")
    if "inputs" not in document:
        raise InvalidRequest("invalid inference request: inputs: Field required")
    specs = document["inputs"]
    if not isinstance(specs, list):
        raise InvalidRequest("invalid inference request: inputs: must be a list")
    inputs = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise InvalidRequest(f"invalid inference request: inputs.{i}: must be an object")
        for key in ("name", "shape", "datatype"):
            if key not in spec:
                raise InvalidRequest(f"invalid inference request: inputs.{i}.{key}: Field required")
        name, shape, datatype = spec["name"], spec["shape"], spec["datatype"]
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise InvalidRequest(
                f"invalid inference request: inputs.{i}: 'name' and 'datatype' must be strings"
            )
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in shape
        ):
            raise InvalidRequest(f"invalid inference request: inputs.{i}.shape: must be a list of integers")
        parameters = spec.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidRequest(f"invalid inference request: inputs.{i}.parameters: must be an object")
        tensor = InferInput(name=name, shape=shape, datatype=datatype.upper(), parameters=parameters)
        if "data" in spec:
            if not isinstance(spec["data"], list):
                raise InvalidRequest(f"invalid inference request: inputs.{i}.data: must be a list")
            tensor.data = spec["data"]
        elif body is None:
            raise InvalidRequest(f"invalid inference request: inputs.{i}.data: Field required")
        else:
            size = parameters.get("binary_data_size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidRequest(f"input '{name}' has neither 'data' nor a valid 'binary_data_size'")
            if offset + size > len(body):
                raise InvalidRequest(
                    f"input '{name}' declares {size} bytes of binary data but only {len(body) - offset} remain"
                )
            tensor._raw_data = body[offset : offset + size]
            offset += size
        inputs.append(tensor)
    if body is not None and offset != len(body):
        raise InvalidRequest(f"{len(body) - offset} unexpected bytes after the last binary input")
    outputs = document.get("outputs")
    requested = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict)
            and isinstance(o.get("name"), str)
            and isinstance(o.get("parameters") or {}, dict)
            for o in outputs
        ):
            raise InvalidRequest(
                "invalid inference request: outputs: must be a list of objects with a 'name' "
                "(and 'parameters', if any, an object)"
            )
        requested = [RequestedOutput(name=o["name"], parameters=o.get("parameters") or {}) for o in outputs]
    request_id, parameters = document.get("id"), document.get("parameters")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest("invalid inference request: id: must be a string")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequest("invalid inference request: parameters: must be an object")
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=request_id,
        parameters=parameters,
        request_outputs=requested,
    )


def decode(request: InferRequest, feature_names: tuple[str, ...], max_rows: int) -> np.ndarray:
    """The request's rows as a C-contiguous float32 matrix ``[N, len(feature_names)]``."""
    inputs = request.inputs or []
    n_features = len(feature_names)
    if not inputs:
        raise InvalidRequest(
            f"the request has no inputs: send one tensor '{INPUT_NAME}' of shape [N, {n_features}] "
            f"or {n_features} tensors named after the features"
        )
    names = [i.name for i in inputs]
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise InvalidRequest(f"input name(s) given more than once: {', '.join(duplicated)}")
    _check_requested_outputs(request)

    if INPUT_NAME in names and len(names) > 1:
        others = _some([n for n in names if n != INPUT_NAME])
        raise InvalidRequest(
            f"send the tensor '{INPUT_NAME}' alone, or one tensor per feature, not both (also got {others})"
        )
    if names == [INPUT_NAME]:
        matrix = _tensor(inputs[0])
        if matrix.ndim != 2 or matrix.shape[1] != n_features:
            raise InvalidRequest(
                f"input '{INPUT_NAME}' must have shape [N, {n_features}] (one row per transaction, "
                f"{n_features} features in contract order), got {list(matrix.shape)}"
            )
    else:
        matrix = _columns(inputs, feature_names)
    rows = matrix.shape[0]
    if rows == 0:
        raise InvalidRequest("the batch is empty: send at least one row")
    if rows > max_rows:
        raise InvalidRequest(f"the batch has {rows:,} rows, more than the limit of {max_rows:,}: split it")
    return finite_float32(matrix, feature_names)


def _columns(inputs: list[InferInput], feature_names: tuple[str, ...]) -> np.ndarray:
    expected = set(feature_names)
    given = {i.name for i in inputs}
    unknown, missing = sorted(given - expected), [n for n in feature_names if n not in given]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown input(s) {_some(unknown)}")
        if missing:
            parts.append(
                f"missing {len(missing)} of the {len(feature_names)} feature inputs ({_some(missing)})"
            )
        raise InvalidRequest(
            f"{'; '.join(parts)}. Send one tensor '{INPUT_NAME}' [N, {len(feature_names)}], or one tensor per "
            f"feature named as in the feature contract: {', '.join(feature_names)}"
        )
    by_name = {i.name: i for i in inputs}
    columns = []
    for name in feature_names:
        column = _tensor(by_name[name])
        if column.ndim == 2 and column.shape[1] == 1:
            column = column[:, 0]
        if column.ndim != 1:
            raise InvalidRequest(f"input '{name}' must have shape [N] or [N, 1], got {list(column.shape)}")
        columns.append(column)
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise InvalidRequest(f"feature inputs disagree on the number of rows: {sorted(lengths)}")
    return np.column_stack(columns) if columns[0].size else np.empty((0, len(columns)))


def _some(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _tensor(infer_input: InferInput) -> np.ndarray:
    """One input as a numpy array of its declared shape, refusing anything non-numeric."""
    name, datatype, shape = infer_input.name, infer_input.datatype, list(infer_input.shape or [])
    if datatype not in NUMERIC_DATATYPES:
        raise InvalidRequest(
            f"input '{name}' has datatype {datatype}: features are numeric (FP32, FP64 or INT*)"
        )
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise InvalidRequest(f"input '{name}' has an invalid shape {shape}")
    raw = getattr(infer_input, "_raw_data", None)  # the binary tensor extension
    if raw is not None:
        dtype = np.dtype(_NP_DTYPE[datatype])
        expected = math.prod(shape) * dtype.itemsize
        if len(raw) != expected:
            raise InvalidRequest(
                f"input '{name}' carries {len(raw)} bytes of binary data; shape {shape} of {datatype} needs {expected}"
            )
        return _reshape(np.frombuffer(raw, dtype=dtype), shape, name)
    data = infer_input.data
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:  # ragged nesting
        raise InvalidRequest(f"input '{name}' data is not a regular numeric array: {exc}") from exc
    if array.size and array.dtype.kind not in "iuf":
        raise InvalidRequest(
            f"input '{name}' holds non-numeric data (e.g. {_first_bad(array)}): send numbers"
        )
    if array.size != math.prod(shape):
        raise InvalidRequest(
            f"input '{name}' has {array.size} values but its shape {shape} needs {math.prod(shape)}"
        )
    return _reshape(array, shape, name)


def _reshape(array: np.ndarray, shape: list[int], name: str) -> np.ndarray:
    """numpy refuses (ValueError) shapes it cannot represent, e.g. ``[0, 2**63]``, even with no data."""
    try:
        return array.reshape(shape)
    except ValueError as exc:
        raise InvalidRequest(f"input '{name}' has an impossible shape {shape}: {exc}") from exc


def _first_bad(array: np.ndarray) -> str:
    for value in array.ravel().tolist():
        if isinstance(value, bool) or not isinstance(value, int | float):
            return repr(value)
    return repr(array.ravel().tolist()[0])


def finite_float32(matrix: np.ndarray, feature_names: tuple[str, ...]) -> np.ndarray:
    """``matrix`` as C-contiguous float32; NaN, infinity or values beyond float32 range are refused."""
    if matrix.dtype == np.float32:
        out = np.ascontiguousarray(matrix)
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 range becomes inf: refused below
            out = np.ascontiguousarray(matrix, dtype=np.float32)
    if np.isfinite(out).all():
        return out
    finite = np.isfinite(out)
    if not finite.all():
        row, column = (int(i) for i in np.argwhere(~finite)[0])
        raise InvalidRequest(
            f"{int((~finite).sum())} value(s) are NaN, infinite or beyond float32 range; first at row {row}, "
            f"feature '{feature_names[column]}' ({float(matrix[row, column])!r})"
        )
    return out


def _check_requested_outputs(request: InferRequest) -> None:
    for output in request.request_outputs or []:
        if output.name not in OUTPUT_NAMES:
            raise InvalidRequest(
                f"unknown output '{output.name}': this model returns {', '.join(OUTPUT_NAMES)}"
            )


def write_response(request: InferRequest, response: InferResponse) -> tuple[bytes, dict[str, str]]:
    """Serialise a response whose outputs hold numpy data: JSON (orjson), or the binary tensor extension
    for the outputs the request asks in binary (``binary_data_output``, or ``binary_data`` per output).

    Returns the body and the headers to send with it.
    """
    default_binary = bool(request.use_binary_outputs)
    wanted = request.request_outputs or [None] * len(response.outputs)
    by_name = {o.name: o for o in response.outputs}
    entries, blobs = [], []
    for requested, output in zip(wanted, response.outputs, strict=False):
        if requested is not None:
            output = by_name[requested.name]
            binary = requested.binary_data if requested.binary_data is not None else default_binary
        else:
            binary = default_binary
        entry: dict[str, object] = {"name": output.name, "datatype": output.datatype, "shape": output.shape}
        data = output.data
        if binary:
            blob = _binary(data, output.datatype)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = data.tolist() if data.dtype == object else data
        entries.append(entry)
    document = {
        "id": response.id,
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": entries,
    }
    content = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return content, {"content-type": "application/json"}
    return b"".join([content, *blobs]), {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(content)),
    }


def _binary(data: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":  # each element: its length as uint32 little-endian, then its UTF-8 bytes
        return b"".join(_BYTES_ELEMENT.get(v) or _length_prefixed(v) for v in data.tolist())
    return np.ascontiguousarray(data, dtype=np.dtype(_NP_DTYPE[datatype]).newbyteorder("<")).tobytes()


def _length_prefixed(value: object) -> bytes:
    raw = value if isinstance(value, bytes) else str(value).encode()
    return struct.pack("<I", len(raw)) + raw


_BYTES_ELEMENT = {v: _length_prefixed(v) for v in ("low", "medium", "high", "approve", "review", "reject")}


def encode(request: InferRequest, outputs: Outputs, model_name: str, model_version: str) -> InferResponse:
    """V2 response with ``probability``, ``prediction``, ``risk_level`` and ``decision`` (or those requested)."""
    binary = request.use_binary_outputs
    rows = [len(outputs.probability)]
    # Data stays numpy here: kserve serialises each tensor as JSON or binary when it writes the response.
    tensors = [
        InferOutput(
            name=spec["name"], shape=rows, datatype=spec["datatype"], data=getattr(outputs, spec["name"])
        )
        for spec in OUTPUT_TYPES
    ]
    return InferResponse(
        response_id=request.id or str(uuid.uuid4()),
        model_name=model_name,
        model_version=model_version,
        infer_outputs=tensors,
        use_binary_outputs=binary,
        requested_outputs=request.request_outputs,
    )
