"""The families of hostile HTTP requests, as hypothesis strategies of :class:`~reliability.http_client.Request`:
random V2 JSON documents, the binary tensor extension with lying lengths, deep nesting, bodies above the
limit, wrong content types, random bytes, ``/predict`` bodies, byte-level damage to valid bodies, random
paths and methods, malformed HTTP framing. :func:`families` lists them with their share of a run.

The families that do not depend on what a route takes (content types, random bytes, any JSON, damaged
valid bodies, deep nesting, oversized bodies, HTTP framing) take the :class:`Routes` they aim at: the
predictor's (:data:`PREDICTOR`) or another server's (the transformer's, :mod:`reliability.transformer_requests`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np
from hypothesis import strategies as st

from reliability.http_client import Request
from reliability.json_text import Dup, dump, to_bytes
from reliability.strategies import (
    RAW_NUMBERS,
    SPECIAL_FLOATS,
    any_json,
    cells,
    junk_scalar,
    plain_number,
    v2_document,
    weird_text,
)
from reliability.target import (
    FEATURES,
    INFER,
    INFER_VERSIONED,
    MODEL,
    NP_DTYPE,
    NUMERIC,
    OUTPUTS,
    PREDICT,
    WIDTH,
)

SCORING_PATHS = st.sampled_from([INFER, INFER_VERSIONED, PREDICT])
Headers = tuple[tuple[str, str | bytes], ...]


def _no_headers(path: str) -> Headers:
    return ()


@dataclass(frozen=True)
class Routes:
    """What the route-independent families aim at: the routes that take a body (``paths``), a well-formed
    body for each (``valid_body``), the headers a valid request of the route carries besides its
    Content-Type (``headers``: a bearer token, say), a valid document's JSON text with random values
    (``document(draw, path)``, the text the mutations damage), and the key whose repetition
    (``{"key": junk, ...}``) a duplicate-key mutation puts first (``dup_key``)."""

    paths: tuple[str, ...]
    valid_body: Callable[[str], bytes]
    document: Callable[[st.DrawFn, str], str]
    dup_key: Callable[[str], str]
    headers: Callable[[str], Headers] = _no_headers

    def path(self, draw: st.DrawFn) -> str:
        return draw(st.sampled_from(self.paths))


def pick_path(draw: st.DrawFn, versioned_share: float = 0.4) -> str:
    roll = draw(st.integers(0, 99))
    if roll < 100 * (1 - versioned_share):
        return INFER
    if roll < 95:
        return INFER_VERSIONED
    version = draw(st.sampled_from(["2", "01", "1.0", "0", "latest", "%20", "1%00", "%F0%9F%92%A5"]))
    return f"/v2/models/{MODEL}/versions/{version}/infer"


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
def deep_nesting(draw: st.DrawFn, routes: Routes | None = None) -> Request:
    routes = routes or PREDICTOR
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
    path = pick_path(draw)  # the V2 kinds: every server here serves V2 infer
    if kind in ("lists", "objects", "mixed"):
        text = nested
        path = routes.path(draw)
    elif kind == "in-data":
        text = f'{{"inputs":[{{"name":"features","shape":[1,{WIDTH}],"datatype":"FP32","data":{nested}}}]}}'
    elif kind == "in-shape":
        text = f'{{"inputs":[{{"name":"features","shape":{nested},"datatype":"FP32","data":[1]}}]}}'
    elif kind == "in-parameters":
        text = f'{{"inputs":[],"parameters":{{"binary_data_output":{nested}}}}}'
    elif kind == "in-features":
        text, path = f'{{"features":{nested}}}', routes.path(draw)
    elif kind == "unclosed":
        text = open_
        path = routes.path(draw)
    else:
        header = f'{{"inputs":[{{"name":"features","shape":[1,{WIDTH}],"datatype":"FP32","parameters":{nested}}}]}}'
        body = header.encode() + b"\x00" * 4 * WIDTH
        return Request(
            "deep-nesting", "POST", path, body,
            (("Inference-Header-Content-Length", str(len(header))), ("Content-Type", "application/octet-stream")),
        )  # fmt: skip
    headers = (("Content-Type", "application/json"), *routes.headers(path))
    return Request("deep-nesting", "POST", path, text.encode(), headers)


def oversized(limit: int, routes: Routes | None = None) -> st.SearchStrategy[Request]:
    routes = routes or PREDICTOR

    @st.composite
    def build(draw: st.DrawFn) -> Request:
        near = draw(st.integers(0, 99)) < 10
        size = (
            draw(st.sampled_from([limit - 1, limit]))
            if near
            else draw(st.sampled_from([limit + 1, 2 * limit]) | st.integers(limit + 1, int(2.5 * limit)))
        )
        kind = draw(st.sampled_from(["padded-json", "long-array", "filler", "binary"]))
        path = routes.path(draw)
        headers: list[tuple[str, str | bytes]] = [("Content-Type", "application/json"), *routes.headers(path)]
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
                *routes.headers(path),
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


PREDICTOR = Routes(
    paths=(INFER, INFER_VERSIONED, PREDICT),
    valid_body=valid_body,
    document=lambda draw, path: predictor_document(draw, path),
    dup_key=lambda path: '"features"' if path == PREDICT else '"inputs"',
)


@st.composite
def content_types(draw: st.DrawFn, routes: Routes | None = None) -> Request:
    routes = routes or PREDICTOR
    path = routes.path(draw)
    valid = routes.valid_body(path)
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
    headers: list[tuple[str, str | bytes]] = [("Content-Type", content_type), *routes.headers(path)]
    if draw(st.integers(0, 99)) < 20:
        headers.append(("Content-Encoding", draw(st.sampled_from(["gzip", "br", "deflate", "identity"]))))
    return Request("content-type", "POST", path, body, tuple(headers))


@st.composite
def random_bodies(draw: st.DrawFn, routes: Routes | None = None) -> Request:
    routes = routes or PREDICTOR
    path = routes.path(draw)
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
        *routes.headers(path),
    )
    return Request("random-bytes", "POST", path, body, headers)


@st.composite
def any_document(draw: st.DrawFn, routes: Routes | None = None) -> Request:
    routes = routes or PREDICTOR
    path = routes.path(draw)
    headers = (("Content-Type", "application/json"), *routes.headers(path))
    return Request("any-json", "POST", path, to_bytes(draw(any_json)), headers)


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


def predictor_document(draw: st.DrawFn, path: str) -> str:
    """A valid ``/predict`` or V2 body of 1-4 random rows, as JSON text."""
    rows = draw(st.integers(1, 4))
    matrix = [draw(cells(WIDTH, 0)) for _ in range(rows)]
    return dump({"features": matrix if rows > 1 else matrix[0]} if path == PREDICT else
                {"inputs": [{"name": "features", "shape": [rows, WIDTH], "datatype": "FP32", "data": matrix}]})  # fmt: skip


@st.composite
def text_mutations(draw: st.DrawFn, routes: Routes | None = None) -> Request:
    """A valid body, then byte-level damage: NaN literals, truncation, duplicate keys, stray bytes."""
    routes = routes or PREDICTOR
    path = routes.path(draw)
    text = routes.document(draw, path)
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
            key = routes.dup_key(path)
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
    headers = (("Content-Type", "application/json"), *routes.headers(path))
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
def http_framing(draw: st.DrawFn, routes: Routes | None = None) -> Request:
    """Malformed HTTP, sent raw on a new connection: bad Content-Length, smuggling-style headers, bad chunks."""
    routes = routes or PREDICTOR
    path = routes.path(draw)
    valid = routes.valid_body(path)
    kind = draw(
        st.sampled_from(
            ["cl-junk", "cl-short", "cl-long-half-close", "cl-and-te", "cl-twice", "bad-chunk", "chunk-no-end",
             "many-headers", "long-header", "nul-header", "bad-request-line", "http09", "h2-preface",
             "header-no-colon", "obs-fold", "expect-continue", "lf-only"]
        )
    )  # fmt: skip
    host = b"Host: fuzz\r\nConnection: close\r\n" + b"".join(
        f"{name}: ".encode() + (value if isinstance(value, bytes) else value.encode("latin-1")) + b"\r\n"
        for name, value in routes.headers(path)
    )
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
        raw = (start + b"Content-Length: %d\r\n\r\n" % len(valid)).replace(b"\r\n", b"\n") + valid
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
