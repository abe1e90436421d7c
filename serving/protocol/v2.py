"""Open Inference Protocol (KServe V2) tensors ↔ the model's float32 feature matrix and its outputs.

Accepted inputs, JSON or the binary tensor extension:

* one tensor ``features`` of shape ``[N, F]`` (F = number of features, 26), or
* F tensors named after the features, each ``[N]`` or ``[N, 1]``;

datatype FP16/FP32/FP64 or any INT/UINT type. Everything else — another shape, an unknown or missing name,
BYTES/BOOL or non-numeric JSON, NaN or infinity, an empty batch, more than ``max_rows`` rows — is an
:class:`InvalidRequest` (HTTP 400) that says what is wrong.
"""

from __future__ import annotations

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


def read_binary_request(body: bytes, header_length: str | None, model_name: str) -> InferRequest:
    """Parse the binary tensor extension: a JSON header of ``header_length`` bytes, then each input's raw
    bytes in order (``parameters.binary_data_size``). Tensors stay as bytes (decoded zero-copy later); any
    inconsistency is an :class:`InvalidRequest`, never a server error."""
    if header_length is None or not header_length.strip().isdigit():
        raise InvalidRequest(
            f"binary request without a valid Inference-Header-Content-Length header (got {header_length!r})"
        )
    length = int(header_length)
    if length > len(body):
        raise InvalidRequest(
            f"Inference-Header-Content-Length is {length} but the body has only {len(body)} bytes"
        )
    try:
        header = orjson.loads(body[:length])
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the binary request's JSON header is malformed: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise InvalidRequest("the binary request's JSON header needs an 'inputs' list")
    offset, inputs = length, []
    for i, spec in enumerate(header["inputs"]):
        if not isinstance(spec, dict) or not all(k in spec for k in ("name", "shape", "datatype")):
            raise InvalidRequest(f"input {i} of the JSON header needs 'name', 'shape' and 'datatype'")
        name, shape, datatype = spec["name"], spec["shape"], spec["datatype"]
        if not isinstance(name, str) or not isinstance(datatype, str) or not isinstance(shape, list):
            raise InvalidRequest(f"input {i}: 'name' and 'datatype' must be strings and 'shape' a list")
        parameters = spec.get("parameters") or {}
        tensor = InferInput(name=name, shape=shape, datatype=datatype, parameters=parameters)
        if "data" in spec:
            tensor.data = spec["data"]
        else:
            size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidRequest(f"input '{name}' has neither 'data' nor a valid 'binary_data_size'")
            if offset + size > len(body):
                raise InvalidRequest(
                    f"input '{name}' declares {size} bytes of binary data but only {len(body) - offset} remain"
                )
            tensor._raw_data = body[offset : offset + size]
            offset += size
        inputs.append(tensor)
    if offset != len(body):
        raise InvalidRequest(f"{len(body) - offset} unexpected bytes after the last binary input")
    outputs = header.get("outputs")
    requested = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
        ):
            raise InvalidRequest("'outputs' must be a list of objects with a 'name'")
        requested = [RequestedOutput(name=o["name"], parameters=o.get("parameters")) for o in outputs]
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=header.get("id"),
        parameters=header.get("parameters"),
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
        expected = int(np.prod(shape)) * dtype.itemsize
        if len(raw) != expected:
            raise InvalidRequest(
                f"input '{name}' carries {len(raw)} bytes of binary data; shape {shape} of {datatype} needs {expected}"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    data = infer_input.data
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:  # ragged nesting
        raise InvalidRequest(f"input '{name}' data is not a regular numeric array: {exc}") from exc
    if array.size and array.dtype.kind not in "iuf":
        raise InvalidRequest(
            f"input '{name}' holds non-numeric data (e.g. {_first_bad(array)}): send numbers"
        )
    if array.size != int(np.prod(shape)):
        raise InvalidRequest(
            f"input '{name}' has {array.size} values but its shape {shape} needs {int(np.prod(shape))}"
        )
    return array.reshape(shape)


def _first_bad(array: np.ndarray) -> str:
    for value in array.ravel().tolist():
        if isinstance(value, bool) or not isinstance(value, int | float):
            return repr(value)
    return repr(array.ravel().tolist()[0])


def finite_float32(matrix: np.ndarray, feature_names: tuple[str, ...]) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(matrix, dtype=np.float32)
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
