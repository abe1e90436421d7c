"""The transformer's one typed settings object: flags win over ``CREDIT_RISK_TRANSFORMER_*`` variables, then
defaults. KServe's injected spellings (``--model_name``, ``--predictor_host``, ``--http_port``, …) are read as
the flags they name."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROTOCOLS = ("v2", "grpc-v2")


class TransformerSettings(BaseSettings):
    """Score raw Xente transactions: features from the online store, the decision from the predictor."""

    model_config = SettingsConfigDict(env_prefix="CREDIT_RISK_TRANSFORMER_", protected_namespaces=())

    predictor_host: str = Field(
        description="the predictor, HOST:PORT (its HTTP port for v2, its gRPC port for grpc-v2); a bare HOST "
        "means port 80 (KServe's predictor Service)"
    )
    store: str = Field(
        description="the online feature store: redis://[:PASSWORD@]HOST:PORT[/DB], rediss://… (TLS), "
        "unix:///PATH.sock, or sqlite:///PATH.db (embedded, one machine)"
    )
    predictor_protocol: Literal["v2", "grpc-v2"] = Field(
        "v2", description="how the predictor is called: V2 over HTTP (v2) or over gRPC (grpc-v2)"
    )
    model_name: str = Field("credit-risk", description="the model's name, here and at the predictor")
    host: str = Field("0.0.0.0", description="address every port listens on")
    http_port: int = Field(8080, ge=1, le=65535, description="HTTP port (V2, /score, /metrics)")
    grpc_port: int = Field(8081, ge=0, le=65535, description="V2 gRPC port (0 turns gRPC off)")
    ingest_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="port of POST /v1/transactions; 0 serves it on the HTTP port, any other port serves it "
        "there only (so a NetworkPolicy can admit the producer alone)",
    )
    ingest_token_file: Path | None = Field(
        None,
        description="file holding the bearer token ingestion requires (a mounted Secret; re-read when it "
        "changes); without it ingestion is refused (403)",
    )
    ingest_ssl_certfile: Path | None = Field(None, description="TLS certificate of the ingest port (PEM)")
    ingest_ssl_keyfile: Path | None = Field(None, description="TLS private key of the ingest port (PEM)")
    ingest_ssl_ca_certs: Path | None = Field(
        None, description="CA bundle of the producers' client certificates: mutual TLS on the ingest port"
    )
    ssl_certfile: Path | None = Field(None, description="TLS certificate (PEM) for the HTTP and gRPC ports")
    ssl_keyfile: Path | None = Field(None, description="TLS private key (PEM) for the HTTP and gRPC ports")
    store_timeout_seconds: float = Field(1.0, gt=0, le=60, description="timeout of each feature store call")
    predictor_timeout_seconds: float = Field(5.0, gt=0, le=600, description="timeout of each predictor call")
    max_batch_rows: int = Field(1_000, ge=1, description="most transactions one request may carry")
    max_request_bytes: int = Field(
        8 * 2**20, ge=1024, description="largest request body accepted (413 above)"
    )
    header_timeout_seconds: float = Field(5.0, gt=0, le=300, description="time to send a request's headers")
    body_timeout_seconds: float = Field(10.0, gt=0, le=3600, description="time to send a request's body")
    keep_alive_seconds: float = Field(5.0, gt=0, le=3600, description="idle time of a kept-alive connection")
    max_connections: int = Field(1000, ge=1, description="open HTTP connections per port (then 503)")
    grace_period_seconds: int = Field(
        30, ge=1, description="time in-flight requests get to finish on SIGTERM"
    )
    access_log: bool = Field(False, description="log one line per request")
    workers: int = Field(1, ge=1, le=1, description="one process (scale with replicas)")

    @model_validator(mode="after")
    def _consistent(self) -> TransformerSettings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("TLS needs both --ssl-certfile and --ssl-keyfile")
        if (self.ingest_ssl_certfile is None) != (self.ingest_ssl_keyfile is None):
            raise ValueError("ingest TLS needs both --ingest-ssl-certfile and --ingest-ssl-keyfile")
        if self.ingest_ssl_certfile is not None and not self.ingest_port:
            raise ValueError("--ingest-ssl-* need their own --ingest-port")
        if self.ingest_ssl_ca_certs is not None and self.ingest_ssl_certfile is None:
            raise ValueError(
                "--ingest-ssl-ca-certs (mutual TLS) needs --ingest-ssl-certfile and --ingest-ssl-keyfile"
            )
        for path in (self.ssl_certfile, self.ssl_keyfile, self.ingest_ssl_certfile, self.ingest_ssl_keyfile,
                     self.ingest_ssl_ca_certs, self.ingest_token_file):  # fmt: skip
            if path is not None and not path.is_file():
                raise ValueError(f"{path} does not exist")
        ports = [p for p in (self.http_port, self.grpc_port, self.ingest_port) if p]
        if len(set(ports)) != len(ports):
            raise ValueError(f"--http-port, --grpc-port and --ingest-port must differ, got {ports}")
        if not self.predictor_host.strip():
            raise ValueError("--predictor-host is empty: give HOST:PORT of the predictor")
        return self

    @property
    def predictor_address(self) -> str:
        """``HOST:PORT`` of the predictor (port 80 when none is given, as KServe's predictor Service)."""
        host = self.predictor_host.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
        has_port = host.rsplit(":", 1)[-1].isdigit() and (":" in host) and not host.endswith("]")
        return host if has_port else f"{host}:80"
