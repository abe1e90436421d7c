"""The strict V2 codec, in-process: reading (JSON and the binary tensor extension), the element checks and
their messages, ``decode`` to the model's rows, and writing the answer."""

from __future__ import annotations

import json
import re
import struct
import uuid

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from serving.errors import InvalidRequest
from serving.protocol import v2

NAMES = tuple(f"f{i}" for i in range(26))
NUMERIC = sorted(v2.NUMERIC_DATATYPES)


def _tensor(data: object, shape: list | None = None, datatype: str = "FP32", name: str = "features") -> dict:
    return {"name": name, "shape": [1, 26] if shape is None else shape, "datatype": datatype, "data": data}


def _body(*tensors: dict, **fields: object) -> bytes:
    return orjson.dumps({"inputs": list(tensors), **fields})


def _read(body: bytes | dict) -> v2.Request:
    return v2.read_json_request(body if isinstance(body, bytes) else orjson.dumps(body))


def _refused(body: bytes | dict, message: str) -> str:
    """The error of reading ``body``, asserted to contain ``message`` literally."""
    with pytest.raises(InvalidRequest) as caught:
        _read(body)
    assert message in str(caught.value), str(caught.value)
    return str(caught.value)


def _binary(header: dict, *blobs: bytes) -> tuple[bytes, str]:
    text = orjson.dumps(header)
    return text + b"".join(blobs), str(len(text))


def _request(*tensors: v2.Tensor, outputs: tuple | None = None, binary: bool = False) -> v2.Request:
    return v2.Request(id=None, inputs=tensors, outputs=outputs, binary_output=binary, parameters={})


def _matrix(array: np.ndarray, datatype: str = "FP32", name: str = "features") -> v2.Tensor:
    return v2.Tensor(name, datatype, array.shape, array)


OUTPUTS = v2.Outputs(
    probability=np.array([0.1, 0.7], dtype=np.float32),
    prediction=np.array([0, 1], dtype=np.int64),
    risk_level=np.array(["low", "high"], dtype=object),
    decision=np.array(["approve", "reject"], dtype=object),
)


# ---------------------------------------------------------------------------------------------- accepted


def test_one_matrix_in_json_flat_or_nested() -> None:
    rows = np.arange(52, dtype=np.float32).reshape(2, 26) / 7
    for data in (rows.ravel().tolist(), rows.tolist()):  # V2 allows both; nested is read in row-major order
        request = _read(_body(_tensor(data, [2, 26])))
        tensor = request.inputs[0]
        assert (tensor.name, tensor.datatype, tensor.shape) == ("features", "FP32", (2, 26))
        assert tensor.data.dtype == np.float32
        got = v2.decode(request, NAMES, 100)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, rows)


def test_nesting_need_not_follow_the_shape_only_be_regular() -> None:
    request = _read(_body(_tensor([[1, 2, 3], [4, 5, 6]], [3, 2], "INT64", "x")))
    np.testing.assert_array_equal(request.inputs[0].data, [[1, 2], [3, 4], [5, 6]])


@pytest.mark.parametrize("datatype", NUMERIC)
def test_every_numeric_datatype_in_json(datatype: str) -> None:
    rows = np.arange(26 * 3).reshape(3, 26) % 100
    request = _read(_body(_tensor(rows.tolist(), [3, 26], datatype)))
    assert request.inputs[0].data.dtype == v2.DATATYPES[datatype]
    np.testing.assert_array_equal(v2.decode(request, NAMES, 100), rows.astype(np.float32))


@pytest.mark.parametrize("datatype", NUMERIC)
def test_every_numeric_datatype_in_binary(datatype: str) -> None:
    rows = np.arange(26 * 3).reshape(3, 26) % 100
    raw = rows.astype(v2.DATATYPES[datatype]).tobytes()
    header = {"inputs": [{"name": "features", "shape": [3, 26], "datatype": datatype,
                          "parameters": {"binary_data_size": len(raw)}}]}  # fmt: skip
    request = v2.read_binary_request(*_binary(header, raw))
    assert request.inputs[0].data.dtype == v2.DATATYPES[datatype]
    np.testing.assert_array_equal(v2.decode(request, NAMES, 100), rows.astype(np.float32))


def test_integer_extremes_are_accepted() -> None:
    body = (b'{"inputs":[{"name":"a","shape":[2],"datatype":"UINT64","data":[0,18446744073709551615]},'
            b'{"name":"b","shape":[2],"datatype":"INT64","data":[-9223372036854775808,9223372036854775807]},'
            b'{"name":"c","shape":[2],"datatype":"UINT64","data":[1,9223372036854775808]},'
            b'{"name":"d","shape":[2],"datatype":"INT8","data":[-128,127]}]}')  # fmt: skip
    a, b, c, d = (t.data.tolist() for t in _read(body).inputs)
    assert a == [0, 2**64 - 1] and b == [-(2**63), 2**63 - 1] and c == [1, 2**63] and d == [-128, 127]


def test_float_limits_round_like_the_type() -> None:
    """A number is refused when it would become infinite in the type; rounding to the largest is fine."""
    request = _read(
        _body(
            _tensor([65504, -65519.0], [2], "FP16", "a"),
            _tensor([3.4028235e38, -1], [2], "FP32", "b"),
            _tensor([1e308], [1], "FP64", "c"),
        )
    )
    a, b, c = (t.data for t in request.inputs)
    assert a.tolist() == [65504, -65504] and np.isfinite(b).all() and c.tolist() == [1e308]


def test_one_tensor_per_feature_in_any_order() -> None:
    rows = np.random.default_rng(0).normal(size=(4, 26))
    tensors = [_tensor(rows[:, i].tolist(), [4] if i % 2 else [4, 1], "FP64", n) for i, n in enumerate(NAMES)]
    got = v2.decode(_read(_body(*reversed(tensors))), NAMES, 100)
    np.testing.assert_allclose(got, rows.astype(np.float32))


def test_unknown_top_level_keys_and_parameters_are_fine() -> None:
    request = _read(_body(_tensor([1.0] * 26), model_name="x", extra={"a": [True]}, parameters={"k": "v"}))
    assert request.parameters == {"k": "v"} and not request.binary_output and request.outputs is None


# ---------------------------------------------------------------------------------------------- strictness


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("INT64", [1, 2, 1.5], "inputs[0] 'x' (INT64): element 2 is 1.5, not an integer"),
        ("INT64", [1, 2.0], "element 1 is 2.0, not an integer: write INT64 data without a fraction"),
        ("INT64", [1, 1e3], "element 1 is 1000.0, not an integer"),
        ("UINT8", [0, 255, -1], "inputs[0] 'x' (UINT8): element 2 is -1, beyond UINT8's range [0, 255]"),
        ("UINT8", [256], "element 0 is 256, beyond UINT8's range [0, 255]"),
        ("INT8", [0, -129], "element 1 is -129, beyond INT8's range [-128, 127]"),
        ("INT32", [1, 2**40], "element 1 is 1099511627776, beyond INT32's range [-2147483648, 2147483647]"),
        ("UINT64", [5, -1], "element 1 is -1, beyond UINT64's range"),
        ("FP16", [1, 70000], "inputs[0] 'x' (FP16): element 1 is 70000, beyond FP16's range (±65504)"),
        ("FP16", [1, -65520.0], "element 1 is -65520.0, beyond FP16's range"),
        ("FP32", [1, 1e39], "element 1 is 1e+39, beyond FP32's range (±3.4028235e38)"),
        ("FP32", [1, 2, "x"], "inputs[0] 'x' (FP32): element 2 is \"x\", not a number"),
        ("FP32", [1.0, None], "element 1 is null, not a number"),
        ("FP32", [1.0, {"a": 1}], 'element 1 is {"a": 1}, not a number'),
        ("FP32", [1.0, True, 3.0], "element 1 is true, not a number"),
        ("FP64", [[1.0, 2.0], [False, 4.0]], "element 2 is false, not a number"),
        ("INT64", [1, True], "element 1 is true, not an integer"),
        ("INT64", [True, True], "element 0 is true, not an integer"),
        ("INT64", [1, "2"], 'element 1 is "2", not an integer'),
        ("BOOL", [True, 1], "inputs[0] 'x' (BOOL): element 1 is 1, not a boolean"),
        ("BOOL", [True, "true"], 'element 1 is "true", not a boolean'),
        ("BYTES", ["a", 1], "inputs[0] 'x' (BYTES): element 1 is 1, not a string"),
        ("BYTES", [["a"], [None]], "element 1 is null, not a string"),
        ("FP32", [1, [2]], "data is ragged: data[1] is a list where data[0] is 1"),
        ("FP32", [[1, 2], [3]], "data is ragged: data[1] has 1 element(s) where data[0] is a list of 2"),
        ("FP32", [[1, 2], 3], "data is ragged: data[1] is 3 where data[0] is a list of 2"),
        ("FP32", [[1, 2], "ab"], 'data is ragged: data[1] is "ab" where data[0] is a list of 2'),
        ("INT64", [[[1], [2]], [[3], [4, 5]]], "data[1][1] has 2 element(s) where data[0][0] is a list of 1"),
        ("BYTES", [["a", "b"], ["c"]], "data is ragged: data[1] has 1 element(s)"),
        ("FP32", 5, "inputs[0] 'x' (FP32): data must be a list, got 5"),
        ("FP32", "1,2", 'data must be a list, got "1,2"'),
    ],
)
def test_data_must_fit_the_datatype_and_the_message_names_the_element(
    datatype: str, data: object, message: str
) -> None:
    shape = [len(np.asarray(data, dtype=object).ravel())] if isinstance(data, list) else [1]
    body = orjson.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]})
    _refused(body, message)


def test_integers_beyond_64_bits_are_out_of_range() -> None:
    """orjson reads them as floats: still named as out of range, not as fractions."""
    body = b'{"inputs":[{"name":"x","shape":[2],"datatype":"INT64","data":[1,18446744073709551616]}]}'
    _refused(body, "element 1 is 1.8446744073709552e+19, beyond INT64's range")
    body = body.replace(b"INT64", b"UINT64")
    _refused(body, "element 1 is 1.8446744073709552e+19, beyond UINT64's range")


def test_the_element_count_must_match_the_shape() -> None:
    _refused(_body(_tensor([1.0] * 26, [1, 27])), "has 26 values but its shape [1, 27] needs 27")
    _refused(_body(_tensor([[1.0, 2.0]] * 2, [2, 3])), "has 4 values but its shape [2, 3] needs 6")
    _refused(_body(_tensor(["a"], [2], "BYTES")), "has 1 values but its shape [2] needs 2")


def test_a_hidden_boolean_is_found_whatever_else_the_body_holds() -> None:
    """numpy reads ``true`` among numbers as 1.0: the JSON text's tokens decide whether to look."""
    data = [1.0] * 25 + [True]
    flags = {"parameters": {"binary_data_output": True},
             "outputs": [{"name": "probability", "parameters": {"binary_data": False}}]}  # fmt: skip
    for fields in ({}, flags, {"id": "true false"}):
        _refused(_body(_tensor(data), **fields), "element 25 is true, not a number")
    # booleans outside the data, or the word inside strings, do not refuse numbers
    for fields in (flags, {"id": "truefalse"}, {"extra": [True, False]}):
        request = _read(_body(_tensor([1.0] * 26), **fields))
        assert request.inputs[0].data.tolist() == [[1.0] * 26]


def test_a_tensor_after_the_first_is_named_by_its_index() -> None:
    body = _body(_tensor([1.0], [1], "FP32", "a"), _tensor([1, 300], [2], "UINT8", "b"))
    _refused(body, "inputs[1] 'b' (UINT8): element 1 is 300, beyond UINT8's range")


@pytest.mark.parametrize(
    ("datatype", "message"),
    [
        ("fp32", 'inputs[0] \'features\': datatype "fp32" is not a V2 datatype (did you mean "FP32"? '
                 "datatypes are case-sensitive)"),
        ("Int64", 'did you mean "INT64"?'),
        ("float32", 'datatype "float32" is not a V2 datatype (did you mean "FP32"?)'),
        ("STRING", 'did you mean "BYTES"?'),
        ("COMPLEX64", 'datatype "COMPLEX64" is not a V2 datatype; one of BOOL, UINT8'),
        (32, "datatype must be a string, got 32"),
    ],
)  # fmt: skip
def test_datatypes_are_case_sensitive_with_a_hint(datatype: object, message: str) -> None:
    _refused(_body(_tensor([1.0] * 26, datatype=datatype)), message)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (
            [True, 26],
            "inputs[0] 'features': shape must be a list of non-negative integers; element 0 is true",
        ),
        ([1, -26], "element 1 is -26"),
        ([1.0, 26], "element 0 is 1.0"),
        ([1, None], "element 1 is null"),
        ("1,26", 'shape must be a list of non-negative integers, got "1,26"'),
        ({"rows": 1}, 'got {"rows": 1}'),
    ],
)
def test_shape_entries_are_non_negative_integers(shape: object, message: str) -> None:
    _refused(_body(_tensor([1.0] * 26, shape=shape)), message)


def test_shapes_numpy_cannot_represent_are_refused() -> None:
    _refused(_body(_tensor([], [0, 2**63])), "impossible shape [0, 9223372036854775808]")
    _refused(_body(_tensor([1], [1] * 65)), "impossible shape")
    header = {"inputs": [{"name": "features", "shape": [0, 2**63], "datatype": "FP32",
                          "parameters": {"binary_data_size": 0}}]}  # fmt: skip
    with pytest.raises(InvalidRequest, match="impossible shape"):
        v2.read_binary_request(*_binary(header))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"parameters": {"binary_data_output": "false"}},
         'parameters.binary_data_output must be a JSON boolean (true or false), got "false"'),
        ({"parameters": {"binary_data_output": 0}}, "binary_data_output must be a JSON boolean"),
        ({"parameters": {"binary_data_output": None}}, "got null"),
        ({"outputs": [{"name": "probability", "parameters": {"binary_data": "true"}}]},
         "outputs[0] 'probability': parameters.binary_data must be a JSON boolean (true or false), got \"true\""),
        ({"outputs": [{"name": "decision"}, {"name": "prediction", "parameters": {"binary_data": 1}}]},
         "outputs[1] 'prediction': parameters.binary_data must be a JSON boolean"),
    ],
)  # fmt: skip
def test_binary_flags_are_json_booleans(fields: dict, message: str) -> None:
    _refused(_body(_tensor([1.0] * 26), **fields), message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{oops", "invalid inference request: malformed JSON"),
        (b"", "malformed JSON: Input is a zero-length, empty document"),
        (b'{"inputs": [' + _tensor([1.0] * 26).__repr__().encode() + b"]}", "malformed JSON"),
        (b'{"inputs":[{"name":"features","shape":[1,26],"datatype":"FP32","data":[NaN' + b",1" * 25 + b"]}]}",
         "malformed JSON"),
        (b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[1e400]}]}', "number is infinity"),
        (b"[1, 2, 3]", "invalid inference request: expected a JSON object with an 'inputs' list, got [1, 2, 3]"),
        (b"{}", "invalid inference request: 'inputs' is required"),
        (b'{"inputs": []}', "the request has no inputs"),
        (b'{"inputs": {"name": "x"}}', 'inputs must be a list of tensors, got {"name": "x"}'),
        (b'{"inputs": [5]}', "inputs[0] must be an object with name, datatype, shape and data, got 5"),
        (b'{"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}', "inputs[0]: 'name' is required"),
        (b'{"inputs": [{"name": "x", "shape": [1], "data": [1]}]}', "inputs[0]: 'datatype' is required"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "data": [1]}]}', "inputs[0]: 'shape' is required"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}', "inputs[0] 'x': 'data' is required"),
        (b'{"inputs": [{"name": 7, "shape": [1], "datatype": "FP32", "data": [1]}]}',
         "inputs[0]: name must be a string, got 7"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1], "parameters": []}]}',
         "inputs[0] 'x': parameters must be an object, got []"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 4}}]}',
         "inputs[0] 'x': has a 'binary_data_size' but the request is JSON"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1],'
         b' "parameters": {"binary_data_size": 4}}]}', "has both 'data' and a 'binary_data_size'"),
        (_body(_tensor([1.0] * 26), id=5), "invalid inference request: id must be a string, got 5"),
        (_body(_tensor([1.0] * 26), parameters=[1]), "parameters must be an object, got [1]"),
        (_body(_tensor([1.0] * 26), outputs={"name": "x"}), "outputs must be a list of objects"),
        (_body(_tensor([1.0] * 26), outputs=[{"name": 1}]), "outputs[0] must be an object with a string 'name'"),
        (_body(_tensor([1.0] * 26), outputs=[{"name": "decision", "parameters": "binary_data"}]),
         "outputs[0] 'decision': parameters must be an object"),
    ],
)  # fmt: skip
def test_malformed_documents_say_what_is_wrong(body: bytes, message: str) -> None:
    _refused(body, message)


def test_names_in_messages_are_abridged_and_escaped() -> None:
    message = _refused(_body(_tensor([1, "x"], [2], name="n\n" + "a" * 500)), "element 1 is")
    assert "\n" not in message and len(message) < 200 and message.startswith('inputs[0] "n\\naaa')


# ---------------------------------------------------------------------------------------------- binary


def _features_header(size: int | object, shape: list | None = None, **extra: object) -> dict:
    return {"inputs": [{"name": "features", "shape": shape or [1, 26], "datatype": "FP32",
                        "parameters": {"binary_data_size": size}}], **extra}  # fmt: skip


ONE_ROW = np.arange(26, dtype=np.float32).reshape(1, 26).tobytes()


@pytest.mark.parametrize(
    ("body", "length", "message"),
    [
        (ONE_ROW, "abc", 'without a valid Inference-Header-Content-Length header (got "abc")'),
        (ONE_ROW, None, "(got null)"),
        (ONE_ROW, "-1", "without a valid Inference-Header-Content-Length"),
        (ONE_ROW, "\u00b9", "without a valid Inference-Header-Content-Length"),
        (ONE_ROW, "100000", "Inference-Header-Content-Length is 100000 but the body has only 104 bytes"),
        (ONE_ROW, "10", "the binary request's JSON header is malformed"),
    ],
)
def test_binary_header_length_must_be_right(body: bytes, length: str | None, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        v2.read_binary_request(body, length)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("header", "blob", "message"),
    [
        (_features_header(1040), ONE_ROW, "inputs[0] 'features': declares 1040 bytes of binary data but only 104 remain"),
        (_features_header(100), ONE_ROW, "4 unexpected bytes after the last binary input"),
        (_features_header(-1), ONE_ROW, "neither 'data' nor a valid 'binary_data_size' (a non-negative integer; got -1)"),
        (_features_header(True), ONE_ROW, "got true"),
        (_features_header(104, [2, 26]), ONE_ROW,
         "inputs[0] 'features' (FP32): carries 104 bytes of binary data; shape [2, 26] of FP32 needs 208"),
        ({"inputs": [{"name": "features", "shape": [1, 26], "datatype": "FP32"}]}, ONE_ROW,
         "neither 'data' nor a valid 'binary_data_size' (a non-negative integer; got nothing)"),
        (_features_header(104, parameters={"binary_data_output": "yes"}), ONE_ROW, "binary_data_output must be a JSON boolean"),
        ({"inputs": [{"name": "b", "shape": [3], "datatype": "BOOL", "parameters": {"binary_data_size": 3}}]},
         b"\x01\x00\x02", "inputs[0] 'b' (BOOL): element 2 is the byte 2, not a boolean (0 or 1)"),
        ({"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 7}}]},
         b"\x01\x00\x00\x00a\x05\x00", "inputs[0] 's' (BYTES): element 1 has no 4-byte length"),
        ({"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 11}}]},
         b"\x01\x00\x00\x00a\x09\x00\x00\x00bc", "element 1 declares 9 bytes but only 2 remain"),
        ({"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 7}}]},
         b"\x01\x00\x00\x00abc", "2 bytes of binary data after the 1 element(s) its shape [1] holds"),
        ({"inputs": [{"name": "s", "shape": [1], "datatype": "bytes", "parameters": {"binary_data_size": 0}}]},
         b"", 'datatype "bytes" is not a V2 datatype (did you mean "BYTES"?'),
    ],
)  # fmt: skip
def test_binary_inputs_must_be_consistent(header: dict, blob: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        v2.read_binary_request(*_binary(header, blob))
    assert message in str(caught.value)


def test_binary_and_json_inputs_mix_in_one_request() -> None:
    raw = np.array([1.5, 2.5], dtype="<f4").tobytes()
    header = {"id": "", "inputs": [
        {"name": "a", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}},
        {"name": "b", "shape": [2], "datatype": "INT16", "data": [3, -4]},
        {"name": "c", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 11}},
    ]}  # fmt: skip
    request = v2.read_binary_request(*_binary(header, raw, b"\x01\x00\x00\x00x\x02\x00\x00\x00yz"))
    a, b, c = request.inputs
    assert a.data.tolist() == [1.5, 2.5] and b.data.tolist() == [3, -4] and c.data.tolist() == [b"x", b"yz"]
    assert request.id == ""


def test_binary_nan_and_infinity_are_refused_by_decode_naming_row_and_feature() -> None:
    rows = np.ones((2, 26), dtype=np.float32)
    rows[1, 3] = np.nan
    body = _binary(_features_header(rows.nbytes, [2, 26]), rows.tobytes())
    with pytest.raises(InvalidRequest, match=r"1 value\(s\) are NaN.*first at row 1, feature 'f3' \(NaN\)"):
        v2.decode(v2.read_binary_request(*body), NAMES, 10)
    rows[1, 3] = -np.inf
    body = _binary(_features_header(rows.nbytes, [2, 26]), rows.tobytes())
    with pytest.raises(InvalidRequest, match=r"first at row 1, feature 'f3' \(-Infinity\)"):
        v2.decode(v2.read_binary_request(*body), NAMES, 10)


# ---------------------------------------------------------------------------------------------- tensors


def test_bytes_tensors_round_trip_between_values_and_raw_bytes() -> None:
    tensor = v2.tensor_from_values("s", "BYTES", [2, 1], [["a"], ["é"]], "inputs[0]")
    assert tensor.data.dtype == object and tensor.data.tolist() == [[b"a"], ["é".encode()]]
    raw = v2.raw_bytes("BYTES", tensor.data)
    assert raw == b"\x01\x00\x00\x00a\x02\x00\x00\x00\xc3\xa9"
    again = v2.tensor_from_bytes("s", "BYTES", (2, 1), raw, "inputs[0]")
    assert again.shape == (2, 1) and again.data.tolist() == tensor.data.tolist()
    empty = v2.tensor_from_bytes("s", "BYTES", [0], b"", "inputs[0]")
    assert empty.data.shape == (0,)
    assert v2.raw_bytes("BYTES", np.array(["low", "medium", b"\x00"], dtype=object)) == (
        b"\x03\x00\x00\x00low\x06\x00\x00\x00medium\x01\x00\x00\x00\x00"
    )


def test_bool_tensors_round_trip_between_values_and_raw_bytes() -> None:
    tensor = v2.tensor_from_values("b", "BOOL", [3], [True, False, True], "inputs[0]")
    assert tensor.data.dtype == np.bool_ and v2.raw_bytes("BOOL", tensor.data) == b"\x01\x00\x01"
    again = v2.tensor_from_bytes("b", "BOOL", [3], b"\x01\x00\x01", "inputs[0]")
    assert again.data.tolist() == [True, False, True]


@pytest.mark.parametrize("datatype", NUMERIC)
def test_numeric_tensors_round_trip_between_values_and_raw_bytes(datatype: str) -> None:
    values = [0, 1, 7, 100]
    tensor = v2.tensor_from_values("x", datatype, [2, 2], values, "inputs[0]")
    raw = v2.raw_bytes(datatype, tensor.data)
    assert raw == np.array(values, dtype=v2.DATATYPES[datatype].newbyteorder("<")).tobytes()
    again = v2.tensor_from_bytes("x", datatype, [2, 2], raw, "inputs[0]")
    assert again.data.dtype == v2.DATATYPES[datatype] and again.data.tolist() == [[0, 1], [7, 100]]


def test_tensor_from_values_takes_typed_sequences() -> None:
    """What gRPC hands over: protobuf repeated fields (sequences, not lists), or a numpy array."""
    tensor = v2.tensor_from_values("x", "INT32", (2,), (3, 4), "inputs[0]", booleans=False)
    assert tensor.data.dtype == np.int32 and tensor.data.tolist() == [3, 4]
    tensor = v2.tensor_from_values("x", "FP64", [1, 2], np.array([0.5, 1.5]), "inputs[0]")
    assert tensor.data.tolist() == [[0.5, 1.5]]
    with pytest.raises(
        InvalidRequest, match=r"inputs\[2\] 'x' \(INT8\): element 1 is 200, beyond INT8's range"
    ):
        v2.tensor_from_values("x", "INT8", [2], (1, 200), "inputs[2]", booleans=False)
    with pytest.raises(InvalidRequest, match=r"element 0 is true, not a number"):
        v2.tensor_from_values("x", "FP32", [1], [True], "inputs[0]")


# ---------------------------------------------------------------------------------------------- decode


def _features(data: object, shape: list[int], datatype: str = "FP32") -> v2.Tensor:
    return v2.tensor_from_values("features", datatype, shape, data, "inputs[0]")


def _feature(name: str, data: list, shape: list[int] | None = None) -> v2.Tensor:
    return v2.tensor_from_values(name, "FP32", shape or [len(data)], data, "inputs[0]")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "the request has no inputs: send one tensor 'features' of shape [N, 26] or 26 tensors"),
        ([_features([1.0] * 25, [1, 25])], "must have shape [N, 26] (one row per transaction, 26 features in contract order), got [1, 25]"),
        ([_features([1.0] * 26, [26])], "must have shape [N, 26] (one row per transaction, 26 features in contract order), got [26]"),
        ([_features(["a"] * 26, [1, 26], "BYTES")], "input 'features' has datatype BYTES: features are numeric"),
        ([_features([True] * 26, [1, 26], "BOOL")], "input 'features' has datatype BOOL: features are numeric"),
        ([_features([], [0, 26])], "the batch is empty: send at least one row"),
        ([_features([1.0] * 26 * 11, [11, 26])], "the batch has 11 rows, more than the limit of 10: split it"),
        ([_features([1e300] * 26, [1, 26], "FP64")],
         "26 value(s) are NaN, infinite or beyond float32 range; first at row 0, feature 'f0' (1e+300)"),
        ([_feature("f0", [1.0])], "missing 25 of the 26 feature inputs (f1, f2, f3 and 22 more)"),
        ([_feature("x", [1.0]), _features([1.0] * 26, [1, 26])],
         "send the tensor 'features' alone, or one tensor per feature, not both (also got x)"),
        ([_feature("x", [1.0])], "unknown input(s) x; missing 26 of the 26"),
        ([_features([1.0] * 26, [1, 26]), _features([1.0] * 26, [1, 26])], "input name(s) given more than once: features"),
        ([_feature(n, [1.0] * (2 if n == "f5" else 1)) for n in NAMES], "feature inputs disagree on the number of rows: [1, 2]"),
        ([_feature(n, [1.0, 2.0], [1, 2] if n == "f1" else None) for n in NAMES], "input 'f1' must have shape [N] or [N, 1], got [1, 2]"),
    ],
)  # fmt: skip
def test_decode_says_what_is_wrong(inputs: list[v2.Tensor], message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        v2.decode(_request(*inputs), NAMES, 10)
    assert message in str(caught.value)


def test_decode_refuses_unknown_or_repeated_outputs_before_scoring() -> None:
    features = _features([1.0] * 26, [1, 26])
    unknown = _request(features, outputs=(v2.RequestedOutput("score", None),))
    with pytest.raises(
        InvalidRequest, match="unknown output 'score': this model returns probability, prediction"
    ):
        v2.decode(unknown, NAMES, 10)
    twice = _request(
        features, outputs=(v2.RequestedOutput("decision", None), v2.RequestedOutput("decision", True))
    )
    with pytest.raises(InvalidRequest, match="output 'decision' is requested more than once"):
        v2.decode(twice, NAMES, 10)


def test_decode_converts_every_numeric_type_to_float32() -> None:
    big = np.full((1, 26), 2**64 - 1, dtype=np.uint64)
    np.testing.assert_array_equal(
        v2.decode(_request(_matrix(big, "UINT64")), NAMES, 10), big.astype(np.float32)
    )
    half = np.full((2, 26), 65504, dtype=np.float16)
    np.testing.assert_array_equal(
        v2.decode(_request(_matrix(half, "FP16")), NAMES, 10), half.astype(np.float32)
    )


# ---------------------------------------------------------------------------------------------- writing


def test_ids_are_echoed_exactly_and_made_up_only_when_absent() -> None:
    for given_id in ("", "abc", " spaced ", "é"):
        request = _read(_body(_tensor([1.0] * 26), id=given_id))
        assert request.id == given_id and v2.response_id(request) == given_id
        body, _ = v2.write_response(request, OUTPUTS, "credit-risk", "7")
        assert orjson.loads(body)["id"] == given_id
    for request in (_read(_body(_tensor([1.0] * 26))), _read(_body(_tensor([1.0] * 26), id=None))):
        assert request.id is None
        made = v2.response_id(request)
        assert str(uuid.UUID(made)) == made and made != v2.response_id(request)


def test_response_outputs_default_to_all_four_in_order() -> None:
    for binary in (False, True):
        got = v2.response_outputs(_request(binary=binary), OUTPUTS)
        assert [(n, d, b) for n, d, _, b in got] == [
            ("probability", "FP32", binary), ("prediction", "INT64", binary),
            ("risk_level", "BYTES", binary), ("decision", "BYTES", binary),
        ]  # fmt: skip
        assert got[0][2] is OUTPUTS.probability and got[3][2] is OUTPUTS.decision
    assert [n for n, *_ in v2.response_outputs(_request(outputs=()), OUTPUTS)] == list(v2.OUTPUT_NAMES)


def test_response_outputs_follow_the_request_order_and_flags() -> None:
    asked = (v2.RequestedOutput("decision", None), v2.RequestedOutput("probability", True),
             v2.RequestedOutput("prediction", False))  # fmt: skip
    got = v2.response_outputs(_request(outputs=asked, binary=False), OUTPUTS)
    assert [(n, b) for n, _, _, b in got] == [
        ("decision", False),
        ("probability", True),
        ("prediction", False),
    ]
    got = v2.response_outputs(_request(outputs=asked, binary=True), OUTPUTS)
    assert [(n, b) for n, _, _, b in got] == [
        ("decision", True),
        ("probability", True),
        ("prediction", False),
    ]
    with pytest.raises(InvalidRequest, match="unknown output 'x'"):
        v2.response_outputs(_request(outputs=(v2.RequestedOutput("x", None),)), OUTPUTS)


def test_requested_outputs_are_read_from_json() -> None:
    request = _read(_body(_tensor([1.0] * 26), outputs=[{"name": "decision"},
                          {"name": "probability", "parameters": {"binary_data": True}}],
                          parameters={"binary_data_output": False}))  # fmt: skip
    assert request.outputs == (v2.RequestedOutput("decision", None), v2.RequestedOutput("probability", True))


def test_write_response_in_json() -> None:
    body, headers = v2.write_response(
        _read(_body(_tensor([1.0] * 52, [2, 26]), id="r1")), OUTPUTS, "credit-risk", "7"
    )
    assert headers == {"content-type": "application/json"}
    document = orjson.loads(body)
    assert (document["id"], document["model_name"], document["model_version"]) == ("r1", "credit-risk", "7")
    assert document["outputs"] == [
        {"name": "probability", "datatype": "FP32", "shape": [2], "data": [0.1, 0.7]},
        {"name": "prediction", "datatype": "INT64", "shape": [2], "data": [0, 1]},
        {"name": "risk_level", "datatype": "BYTES", "shape": [2], "data": ["low", "high"]},
        {"name": "decision", "datatype": "BYTES", "shape": [2], "data": ["approve", "reject"]},
    ]


def _split_binary_response(body: bytes, headers: dict[str, str]) -> tuple[dict, dict[str, np.ndarray | list]]:
    """The JSON header and each output's data, decoded the way tritonclient does."""
    assert headers["content-type"] == "application/octet-stream"
    length = int(headers["inference-header-content-length"])
    document, offset, data = orjson.loads(body[:length]), length, {}
    for output in document["outputs"]:
        if "data" in output:
            data[output["name"]] = output["data"]
            continue
        size = output["parameters"]["binary_data_size"]
        blob, offset = body[offset : offset + size], offset + size
        if output["datatype"] == "BYTES":
            items, i = [], 0
            while i < len(blob):
                (n,) = struct.unpack_from("<I", blob, i)
                items.append(blob[i + 4 : i + 4 + n].decode())
                i += 4 + n
            data[output["name"]] = items
        else:
            data[output["name"]] = np.frombuffer(blob, v2.DATATYPES[output["datatype"]]).tolist()
    assert offset == len(body)
    return document, data


def test_write_response_with_the_binary_tensor_extension() -> None:
    request = _read(_body(_tensor([1.0] * 52, [2, 26]), parameters={"binary_data_output": True}))
    document, data = _split_binary_response(*v2.write_response(request, OUTPUTS, "credit-risk", "7"))
    assert [o["name"] for o in document["outputs"]] == list(v2.OUTPUT_NAMES)
    assert all("data" not in o and o["shape"] == [2] for o in document["outputs"])
    assert data == {"probability": OUTPUTS.probability.tolist(), "prediction": [0, 1],
                    "risk_level": ["low", "high"], "decision": ["approve", "reject"]}  # fmt: skip
    mixed = _read(_body(_tensor([1.0] * 52, [2, 26]), outputs=[{"name": "risk_level", "parameters": {"binary_data": True}},
                                                               {"name": "prediction"}]))  # fmt: skip
    document, data = _split_binary_response(*v2.write_response(mixed, OUTPUTS, "credit-risk", "7"))
    assert [o["name"] for o in document["outputs"]] == ["risk_level", "prediction"]
    assert data == {"risk_level": ["low", "high"], "prediction": [0, 1]}
    assert document["outputs"][1]["data"] == [0, 1] and "parameters" not in document["outputs"][1]


# ---------------------------------------------------------------------------------------------- describe


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"), (True, "true"), (False, "false"), (3, "3"), (1.5, "1.5"), (1e300, "1e+300"),
        (float("nan"), "NaN"), (float("-inf"), "-Infinity"), ("x", '"x"'), ('a"b\n', '"a\\"b\\n"'),
        ([1, None, "a"], '[1, null, "a"]'), ({"k": [True]}, '{"k": [true]}'), (np.float32(0.5), "0.5"),
        (np.int64(-2), "-2"), (b"ab", '"ab"'), (10**200, "an integer of 201 digits"),
        pytest.param(10**5000, "an integer of over 1,000 digits", id="5001 digits"), (object(), "a object"),
    ],
)  # fmt: skip
def test_describe_renders_values_like_json(value: object, text: str) -> None:
    assert v2.describe(value) == text


def test_describe_is_short() -> None:
    for value in ("x" * 1000, [1.5] * 1000, {str(i): i for i in range(1000)}, [[[[["deep"] * 50] * 50]]]):
        text = v2.describe(value)
        assert len(text) <= 60 and text.endswith("…"), text


# ---------------------------------------------------------------------------------------------- properties

finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(np.float32, st.tuples(st.integers(1, 40), st.just(26)), elements=finite32), st.booleans())
def test_float32_rows_round_trip_through_json_and_binary(X: np.ndarray, nested: bool) -> None:
    data = X.tolist() if nested else X.ravel().tolist()
    got = v2.decode(_read(_body(_tensor(data, list(X.shape)))), NAMES, 1000)
    np.testing.assert_array_equal(got, X)
    body = _binary(_features_header(X.nbytes, list(X.shape)), X.tobytes())
    np.testing.assert_array_equal(v2.decode(v2.read_binary_request(*body), NAMES, 1000), X)


edges = st.sampled_from(sorted({b + d for r in v2._INTEGER_RANGE.values() for b in r for d in (-1, 0, 1)}
                               | {-(2**63) - 1, -(2**63) - 1000, 2**64, 2**64 + 1}))  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(v2._INTEGER_RANGE)),
    st.lists(st.one_of(st.integers(-(2**64), 2**64 - 1), edges), min_size=1, max_size=30),
)
def test_integers_are_accepted_exactly_when_in_range(datatype: str, values: list[int]) -> None:
    low, high = v2._INTEGER_RANGE[datatype]
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [len(values)], "datatype": datatype, "data": [0]}]}
    )
    body = body.replace(b"[0]}", b"[" + ",".join(map(str, values)).encode() + b"]}")  # beyond orjson's dumps
    outside = [i for i, v in enumerate(values) if not low <= v <= high]
    if not outside:
        assert _read(body).inputs[0].data.tolist() == values
    else:
        message = _refused(body, f"element {outside[0]} is ")
        assert f"beyond {datatype}'s range [{low}, {high}]" in message


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=30))
def test_fp16_accepts_exactly_what_stays_finite(values: list[float]) -> None:
    with np.errstate(over="ignore"):
        finite = np.isfinite(np.array(values, dtype=np.float16))
    body = _body(_tensor(values, [len(values)], "FP16", "x"))
    if finite.all():
        np.testing.assert_array_equal(_read(body).inputs[0].data, np.array(values, dtype=np.float16))
    else:
        first = int(np.argmin(finite))
        _refused(body, f"element {first} is {v2.describe(values[first])}, beyond FP16's range (±65504)")


intruders = st.sampled_from([True, False, None, "1.5", "x", [], [1.0, 2.0], {}, {"a": 1}])


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["FP16", "FP32", "FP64", "INT64", "UINT8"]), st.integers(1, 60), st.data())
def test_the_offending_element_is_the_one_named(datatype: str, size: int, data: st.DataObject) -> None:
    values: list[object] = [
        int(v) for v in data.draw(st.lists(st.integers(0, 200), min_size=size, max_size=size))
    ]
    at = data.draw(st.integers(0, size - 1))
    values[at] = data.draw(intruders)
    message = _refused(_body(_tensor(values, [size], datatype, "x")), f"inputs[0] 'x' ({datatype}): ")
    if isinstance(values[at], list) and values[at] and at != 0:
        assert re.search(rf"data\[{at}\] is a list", message), message
    elif isinstance(values[at], list):
        assert "data is ragged" in message or "values but its shape" in message, message
    else:
        assert f"element {at} is {v2.describe(values[at])}, not a" in message, message


def test_the_happy_path_looks_at_no_element_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed the batch goal needs (issue 12): no per-element Python loop for well-formed numbers,
    flat or nested, even when the request's parameters hold booleans."""
    monkeypatch.setattr(v2, "_checked", lambda *a: pytest.fail("slow path taken"))
    monkeypatch.setattr(v2, "_flatten", lambda *a: pytest.fail("slow path taken"))
    X = np.random.default_rng(1).normal(size=(1000, 26)).astype(np.float32)
    flags = {"parameters": {"binary_data_output": True},
             "outputs": [{"name": "probability", "parameters": {"binary_data": False}}]}  # fmt: skip
    for data in (X.ravel().tolist(), X.tolist()):
        request = _read(_body(_tensor(data, [1000, 26]), **flags))
        np.testing.assert_array_equal(v2.decode(request, NAMES, 1000), X)
    ints = _read(_body(_tensor(np.arange(26000).tolist(), [1000, 26], "INT32")))
    assert ints.inputs[0].data.dtype == np.int32


def test_reading_json_leaves_the_garbage_collector_as_it_was() -> None:
    import gc

    assert gc.isenabled()
    _read(_body(_tensor([[1.0] * 26] * 3, [3, 26])))
    _refused(b"{oops", "malformed JSON")
    _refused(_body(_tensor([1, "x"], [2])), "element 1")
    assert gc.isenabled()
    gc.disable()
    try:
        _read(_body(_tensor([1.0] * 26)))
        assert not gc.isenabled()
    finally:
        gc.enable()


# ---------------------------------------------------------------------------------------------- hostile input

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)  # fmt: skip
numbers = st.integers(-300, 70_000) | st.floats(-1e40, 1e40, allow_nan=False)
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["features", "f0", "f1", "x"]) | json_values,
        "datatype": st.sampled_from([*v2.DATATYPES, "fp32", "FLOAT"]) | json_values,
        "shape": st.lists(st.integers(-1, 30) | st.sampled_from([2**63, 2**64 - 1]), max_size=3)
        | json_values,
    },
    optional={
        "data": st.lists(numbers | json_values, max_size=30)
        | st.lists(st.lists(numbers, min_size=2, max_size=2), max_size=10)
        | json_values,
        "parameters": st.fixed_dictionaries(
            {}, optional={"binary_data_size": st.integers(-2, 40) | json_values}
        )
        | json_values,
    },
)
documents = st.fixed_dictionaries(
    {"inputs": st.lists(tensors, max_size=3) | json_values},
    optional={
        "id": st.text(max_size=3) | json_values,
        "outputs": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from([*v2.OUTPUT_NAMES, "x"]) | json_values},
                optional={"parameters": st.fixed_dictionaries({"binary_data": json_values}) | json_values},
            ),
            max_size=3,
        )
        | json_values,
        "parameters": st.fixed_dictionaries({"binary_data_output": json_values}) | json_values,
    },
)


def _answer(read: object) -> None:
    """Read, decode and answer: either it works, or it is an InvalidRequest (a 400), never another error."""
    try:
        request = read()
        v2.decode(request, NAMES[:2], 5)
        v2.write_response(request, OUTPUTS, "credit-risk", "1")
    except InvalidRequest as error:
        assert str(error) and len(str(error)) < 2_000


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_json_document_is_answered_or_refused_cleanly(document: dict) -> None:
    body = json.dumps(document).encode()  # integers beyond 64 bits too
    _answer(lambda: v2.read_json_request(body))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.binary(max_size=64), st.integers(-3, 3))
def test_any_binary_request_is_answered_or_refused_cleanly(document: dict, blob: bytes, shift: int) -> None:
    header = json.dumps(document).encode()  # integers beyond 64 bits too
    _answer(lambda: v2.read_binary_request(header + blob, str(max(0, len(header) + shift))))


def test_a_lone_surrogate_is_refused_not_a_crash() -> None:
    with pytest.raises(
        InvalidRequest, match=r"inputs\[0\] 's' \(BYTES\): element 1 is .*, not valid Unicode"
    ):
        v2.tensor_from_values("s", "BYTES", [2], ["a", "\ud800"], "inputs[0]")
    _refused(b'{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","data":["\\ud800"]}]}', "malformed JSON")
