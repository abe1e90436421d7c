"""The predictor's one typed settings object: flags win over ``CREDIT_RISK_SERVING_*`` variables, then defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServingSettings(BaseSettings):
    """Serve the credit-risk ONNX model over the Open Inference Protocol (KServe V2)."""

    model_config = SettingsConfigDict(env_prefix="CREDIT_RISK_SERVING_", protected_namespaces=())

    model_uri: str = Field(
        description="a local .onnx file, a folder holding one, or models:/NAME@ALIAS / models:/NAME/VERSION "
        "(resolved through MLflow at start-up; tracking server from $MLFLOW_TRACKING_URI)"
    )
    model_name: str = Field("credit-risk", description="name on the V2 endpoints (/v2/models/NAME)")
    registry_retries: int = Field(
        3, ge=0, le=10, description="retries of a models:/ lookup when MLflow is unreachable (then exit 1)"
    )
    registry_timeout_seconds: int = Field(10, ge=1, description="timeout of each MLflow request at start-up")
    http_port: int = Field(8080, ge=1, le=65535, description="HTTP port (V2, /predict, /metrics)")
    workers: int = Field(1, ge=1, description="uvicorn worker processes")
    threshold: float | None = Field(
        None, gt=0, lt=1, description="probability threshold of the 0/1 prediction (default: the model's)"
    )
    max_batch_rows: int = Field(10_000, ge=1, description="largest batch a request may carry")
    max_request_bytes: int = Field(
        64 * 2**20, ge=1024, description="largest request body accepted (413 above)"
    )
    intra_op_threads: int = Field(
        1, ge=0, description="onnxruntime threads per worker (0: onnxruntime decides)"
    )
    drift_window_seconds: int = Field(900, ge=1, description="sliding window of the in-process PSI gauges")
    metrics_dir: Path | None = Field(
        None,
        description="folder for multi-process Prometheus metrics (default: $PROMETHEUS_MULTIPROC_DIR, else a "
        "fresh temporary folder)",
    )
    grace_period_seconds: int = Field(
        30, ge=1, description="time in-flight requests get to finish on SIGTERM"
    )
    metrics_flush_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="how often per-row counts reach /metrics (they also flush on each scrape)",
    )
    access_log: bool = Field(
        False, description="log one line per request (the request metrics count every request anyway)"
    )
