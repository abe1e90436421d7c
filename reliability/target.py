"""What the fuzzer aims at: the served model's name and version, its routes, and its contract — the public
feature names (the server reads them from the model's metadata), the four outputs, the V2 numeric datatypes.
Shared by the request generators, the HTTP target and the monitor."""

from __future__ import annotations

import numpy as np

from ml.schema import FEATURE_NAMES

MODEL = "credit-risk"
VERSION = "1"
INFER = f"/v2/models/{MODEL}/infer"
INFER_VERSIONED = f"/v2/models/{MODEL}/versions/{VERSION}/infer"
PREDICT = "/predict"
LIVE = "/v2/health/live"

FEATURES = FEATURE_NAMES  # the public contract; the server reads it from the model's metadata
WIDTH = len(FEATURES)
OUTPUTS = ("probability", "prediction", "risk_level", "decision")
NUMERIC = ("FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
NP_DTYPE = {
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "INT8": np.int8, "INT16": np.int16,
    "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64,
}  # fmt: skip
