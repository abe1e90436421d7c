"""Open Inference Protocol (KServe V2) tensors ↔ the model's float32 feature matrix and its outputs.

Reading is strict and owes nothing to kserve's request types: a request becomes a :class:`Request` of
:class:`Tensor`\\ s whose ``data`` already fits the declared datatype, or an :class:`InvalidRequest` (HTTP 400,
gRPC ``INVALID_ARGUMENT``) whose message names the offending element, e.g.
``inputs[0] 'features' (INT64): element 3 is 1.5, not an integer``. The rules:

* datatypes are the 13 of the protocol, spelled exactly (``"fp32"`` is refused with a hint);
* ``shape`` is a list of non-negative integers and the data holds exactly ``prod(shape)`` elements;
* JSON ``data`` is flat or regularly nested (read in row-major order; ragged nesting is refused); INT/UINT
  elements are integers within the type's range, FP16/FP32 elements are numbers that stay finite in that
  type, BOOL elements are booleans (and only BOOL's are), BYTES elements are strings;
* binary data (the binary tensor extension, gRPC ``raw_input_contents``) is little-endian, BYTES elements
  each preceded by a 4-byte little-endian length, BOOL bytes are 0 or 1, and its size matches the shape;
* ``binary_data_output`` (request parameters) and ``binary_data`` (output parameters) are JSON booleans,
  ``id`` is a string (echoed as given, the empty string included), ``inputs`` a non-empty list.

Then :func:`decode` turns the tensors into the model's rows. Accepted: one tensor ``features`` of shape
``[N, F]`` (F = number of features, 26), or F tensors named after the features, each ``[N]`` or ``[N, 1]``;
numeric datatypes only (FP16/FP32/FP64, INT*, UINT*). A BOOL or BYTES feature, another shape, an unknown or
missing name, NaN or infinity, values beyond float32, an empty batch, more than ``max_rows`` rows: refused.

Speed matters for batches (a 1,000-row JSON request must cost far less than scoring it): the happy path
never loops over elements in Python. orjson parses, ``np.asarray`` finds the array's dtype in C, integer
ranges are checked with min/max, float ranges by casting and ``isfinite``. Booleans hidden among numbers
(numpy reads them as 1 and 0) are looked for (``bool in map(type, ...)``, still C-speed) only when the JSON
text holds more ``true``/``false`` tokens than the request's parameters account for. Any doubt falls back
to a per-element scan in Python, which is also what finds the element to name. ``bench/serve/codec.py``
measures it against onnxruntime.
"""

from __future__ import annotations

import gc
import itertools
import math
import struct
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import orjson

from serving.errors import InvalidRequest

INPUT_NAME = "features"

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
NUMERIC_DATATYPES = frozenset(d for d in DATATYPES if d not in ("BOOL", "BYTES"))
_INTEGER = {d: np.iinfo(t) for d, t in DATATYPES.items() if t.kind in "iu"}
_INTEGER_RANGE = {d: (int(i.min), int(i.max)) for d, i in _INTEGER.items()}
_FLOAT_RANGE = {"FP16": "±65504", "FP32": "±3.4028235e38", "FP64": "±1.7976931348623157e308"}
_ALIASES = {"FLOAT16": "FP16", "HALF": "FP16", "FLOAT32": "FP32", "FLOAT": "FP32", "FLOAT64": "FP64",
            "DOUBLE": "FP64", "STRING": "BYTES", "STR": "BYTES", "BOOLEAN": "BOOL"}  # fmt: skip


OUTPUT_TYPES = (
    {"name": "probability", "datatype": "FP32", "shape": [-1]},
    {"name": "prediction", "datatype": "INT64", "shape": [-1]},
    {"name": "risk_level", "datatype": "BYTES", "shape": [-1]},
    {"name": "decision", "datatype": "BYTES", "shape": [-1]},
)
OUTPUT_NAMES = tuple(o["name"] for o in OUTPUT_TYPES)


@dataclass(frozen=True)
class Outputs:
    """Scored rows: what both wire formats return.

    ``DATATYPES`` lists every output a request may ask for (by name, with its V2 datatype), ``DEFAULT`` the
    ones answered when it asks for none; a subclass that adds outputs extends both."""

    probability: np.ndarray  # float32 [N], P(high risk)
    prediction: np.ndarray  # int64 [N], probability >= threshold
    risk_level: np.ndarray  # object [N]: low / medium / high
    decision: np.ndarray  # object [N]: approve / review / reject

    DATATYPES: ClassVar[dict[str, str]] = {o["name"]: o["datatype"] for o in OUTPUT_TYPES}
    DEFAULT: ClassVar[tuple[str, ...]] = OUTPUT_NAMES

    def model_version(self, served: str) -> str:
        """The model version that produced these scores: the served one, unless a subclass knows better (a
        transformer reports the version its predictor answered with)."""
        return served


@dataclass(frozen=True)
class Tensor:
    """One input tensor, its data decoded and checked against the datatype, reshaped to ``shape``.

    ``data``'s dtype is ``DATATYPES[datatype]`` (BOOL: bool; BYTES: an object array of ``bytes``)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool | None  # parameters.binary_data; None: as the request's binary_data_output says


@dataclass(frozen=True)
class Request:
    id: str | None  # echoed exactly as given ("" included); None: the answer gets a new one
    inputs: tuple[Tensor, ...]
    outputs: tuple[RequestedOutput, ...] | None  # None or (): every output, in OUTPUT_NAMES order
    binary_output: bool  # parameters.binary_data_output
    parameters: dict  # the request's parameters as sent ({} when absent)


# ---------------------------------------------------------------------------------------------- reading


def read_json_request(body: bytes) -> Request:
    """Parse a JSON V2 inference request (orjson: NaN and Infinity are not JSON).

    The cyclic garbage collector is paused meanwhile: nested ``data`` is one list per row, 10,000 lists
    for 10,000 rows, enough to trigger collections (full ones included, which walk the whole heap) that
    cannot find anything (a parsed document has no cycles, and it is freed before this returns)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"invalid inference request: malformed JSON: {exc}") from exc
        return _request(document, _boolean_tokens(body, len(body)))
    finally:
        document = None  # freed here, while the collector still sleeps
        if collecting:
            gc.enable()


def read_binary_request(body: bytes, header_length: str | None) -> Request:
    """Parse the binary tensor extension: a JSON header of ``header_length`` bytes, then each binary input's
    raw bytes in input order (``parameters.binary_data_size``); inputs may also carry JSON ``data``."""
    text = (header_length or "").strip()
    if not (text.isascii() and text.isdigit()):  # str.isdigit alone admits '¹', which int() refuses
        raise InvalidRequest(
            "binary request without a valid Inference-Header-Content-Length header "
            f"(got {describe(header_length)})"
        )
    length = int(text)
    if length > len(body):
        raise InvalidRequest(
            f"Inference-Header-Content-Length is {length} but the body has only {len(body)} bytes"
        )
    view = memoryview(body)
    try:
        header = orjson.loads(view[:length])
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the binary request's JSON header is malformed: {exc}") from exc
    return _request(header, _boolean_tokens(body, length), view, length)


def _request(document: object, tokens: int, body: memoryview | None = None, offset: int = 0) -> Request:
    """A :class:`Request` from a parsed V2 document; binary inputs are read from ``body`` at ``offset``.
    ``tokens`` counts the ``true``/``false`` tokens of the JSON text (an upper bound of its booleans)."""
    if not isinstance(document, dict):
        raise InvalidRequest(
            f"invalid inference request: expected a JSON object with an 'inputs' list, got {describe(document)}"
        )
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest(f"invalid inference request: id must be a string, got {describe(request_id)}")
    parameters = _parameters(document.get("parameters"), "parameters")
    binary_output = _flag(parameters, "binary_data_output", "parameters")
    outputs = _requested_outputs(document.get("outputs"))
    if "inputs" not in document:
        raise InvalidRequest("invalid inference request: 'inputs' is required")
    specs = document["inputs"]
    if not isinstance(specs, list):
        raise InvalidRequest(
            f"invalid inference request: inputs must be a list of tensors, got {describe(specs)}"
        )
    if not specs:
        raise InvalidRequest("invalid inference request: the request has no inputs (inputs is an empty list)")
    # Booleans the JSON text holds outside tensor data; if every token is one of them, no data hides one.
    known = _count_booleans(parameters) + _count_booleans(document.get("outputs"))
    known += sum(_count_booleans(s.get("parameters")) for s in specs if isinstance(s, dict))
    booleans = tokens > known
    contents = []  # every input's place in the body first: a body that does not add up is said so first
    for i, spec in enumerate(specs):
        content, offset = _content(spec, f"inputs[{i}]", body, offset)
        contents.append(content)
    if body is not None and offset != len(body):
        raise InvalidRequest(f"{len(body) - offset} unexpected bytes after the last binary input")
    inputs = tuple(
        tensor_from_bytes(spec["name"], spec["datatype"], spec["shape"], content, f"inputs[{i}]")
        if isinstance(content, memoryview)
        else tensor_from_values(
            spec["name"], spec["datatype"], spec["shape"], content, f"inputs[{i}]", booleans=booleans
        )
        for i, (spec, content) in enumerate(zip(specs, contents, strict=True))
    )
    return Request(request_id, inputs, outputs, binary_output, parameters)


def _content(spec: object, where: str, body: memoryview | None, offset: int) -> tuple[object, int]:
    """An input's JSON ``data``, or its binary bytes (a memoryview of the body), and the next offset."""
    if not isinstance(spec, dict):
        raise InvalidRequest(
            f"{where} must be an object with name, datatype, shape and data, got {describe(spec)}"
        )
    for key in ("name", "datatype", "shape"):
        if key not in spec:
            raise InvalidRequest(f"{where}: '{key}' is required")
    name = spec["name"]
    if not isinstance(name, str):
        raise InvalidRequest(f"{where}: name must be a string, got {describe(name)}")
    label = f"{where} {quoted_name(name)}"
    parameters = _parameters(spec.get("parameters"), f"{label}: parameters")
    size = parameters.get("binary_data_size")
    if "data" in spec:
        if size is not None:
            raise InvalidRequest(f"{label}: has both 'data' and a 'binary_data_size': send one of them")
        return spec["data"], offset
    if body is None:
        if size is not None:
            raise InvalidRequest(
                f"{label}: has a 'binary_data_size' but the request is JSON (no Inference-Header-Content-Length "
                "header): send 'data', or the binary tensor extension"
            )
        raise InvalidRequest(f"{label}: 'data' is required")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidRequest(
            f"{label}: neither 'data' nor a valid 'binary_data_size' (a non-negative integer; got "
            f"{'nothing' if size is None else describe(size)})"
        )
    if offset + size > len(body):
        raise InvalidRequest(
            f"{label}: declares {size} bytes of binary data but only {len(body) - offset} remain"
        )
    return body[offset : offset + size], offset + size


def _parameters(value: object, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be an object, got {describe(value)}")
    return value


def _flag(parameters: dict, key: str, where: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise InvalidRequest(f"{where}.{key} must be a JSON boolean (true or false), got {describe(value)}")
    return value


def _requested_outputs(value: object) -> tuple[RequestedOutput, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidRequest(
            f"invalid inference request: outputs must be a list of objects, got {describe(value)}"
        )
    requested = []
    for j, output in enumerate(value):
        where = f"outputs[{j}]"
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise InvalidRequest(f"{where} must be an object with a string 'name', got {describe(output)}")
        label = f"{where} {quoted_name(output['name'])}"
        parameters = _parameters(output.get("parameters"), f"{label}: parameters")
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidRequest(
                f"{label}: parameters.binary_data must be a JSON boolean (true or false), got {describe(binary)}"
            )
        requested.append(RequestedOutput(output["name"], binary))
    return tuple(requested)


def _boolean_tokens(body: bytes | memoryview, end: int) -> int:
    """How many ``true``/``false`` byte sequences ``body[:end]`` holds (inside strings too: an upper bound).
    Vectorised: find each ``e``, keep those after ``u`` or ``s``, compare only those few in Python."""
    if end < 4096:  # below a few KB, two bytes.count beat numpy's call overheads
        head = bytes(body[:end])
        return head.count(b"true") + head.count(b"false")
    text = np.frombuffer(body, np.uint8, count=end)
    ends = np.flatnonzero(text[3:] == 0x65) + 3  # 'e'
    if not ends.size:
        return 0
    before = text[ends - 1]
    found = 0
    for i in ends[(before == 0x75) | (before == 0x73)].tolist():  # 'u', 's'
        found += bytes(text[i - 3 : i + 1]) == b"true" or (i >= 4 and bytes(text[i - 4 : i + 1]) == b"false")
    return found


def _count_booleans(value: object) -> int:
    """JSON booleans anywhere in ``value`` (iterative: parameters may nest as deep as orjson allows)."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            count += 1
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


# ---------------------------------------------------------------------------------------------- tensors


def tensor_from_values(
    name: str, datatype: str, shape: Sequence[int], values: Sequence, where: str, *, booleans: bool = True
) -> Tensor:
    """A tensor from JSON ``data`` (flat, or regularly nested and read in row-major order) or a gRPC
    ``InferTensorContents`` list, each element checked against ``datatype``.

    ``booleans=False`` tells that no element can be a Python ``bool`` unless the datatype is BOOL (typed
    protobuf contents, or a JSON text without a stray ``true``/``false``): numpy reads ``True`` among numbers
    as 1, so otherwise finding one needs a scan of the elements."""
    label = _check_header(name, datatype, where)
    dims = _check_shape(shape, label)
    prefix = f"{label} ({datatype})"
    if isinstance(values, np.ndarray):
        values = values.tolist()
    elif not isinstance(values, list):
        if isinstance(values, str | bytes) or not isinstance(values, Sequence):
            raise InvalidRequest(f"{prefix}: data must be a list, got {describe(values)}")
        values = list(values)  # a tuple, a protobuf repeated field
    needed = math.prod(dims)
    array = None if datatype == "BYTES" else _fast(values, datatype, booleans)
    if array is None:
        flat = _flatten(values, prefix)
        if len(flat) != needed:
            raise InvalidRequest(
                f"{prefix}: has {len(flat)} values but its shape {list(dims)} needs {needed}"
            )
        array = _checked(flat, datatype, prefix)
    elif array.size != needed:
        raise InvalidRequest(f"{prefix}: has {array.size} values but its shape {list(dims)} needs {needed}")
    return Tensor(name, datatype, dims, _reshape(array, dims, prefix))


def _fast(values: list, datatype: str, booleans: bool) -> np.ndarray | None:
    """The checked flat array without looking at elements one by one in Python, or None when in doubt
    (ragged nesting, an element that does not fit, a value out of range, a possible hidden boolean): the
    slow path then decides, and names the element.

    ``np.asarray`` finds in C the dtype that holds every element: a string, null or object makes it
    non-numeric, a float among integers makes it float, ragged nesting raises. One pass over freshly
    parsed elements costs about what orjson spent creating them; ``sum`` + ``np.fromiter`` measured slower."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError, OverflowError):  # ragged, or nested deeper than numpy's 64 dimensions
        return None
    kind = array.dtype.kind
    if datatype == "BOOL":
        return array.reshape(-1) if kind == "b" else None
    floating = datatype in _FLOAT_RANGE
    if array.size and kind not in ("iuf" if floating else "iu"):  # 1.5, 2**64 or true for INT; "x", null
        return None
    if booleans and array.size and _holds_bool(_leaves(values, array.ndim)):  # numpy read true as 1
        return None
    dtype = DATATYPES[datatype]
    if not floating:
        if array.size:
            low, high = _INTEGER_RANGE[datatype]
            if int(array.min()) < low or int(array.max()) > high:
                return None
        return array.reshape(-1).astype(dtype, copy=False)
    try:
        with np.errstate(over="raise"):  # beyond FP16/FP32: the cast overflows to inf (JSON has no inf)
            return array.reshape(-1).astype(dtype, copy=False)
    except FloatingPointError:
        return None


def _leaves(values: list, depth: int) -> Iterable:
    """The elements of a regular nest of lists ``depth`` deep, in row-major order (C-speed chaining)."""
    leaves: Iterable = values
    for _ in range(depth - 1):
        leaves = itertools.chain.from_iterable(leaves)
    return leaves


def _holds_bool(leaves: Iterable) -> bool:
    return bool in map(type, leaves)


def _flatten(values: list, prefix: str) -> list:
    """The elements of regularly nested lists in row-major order, level by level (no recursion: data may nest
    as deep as orjson allows). Ragged nesting is refused, naming the first irregular element."""
    sizes, probe = [], values
    while isinstance(probe, list):
        sizes.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    level = [values]
    for depth, size in enumerate(sizes):
        for k, node in enumerate(level):
            if not isinstance(node, list) or len(node) != size:
                at, first = _path(k, sizes[:depth]), _path(0, sizes[:depth])
                got = f"has {len(node)} element(s)" if isinstance(node, list) else f"is {describe(node)}"
                raise InvalidRequest(
                    f"{prefix}: data is ragged: data{at} {got} where data{first} is a list of {size}; "
                    "nest it regularly, or send it flat"
                )
        level = list(itertools.chain.from_iterable(level))
    for k, leaf in enumerate(level):
        if isinstance(leaf, list):
            raise InvalidRequest(
                f"{prefix}: data is ragged: data{_path(k, sizes)} is a list where data{_path(0, sizes)} is "
                f"{describe(level[0])}; nest it regularly, or send it flat"
            )
    return level


def _path(flat_index: int, sizes: list[int]) -> str:
    """``[i][j]...`` of the ``flat_index``-th node of a regular nest of ``sizes``."""
    return "".join(f"[{int(i)}]" for i in np.unravel_index(flat_index, sizes)) if sizes else ""


def _checked(flat: list, datatype: str, prefix: str) -> np.ndarray:
    """The slow path: every element checked in Python; the first one that does not fit is named."""
    dtype = DATATYPES[datatype]
    if datatype == "BYTES":
        out = np.empty(len(flat), dtype=object)
        for i, value in enumerate(flat):
            if isinstance(value, str):
                try:
                    out[i] = value.encode()
                except UnicodeEncodeError:  # a lone surrogate (orjson refuses them; other callers may not)
                    raise InvalidRequest(
                        f"{prefix}: element {i} is {describe(value)}, not valid Unicode"
                    ) from None
            elif isinstance(value, bytes):
                out[i] = value
            else:
                raise InvalidRequest(f"{prefix}: element {i} is {describe(value)}, not a string")
        return out
    if datatype == "BOOL":
        for i, value in enumerate(flat):
            if not isinstance(value, bool):
                raise InvalidRequest(f"{prefix}: element {i} is {describe(value)}, not a boolean")
        return np.array(flat, dtype=dtype)
    if datatype in _INTEGER_RANGE:
        low, high = _INTEGER_RANGE[datatype]
        for i, value in enumerate(flat):
            integral = isinstance(value, float) and value.is_integer()  # orjson reads 2**64 as a float
            if isinstance(value, bool) or not (isinstance(value, int) or integral):
                raise InvalidRequest(f"{prefix}: element {i} is {describe(value)}, not an integer")
            # -2**63 - 1 and below arrive rounded to the float -2**63: out of range, whatever the type
            if not low <= value <= high or (integral and value <= -(2**63)):
                raise InvalidRequest(
                    f"{prefix}: element {i} is {describe(value)}, beyond {datatype}'s range [{low}, {high}]"
                )
            if integral:
                raise InvalidRequest(
                    f"{prefix}: element {i} is {describe(value)}, not an integer: write {datatype} data "
                    "without a fraction or an exponent"
                )
        return np.array(flat, dtype=dtype)
    for i, value in enumerate(flat):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequest(f"{prefix}: element {i} is {describe(value)}, not a number")
        if not _fits(value, dtype):
            raise InvalidRequest(
                f"{prefix}: element {i} is {describe(value)}, beyond {datatype}'s range "
                f"({_FLOAT_RANGE[datatype]})"
            )
    return np.array(flat, dtype=np.float64).astype(dtype)


def _fits(value: float, dtype: np.dtype) -> bool:
    """Whether a number stays finite in a float type (rounding to the largest value is fine)."""
    try:
        wide = float(value)
    except OverflowError:  # a Python integer beyond float64 (gRPC or a caller; orjson caps them)
        return False
    with np.errstate(over="ignore"):
        return bool(np.isfinite(dtype.type(wide)))


def tensor_from_bytes(name: str, datatype: str, shape: Sequence[int], raw: bytes, where: str) -> Tensor:
    """A tensor from raw little-endian bytes (binary tensor extension, gRPC ``raw_input_contents``); BYTES
    elements are each a 4-byte little-endian length then that many bytes. Numeric data is a read-only view."""
    label = _check_header(name, datatype, where)
    dims = _check_shape(shape, label)
    prefix = f"{label} ({datatype})"
    needed = math.prod(dims)
    if datatype == "BYTES":
        return Tensor(name, datatype, dims, _reshape(_split_bytes(raw, needed, prefix, dims), dims, prefix))
    dtype = DATATYPES[datatype]
    if len(raw) != needed * dtype.itemsize:
        raise InvalidRequest(
            f"{prefix}: carries {len(raw)} bytes of binary data; shape {list(dims)} of {datatype} needs "
            f"{needed * dtype.itemsize}"
        )
    if datatype == "BOOL":
        octets = np.frombuffer(raw, np.uint8)
        if octets.size and octets.max() > 1:
            i = int(np.argmax(octets > 1))
            raise InvalidRequest(
                f"{prefix}: element {i} is the byte {int(octets[i])}, not a boolean (0 or 1)"
            )
    return Tensor(name, datatype, dims, _reshape(np.frombuffer(raw, dtype), dims, prefix))


def _split_bytes(raw: bytes, count: int, prefix: str, dims: tuple[int, ...]) -> np.ndarray:
    view, size, position = memoryview(raw), len(raw), 0
    elements = []
    while position < size or len(elements) < count:
        i = len(elements)
        if i == count:
            raise InvalidRequest(
                f"{prefix}: {size - position} bytes of binary data after the {count} element(s) its shape "
                f"{list(dims)} holds"
            )
        if position + 4 > size:
            raise InvalidRequest(
                f"{prefix}: element {i} has no 4-byte length (the binary data ends after {size} bytes; "
                f"shape {list(dims)} needs {count} elements)"
            )
        (length,) = struct.unpack_from("<I", view, position)
        position += 4
        if position + length > size:
            raise InvalidRequest(
                f"{prefix}: element {i} declares {length} bytes but only {size - position} remain"
            )
        elements.append(bytes(view[position : position + length]))
        position += length
    out = np.empty(len(elements), dtype=object)
    out[:] = elements
    return out


def _check_header(name: object, datatype: object, where: str) -> str:
    """``where 'name'``, once the name is a string and the datatype one of the protocol's, spelled exactly."""
    if not isinstance(name, str):
        raise InvalidRequest(f"{where}: name must be a string, got {describe(name)}")
    label = f"{where} {quoted_name(name)}"
    if not isinstance(datatype, str):
        raise InvalidRequest(f"{label}: datatype must be a string, got {describe(datatype)}")
    if datatype not in DATATYPES:
        upper = datatype.upper()
        if upper in DATATYPES:
            hint = f' (did you mean "{upper}"? datatypes are case-sensitive)'
        else:
            hint = f' (did you mean "{_ALIASES[upper]}"?)' if upper in _ALIASES else ""
        raise InvalidRequest(
            f"{label}: datatype {describe(datatype)} is not a V2 datatype{hint}; one of {', '.join(DATATYPES)}"
        )
    return label


def _check_shape(shape: object, label: str) -> tuple[int, ...]:
    if type(shape) is not list and (isinstance(shape, str | bytes) or not isinstance(shape, Sequence)):
        raise InvalidRequest(f"{label}: shape must be a list of non-negative integers, got {describe(shape)}")
    for k, dim in enumerate(shape):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise InvalidRequest(
                f"{label}: shape must be a list of non-negative integers; element {k} is {describe(dim)}"
            )
    return tuple(shape)


def _reshape(array: np.ndarray, dims: tuple[int, ...], prefix: str) -> np.ndarray:
    """numpy refuses (ValueError) shapes it cannot represent, e.g. ``[0, 2**63]``, even with no data."""
    try:
        return array.reshape(dims)
    except ValueError as exc:
        raise InvalidRequest(f"{prefix}: impossible shape {list(dims)}: {exc}") from exc


# ---------------------------------------------------------------------------------------------- the model's rows


def decode(request: Request, feature_names: tuple[str, ...], max_rows: int) -> np.ndarray:
    """The request's rows as a C-contiguous float32 matrix ``[N, len(feature_names)]``."""
    inputs = request.inputs
    n_features = len(feature_names)
    if not inputs:
        raise InvalidRequest(
            f"the request has no inputs: send one tensor '{INPUT_NAME}' of shape [N, {n_features}] "
            f"or {n_features} tensors named after the features"
        )
    names = [t.name for t in inputs]
    if len(set(names)) != len(names):  # Counter: names.count per name is quadratic in a hostile list
        duplicated = sorted(n for n, times in Counter(names).items() if times > 1)
        raise InvalidRequest(f"input name(s) given more than once: {_some(duplicated)}")
    check_requested_outputs(request)
    for tensor in inputs:
        if tensor.datatype not in NUMERIC_DATATYPES:
            raise InvalidRequest(
                f"input {quoted_name(tensor.name)} has datatype {tensor.datatype}: features are numeric "
                "(FP16, FP32, FP64, INT* or UINT*)"
            )
    if INPUT_NAME in names and len(names) > 1:
        others = _some([n for n in names if n != INPUT_NAME])
        raise InvalidRequest(
            f"send the tensor '{INPUT_NAME}' alone, or one tensor per feature, not both (also got {others})"
        )
    if names == [INPUT_NAME]:
        matrix = inputs[0].data
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


def _columns(inputs: tuple[Tensor, ...], feature_names: tuple[str, ...]) -> np.ndarray:
    expected = set(feature_names)
    given = {t.name for t in inputs}
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
    by_name = {t.name: t for t in inputs}
    columns = []
    for name in feature_names:
        column = by_name[name].data
        if column.ndim == 2 and column.shape[1] == 1:
            column = column[:, 0]
        if column.ndim != 1:
            raise InvalidRequest(f"input '{name}' must have shape [N] or [N, 1], got {list(column.shape)}")
        columns.append(column)
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise InvalidRequest(f"feature inputs disagree on the number of rows: {sorted(lengths)}")
    return np.column_stack(columns) if columns[0].size else np.empty((0, len(columns)), np.float32)


def _some(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(short_name(n) for n in names[:shown]) + more


def finite_float32(matrix: np.ndarray, feature_names: tuple[str, ...]) -> np.ndarray:
    """``matrix`` as C-contiguous float32; NaN, infinity or values beyond float32 range are refused."""
    if matrix.dtype == np.float32:
        out = np.ascontiguousarray(matrix)
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 range becomes inf: refused below
            out = np.ascontiguousarray(matrix, dtype=np.float32)
    finite = np.isfinite(out)
    if finite.all():
        return out
    row, column = (int(i) for i in np.argwhere(~finite)[0])
    raise InvalidRequest(
        f"{int((~finite).sum())} value(s) are NaN, infinite or beyond float32 range; first at row {row}, "
        f"feature '{feature_names[column]}' ({describe(matrix[row, column])})"
    )


# ---------------------------------------------------------------------------------------------- writing


def check_requested_outputs(request: Request, names: Iterable[str] = OUTPUT_NAMES) -> None:
    seen = set()
    names = tuple(names)
    for output in request.outputs or ():
        if output.name not in names:
            raise InvalidRequest(
                f"unknown output {quoted_name(output.name)}: this model returns {', '.join(names)}"
            )
        if output.name in seen:
            raise InvalidRequest(f"output {quoted_name(output.name)} is requested more than once")
        seen.add(output.name)


def response_id(request: Request) -> str:
    """The request's id, echoed exactly (the empty string included), or a new UUID when it has none."""
    return request.id if request.id is not None else str(uuid.uuid4())


def response_outputs(request: Request, outputs: Outputs) -> list[tuple[str, str, np.ndarray, bool]]:
    """``(name, datatype, data [N], binary?)`` in answer order: the requested outputs in the order asked,
    or the outputs' ``DEFAULT`` ones in that order. ``binary`` is the output's ``binary_data`` if given, else
    the request's ``binary_data_output``."""
    datatypes = outputs.DATATYPES
    if not request.outputs:
        binary = request.binary_output
        return [(name, datatypes[name], getattr(outputs, name), binary) for name in outputs.DEFAULT]
    check_requested_outputs(request, datatypes)
    return [
        (
            o.name,
            datatypes[o.name],
            getattr(outputs, o.name),
            request.binary_output if o.binary is None else o.binary,
        )
        for o in request.outputs
    ]


def write_response(
    request: Request, outputs: Outputs, model_name: str, model_version: str
) -> tuple[bytes, dict[str, str]]:
    """The V2 response body and the headers to send with it: JSON (orjson), or the binary tensor extension
    when some output is asked in binary (``binary_data_output``, or ``binary_data`` per output)."""
    entries, blobs = [], []
    for name, datatype, data, binary in response_outputs(request, outputs):
        entry: dict[str, object] = {"name": name, "datatype": datatype, "shape": list(data.shape)}
        if binary:
            blob = raw_bytes(datatype, data)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif data.dtype == object:
            entry["data"] = data.tolist()  # str elements; bytes ones go through _json_default
        else:
            entry["data"] = np.ascontiguousarray(data)
        entries.append(entry)
    document = {
        "id": response_id(request),
        "model_name": model_name,
        "model_version": model_version,
        "outputs": entries,
    }
    content = orjson.dumps(document, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return content, {"content-type": "application/json"}
    return b"".join([content, *blobs]), {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(content)),
    }


def _json_default(value: object) -> object:
    """orjson's hook for what it cannot write itself: BYTES elements given as ``bytes`` (as UTF-8 text)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    raise TypeError(f"cannot write a {type(value).__name__} in a V2 response")


def raw_bytes(datatype: str, data: np.ndarray) -> bytes:
    """``data`` as the protocol's raw bytes: little-endian; each BYTES element as its length (uint32 LE) and
    its bytes (str elements in UTF-8)."""
    if datatype == "BYTES":
        values = data.ravel().tolist()
        try:  # the model's own words, prefixed once at import: a C-speed lookup per element
            return b"".join(map(_BYTES_ELEMENT.__getitem__, values))
        except (KeyError, TypeError):  # anything else (TypeError: an unhashable element)
            return b"".join(map(_length_prefixed, values))
    return np.ascontiguousarray(data, dtype=DATATYPES[datatype]).tobytes()


def _length_prefixed(value: object) -> bytes:
    raw = value if isinstance(value, bytes) else str(value).encode()
    return struct.pack("<I", len(raw)) + raw


_BYTES_ELEMENT = {v: _length_prefixed(v) for v in ("low", "medium", "high", "approve", "review", "reject")}


# ---------------------------------------------------------------------------------------------- messages


def describe(value: object, limit: int = 60) -> str:
    """A short JSON-like rendering of a client's value for an error message (never Python's repr): strings
    quoted, ``null``/``true``/``false``, containers abridged; at most ``limit`` characters."""
    text = _render(value, limit + 1)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _render(value: object, budget: int) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 128:
            return f"an integer of {len(str(value)) if value.bit_length() < 4000 else 'over 1,000'} digits"
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return orjson.dumps(value).decode()
    if isinstance(value, str):
        try:
            return orjson.dumps(value[:budget]).decode()
        except TypeError:  # lone surrogates: shown escaped
            return orjson.dumps(value[:budget].encode("utf-8", "backslashreplace").decode()).decode()
    if isinstance(value, bytes | bytearray | memoryview):
        return orjson.dumps(bytes(value[:budget]).decode("utf-8", "backslashreplace")).decode()
    if isinstance(value, list | tuple):
        parts, used = [], 1
        for item in value:
            if used > budget:
                break
            part = _render(item, budget - used)
            parts.append(part)
            used += len(part) + 2
        return "[" + ", ".join(parts) + "]"
    if isinstance(value, dict):
        parts, used = [], 1
        for key, item in value.items():
            if used > budget:
                break
            part = f"{_render(str(key), budget - used)}: {_render(item, budget - used)}"
            parts.append(part)
            used += len(part) + 2
        return "{" + ", ".join(parts) + "}"
    return f"a {type(value).__name__}"


def _plain(name: str) -> bool:
    return len(name) <= 40 and name.isprintable()


def short_name(name: str) -> str:
    """A client-given name for a message: as is if short and plain, else JSON-quoted and abridged."""
    return name if _plain(name) else describe(name, 42)


def quoted_name(name: str) -> str:
    """A client-given name in a message: quoted if short and plain, else JSON-quoted and abridged."""
    return f"'{name}'" if _plain(name) else describe(name, 42)
