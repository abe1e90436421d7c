"""The transformer's HTTP application: every route in one :func:`create_app`, over FastAPI's public API.

=====================================================  ============================================
``GET /``, ``GET /v2/health/live``                      liveness
``GET /v2/health/ready``                                readiness: the feature store answers
``GET /v2``                                             server metadata
``GET /v2/models/NAME``, ``…/ready``                    model metadata (raw fields in) and readiness
``POST /v2/models/NAME/infer``                          V2 inference on raw transaction tensors
``POST /score``                                         one transaction object, or a list, as JSON
``POST /v1/transactions``                               ingestion of completed transactions (bearer)
``GET /metrics``                                        Prometheus
=====================================================  ============================================

With ``--ingest-port`` the ingestion route is served on that port only (:func:`create_app` with
``role="ingest"``: ingestion and health) and the scoring port has none, so a NetworkPolicy can admit the
producer to one port and the checkout to the other. Ingestion writes credit-relevant state — a forged
purchase history buys a better score — so it needs ``Authorization: Bearer <token>`` (the token file a
Secret mounts, re-read when it changes; compared in constant time), optionally mutual TLS on its port.
Errors are ``{"error": "..."}`` with the status of :mod:`serving.errors`' classes, as the predictor's.
"""

from __future__ import annotations

import hmac
import logging
import os
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

import grpc
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from kserve.protocol.rest.v2_datamodels import InferenceRequest, InferenceResponse
from starlette.routing import Route

from credit_features import records
from credit_features.schema import (
    AMOUNT_COLUMNS,
    AMOUNT_LIMIT,
    INTEGER_COLUMNS,
    PRODUCT_CATEGORIES,
    RAW_COLUMNS,
    TIME_COLUMN,
)
from serving import SERVER_NAME, __version__
from serving.app import ERROR_RESPONSES, add_error_handlers, json_response, read_infer_request
from serving.errors import InvalidRequest, ModelNotFound, ServingError
from serving.limits import Connections, LimitsMiddleware
from serving.metrics import RequestMetricsMiddleware
from serving.protocol import v2
from serving.transformer.model import TransactionTransformer

log = logging.getLogger(__name__)

Role = Literal["all", "score", "ingest"]


class Unauthorized(ServingError):
    status = HTTPStatus.UNAUTHORIZED
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    headers = {"WWW-Authenticate": 'Bearer realm="ingestion"'}


class IngestionDisabled(ServingError):
    status = HTTPStatus.FORBIDDEN
    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class TokenFile:
    """The ingestion token, read from its file and again whenever the file changes (a rotated Secret)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._token = b""

    def token(self) -> bytes:
        assert self.path is not None
        stat = os.stat(self.path)
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            self._token = self.path.read_bytes().strip()
            self._seen = seen
            if not self._token:
                log.error("the ingestion token file %s is empty: every ingestion is refused", self.path)
        return self._token

    def check(self, header: str | None) -> None:
        if self.path is None:
            raise IngestionDisabled(
                "ingestion is disabled on this transformer: start it with --ingest-token-file"
            )
        scheme, _, given = (header or "").partition(" ")
        token = self.token()
        if scheme.lower() != "bearer" or not token or not hmac.compare_digest(given.strip().encode(), token):
            raise Unauthorized(
                "ingestion needs 'Authorization: Bearer <token>' with the producer's token"
                if not header
                else "the bearer token is not the producer's token"
            )


def create_app(
    transformer: TransactionTransformer, connections: Connections | None = None, role: Role = "all"
) -> FastAPI:
    settings = transformer.settings
    tokens = TokenFile(settings.ingest_token_file)
    app = FastAPI(
        title="credit-risk transformer", version=__version__, openapi_url="/openapi.json", docs_url="/docs",
        redoc_url=None,
    )  # fmt: skip
    name = transformer.name

    def check(model_name: str) -> None:
        if model_name != name:
            raise ModelNotFound(model_name, name)

    async def body_json(request: Request) -> object:
        body = await request.body()
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc

    async def live() -> dict[str, Any]:
        return {"live": True}

    async def server_ready() -> Response:
        ready = await transformer.check_ready()
        body = {"ready": ready, "store": transformer.store.url}
        if not ready:
            body["error"] = f"the feature store {transformer.store.url} is not reachable"
        return json_response(body, 200 if ready else HTTPStatus.SERVICE_UNAVAILABLE)

    async def server_metadata() -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": ["binary_tensor_data"]}

    async def model_metadata(model_name: str) -> dict[str, Any]:
        check(model_name)
        return transformer.metadata()

    async def model_ready(model_name: str) -> Response:
        check(model_name)
        ready = await transformer.check_ready()
        return json_response({"name": name, "ready": ready}, 200 if ready else 503)

    async def infer(request: Request) -> Response:
        check(request.path_params["model_name"])
        parsed = await read_infer_request(request)
        outputs, _ = await transformer(parsed)  # kserve's Model.__call__: pre-process, predict, post-process
        content, headers = v2.write_response(
            parsed, outputs, name, outputs.model_version(transformer.version)
        )
        return Response(content=content, headers=headers)

    async def score(request: Request) -> Response:
        payload = await body_json(request)
        single = isinstance(payload, dict)
        outputs, _ = await transformer([payload] if single else payload)
        answers = outputs.answers()
        return json_response(answers[0] if single else answers)

    async def ingest(request: Request) -> Response:
        try:
            tokens.check(request.headers.get("authorization"))
        except Unauthorized:
            transformer.metrics.ingest_rejected.labels("unauthorized").inc()
            raise
        payload = await body_json(request)
        received, result = await transformer.ingest(payload)
        return json_response({"received": received, "added": result.added, "duplicates": result.duplicates})

    async def metrics(request: Request) -> Response:
        body, content_type = transformer.metrics.render(request.headers.get("accept"))
        return Response(content=body, headers={"content-type": content_type})

    tag = ["V2"]
    app.add_api_route("/", live, methods=["GET"], tags=tag)
    app.add_api_route("/v2/health/live", live, methods=["GET"], tags=tag)
    app.add_api_route("/v2/health/ready", server_ready, methods=["GET"], tags=tag)
    if role in ("all", "score"):
        app.add_api_route("/v2", server_metadata, methods=["GET"], tags=tag)
        app.add_api_route("/v2/models/{model_name}", model_metadata, methods=["GET"], tags=tag)
        app.add_api_route("/v2/models/{model_name}/ready", model_ready, methods=["GET"], tags=tag)
        app.router.routes.append(Route("/v2/models/{model_name}/infer", infer, methods=["POST"]))
        app.router.routes.append(Route("/score", score, methods=["POST"]))
        app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    if role in ("all", "ingest"):
        app.router.routes.append(Route("/v1/transactions", ingest, methods=["POST"]))
    add_error_handlers(app)
    app.openapi = lambda: _openapi(app, transformer, role)  # type: ignore[method-assign]
    app.add_middleware(LimitsMiddleware, connections=connections, max_request_bytes=settings.max_request_bytes,
                       body_timeout_seconds=settings.body_timeout_seconds)  # fmt: skip
    app.add_middleware(
        RequestMetricsMiddleware, metrics=lambda: transformer.metrics, default_model=transformer.name
    )
    return app


# ---------------------------------------------------------------------------------------------- OpenAPI


def transaction_schema() -> dict[str, Any]:
    """A raw Xente transaction as ``/score`` and ``/v1/transactions`` take it (the rules of
    :mod:`credit_features.records`, as far as JSON Schema can say them)."""
    properties: dict[str, Any] = {}
    for name in RAW_COLUMNS:
        if name in AMOUNT_COLUMNS:
            properties[name] = {"type": "number", "minimum": 0 if name == "Value" else -AMOUNT_LIMIT,
                                "maximum": AMOUNT_LIMIT}  # fmt: skip
        elif name in INTEGER_COLUMNS:
            properties[name] = {"type": "integer", **({"enum": [0, 1]} if name == "FraudResult" else {})}
        elif name == "ProductCategory":
            properties[name] = {"type": "string", "enum": list(PRODUCT_CATEGORIES)}
        elif name == TIME_COLUMN:
            properties[name] = {"type": "string", "format": "date-time", "example": records.TIME_EXAMPLE}
        else:
            properties[name] = {"type": "string", "minLength": 1, "pattern": r"\S"}
    return {"type": "object", "required": list(records.REQUIRED_FIELDS), "properties": properties,
            "additionalProperties": False}  # fmt: skip


def _openapi(app: FastAPI, transformer: TransactionTransformer, role: Role) -> dict[str, Any]:
    """FastAPI's document for the API routes plus the plain Starlette ones: /score, /v1/transactions and
    V2 infer (kserve's InferenceRequest/InferenceResponse schemas), with their error answers."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, routes=app.routes,
        description="Credit-risk transformer: raw Xente transactions scored with features from the online "
        "feature store, by the predictor behind it.",
    )  # fmt: skip
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Transaction"] = transaction_schema()
    one = {"$ref": "#/components/schemas/Transaction"}
    many = {"type": "array", "items": one, "minItems": 1, "maxItems": transformer.settings.max_batch_rows}
    paths = document["paths"]
    answer = {"type": "object", "required": ["transaction_id", "probability", "risk_level", "decision",
                                             "model_version", "first_seen", "features"]}  # fmt: skip
    failures = {k: v for k, v in ERROR_RESPONSES.items() if k != "404"}
    if role in ("all", "score"):
        for schema_type in (InferenceRequest, InferenceResponse):
            schema = schema_type.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[schema_type.__name__] = schema
        paths["/score"] = {"post": {
            "tags": ["scoring"], "summary": "Score one raw transaction, or a list", "operationId": "score",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [one, many]}}}},
            "responses": {"200": {"description": "one answer per transaction (a list for a list)", "content": {
                "application/json": {"schema": {"oneOf": [answer, {"type": "array", "items": answer}]}}}},
                **failures},
        }}  # fmt: skip
        paths["/v2/models/{model_name}/infer"] = {"post": {
            "tags": ["V2"], "summary": "Infer on raw transaction tensors (one per Xente field)", "operationId": "infer",
            "parameters": [{"name": "model_name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}}},
            "responses": {"200": {"description": "the decisions (and, if asked, the features)", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/InferenceResponse"}}}},
                **ERROR_RESPONSES},
        }}  # fmt: skip
    if role in ("all", "ingest"):
        document["components"]["securitySchemes"] = {"producer": {"type": "http", "scheme": "bearer"}}
        paths["/v1/transactions"] = {"post": {
            "tags": ["ingestion"], "summary": "Ingest completed transactions (idempotent by TransactionId)",
            "operationId": "ingest", "security": [{"producer": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": many}}},
            "responses": {
                "200": {"description": "received, added and already stored", "content": {"application/json": {
                    "schema": {"type": "object", "required": ["received", "added", "duplicates"]}}}},
                "401": {"description": "no bearer token, or not the producer's", "content": ERROR_RESPONSES["400"]["content"]},
                "403": {"description": "ingestion is disabled (no token file)", "content": ERROR_RESPONSES["400"]["content"]},
                "409": {"description": "a TransactionId already stored with another amount; nothing written",
                        "content": ERROR_RESPONSES["400"]["content"]},
                **failures,
            },
        }}  # fmt: skip
    app.openapi_schema = document
    return document
