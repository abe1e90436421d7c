"""The original JSON API, kept for existing clients.

``POST /predict`` with ``{"features": [26 numbers]}`` answers one object of scalars; with
``{"features": [[26 numbers], ...]}`` it answers lists. ``GET /health`` reports liveness and the model.
"""

from __future__ import annotations

import numpy as np
import orjson

from serving.errors import InvalidRequest
from serving.protocol.v2 import Outputs, finite_float32


def request_schema(n_features: int) -> dict:
    """The request body's JSON schema, for the OpenAPI document."""
    row = {"type": "array", "items": {"type": "number"}, "minItems": n_features, "maxItems": n_features}
    return {
        "type": "object",
        "required": ["features"],
        "properties": {"features": {"oneOf": [row, {"type": "array", "items": row, "minItems": 1}]}},
    }


def decode(body: bytes, feature_names: tuple[str, ...], max_rows: int) -> tuple[np.ndarray, bool]:
    """The request's rows as float32 ``[N, F]`` and whether it was a single row."""
    n = len(feature_names)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict) or "features" not in payload:
        raise InvalidRequest(
            f'expected a JSON object {{"features": [{n} numbers]}} or {{"features": [[{n} numbers], ...]}}'
        )
    features = payload["features"]
    if not isinstance(features, list) or not features:
        raise InvalidRequest('"features" must be a non-empty list of numbers, or a list of such rows')
    single = not isinstance(features[0], list)
    rows = [features] if single else features
    if len(rows) > max_rows:
        raise InvalidRequest(
            f"the batch has {len(rows):,} rows, more than the limit of {max_rows:,}: split it"
        )
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise InvalidRequest(f"row {i} must be a list of {n} numbers in contract order, got {got}")
        for j, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequest(f"row {i}, feature '{feature_names[j]}' is not a number: {value!r}")
    try:
        matrix = np.asarray(rows, dtype=np.float64)
    except OverflowError as exc:  # integers beyond 64-bit range
        raise InvalidRequest(f"a value is beyond float range: {exc}") from exc
    return finite_float32(matrix, feature_names), single


def encode(outputs: Outputs, model_version: str, single: bool) -> dict[str, object]:
    body = {
        "prediction": outputs.prediction.tolist(),
        "probability": outputs.probability.astype(float).tolist(),
        "risk_level": outputs.risk_level.tolist(),
        "decision": outputs.decision.tolist(),
    }
    if single:
        body = {key: values[0] for key, values in body.items()}
    body["model_version"] = model_version
    return body
