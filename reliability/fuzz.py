#!/usr/bin/env python
"""Fuzz the predictor with malformed and hostile requests; the server must answer every one without a 5xx,
stay live on the same worker processes, and keep its memory bounded.

    python reliability/fuzz.py [--requests N] [--json OUT] [--seed S] [--schemathesis-examples M]

Trains a small model (``harness.predictor.train_small_model``), starts ``python -m serving --workers 2
--max-request-bytes 1000000`` on a loopback port, then sends:

* ``N`` (default 10,000) requests generated with hypothesis strategies, to ``/v2/models/credit-risk/infer``,
  ``/v2/models/credit-risk/versions/1/infer`` and ``/predict``: random V2 documents (shapes, datatypes,
  names, huge numbers, NaN / Infinity literals, duplicate keys, unicode), the binary tensor extension with
  lying ``Inference-Header-Content-Length`` and ``binary_data_size``, deep nesting (up to 100,000 levels),
  bodies above ``--max-request-bytes`` (with Content-Length and chunked), wrong content types, random bytes,
  random paths and methods, and malformed HTTP framing;
* a schemathesis run against the server's ``/openapi.json`` as served (positive and negative data, the
  "not a server error" check). The run also fails when the document does not describe what is served
  (:func:`openapi_gaps`): the /predict body, the versioned infer path, the 400/404/413 error answers, the
  binary tensor extension, and no repository (load / unload) or explain operations.

Throughout, a monitor samples the RSS of the server process and its children every 0.25 s, calls
``/v2/health/live`` every 0.5 s on a fresh connection, and watches the worker PIDs (children of the server
process). Afterwards the server's own account is read too: ``credit_risk_requests_total`` from ``/metrics``
(a 5xx no client saw, e.g. for a client that disconnected mid-body, still counts) and the tracebacks in its
log. The run fails (exit 1) on any 5xx (seen or counted), a traceback, a failed liveness check, a restarted
worker or exited server, a well-formed request left without an answer, or memory growth (end or peak minus
start) above ``--memory-bound-mb``. Results: a summary table on stdout and JSON (default
``reliability/results/fuzz.json``); every 5xx comes with the exact request (body in base64).

Tested with hypothesis 6.170.17 and schemathesis 4.32.5 (``pip install schemathesis==4.32.5``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import math
import platform
import queue
import re
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``harness`` and ``ml`` importable
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, Phase, Verbosity, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from harness.processes import cmdline, descendants, proc_stat, role, worker_pids  # noqa: E402
from ml.schema import FEATURE_NAMES  # noqa: E402

MODEL = "credit-risk"
VERSION = "1"
INFER = f"/v2/models/{MODEL}/infer"
INFER_VERSIONED = f"/v2/models/{MODEL}/versions/{VERSION}/infer"
PREDICT = "/predict"
LIVE = "/v2/health/live"
SCORING_PATHS = st.sampled_from([INFER, INFER_VERSIONED, PREDICT])
DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MEMORY_BOUND_MB = 150.0
DEFAULT_JSON = ROOT / "reliability" / "results" / "fuzz.json"

FEATURES = FEATURE_NAMES  # the public contract; the server reads it from the model's metadata
WIDTH = len(FEATURES)
OUTPUTS = ("probability", "prediction", "risk_level", "decision")
NUMERIC = ("FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
NP_DTYPE = {
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "INT8": np.int8, "INT16": np.int16,
    "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64,
}  # fmt: skip

# ---------------------------------------------------------------------------------------------- requests


@dataclass
class Request:
    """One HTTP request. ``mode``: ``length`` (Content-Length set from the body), ``chunked`` (the body sent
    in ``chunk`` sized chunks), ``raw`` (``body`` is the whole HTTP request, sent as is on a new
    connection; ``half_close`` then shuts the write side after sending)."""

    family: str
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str | bytes], ...] = ()
    mode: str = "length"
    chunk: int = 65_536
    half_close: bool = False

    def describe(self, limit: int = 3_000) -> dict[str, Any]:
        body = self.body
        out: dict[str, Any] = {
            "family": self.family,
            "method": self.method,
            "path": self.path,
            "mode": self.mode,
            "headers": [[k, v.decode("latin-1") if isinstance(v, bytes) else v] for k, v in self.headers],
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        if len(body) <= limit:
            out["body_base64"] = base64.b64encode(body).decode()
        out["body_preview"] = body[:limit].decode("utf-8", "backslashreplace")
        return out


@dataclass
class Outcome:
    status: int | None  # None: no HTTP response (see ``error``)
    body: bytes = b""
    error: str | None = None
    seconds: float = 0.0
    retried: bool = False


class Sender:
    """Sends :class:`Request` objects on one keep-alive connection (reopened when the server closes it,
    and every ``reconnect_every`` requests so that every worker gets traffic)."""

    def __init__(self, base_url: str, timeout: float = 60.0, reconnect_every: int = 50) -> None:
        target = urlsplit(base_url)
        self.host, self.port = target.hostname or "127.0.0.1", target.port or 80
        self.timeout = timeout
        self.reconnect_every = reconnect_every
        self._connection: http.client.HTTPConnection | None = None
        self._used = 0

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _conn(self) -> http.client.HTTPConnection:
        if self._connection is None or self._used >= self.reconnect_every:
            self.close()
            self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._used = 0
        self._used += 1
        return self._connection

    def send(self, request: Request) -> Outcome:
        """Send ``request``; if a reused keep-alive connection turns out to be closed (the server closes a
        connection after an unhandled exception, or after an idle timeout), send it once more on a new one
        and mark the outcome ``retried``, as HTTP clients do."""
        started = time.perf_counter()
        reused = self._connection is not None and self._used < self.reconnect_every
        outcome = self._once(request)
        if outcome.status is None and reused and request.mode != "raw":
            outcome = self._once(request)
            outcome.retried = True
        outcome.seconds = time.perf_counter() - started
        return outcome

    def _once(self, request: Request) -> Outcome:
        try:
            return self._raw(request) if request.mode == "raw" else self._http(request)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return Outcome(None, error=type(exc).__name__)

    def _http(self, request: Request) -> Outcome:
        connection = self._conn()
        connection.putrequest(request.method, request.path, skip_accept_encoding=True)
        for name, value in request.headers:
            connection.putheader(name, value)
        send_error = None
        if request.mode == "chunked":
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            try:
                body = request.body
                for start in range(0, len(body), request.chunk):
                    piece = body[start : start + request.chunk]
                    connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                connection.send(b"0\r\n\r\n")
            except OSError as exc:  # the server answered (413) and closed while the body was still coming
                send_error = type(exc).__name__
        else:
            connection.putheader("Content-Length", str(len(request.body)))
            try:
                connection.endheaders(request.body or None)
            except OSError as exc:
                send_error = type(exc).__name__
        try:
            response = connection.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            error = (
                f"{send_error} while sending, then {type(exc).__name__}" if send_error else type(exc).__name__
            )
            return Outcome(None, error=error)
        if response.will_close or send_error:
            self.close()
        return Outcome(response.status, content)

    def _raw(self, request: Request) -> Outcome:
        with socket.create_connection((self.host, self.port), timeout=10) as sock:
            try:
                sock.sendall(request.body)
                if request.half_close:
                    sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server may answer and close before reading everything: read what it said
            response = http.client.HTTPResponse(sock, method=request.method)
            try:
                response.begin()
                content = response.read()
            except http.client.RemoteDisconnected:
                return Outcome(None, error="closed without a response")
            except TimeoutError:
                return Outcome(None, error="no response within 10 s")
            return Outcome(response.status, content)


# ---------------------------------------------------------------------------------------------- JSON text


class Raw(str):
    """JSON text inserted verbatim (NaN, Infinity, 1e999, 0x10, ...)."""


class Dup(list):
    """A JSON object as (key, value) pairs: keys may repeat."""


def dump(value: object, ascii_only: bool = False) -> str:
    """JSON text of ``value``, hostile on purpose: NaN / Infinity literals, integers of any size, duplicate
    keys (:class:`Dup`), verbatim fragments (:class:`Raw`), lone surrogates."""
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ascii_only)
    if isinstance(value, Dup):
        return "{" + ",".join(f"{dump(str(k), ascii_only)}:{dump(v, ascii_only)}" for k, v in value) + "}"
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(f"{dump(str(k), ascii_only)}:{dump(v, ascii_only)}" for k, v in value.items())
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(dump(v, ascii_only) for v in value) + "]"
    raise TypeError(type(value))


def to_bytes(value: object, ascii_only: bool = False) -> bytes:
    return dump(value, ascii_only).encode("utf-8", "surrogatepass")  # a lone surrogate: invalid UTF-8


# ---------------------------------------------------------------------------------------------- strategies

NAN, INF = float("nan"), float("inf")
RAW_NUMBERS = [
    "NaN", "-NaN", "nan", "Infinity", "-Infinity", "inf", "1e999", "-1e999", "1e400", "0x1A", "+1", "01", ".5",
    "1.", "1e", "-", "1_000", "\uff11", "\u0661", "9" * 400, "0." + "0" * 400 + "1", "1E+39", "-3.5e38",
    "18446744073709551616", "-9223372036854775809", "1" + "0" * 5000,
]  # fmt: skip
SPECIAL_FLOATS = [
    NAN, INF, -INF, 3.4028234663852886e38, 3.4028236e38, 1e39, 1e308, 1.7976931348623157e308, 5e-324, -0.0,
    65504.0, 65520.0, 1e-45, 2.0**63, 2.0**64,
]  # fmt: skip
SPECIAL_INTS = [
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    2**31,
    2**53 + 1,
    10**30,
    -(10**30),
]

plain_number = st.floats(-1e6, 1e6, allow_nan=False, width=32) | st.integers(-1000, 10**6)
hostile_number = st.one_of(
    st.floats(),
    st.integers(-(2**63), 2**64 - 1),
    st.integers(-(2**80), 2**80),
    st.sampled_from(SPECIAL_FLOATS),
    st.sampled_from(SPECIAL_INTS),
    st.sampled_from([Raw(r) for r in RAW_NUMBERS]),
)
junk_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.just([]),
    st.just({}),
    st.sampled_from(["1", "1.0", "NaN", "", "\ud800", "\x00", "\u202e1"]),
)
any_json = st.recursive(
    st.none() | st.booleans() | plain_number | hostile_number | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=6), children, max_size=4)
        | st.lists(st.tuples(st.sampled_from(["inputs", "features", "a", ""]), children), max_size=3).map(Dup)
    ),
    max_leaves=20,
)
weird_text = st.text(max_size=24) | st.sampled_from(
    ["", " ", "features ", "FEATURES", "Features", "features\x00", "f\u0435atures", "\ud800", "\u202efeatures",
     "../features", "%00", "features" * 200, "\U0001f4a5", "credit-risk"]
)  # fmt: skip
datatype_strategy = st.one_of(
    st.sampled_from(NUMERIC),
    st.sampled_from(NUMERIC),
    st.sampled_from(NUMERIC).map(str.lower),
    st.sampled_from(
        ["BYTES", "BOOL", "FP8", "BF16", "STRING", "", "FP32 ", "INT128", "float32", "\u0130NT8"]
    ),
    st.text(max_size=6),
    st.sampled_from([None, 32, [], {}, True]),
)


def pick_path(draw: st.DrawFn, versioned_share: float = 0.4) -> str:
    roll = draw(st.integers(0, 99))
    if roll < 100 * (1 - versioned_share):
        return INFER
    if roll < 95:
        return INFER_VERSIONED
    version = draw(st.sampled_from(["2", "01", "1.0", "0", "latest", "%20", "1%00", "%F0%9F%92%A5"]))
    return f"/v2/models/{MODEL}/versions/{version}/infer"


@st.composite
def cells(draw: st.DrawFn, count: int, hostility: int) -> list[object]:
    """``count`` values: mostly plain numbers, ``hostility`` percent chance of hostile ones sprinkled in."""
    pool = draw(st.lists(plain_number, min_size=1, max_size=6))
    values: list[object] = [pool[i % len(pool)] for i in range(count)]
    if count and draw(st.integers(0, 99)) < hostility:
        for _ in range(draw(st.integers(1, 3))):
            values[draw(st.integers(0, count - 1))] = draw(hostile_number | junk_scalar)
    return values


@st.composite
def shaped(draw: st.DrawFn, rows: int, width: int, hostility: int) -> tuple[list[object], object]:
    """A tensor's ``data`` (flat, nested, ragged or over-nested) and a ``shape`` (right or wrong)."""
    flat = draw(cells(rows * width, hostility))
    layout = draw(st.sampled_from(["nested", "nested", "flat", "ragged", "deeper", "scalar"]))
    if layout == "nested":
        data: list[object] = [flat[r * width : (r + 1) * width] for r in range(rows)]
    elif layout == "ragged" and rows:
        data = [flat[r * width : (r + 1) * width] for r in range(rows)]
        data[draw(st.integers(0, rows - 1))] = flat[: max(0, width - 1)] + [[1.0]]
    elif layout == "deeper":
        data = [[[v] for v in flat[r * width : (r + 1) * width]] for r in range(rows)]
    elif layout == "scalar":
        data = draw(st.sampled_from([[1.0], [[]], [[[]]], [None], [{"a": 1}], [[1, [2]]]]))
    else:
        data = flat
    shape: object = [rows, width]
    roll = draw(st.integers(0, 99))
    if roll < 25:
        shape = draw(
            st.sampled_from(
                [[rows * width], [width, rows], [rows, width, 1], [1, rows, width], [], [rows], [-1, width],
                 [rows, -width], [0, width], [0, 2**63], [0, 2**64 - 1], [0, 2**62, 2**62], [2**31, width],
                 [2**63 - 1, width], [rows, 2**40, 0], [rows + 1, width], [1.0 * rows, width], [True, width],
                 [str(rows), width], [[rows], width], "1,26", None, {"rows": rows}]
            )
        )  # fmt: skip
    elif roll < 35:
        shape = draw(st.lists(st.integers(-(2**63), 2**64 - 1) | st.integers(-3, 30), max_size=5))
    return data, shape


@st.composite
def input_spec(
    draw: st.DrawFn, name: object, rows: int, width: int, datatype: object, hostility: int
) -> dict:
    data, shape = draw(shaped(rows, width, hostility))
    spec: dict[str, object] = {"name": name, "shape": shape, "datatype": datatype, "data": data}
    roll = draw(st.integers(0, 99))
    if roll < 6:
        del spec[draw(st.sampled_from(["name", "shape", "datatype", "data"]))]
    elif roll < 12:
        spec["data"] = draw(junk_scalar | st.sampled_from(["1,2,3", 1.0, Raw("NaN")]))
    elif roll < 20:
        spec["parameters"] = draw(
            any_json
            | st.fixed_dictionaries({"binary_data_size": any_json})
            | st.just({"content_type": "str"})
        )
    elif roll < 23:
        spec[draw(st.text(max_size=6))] = draw(any_json)
    return spec


@st.composite
def v2_document(draw: st.DrawFn) -> object:
    rows = draw(st.sampled_from([1, 1, 2, 3, 0]) | st.integers(0, 30))
    hostility = draw(st.sampled_from([0, 30, 60, 100]))
    layout = draw(st.sampled_from(["matrix", "matrix", "matrix", "columns", "columns", "random"]))
    datatype = draw(datatype_strategy)
    inputs: list[object] = []
    if layout == "matrix":
        width = draw(st.sampled_from([WIDTH, WIDTH, WIDTH, WIDTH - 1, WIDTH + 1, 0, 1]))
        name = draw(st.sampled_from(["features"] * 6 + [FEATURES[0]]) | weird_text)
        inputs.append(draw(input_spec(name, rows, width, datatype, hostility)))
        if draw(st.integers(0, 99)) < 8:  # repeated, or extra tensors
            inputs.append(draw(st.sampled_from([inputs[0], {"name": FEATURES[1], "shape": [1], "datatype": "FP32",
                                                            "data": [1.0]}])))  # fmt: skip
    elif layout == "columns":
        names: list[object] = list(FEATURES)
        roll = draw(st.integers(0, 99))
        if roll < 10:
            names.pop(draw(st.integers(0, WIDTH - 1)))
        elif roll < 18:
            names.append(names[draw(st.integers(0, WIDTH - 1))])
        elif roll < 26:
            names.append(draw(weird_text))
        elif roll < 32:
            names.append("features")
        elif roll < 40:
            names = list(draw(st.permutations(names)))
        values = draw(cells(rows * len(names), hostility // 4))
        as_matrix = draw(st.booleans())  # [N, 1] tensors rather than [N]
        for index, name in enumerate(names):
            column = values[index * rows : (index + 1) * rows]
            inputs.append(
                {"name": name, "shape": [rows, 1] if as_matrix else [rows], "datatype": datatype,
                 "data": [[v] for v in column] if as_matrix else column}
            )  # fmt: skip
        for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):  # a few columns damaged
            index = draw(st.integers(0, len(inputs) - 1))
            column_rows = max(0, rows + draw(st.sampled_from([0, 0, 1, -1])))
            inputs[index] = draw(input_spec(names[index], column_rows, 1, datatype, hostility))
    else:
        inputs = draw(st.lists(any_json, max_size=4))
    document: dict[str, object] = {"inputs": inputs}
    if draw(st.integers(0, 99)) < 25:
        outputs = st.fixed_dictionaries(
            {"name": st.sampled_from(OUTPUTS) | weird_text | junk_scalar},
            optional={
                "parameters": st.fixed_dictionaries({"binary_data": any_json})
                | any_json
                | st.sampled_from(["binary_data", ["binary_data"], 1, Dup([("binary_data", True)] * 2)])
            },
        )
        document["outputs"] = draw(st.lists(outputs | junk_scalar, max_size=5) | junk_scalar)
    if draw(st.integers(0, 99)) < 15:
        document["parameters"] = draw(st.fixed_dictionaries({"binary_data_output": any_json}) | any_json)
    if draw(st.integers(0, 99)) < 15:
        document["id"] = draw(weird_text | junk_scalar)
    roll = draw(st.integers(0, 99))
    if roll < 4:
        del document["inputs"]
    elif roll < 8:
        document["inputs"] = draw(junk_scalar | any_json)
    elif roll < 12:
        return Dup([("inputs", []), *document.items()])  # duplicate key: the last one wins in orjson
    elif roll < 14:
        return [document]
    return document


@st.composite
def v2_json(draw: st.DrawFn) -> Request:
    body = to_bytes(draw(v2_document()), ascii_only=draw(st.booleans()))
    headers = (("Content-Type", "application/json"),) if draw(st.integers(0, 9)) else ()
    return Request("v2-json", "POST", pick_path(draw), body, headers)


@st.composite
def v2_binary(draw: st.DrawFn) -> Request:
    """The binary tensor extension with truthful or lying lengths, sizes, shapes and datatypes."""
    rows = draw(st.sampled_from([1, 1, 2, 5, 0]) | st.integers(0, 20))
    per_feature = draw(st.integers(0, 99)) < 15
    datatype = draw(st.sampled_from(NUMERIC) | st.sampled_from(["BYTES", "BOOL", "fp32", ""]))
    dtype = np.dtype(NP_DTYPE.get(datatype.upper(), np.float32))
    specs, blobs = [], []
    tensors = (
        [(name, [rows], rows) for name in FEATURES]
        if per_feature
        else [
            (
                draw(st.sampled_from(["features"] * 8 + [FEATURES[0]]) | weird_text),
                [rows, WIDTH],
                rows * WIDTH,
            )
        ]
    )
    for name, shape, count in tensors:
        kind = draw(st.sampled_from(["numbers", "numbers", "numbers", "special", "random"]))
        if kind == "random":
            blob = draw(st.binary(min_size=0, max_size=count * dtype.itemsize + 8))
        else:
            values = np.resize(
                np.asarray(draw(st.lists(plain_number, min_size=1, max_size=6)), np.float64), count
            )
            if kind == "special" and count:
                values[draw(st.integers(0, count - 1))] = draw(st.sampled_from(SPECIAL_FLOATS))
            with np.errstate(all="ignore"):
                blob = values.astype(dtype).tobytes()
        size: object = len(blob)
        roll = draw(st.integers(0, 99))
        if roll < 20:
            size = draw(
                st.sampled_from([len(blob) + 1, len(blob) - 1, 0, -1, 2**63, 2**64 - 1, 10**30, 1.0 * len(blob),
                                 str(len(blob)), True, None, [len(blob)]])
                | st.integers(-5, len(blob) * 3 + 8)
            )  # fmt: skip
        parameters: object = {"binary_data_size": size}
        if roll >= 96:
            parameters = draw(junk_scalar)
        if 20 <= roll < 25:
            parameters = {}
        spec: dict[str, object] = {
            "name": name,
            "shape": shape,
            "datatype": datatype,
            "parameters": parameters,
        }
        if draw(st.integers(0, 99)) < 15:
            spec["shape"] = draw(
                st.sampled_from(
                    [[0, 2**63], [0, 2**64 - 1], [rows * WIDTH], [WIDTH, rows], [-1, WIDTH], [], [0, 0]]
                )
                | st.lists(st.integers(-3, 2**64 - 1), max_size=4)
            )
        if draw(st.integers(0, 99)) < 4:
            spec["data"] = [1.0] * max(count, 1)
        specs.append(spec)
        blobs.append(blob)
    document: dict[str, object] = {"inputs": specs}
    if draw(st.integers(0, 99)) < 30:
        document["parameters"] = {"binary_data_output": draw(st.booleans() | any_json)}
    if draw(st.integers(0, 99)) < 20:
        document["outputs"] = [
            {"name": draw(st.sampled_from(OUTPUTS)), "parameters": {"binary_data": draw(st.booleans())}}
        ]
    header = to_bytes(document)
    tail = b"".join(blobs)
    roll = draw(st.integers(0, 99))
    if roll < 8:
        tail = tail[: draw(st.integers(0, len(tail)))]
    elif roll < 14:
        tail += draw(st.binary(min_size=1, max_size=16))
    body = header + tail
    length: str | bytes = str(len(header))
    roll = draw(st.integers(0, 99))
    if roll < 30:
        length = draw(
            st.sampled_from(
                [str(len(header) + 1), str(len(header) - 1), "0", "-1", str(len(body) + 1), str(len(body)),
                 "99999999999999999999999", "abc", "", " 12 ", "1e3", "0x10", "+12", "12.0", "\t" + str(len(header)),
                 b"\xb2", b"\xb9", b"\xb3", "\u0661\u0662".encode(), "\uff11\uff12".encode(), b"\xff\xfe",
                 str(len(header)) + "\x00"]
            )
            | st.integers(-10, len(body) + 10).map(str)
        )  # fmt: skip
    headers: list[tuple[str, str | bytes]] = [("Inference-Header-Content-Length", length)]
    content_type = draw(
        st.sampled_from(["application/octet-stream"] * 6 + ["application/json", "text/plain", None])
    )
    if content_type:
        headers.append(("Content-Type", content_type))
    if draw(st.integers(0, 99)) < 3:
        headers.append(("Inference-Header-Content-Length", str(len(header))))
    return Request("v2-binary", "POST", pick_path(draw), body, tuple(headers))


@st.composite
def deep_nesting(draw: st.DrawFn) -> Request:
    depth = draw(
        st.sampled_from([1_000, 1_023, 1_024, 1_025, 2_048, 10_000, 10_000, 100_000]) | st.integers(1, 20_000)
    )
    kind = draw(
        st.sampled_from(
            ["lists", "objects", "mixed", "in-data", "in-shape", "in-parameters", "in-features", "unclosed",
             "binary-header"]
        )
    )  # fmt: skip
    open_, close = "[" * depth, "]" * depth
    if kind == "objects":
        open_, close = '{"a":' * depth, "}" * depth
    elif kind == "mixed":
        open_, close = '[{"a":' * (depth // 2), "}]" * (depth // 2)
    nested = open_ + "1" + close
    path = pick_path(draw)
    headers: tuple[tuple[str, str | bytes], ...] = (("Content-Type", "application/json"),)
    if kind in ("lists", "objects", "mixed"):
        text = nested
        path = draw(st.sampled_from([path, PREDICT]))
    elif kind == "in-data":
        text = f'{{"inputs":[{{"name":"features","shape":[1,{WIDTH}],"datatype":"FP32","data":{nested}}}]}}'
    elif kind == "in-shape":
        text = f'{{"inputs":[{{"name":"features","shape":{nested},"datatype":"FP32","data":[1]}}]}}'
    elif kind == "in-parameters":
        text = f'{{"inputs":[],"parameters":{{"binary_data_output":{nested}}}}}'
    elif kind == "in-features":
        text, path = f'{{"features":{nested}}}', PREDICT
    elif kind == "unclosed":
        text = open_
        path = draw(st.sampled_from([path, PREDICT]))
    else:
        header = f'{{"inputs":[{{"name":"features","shape":[1,{WIDTH}],"datatype":"FP32","parameters":{nested}}}]}}'
        body = header.encode() + b"\x00" * 4 * WIDTH
        return Request(
            "deep-nesting", "POST", path, body,
            (("Inference-Header-Content-Length", str(len(header))), ("Content-Type", "application/octet-stream")),
        )  # fmt: skip
    return Request("deep-nesting", "POST", path, text.encode(), headers)


def oversized(limit: int) -> st.SearchStrategy[Request]:
    @st.composite
    def build(draw: st.DrawFn) -> Request:
        near = draw(st.integers(0, 99)) < 10
        size = (
            draw(st.sampled_from([limit - 1, limit]))
            if near
            else draw(st.sampled_from([limit + 1, 2 * limit]) | st.integers(limit + 1, int(2.5 * limit)))
        )
        kind = draw(st.sampled_from(["padded-json", "long-array", "filler", "binary"]))
        path = draw(SCORING_PATHS)
        headers: list[tuple[str, str | bytes]] = [("Content-Type", "application/json")]
        if kind == "padded-json":
            prefix = b'{"features":[' + b"1.0," * (WIDTH - 1) + b"1.0]"
            body = prefix + b" " * max(0, size - len(prefix) - 1) + b"}"
        elif kind == "long-array":
            unit = draw(st.sampled_from([b"1.0,", b"NaN,", b"1e999,", b'"x",', b"[],", b"0,"]))
            head = b'{"inputs":[{"name":"features","shape":[1,26],"datatype":"FP32","data":['
            body = (head + unit * (size // len(unit) + 1))[:size]
        elif kind == "filler":
            seed_bytes = draw(st.binary(min_size=1, max_size=64))
            body = (seed_bytes * (size // len(seed_bytes) + 1))[:size]
        else:
            header = f'{{"inputs":[{{"name":"features","shape":[-1,{WIDTH}],"datatype":"FP32","parameters":{{"binary_data_size":{size}}}}}]}}'.encode()
            body = header + b"\x00" * max(0, size - len(header))
            headers = [
                ("Inference-Header-Content-Length", str(len(header))),
                ("Content-Type", "application/octet-stream"),
            ]
        mode = "chunked" if draw(st.integers(0, 99)) < 25 else "length"
        chunk = draw(st.sampled_from([1_024, 16_384, 65_536, 262_144]))
        return Request(
            "oversized" if not near else "at-limit", "POST", path, body, tuple(headers), mode, chunk
        )

    return build()


VALID_ROW = [0.5] * WIDTH
VALID_V2 = {"inputs": [{"name": "features", "shape": [1, WIDTH], "datatype": "FP32", "data": [VALID_ROW]}]}
VALID_PREDICT = {"features": VALID_ROW}


def valid_body(path: str) -> bytes:
    """A well-formed one-row body for ``path`` (one of :data:`SCORING_PATHS`)."""
    return to_bytes(VALID_PREDICT if path == PREDICT else VALID_V2)


@st.composite
def content_types(draw: st.DrawFn) -> Request:
    path = draw(SCORING_PATHS)
    valid = valid_body(path)
    body = draw(
        st.sampled_from(
            [valid, b"\xef\xbb\xbf" + valid, valid.decode().encode("utf-16"), valid.decode().encode("utf-32"),
             b"features=" + b"&features=".join(b"1" for _ in range(WIDTH)), b"<features><f>1</f></features>",
             b'--x\r\nContent-Disposition: form-data; name="features"\r\n\r\n' + valid + b"\r\n--x--\r\n",
             b"features: [1, 2, 3]\n", b"", valid + b"\x00", b"\x00" + valid]
        )
    )  # fmt: skip
    content_type = draw(
        st.sampled_from(
            ["text/plain", "application/xml", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
             "application/json; charset=utf-16", "application/octet-stream", "image/png", "*/*", "",
             "application/json" + ";" * 200, "\xff\xfe", "application/grpc"]
        )
        | st.text(st.characters(exclude_characters="\r\n"), max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass"))
    )  # fmt: skip
    headers: list[tuple[str, str | bytes]] = [("Content-Type", content_type)]
    if draw(st.integers(0, 99)) < 20:
        headers.append(("Content-Encoding", draw(st.sampled_from(["gzip", "br", "deflate", "identity"]))))
    return Request("content-type", "POST", path, body, tuple(headers))


@st.composite
def random_bodies(draw: st.DrawFn) -> Request:
    path = draw(SCORING_PATHS)
    codec = draw(st.sampled_from(["utf-8", "utf-16", "latin-1", "surrogates"]))
    if draw(st.booleans()):
        body = draw(st.binary(max_size=2048))
    elif codec == "surrogates":
        body = draw(st.text(max_size=256)).encode("utf-8", "surrogatepass")
    else:
        body = draw(st.text(max_size=256)).encode(codec, "replace")
    headers = (
        (
            "Content-Type",
            draw(st.sampled_from(["application/json", "application/octet-stream", "text/plain"])),
        ),
    )
    return Request("random-bytes", "POST", path, body, headers)


@st.composite
def any_document(draw: st.DrawFn) -> Request:
    path = draw(SCORING_PATHS)
    return Request(
        "any-json", "POST", path, to_bytes(draw(any_json)), (("Content-Type", "application/json"),)
    )


@st.composite
def predict_requests(draw: st.DrawFn) -> Request:
    hostility = draw(st.sampled_from([0, 30, 60, 100]))
    width = draw(st.sampled_from([WIDTH] * 6 + [0, 1, WIDTH - 1, WIDTH + 1, 2 * WIDTH]))
    layout = draw(
        st.sampled_from(["single", "single", "batch", "batch", "nested", "mixed", "junk", "too-many"])
    )
    if layout == "too-many":  # just over the default row limit (10,000), under the byte limit
        row_text = dump([0] * WIDTH)
        body = ('{"features":[' + ",".join([row_text] * 10_001) + "]}").encode()
        return Request("predict", "POST", PREDICT, body, (("Content-Type", "application/json"),))
    row = draw(cells(width, hostility))
    if layout == "single":
        features: object = row
    elif layout == "batch":
        features = [row] * draw(st.integers(1, 20))
        if draw(st.integers(0, 99)) < 20:
            features = [*features, draw(cells(draw(st.integers(0, 30)), hostility))]
    elif layout == "nested":
        features = [[row]]
    elif layout == "mixed":
        features = [row, 1.0] if draw(st.booleans()) else [1.0, row]
    else:
        features = draw(junk_scalar | any_json)
    payload: object = {"features": features}
    roll = draw(st.integers(0, 99))
    if roll < 8:
        payload = Dup([("features", draw(junk_scalar)), ("features", features)])
    elif roll < 14:
        payload = Dup([("features", features), ("features", draw(junk_scalar))])
    elif roll < 20:
        payload = {"features": features, draw(weird_text): draw(any_json)}
    elif roll < 26:
        payload = draw(junk_scalar | any_json | st.just([features]))
    elif roll < 30:
        payload = {draw(st.sampled_from(["Features", "feature", "rows", "instances", "inputs"])): features}
    headers = (("Content-Type", "application/json"),) if draw(st.integers(0, 9)) else ()
    return Request("predict", "POST", PREDICT, to_bytes(payload, ascii_only=draw(st.booleans())), headers)


@st.composite
def text_mutations(draw: st.DrawFn) -> Request:
    """A valid body, then byte-level damage: NaN literals, truncation, duplicate keys, stray bytes."""
    path = draw(SCORING_PATHS)
    rows = draw(st.integers(1, 4))
    matrix = [draw(cells(WIDTH, 0)) for _ in range(rows)]
    text = dump({"features": matrix if rows > 1 else matrix[0]} if path == PREDICT else
                {"inputs": [{"name": "features", "shape": [rows, WIDTH], "datatype": "FP32", "data": matrix}]})  # fmt: skip
    numbers = [m.span() for m in re.finditer(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text)]
    for _ in range(draw(st.integers(1, 3))):
        action = draw(
            st.sampled_from(
                ["number", "number", "number", "truncate", "insert", "delete", "flip", "dup-key", "bom", "comment",
                 "trailing-comma", "quotes", "whitespace"]
            )
        )  # fmt: skip
        position = draw(st.integers(0, max(0, len(text) - 1)))
        if action == "number" and numbers:
            start, end = numbers[draw(st.integers(0, len(numbers) - 1))]
            literal = draw(st.sampled_from(RAW_NUMBERS + ["null", "true", '"1"', "[]", "{}", "1,2"]))
            text = text[:start] + literal + text[end:]
            numbers = [m.span() for m in re.finditer(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text)]
        elif action == "truncate":
            text = text[:position]
        elif action == "insert":
            text = text[:position] + draw(st.text(min_size=1, max_size=4)) + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + 1 :]
        elif action == "flip" and text:
            text = (
                text[:position]
                + chr((ord(text[position]) ^ (1 << draw(st.integers(0, 6)))) or 32)
                + text[position + 1 :]
            )
        elif action == "dup-key":
            key = '"features"' if path == PREDICT else '"inputs"'
            text = "{" + key + ":" + draw(st.sampled_from(["null", "[]", "1", '"x"', "{}"])) + "," + text[1:]
        elif action == "bom":
            text = "\ufeff" + text
        elif action == "comment":
            text = text[:position] + "/* c */" + text[position:]
        elif action == "trailing-comma":
            text = text.replace("]", ",]", 1)
        elif action == "quotes":
            text = text.replace('"', "'", draw(st.integers(1, 4)))
        else:
            text = (
                draw(st.sampled_from([" ", "\n", "\t", "\x0b", "\u00a0"])) * draw(st.integers(1, 1000)) + text
            )
    headers = (("Content-Type", "application/json"),)
    return Request("text-mutation", "POST", path, text.encode("utf-8", "surrogatepass"), headers)


@st.composite
def paths_and_methods(draw: st.DrawFn) -> Request:
    method = draw(
        st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
    )
    kind = draw(st.sampled_from(["model", "version", "predict", "long"]))
    if kind == "model":
        name = quote(
            draw(st.text(max_size=40) | st.sampled_from(["CREDIT-RISK", "credit-risk ", "credit_risk", ""])),
            safe="",
            errors="surrogatepass",
        )
        path = f"/v2/models/{name}/infer"
    elif kind == "version":
        version = quote(
            draw(st.text(max_size=20) | st.sampled_from(["1", "01", "2", "-1", "9" * 40])),
            safe="",
            errors="surrogatepass",
        )
        path = f"/v2/models/{MODEL}/versions/{version}/infer"
    elif kind == "predict":
        path = draw(
            st.sampled_from(
                ["/predict/", "/predict?features=1", "/PREDICT", "//predict", "/predict%00", "/predict/../predict",
                 "/v2/models/credit-risk/infer/", "/v2/models/credit-risk/infer?model_version=2",
                 "/v2/models/credit-risk//infer", "/v2/models/credit-risk/versions//infer",
                 "/v2/models/credit-risk/infer;x=1", "/v2/models/credit-risk/infer#f", PREDICT, INFER]
            )
        )  # fmt: skip
    else:
        path = INFER + "?" + "a=" + "x" * draw(st.sampled_from([1_000, 8_000, 60_000]))
    body = to_bytes(draw(st.sampled_from([VALID_V2, VALID_PREDICT, {}])))
    if method in ("GET", "HEAD", "OPTIONS") and draw(st.booleans()):
        body = b""
    return Request("path-method", method, path, body, (("Content-Type", "application/json"),))


@st.composite
def http_framing(draw: st.DrawFn) -> Request:
    """Malformed HTTP, sent raw on a new connection: bad Content-Length, smuggling-style headers, bad chunks."""
    path = draw(SCORING_PATHS)
    valid = valid_body(path)
    kind = draw(
        st.sampled_from(
            ["cl-junk", "cl-short", "cl-long-half-close", "cl-and-te", "cl-twice", "bad-chunk", "chunk-no-end",
             "many-headers", "long-header", "nul-header", "bad-request-line", "http09", "h2-preface",
             "header-no-colon", "obs-fold", "expect-continue", "lf-only"]
        )
    )  # fmt: skip
    host = b"Host: fuzz\r\nConnection: close\r\n"
    start = f"POST {path} HTTP/1.1\r\n".encode() + host
    half_close = False
    if kind == "cl-junk":
        value = draw(
            st.sampled_from(
                [b"abc", b"-1", b"1e3", b" 12", b"0x10", b"+5", b"", b"99999999999999999999999", b"\xb2"]
            )
        )
        raw = start + b"Content-Length: " + value + b"\r\n\r\n" + valid
    elif kind == "cl-short":
        raw = start + b"Content-Length: %d\r\n\r\n" % draw(st.integers(0, len(valid) - 1)) + valid
    elif kind == "cl-long-half-close":
        raw = start + b"Content-Length: %d\r\n\r\n" % (len(valid) + draw(st.integers(1, 1000))) + valid
        half_close = True
    elif kind == "cl-and-te":
        raw = start + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
            len(valid),
            valid,
        )
    elif kind == "cl-twice":
        raw = (
            start + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(valid), len(valid) + 5) + valid
        )
    elif kind == "bad-chunk":
        raw = start + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + valid + b"\r\n0\r\n\r\n"
    elif kind == "chunk-no-end":
        raw = start + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(valid), valid)
        half_close = True
    elif kind == "many-headers":
        raw = (
            start
            + b"".join(b"X-H%d: v\r\n" % i for i in range(draw(st.sampled_from([100, 1_000, 5_000]))))
            + (b"Content-Length: %d\r\n\r\n" % len(valid) + valid)
        )
    elif kind == "long-header":
        raw = (
            start
            + b"X-Long: "
            + b"a" * draw(st.sampled_from([8_000, 70_000, 200_000]))
            + (b"\r\nContent-Length: %d\r\n\r\n" % len(valid) + valid)
        )
    elif kind == "nul-header":
        raw = start + b"X-Nul: a\x00b\r\nContent-Length: %d\r\n\r\n" % len(valid) + valid
    elif kind == "bad-request-line":
        raw = draw(st.binary(min_size=1, max_size=64)).replace(b"\n", b"") + b"\r\n" + host + b"\r\n"
    elif kind == "http09":
        raw = f"GET {path}\r\n".encode()
        half_close = True
    elif kind == "h2-preface":
        raw = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        half_close = True
    elif kind == "header-no-colon":
        raw = start + b"NoColonHere\r\nContent-Length: %d\r\n\r\n" % len(valid) + valid
    elif kind == "obs-fold":
        raw = start + b"X-Fold: a\r\n b\r\nContent-Length: %d\r\n\r\n" % len(valid) + valid
    elif kind == "expect-continue":
        raw = start + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(valid) + valid
    else:
        raw = (
            f"POST {path} HTTP/1.1\nHost: fuzz\nConnection: close\nContent-Length: {len(valid)}\n\n"
        ).encode() + valid
    return Request("http-framing", "POST", path, raw, mode="raw", half_close=half_close)


def families(limit: int) -> list[tuple[str, float, st.SearchStrategy[Request]]]:
    """(name, share of the requests, strategy)."""
    return [
        ("v2-json", 0.28, v2_json()),
        ("v2-binary", 0.15, v2_binary()),
        ("predict", 0.14, predict_requests()),
        ("text-mutation", 0.09, text_mutations()),
        ("random-bytes", 0.07, random_bodies()),
        ("deep-nesting", 0.05, deep_nesting()),
        ("content-type", 0.05, content_types()),
        ("path-method", 0.05, paths_and_methods()),
        ("any-json", 0.04, any_document()),
        ("oversized", 0.04, oversized(limit)),
        ("http-framing", 0.04, http_framing()),
    ]


class _Enough(Exception):
    """Raised inside a hypothesis test to end generation once the quota is reached."""


def generate(strategy: st.SearchStrategy[Any], count: int, seed: int, sink: Callable[[Any], None],
             unique: bool = True) -> int:  # fmt: skip
    """Draw examples of ``strategy`` with hypothesis (no database, no deadline, no shrinking; seeded, so a run
    can be repeated) and hand the first ``count`` distinct ones to ``sink``. Returns how many it handed."""
    drawn = 0
    seen: set[str] = set()

    @settings(
        max_examples=count * 4,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
    )
    @hypothesis_seed(seed)
    @given(strategy)
    def run(example: Any) -> None:
        nonlocal drawn
        if drawn >= count:
            raise _Enough
        if unique and isinstance(example, Request):
            key = hashlib.sha1(repr((example.method, example.path, example.headers, example.mode,
                                     example.chunk)).encode() + example.body).hexdigest()  # fmt: skip
            if key in seen:
                return
            seen.add(key)
        drawn += 1
        sink(example)

    with suppress(_Enough), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Generating overly large repr")  # a 2 MB body's repr
        run()
    return drawn


# ---------------------------------------------------------------------------------------------- accounting


def route_of(path: str) -> str:
    path = unquote(urlsplit(path).path)  # routes match the decoded path
    if re.fullmatch(r"/v2/models/[^/]+/versions/[^/]+/infer", path):
        return "v2 infer (versioned)"
    if re.fullmatch(r"/v2/models/[^/]+/infer", path):
        return "v2 infer"
    if path == PREDICT:
        return "/predict"
    return "other"


UVICORN_400 = b"Invalid HTTP request received."  # uvicorn's answer to malformed HTTP (before the application)


def is_error_body(content: bytes) -> bool:
    try:
        document = json.loads(content)
    except ValueError:
        return False
    return isinstance(document, dict) and set(document) == {"error"} and isinstance(document["error"], str)


class Stats:
    """Thread-safe counts of outcomes, and the evidence for every failure."""

    def __init__(self, keep: int = 50) -> None:
        self.lock = threading.Lock()
        self.keep = keep
        self.by_status: Counter[str] = Counter()
        self.by_route: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_family: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_source: Counter[str] = Counter()
        self.server_errors: list[dict] = []
        self.server_errors_by_answer: Counter[str] = Counter()
        self.server_error_count = 0
        self.no_response: Counter[str] = Counter()
        self.no_response_examples: list[dict] = []
        self.error_body_violations: Counter[str] = Counter()
        self.error_body_examples: list[dict] = []
        self.seconds: list[float] = []
        self.body_bytes = 0
        self.retried: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.by_source.values())

    def record(self, source: str, family: str, route: str, status: int | None, content: bytes, error: str | None,
               seconds: float, body_bytes: int, evidence: Callable[[], dict]) -> None:  # fmt: skip
        key = str(status) if status is not None else "no response"
        with self.lock:
            self.by_source[source] += 1
            self.by_status[key] += 1
            self.by_route[route][key] += 1
            self.by_family[family][key] += 1
            self.seconds.append(seconds)
            self.body_bytes += body_bytes
            if status is not None and status >= 500:
                self.server_error_count += 1
                self.server_errors_by_answer[
                    f"{status} {route}: {content[:120].decode('utf-8', 'replace')}"
                ] += 1
                if len(self.server_errors) < self.keep:
                    self.server_errors.append(
                        {"status": status, "response": content[:600].decode("utf-8", "replace"), **evidence()}
                    )
            if status is None:
                self.no_response[f"{family}: {error}"] += 1
                if len(self.no_response_examples) < 10:
                    self.no_response_examples.append({"error": error, **evidence()})
            # The application's own answers on the scoring routes carry {"error": "..."} (README); uvicorn's
            # answers to malformed HTTP and Starlette's 405 are not the application's and are not checked.
            if (
                status in (400, 404, 413)
                and route != "other"
                and content != UVICORN_400
                and not is_error_body(content)
            ):
                self.error_body_violations[f"{status} {route}"] += 1
                if len(self.error_body_examples) < 10:
                    self.error_body_examples.append(
                        {"status": status, "response": content[:300].decode("utf-8", "replace"), **evidence()}
                    )


def acceptable_without_response(family: str, mode: str, error: str | None) -> bool:
    """No HTTP response is a correct outcome only where the client broke HTTP itself, or kept sending a
    chunked body past the limit after the server's 413 (the README: such a client is cut off)."""
    return family == "http-framing" or (mode == "chunked" and family == "oversized")


class Dispatcher:
    """A pool of sender threads, each with its own connection, fed through a bounded queue."""

    def __init__(self, base_url: str, stats: Stats, concurrency: int) -> None:
        self.stats = stats
        self.queue: queue.Queue[Request | None] = queue.Queue(maxsize=concurrency * 4)
        self.unexpected_no_response = 0
        self.threads = [
            threading.Thread(target=self._work, args=(Sender(base_url),), daemon=True, name=f"sender-{i}")
            for i in range(concurrency)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, request: Request) -> None:
        self.queue.put(request)

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()

    def _work(self, sender: Sender) -> None:
        while (request := self.queue.get()) is not None:
            try:
                outcome = sender.send(request)
            except Exception as exc:  # a request the client library refuses to send: a bug of this script
                sender.close()
                outcome = Outcome(None, error=f"client error {type(exc).__name__}: {exc}"[:200])
            if outcome.retried:
                with self.stats.lock:
                    self.stats.retried[request.family] += 1
            if outcome.status is None and not acceptable_without_response(
                request.family, request.mode, outcome.error
            ):
                with self.stats.lock:
                    self.unexpected_no_response += 1
            self.stats.record(
                "hypothesis", request.family, route_of(request.path), outcome.status, outcome.body, outcome.error,
                outcome.seconds, len(request.body), request.describe,
            )  # fmt: skip
        sender.close()


# ---------------------------------------------------------------------------------------------- the server


def live_status(base_url: str, timeout: float = 5.0) -> tuple[int | None, float]:
    """``GET /v2/health/live`` on a fresh connection (so that either worker may answer)."""
    target = urlsplit(base_url)
    started = time.perf_counter()
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
    try:
        connection.request("GET", LIVE)
        response = connection.getresponse()
        response.read()
        status: int | None = response.status
    except (OSError, http.client.HTTPException):
        status = None
    finally:
        connection.close()
    return status, time.perf_counter() - started


_REQUESTS_SAMPLE = re.compile(r"^credit_risk_requests_total\{(.*)\}\s+([0-9.eE+-]+)$", re.MULTILINE)


def server_side_statuses(base_url: str) -> Counter[str]:
    """``credit_risk_requests_total`` by "status route" from ``/metrics`` (aggregated over the workers): what
    the server counted, including answers no client received (a client that disconnected mid-body)."""
    target = urlsplit(base_url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    counts: Counter[str] = Counter()
    for labels, value in _REQUESTS_SAMPLE.findall(text):
        parsed = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        counts[f"{parsed.get('status_code')} {parsed.get('route')}"] += int(float(value))
    return counts


class Monitor(threading.Thread):
    """Samples the server's memory (RSS of the server process and every descendant), its worker PIDs, and
    its liveness, until stopped."""

    def __init__(self, base_url: str, server_pid: int, interval: float = 0.25, live_every: int = 2) -> None:
        super().__init__(daemon=True, name="monitor")
        self.base_url, self.server_pid = base_url, server_pid
        self.interval, self.live_every = interval, live_every
        self.stopping = threading.Event()
        self.workers = worker_pids(server_pid)
        self.worker_changes: list[dict] = []
        self.samples: list[tuple[float, float]] = []  # (seconds since start, total RSS MB)
        self.per_process_peak: dict[int, float] = {}
        self.live_checks = 0
        self.live_failures: list[dict] = []
        self.live_latency: list[float] = []
        self.started = time.monotonic()

    def total_rss(self) -> tuple[float, dict[int, float]]:
        per = {}
        for pid in [self.server_pid, *descendants(self.server_pid)]:
            stat = proc_stat(pid)
            if stat is not None:
                per[pid] = stat.rss_bytes / 2**20
        return sum(per.values()), per

    def sample(self, tick: int) -> None:
        total, per = self.total_rss()
        now = time.monotonic() - self.started
        self.samples.append((now, total))
        for pid, value in per.items():
            self.per_process_peak[pid] = max(self.per_process_peak.get(pid, 0.0), value)
        workers = worker_pids(self.server_pid)
        if workers != self.workers:
            self.worker_changes.append(
                {"at_seconds": round(now, 2), "before": self.workers, "after": workers}
            )
            self.workers = workers
        if tick % self.live_every == 0:
            status, seconds = live_status(self.base_url)
            self.live_checks += 1
            self.live_latency.append(seconds)
            if status != 200:
                self.live_failures.append({"at_seconds": round(now, 2), "status": status})

    def run(self) -> None:
        tick = 0
        while not self.stopping.wait(self.interval):
            self.sample(tick)
            tick += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join()


# ---------------------------------------------------------------------------------------------- schemathesis


def openapi_gaps(document: dict) -> list[str]:
    paths = document.get("paths", {})
    gaps = []
    predict = paths.get(PREDICT, {}).get("post", {})
    if "requestBody" not in predict:
        gaps.append("POST /predict declares no request body: schemathesis cannot generate bodies for it")
    if not any(re.fullmatch(r"/v2/models/\{[^}]+\}/versions/\{[^}]+\}/infer", p) for p in paths):
        gaps.append(
            "POST /v2/models/{model_name}/versions/{model_version}/infer (served) is not in the document"
        )
    infer = paths.get("/v2/models/{model_name}/infer", {}).get("post", {})
    documented = set(infer.get("responses", {}))
    if not {"400", "404", "413"} <= documented:
        gaps.append(
            f"POST /v2/models/{{model_name}}/infer documents responses {sorted(documented)} (kserve's route: 422) "
            'but the served route answers 400, 404 and 413 with {"error": ...}'
        )
    if "application/octet-stream" not in (infer.get("requestBody", {}).get("content", {})):
        gaps.append("the binary tensor extension (Inference-Header-Content-Length) is not described")
    for path in paths:
        if path.startswith("/v2/repository/") or path.endswith(":explain"):
            gaps.append(f"a disabled operation is documented: POST {path}")
    return gaps


def schemathesis_plan(total: int) -> list[tuple[str, str, int, dict[str, str]]]:
    """(path, method, examples, fixed path parameters) — most examples on the scoring routes."""
    plan = [
        ("/v2/models/{model_name}/infer", "POST", 0.40, {"model_name": MODEL}),
        ("/v2/models/{model_name}/versions/{model_version}/infer", "POST", 0.22,
         {"model_name": MODEL, "model_version": VERSION}),
        ("/predict", "POST", 0.22, {}),
        ("/v2/models/{model_name}/infer", "POST", 0.04, {}),  # random model names
        ("/v1/models/{model_name}:predict", "POST", 0.04, {"model_name": MODEL}),
    ]  # fmt: skip
    reads = [
        "/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}",
        "/v2/models/{model_name}/versions/{model_version}/ready", "/v2/models/{model_name}/ready", "/health", "/",
        "/v1/models", "/v1/models/{model_name}", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models",
    ]  # fmt: skip
    rest = max(len(reads), int(total * 0.08))
    out = [(path, method, max(1, int(total * share)), fixed) for path, method, share, fixed in plan]
    out += [(path, "GET", max(1, rest // len(reads)), {}) for path in reads]
    return out


def run_schemathesis(base_url: str, examples: int, seed: int, stats: Stats) -> dict[str, Any]:
    """Schemathesis against /openapi.json as served, positive and negative data,
    its "not a server error" check on every response. Sequential: the fuzzing threads are done by then."""
    import requests
    import schemathesis
    from schemathesis.checks import not_a_server_error

    document = requests.get(base_url + "/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    listed = sorted(f"{m.upper()} {p}" for p, ops in document["paths"].items() for m in ops)
    session = requests.Session()
    failures: list[dict] = []
    per_operation: dict[str, int] = {}
    for path, method, count, fixed in schemathesis_plan(examples):
        operation = schema[path][method]
        modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
        strategy = st.one_of(
            *[operation.as_strategy(generation_mode=mode, path_parameters=fixed or None) for mode in modes]
        )
        label = f"{method} {path}" + (" (random path parameters)" if not fixed and "{" in path else "")
        sent = 0

        def call(case: Any, label: str = label, count: int = count) -> None:
            nonlocal sent
            if sent >= count:
                return
            sent += 1
            started = time.perf_counter()
            try:
                response = case.call(base_url=base_url, session=session, timeout=60)
            except Exception as exc:  # no response at all
                stats.record(
                    "schemathesis", f"schemathesis {label}", route_of(case.formatted_path), None, b"",
                    type(exc).__name__, time.perf_counter() - started, 0, lambda: {"curl": case.as_curl_command()},
                )  # fmt: skip
                return
            status = response.status_code
            stats.record(
                "schemathesis", f"schemathesis {label}", route_of(case.formatted_path), status, response.content,
                None, time.perf_counter() - started, len(response.request.body or b""),
                lambda: {"curl": case.as_curl_command(), "family": f"schemathesis {label}"},
            )  # fmt: skip
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup, with a curl line
                if len(failures) < 20:
                    failures.append({"operation": label, "status": status, "report": str(exc)[:1500]})

        _drive(strategy, count, seed, call)
        per_operation[label] = per_operation.get(label, 0) + sent
    session.close()
    return {
        "operations_listed": listed,
        "gaps": openapi_gaps(document),
        "requests_per_operation": per_operation,
        "not_a_server_error_failures": failures,
    }


def _drive(strategy: st.SearchStrategy[Any], count: int, seed: int, call: Callable[[Any], None]) -> None:
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis_seed(seed)
    @given(strategy)
    def run(case: Any) -> None:
        call(case)

    run()


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class FuzzConfig:
    requests: int = 10_000
    schemathesis_examples: int = 1_500
    seed: int = 20_240_601
    concurrency: int = 4
    max_request_bytes: int = DEFAULT_MAX_BYTES
    memory_bound_mb: float = DEFAULT_MEMORY_BOUND_MB
    families: list[str] | None = None  # None: all
    extra: dict[str, Any] = field(default_factory=dict)


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


def run_fuzz(
    base_url: str,
    server_pid: int,
    config: FuzzConfig,
    log: Callable[[str], None] = print,
    server_log: Callable[[], str] | None = None,
) -> dict:
    """Fuzz a running server; returns the results (``passed`` and ``failures`` say whether it held).
    ``server_log`` returns the server's output so far: tracebacks logged during the run count as failures."""
    warm_up(base_url)
    time.sleep(1.0)
    tracebacks_before = server_log().count("Traceback") if server_log else 0
    counted_before = server_side_statuses(base_url)
    monitor = Monitor(base_url, server_pid)
    baseline = [monitor.total_rss()[0] for _ in range(3) if time.sleep(0.2) is None]
    start_mb = float(np.median(baseline))
    initial_workers = list(monitor.workers)
    cpu_before = {pid: _cpu_seconds(pid) or 0.0 for pid in initial_workers}
    stats = Stats()
    monitor.start()
    started = time.monotonic()

    dispatcher = Dispatcher(base_url, stats, config.concurrency)
    generated: dict[str, int] = {}
    chosen = [
        f for f in families(config.max_request_bytes) if config.families is None or f[0] in config.families
    ]
    total_share = sum(share for _, share, _ in chosen)
    try:
        for index, (name, share, strategy) in enumerate(chosen):
            quota = max(1, round(config.requests * share / total_share))
            family_started = time.monotonic()
            generated[name] = generate(strategy, quota, config.seed + index, dispatcher.submit)
            log(f"  {name:<14} {generated[name]:>6} requests ({time.monotonic() - family_started:.1f} s)")
        missing, round_ = config.requests - sum(generated.values()), 0
        while missing > 0 and round_ < 5:  # a family whose space ran out early: top up with the big ones
            name, _, strategy = chosen[round_ % min(3, len(chosen))]
            extra = generate(strategy, missing, config.seed + 1_000 + round_, dispatcher.submit)
            generated[name] += extra
            missing -= extra
            round_ += 1
    finally:
        dispatcher.close()
    fuzz_seconds = time.monotonic() - started
    log(f"  hypothesis: {stats.total} requests in {fuzz_seconds:.1f} s")

    schemathesis_report: dict[str, Any] = {}
    if config.schemathesis_examples > 0:
        before = stats.total
        schemathesis_report = run_schemathesis(base_url, config.schemathesis_examples, config.seed, stats)
        log(f"  schemathesis: {stats.total - before} requests")
    duration = time.monotonic() - started

    time.sleep(1.5)  # let in-flight work settle before the last memory sample
    monitor.stop()
    final_live, _ = live_status(base_url)
    end_mb = float(np.median([monitor.total_rss()[0] for _ in range(3) if time.sleep(0.2) is None]))
    peak_mb = max([start_mb, end_mb, *(v for _, v in monitor.samples)])
    final_workers = worker_pids(server_pid)
    server_alive = Path(f"/proc/{server_pid}").exists() and "serving" in cmdline(server_pid)
    cpu_after = {pid: _cpu_seconds(pid) for pid in initial_workers}
    time.sleep(1.0)  # workers flush their per-request counters to the shared metrics files
    counted = server_side_statuses(base_url) - counted_before
    server_side_5xx = {k: v for k, v in sorted(counted.items()) if k.startswith("5")}
    tail = server_log() if server_log else ""
    new_tracebacks = tail.count("Traceback") - tracebacks_before if server_log else None

    failures = []
    if stats.server_error_count:
        failures.append(f"{stats.server_error_count} responses with a 5xx status")
    if server_side_5xx:
        failures.append(f"the server counted 5xx answers in /metrics: {server_side_5xx}")
    if new_tracebacks:
        failures.append(
            f"{new_tracebacks} tracebacks (unhandled exceptions) in the server log during the run"
        )
    if dispatcher.unexpected_no_response:
        failures.append(f"{dispatcher.unexpected_no_response} well-formed requests got no HTTP response")
    if monitor.live_failures or final_live != 200:
        failures.append(
            f"liveness failed {len(monitor.live_failures)} time(s); final /v2/health/live: {final_live}"
        )
    if final_workers != initial_workers or monitor.worker_changes:
        failures.append(f"worker processes changed: {initial_workers} -> {final_workers}")
    if not server_alive:
        failures.append("the server process exited")
    if end_mb - start_mb > config.memory_bound_mb:
        failures.append(f"memory grew by {end_mb - start_mb:.1f} MB (bound {config.memory_bound_mb} MB)")
    if peak_mb - start_mb > config.memory_bound_mb:
        failures.append(
            f"peak memory {peak_mb - start_mb:.1f} MB above the start (bound {config.memory_bound_mb} MB)"
        )
    if stats.total < config.requests:
        failures.append(f"only {stats.total} requests were sent ({config.requests} asked)")
    if schemathesis_report and schemathesis_report.get("gaps"):
        failures.append(f"/openapi.json does not describe what is served: {schemathesis_report['gaps']}")

    latencies = np.asarray(stats.seconds) * 1000 if stats.seconds else np.zeros(1)
    return {
        "passed": not failures,
        "failures": failures,
        "duration_seconds": round(duration, 1),
        "requests": {
            "total": stats.total,
            "by_source": dict(stats.by_source),
            "by_status": dict(sorted(stats.by_status.items())),
            "by_route": {k: dict(sorted(v.items())) for k, v in sorted(stats.by_route.items())},
            "by_family": {k: dict(sorted(v.items())) for k, v in sorted(stats.by_family.items())},
            "generated_per_family": generated,
            "body_megabytes_sent": round(stats.body_bytes / 1e6, 1),
            "latency_ms": {
                "p50": round(float(np.percentile(latencies, 50)), 2),
                "p99": round(float(np.percentile(latencies, 99)), 2),
                "max": round(float(latencies.max()), 2),
            },
        },
        "server_errors": {
            "count": stats.server_error_count,
            "by_answer": dict(stats.server_errors_by_answer.most_common()),
            "examples": stats.server_errors,
        },
        "server_side": {
            "requests_counted_in_metrics": {k: v for k, v in sorted(counted.items())},
            "5xx_counted_in_metrics": server_side_5xx,
            "413_counted_as_unmatched": counted.get("413 unmatched", 0),
            "tracebacks_logged": new_tracebacks,
            "what": "credit_risk_requests_total deltas over the run (status route), from /metrics; "
            "tracebacks: 'Traceback' lines the server logged during the run",
        },
        "retried_on_a_new_connection": {
            "by_family": dict(stats.retried),
            "why": "the server had closed the reused keep-alive connection (it does so after an unhandled "
            "exception, i.e. after a 500)",
        },
        "no_response": {
            "by_family": dict(stats.no_response),
            "unexpected": dispatcher.unexpected_no_response,
            "examples": stats.no_response_examples,
        },
        "error_body_violations": {
            "by_status_route": dict(stats.error_body_violations),
            "examples": stats.error_body_examples,
        },
        "liveness": {
            "checks": monitor.live_checks + 1,
            "failures": monitor.live_failures,
            "final_status": final_live,
            "max_latency_ms": round(max(monitor.live_latency, default=0) * 1000, 1),
        },
        "workers": {
            "server_pid": server_pid,
            "initial": initial_workers,
            "final": final_workers,
            "changes": monitor.worker_changes,
            "server_alive": server_alive,
            "cpu_seconds_during_run": {
                str(pid): round((cpu_after[pid] or 0) - cpu_before[pid], 2) for pid in initial_workers
            },
        },
        "memory_mb": {
            "start": round(start_mb, 1),
            "peak": round(peak_mb, 1),
            "end": round(end_mb, 1),
            "growth": round(end_mb - start_mb, 1),
            "peak_growth": round(peak_mb - start_mb, 1),
            "bound": config.memory_bound_mb,
            "samples": len(monitor.samples),
            "per_process_peak": {
                f"{pid} {role(pid, server_pid)}": round(v, 1) for pid, v in monitor.per_process_peak.items()
            },
            "what": "sum of VmRSS of the server process and all its descendants (workers, resource tracker)",
        },
        "schemathesis": schemathesis_report,
        "config": {
            "requests": config.requests,
            "schemathesis_examples": config.schemathesis_examples,
            "seed": config.seed,
            "concurrency": config.concurrency,
            "max_request_bytes": config.max_request_bytes,
            "memory_bound_mb": config.memory_bound_mb,
            **config.extra,
        },
        "versions": versions(),
    }


def _cpu_seconds(pid: int) -> float | None:
    stat = proc_stat(pid)
    return None if stat is None else stat.cpu_seconds


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("hypothesis", "schemathesis", "kserve", "fastapi", "starlette", "uvicorn", "orjson", "numpy",
                 "onnxruntime", "requests"):  # fmt: skip
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@contextmanager
def fuzz_server(
    workdir: Path, max_request_bytes: int, workers: int = 2, model: Path | None = None
) -> Iterator[Any]:
    """A small trained model served by ``python -m serving`` on a loopback port."""
    from harness.predictor import running_server, train_small_model

    path = model or train_small_model(workdir).path
    with running_server(
        "--model-uri", str(path), "--workers", str(workers), "--max-request-bytes", str(max_request_bytes),
        workdir=workdir,
    ) as server:  # fmt: skip
        yield server


def summary(result: dict) -> str:
    lines = []
    requests = result["requests"]
    statuses = sorted(requests["by_status"])
    lines.append(f"{'route / family':<60}" + "".join(f"{s:>12}" for s in statuses) + f"{'total':>9}")
    for group in ("by_route", "by_family"):
        for name, counts in requests[group].items():
            row = f"{name[:59]:<60}" + "".join(f"{counts.get(s, 0):>12}" for s in statuses)
            lines.append(row + f"{sum(counts.values()):>9}")
        lines.append("-" * (60 + 12 * len(statuses) + 9))
    lines.append(
        f"{'all':<44}"
        + "".join(f"{requests['by_status'][s]:>12}" for s in statuses)
        + f"{requests['total']:>9}"
    )
    memory, live, workers = result["memory_mb"], result["liveness"], result["workers"]
    lines += [
        "",
        f"requests: {requests['total']} ({', '.join(f'{k} {v}' for k, v in requests['by_source'].items())}), "
        f"{requests['body_megabytes_sent']} MB of bodies, {result['duration_seconds']} s; latency p50 "
        f"{requests['latency_ms']['p50']} ms, p99 {requests['latency_ms']['p99']} ms",
        f"5xx: {result['server_errors']['count']}; retried on a new connection: "
        f"{sum(result['retried_on_a_new_connection']['by_family'].values())}; no response: {sum(result['no_response']['by_family'].values())} "
        f'(unexpected {result["no_response"]["unexpected"]}); 4xx without an {{"error"}} body: '
        f"{sum(result['error_body_violations']['by_status_route'].values())}",
        *(
            f"  {count:>5} x {answer}"
            for answer, count in list(result["server_errors"]["by_answer"].items())[:10]
        ),
        f"memory (RSS, server + workers): start {memory['start']} MB, peak {memory['peak']} MB, end {memory['end']} MB, "
        f"growth {memory['growth']} MB (bound {memory['bound']} MB)",
        f"server side: 5xx counted in /metrics {result['server_side']['5xx_counted_in_metrics'] or 0}; "
        f"tracebacks logged {result['server_side']['tracebacks_logged']}",
        f"liveness: {live['checks']} checks, {len(live['failures'])} failures, final {live['final_status']}, "
        f"slowest {live['max_latency_ms']} ms",
        f"workers: {workers['initial']} -> {workers['final']} (CPU s during the run: {workers['cpu_seconds_during_run']})",
        "PASSED" if result["passed"] else "FAILED: " + "; ".join(result["failures"]),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=10_000, help="hypothesis-generated requests (default 10,000)"
    )
    parser.add_argument(
        "--schemathesis-examples", type=int, default=1_500, help="schemathesis requests (0: skip)"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results (default {DEFAULT_JSON})")
    parser.add_argument("--seed", type=int, default=FuzzConfig.seed)
    parser.add_argument("--concurrency", type=int, default=4, help="client connections (default 4)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.add_argument("--memory-bound-mb", type=float, default=DEFAULT_MEMORY_BOUND_MB)
    parser.add_argument("--model", type=Path, help="an exported .onnx model (default: train a small one)")
    parser.add_argument("--family", action="append", help="only these request families (repeatable)")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be positive")

    config = FuzzConfig(
        requests=args.requests, schemathesis_examples=args.schemathesis_examples, seed=args.seed,
        concurrency=args.concurrency, max_request_bytes=args.max_request_bytes, memory_bound_mb=args.memory_bound_mb,
        families=args.family, extra={"workers": args.workers},
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="credit-risk-fuzz-") as folder:
        print(f"training a small model and starting the server (--workers {args.workers}, "
              f"--max-request-bytes {args.max_request_bytes:,}) ...", flush=True)  # fmt: skip
        with fuzz_server(Path(folder), args.max_request_bytes, args.workers, args.model) as server:
            print(f"fuzzing {server.url} (server pid {server.process.pid}) ...", flush=True)
            result = run_fuzz(
                server.url,
                server.process.pid,
                config,
                log=lambda m: print(m, flush=True),
                server_log=server.logs,
            )
            logs = server.logs()
        result["server_log"] = {
            "tracebacks": logs.count("Traceback"),
            "error_lines": sum(" ERROR " in line for line in logs.splitlines()),
            "worker_restarts_logged": logs.count("exited with code"),
            "first_traceback": logs[max(0, logs.find("Traceback") - 300) :][:4000]
            if "Traceback" in logs
            else "",
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(summary(result))
    print(f"results: {args.json}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
