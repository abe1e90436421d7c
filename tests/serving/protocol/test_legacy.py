from __future__ import annotations

import json

import numpy as np
import pytest

from serving.errors import InvalidRequest
from serving.protocol import legacy, v2

NAMES = tuple(f"f{i}" for i in range(26))


def test_single_row_and_batch() -> None:
    rows, single = legacy.decode(json.dumps({"features": list(range(26))}).encode(), NAMES, 10)
    assert single and rows.shape == (1, 26) and rows.dtype == np.float32
    rows, single = legacy.decode(json.dumps({"features": [list(range(26))] * 3}).encode(), NAMES, 10)
    assert not single and rows.shape == (3, 26)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{oops", "the body is not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (json.dumps({"rows": []}).encode(), "expected a JSON object"),
        (json.dumps({"features": []}).encode(), "non-empty list"),
        (
            json.dumps({"features": [1.0] * 25}).encode(),
            "row 0 must be a list of 26 numbers in contract order, got 25",
        ),
        (
            json.dumps({"features": [[1.0] * 26, [1.0] * 27]}).encode(),
            "row 1 must be a list of 26 numbers .* got 27",
        ),
        (json.dumps({"features": [1.0] * 25 + ["x"]}).encode(), "row 0, feature 'f25' is not a number: 'x'"),
        (json.dumps({"features": [1.0] * 25 + [None]}).encode(), "feature 'f25' is not a number: None"),
        (json.dumps({"features": [True] + [1.0] * 25}).encode(), "feature 'f0' is not a number: True"),
        (json.dumps({"features": [1e300] + [1.0] * 25}).encode(), "beyond float32 range"),
        (json.dumps({"features": [10**400] + [1.0] * 25}).encode(), "not valid JSON|beyond float range"),
        (json.dumps({"features": [[1.0] * 26] * 11}).encode(), "11 rows, more than the limit of 10"),
        (b'{"features": [NaN' + b", 1" * 25 + b"]}", "not valid JSON"),
    ],
)
def test_bad_bodies(body: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        legacy.decode(body, NAMES, 10)


def test_encode_matches_the_original_api() -> None:
    outputs = v2.Outputs(
        probability=np.array([0.25], dtype=np.float32), prediction=np.array([0]),
        risk_level=np.array(["low"], dtype=object), decision=np.array(["approve"], dtype=object),
    )  # fmt: skip
    assert legacy.encode(outputs, "3", single=True) == {
        "prediction": 0, "probability": 0.25, "risk_level": "low", "decision": "approve", "model_version": "3",
    }  # fmt: skip
    batch = legacy.encode(outputs, "3", single=False)
    assert (
        batch["probability"] == [0.25] and batch["decision"] == ["approve"] and batch["model_version"] == "3"
    )
