from __future__ import annotations

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from serving.errors import InvalidRequest
from serving.protocol import v2

NAMES = tuple(f"f{i}" for i in range(26))


def _request(*inputs: InferInput, outputs: list[str] | None = None) -> InferRequest:
    requested = [RequestedOutput(n) for n in outputs] if outputs else None
    return InferRequest(model_name="m", infer_inputs=list(inputs), request_outputs=requested)


def _features(data: object, shape: list[int], datatype: str = "FP32") -> InferInput:
    return InferInput("features", shape, datatype, data=data)


def _binary(array: np.ndarray, name: str = "features", datatype: str = "FP32") -> InferInput:
    tensor = InferInput(name, list(array.shape), datatype)
    tensor._raw_data = array.tobytes()
    return tensor


def test_one_matrix_in_json() -> None:
    rows = np.arange(52, dtype=float).reshape(2, 26)
    got = v2.decode(_request(_features(rows.tolist(), [2, 26])), NAMES, 100)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, rows)
    flat = v2.decode(_request(_features(rows.ravel().tolist(), [2, 26])), NAMES, 100)  # V2 allows flat data
    np.testing.assert_array_equal(flat, rows)


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64", "INT8", "INT32", "INT64", "UINT8", "UINT64"])
def test_every_numeric_datatype_in_binary(datatype: str) -> None:
    from kserve.utils.numpy_codec import to_np_dtype

    rows = np.arange(26 * 3).reshape(3, 26) % 100
    got = v2.decode(_request(_binary(rows.astype(to_np_dtype(datatype)), datatype=datatype)), NAMES, 100)
    np.testing.assert_array_equal(got, rows.astype(np.float32))


def test_one_tensor_per_feature_in_any_order() -> None:
    rows = np.random.default_rng(0).normal(size=(4, 26))
    inputs = [
        InferInput(n, [4] if i % 2 else [4, 1], "FP64", data=rows[:, i].tolist()) for i, n in enumerate(NAMES)
    ]
    got = v2.decode(_request(*reversed(inputs)), NAMES, 100)
    np.testing.assert_allclose(got, rows.astype(np.float32))


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([], "the request has no inputs"),
        ([_features([1.0] * 25, [1, 25])], r"must have shape \[N, 26\] .* got \[1, 25\]"),
        ([_features([1.0] * 26, [26])], r"must have shape \[N, 26\] .* got \[26\]"),
        ([_features([1.0] * 26, [1, 27])], r"has 26 values but its shape \[1, 27\] needs 27"),
        ([_features([1.0] * 26, [1, -26])], r"invalid shape \[1, -26\]"),
        ([_features(["a"] * 26, [1, 26])], r"non-numeric data \(e.g. 'a'\)"),
        ([_features([None] * 26, [1, 26])], r"non-numeric data \(e.g. None\)"),
        ([_features([True] * 26, [1, 26])], r"non-numeric data \(e.g. True\)"),
        ([_features([[1.0] * 26, [1.0] * 3], [2, 26])], "not a regular numeric array"),
        ([_features(["a"] * 26, [1, 26], "BYTES")], "has datatype BYTES: features are numeric"),
        ([_features([1] * 26, [1, 26], "BOOL")], "has datatype BOOL"),
        ([_features([], [0, 26])], "the batch is empty"),
        ([_features([1.0] * 26 * 11, [11, 26])], "11 rows, more than the limit of 10"),
        (
            [_features([1e300] * 26, [1, 26], "FP64")],
            r"26 value\(s\) are NaN, infinite or beyond float32 range; first at row 0, feature 'f0'",
        ),
        (
            [InferInput("f0", [1], "FP32", data=[1.0])],
            r"missing 25 of the 26 feature inputs \(f1, f2, f3 and 22 more\)",
        ),
        (
            [InferInput("x", [1], "FP32", data=[1.0]), _features([1.0] * 26, [1, 26])],
            r"send the tensor 'features' alone, or one tensor per feature, not both \(also got x\)",
        ),
        ([InferInput("x", [1], "FP32", data=[1.0])], r"unknown input\(s\) x; missing 26 of the 26"),
        ([_features([1.0] * 26, [1, 26]), _features([1.0] * 26, [1, 26])], r"given more than once: features"),
    ],
)
def test_bad_requests_say_what_is_wrong(inputs: list[InferInput], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        v2.decode(_request(*inputs), NAMES, 10)


def test_nan_and_infinity_in_binary() -> None:
    rows = np.ones((2, 26), dtype=np.float32)
    rows[1, 3] = np.nan
    with pytest.raises(InvalidRequest, match="first at row 1, feature 'f3'"):
        v2.decode(_request(_binary(rows)), NAMES, 10)
    rows[1, 3] = np.inf
    with pytest.raises(InvalidRequest, match="infinite"):
        v2.decode(_request(_binary(rows)), NAMES, 10)


def test_binary_length_must_match_the_shape() -> None:
    tensor = _binary(np.ones((2, 26), dtype=np.float32))
    tensor._raw_data = tensor._raw_data[:-4]
    with pytest.raises(
        InvalidRequest, match=r"carries 204 bytes of binary data; shape \[2, 26\] of FP32 needs 208"
    ):
        v2.decode(_request(tensor), NAMES, 10)


def test_per_feature_tensors_must_agree_on_rows() -> None:
    inputs = [
        InferInput(n, [2 if n == "f5" else 1], "FP32", data=[1.0] * (2 if n == "f5" else 1)) for n in NAMES
    ]
    with pytest.raises(InvalidRequest, match=r"disagree on the number of rows: \[1, 2\]"):
        v2.decode(_request(*inputs), NAMES, 10)


def test_unknown_requested_output() -> None:
    with pytest.raises(
        InvalidRequest, match="unknown output 'score': this model returns probability, prediction"
    ):
        v2.decode(_request(_features([1.0] * 26, [1, 26]), outputs=["score"]), NAMES, 10)


def test_encode_sets_an_id_and_the_version() -> None:
    outputs = v2.Outputs(
        probability=np.array([0.1, 0.7], dtype=np.float32), prediction=np.array([0, 1]),
        risk_level=np.array(["low", "high"], dtype=object), decision=np.array(["approve", "reject"], dtype=object),
    )  # fmt: skip
    request = _request(_features([1.0] * 52, [2, 26]))
    body, _ = v2.encode(request, outputs, "credit-risk", "7").to_rest()
    assert body["id"] and body["model_version"] == "7"
    assert [(o["name"], o["datatype"], o["shape"]) for o in body["outputs"]] == [
        ("probability", "FP32", [2]), ("prediction", "INT64", [2]), ("risk_level", "BYTES", [2]), ("decision", "BYTES", [2]),
    ]  # fmt: skip
    assert body["outputs"][2]["data"] == ["low", "high"]
    request.id = "abc"
    assert v2.encode(request, outputs, "credit-risk", "7").to_rest()[0]["id"] == "abc"
