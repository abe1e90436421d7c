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
from starlette.routing import Route

from serving import SERVER_NAME, __version__
from serving.app import add_error_handlers, json_response, read_infer_request
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
    app.add_middleware(LimitsMiddleware, connections=connections, max_request_bytes=settings.max_request_bytes,
                       body_timeout_seconds=settings.body_timeout_seconds)  # fmt: skip
    app.add_middleware(
        RequestMetricsMiddleware, metrics=lambda: transformer.metrics, default_model=transformer.name
    )
    return app
