"""The predictor's one typed settings object: flags win over ``CREDIT_RISK_SERVING_*`` variables, then defaults."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Settings = TypeVar("Settings", bound=BaseSettings)


def from_cli(kind: type[Settings], argv: list[str], prog: str) -> Settings | None:
    """``kind`` from command-line flags (kebab-case) over its environment variables, or None after one
    ``error: --flag: what is wrong`` line per problem on stderr (the caller exits 2)."""
    try:
        return kind(_cli_parse_args=argv, _cli_prog_name=prog, _cli_kebab_case=True, _cli_hide_none_type=True)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]).replace("_", "-")
            message = error["msg"].removeprefix("Value error, ")
            print(f"error: --{where}: {message}" if where else f"error: {message}", file=sys.stderr)
        return None


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
    host: str = Field("0.0.0.0", description="address both ports listen on")
    http_port: int = Field(8080, ge=1, le=65535, description="HTTP port (V2, /predict, /metrics)")
    grpc_port: int = Field(
        8081, ge=0, le=65535, description="V2 gRPC port (KServe's default; 0 turns gRPC off)"
    )
    workers: int = Field(1, ge=1, description="worker processes, each serving both ports")
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
    header_timeout_seconds: float = Field(
        5.0, gt=0, le=300, description="time a client gets to send a request's headers (then 408, closed)"
    )
    body_timeout_seconds: float = Field(
        10.0, gt=0, le=3600, description="time a client gets to send a request's body (then 408, closed)"
    )
    keep_alive_seconds: float = Field(
        5.0, gt=0, le=3600, description="how long an idle kept-alive connection stays open"
    )
    max_connections: int = Field(
        1000, ge=1, description="open HTTP connections per worker; more are refused with 503 and closed"
    )
    ssl_certfile: Path | None = Field(
        None, description="TLS certificate (PEM) for both ports; needs --ssl-keyfile"
    )
    ssl_keyfile: Path | None = Field(
        None, description="TLS private key (PEM) for both ports; needs --ssl-certfile"
    )
    access_log: bool = Field(
        False, description="log one line per request (the request metrics count every request anyway)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ServingSettings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("TLS needs both --ssl-certfile and --ssl-keyfile")
        for path in (self.ssl_certfile, self.ssl_keyfile):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {path} does not exist")
        if self.grpc_port == self.http_port:
            raise ValueError(f"--grpc-port and --http-port are both {self.http_port}: give gRPC its own port")
        return self
