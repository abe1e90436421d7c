"""The predictor's HTTP application: every route, error handler and middleware, in one :func:`create_app`.

Built on FastAPI and Starlette's public APIs only. kserve is the model SDK (``kserve.Model``, whose
``__call__`` records its latency histograms) and provides the protocol's schema types; the application
itself is ours, so a kserve release cannot change a route, a status code or an error body.

Routes (``/openapi.json`` documents them):

=====================================================  ============================================
``GET /``, ``GET /v2/health/live``                      liveness
``GET /v2/health/ready``                                readiness (the model is loaded)
``GET /v2``                                             server metadata, the extensions served
``GET /v2/models/NAME[/versions/V]``                    model metadata
``GET /v2/models/NAME[/versions/V]/ready``              model readiness
``POST /v2/models/NAME[/versions/V]/infer``             V2 inference, JSON or binary tensors
``POST /predict``, ``GET /health``                      the original API (:mod:`serving.protocol.legacy`)
``GET /metrics``                                        Prometheus, aggregated over all workers
=====================================================  ============================================

Every error body is ``{"error": "..."}`` — unknown routes (404), wrong methods (405, with ``Allow``),
limits (408, 413, 503) and protocol errors (400) alike — which tritonclient and the V2 spec expect.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from kserve.protocol.rest.v2_datamodels import InferenceRequest, InferenceResponse
from starlette.exceptions import HTTPException
from starlette.routing import Route

from serving import SERVER_NAME, __version__
from serving.errors import ModelNotFound, ModelNotReady, RouteNotFound, ServingError, VersionNotServed
from serving.limits import Connections, LimitsMiddleware
from serving.metrics import RequestMetricsMiddleware
from serving.model import CreditRiskModel
from serving.protocol import legacy, v2

log = logging.getLogger(__name__)

EXTENSIONS = ("binary_tensor_data",)  # the V2 extensions this server implements (the binary tensor data one)
BINARY_HEADER = "inference-header-content-length"


def create_app(model: CreditRiskModel, connections: Connections | None = None) -> FastAPI:
    """The application serving ``model`` (loaded or not: routes answer 503 until it is ready).

    ``connections`` is the worker's connection registry (:mod:`serving.limits`); without one (an in-process
    test client) the body limit and timeouts still apply, the connection cap and draining do not.
    """
    settings = model.settings
    app = FastAPI(
        title="credit-risk predictor",
        version=__version__,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )

    def check(model_name: str, model_version: str | None = None) -> None:
        if model_name != model.name:
            raise ModelNotFound(model_name, model.name)
        if model_version is not None and model_version != model.version:
            raise VersionNotServed(
                f"model {model_name} version {model_version} is not served here; this server serves version "
                f"{model.version}"
            )

    def require_ready() -> None:
        if not model.ready:
            raise ModelNotReady(f"model {model.name} is not ready yet: retry shortly")

    async def live() -> dict[str, Any]:
        return {"live": True}

    async def server_ready() -> Response:
        return json_response({"ready": model.ready}, 200 if model.ready else HTTPStatus.SERVICE_UNAVAILABLE)

    async def server_metadata() -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}

    async def model_metadata(model_name: str, model_version: str | None = None) -> dict[str, Any]:
        check(model_name, model_version)
        return model.metadata()

    async def model_ready(model_name: str, model_version: str | None = None) -> Response:
        check(model_name, model_version)
        return json_response({"name": model.name, "ready": model.ready}, 200 if model.ready else 503)

    async def infer(request: Request) -> Response:
        """V2 inference (a plain Starlette route: no pydantic pass over a body the codec checks anyway)."""
        check(request.path_params["model_name"], request.path_params.get("model_version"))
        require_ready()
        infer_request = await read_infer_request(request)
        outputs, _ = await model(infer_request)  # kserve's Model.__call__: (result, response headers)
        content, headers = v2.write_response(
            infer_request, outputs, model.name, outputs.model_version(model.version)
        )
        return Response(content=content, headers=headers)

    async def predict(request: Request) -> Response:
        require_ready()
        assert model.contract is not None
        rows, single = legacy.decode(
            await request.body(), model.contract.feature_names, settings.max_batch_rows
        )
        return json_response(legacy.encode(model.score(rows), model.version, single))

    async def health() -> dict[str, Any]:
        return {
            "status": "alive",
            "ready": model.ready,
            "model_name": model.name,
            "model_version": model.version,
        }

    async def metrics(request: Request) -> Response:
        if model.metrics is None:
            raise ModelNotReady(f"model {model.name} is not loaded: no metrics yet")
        body, content_type = model.metrics.render(request.headers.get("accept"))
        return Response(content=body, headers={"content-type": content_type})

    v2_tag = ["V2"]
    app.add_api_route("/", live, methods=["GET"], tags=v2_tag)  # KServe's liveness path
    app.add_api_route("/v2", server_metadata, methods=["GET"], tags=v2_tag)
    app.add_api_route("/v2/health/live", live, methods=["GET"], tags=v2_tag)
    app.add_api_route("/v2/health/ready", server_ready, methods=["GET"], tags=v2_tag)
    for prefix in ("/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}"):
        app.add_api_route(prefix, model_metadata, methods=["GET"], tags=v2_tag)
        app.add_api_route(f"{prefix}/ready", model_ready, methods=["GET"], tags=v2_tag)
        app.router.routes.append(Route(f"{prefix}/infer", infer, methods=["POST"]))
    app.add_api_route("/predict", predict, methods=["POST"], tags=["legacy"],
                      openapi_extra=_predict_openapi(model))  # fmt: skip
    app.add_api_route("/health", health, methods=["GET"], tags=["legacy"])
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)

    add_error_handlers(app)

    # Each add_middleware wraps the ones before it: metrics, added last, see every answer, the limits' early
    # 413s included.
    app.add_middleware(LimitsMiddleware, connections=connections, max_request_bytes=settings.max_request_bytes,
                       body_timeout_seconds=settings.body_timeout_seconds)  # fmt: skip
    app.add_middleware(RequestMetricsMiddleware, metrics=lambda: model.metrics, default_model=model.name)
    app.openapi = lambda: _openapi(app, model)  # type: ignore[method-assign]
    return app


async def read_infer_request(request: Request) -> v2.Request:
    """A V2 inference request from the body: JSON, or the binary tensor extension when the
    ``Inference-Header-Content-Length`` header is there."""
    body = await request.body()
    header_length = request.headers.get(BINARY_HEADER)
    if header_length is None:
        return v2.read_json_request(body)
    return v2.read_binary_request(body, header_length)


# ---------------------------------------------------------------------------------------------- errors


def add_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": "..."}``: :class:`ServingError`\\ s with their status, routing errors (404,
    405), parameter validation (400) and anything unexpected (500, logged)."""
    app.add_exception_handler(ServingError, _serving_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _server_error)


def json_response(content: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(content), status_code=int(status), media_type="application/json", headers=headers
    )


async def _serving_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServingError)
    log.info("%d %s %s: %s", exc.status, request.method, request.url.path, exc)
    return json_response({"error": str(exc)}, exc.status, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's routing errors (404, 405) in the V2 error body."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == HTTPStatus.NOT_FOUND:
        message = str(RouteNotFound(f"no route {request.url.path}: see /openapi.json for the served routes"))
    elif exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        message = (
            f"{request.method} is not allowed on {request.url.path}; allowed: {exc.headers.get('Allow', '')}"
        )
    else:
        message = str(exc.detail)
    return json_response({"error": message}, exc.status_code, dict(exc.headers or {}))


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's parameter validation (path or query parameters) as a 400."""
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in list(exc.errors())[:5]
    ]
    message = "invalid request: " + "; ".join(problems)
    log.info("400 %s %s: %s", request.method, request.url.path, message)
    return json_response({"error": message}, HTTPStatus.BAD_REQUEST)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("500 %s %s", request.method, request.url.path)
    return json_response(
        {"error": f"internal error ({type(exc).__name__}); the server log has the details"}, 500
    )


# ---------------------------------------------------------------------------------------------- OpenAPI

_ERROR = {"application/json": {"schema": {"type": "object", "required": ["error"],
                                          "properties": {"error": {"type": "string"}}}}}  # fmt: skip
ERROR_RESPONSES = {
    "400": {"description": "bad input: what is wrong is in 'error'", "content": _ERROR},
    "404": {"description": "unknown model or version", "content": _ERROR},
    "408": {"description": "the body did not arrive in time", "content": _ERROR},
    "413": {"description": "the body exceeds --max-request-bytes", "content": _ERROR},
    "503": {
        "description": "the model is not ready, or the server is at its connection limit",
        "content": _ERROR,
    },
}


def _predict_openapi(model: CreditRiskModel) -> dict[str, Any]:
    width = len(model.contract.feature_names) if model.contract else 26
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": legacy.request_schema(width)}},
        },
        "responses": ERROR_RESPONSES,
    }


def _openapi(app: FastAPI, model: CreditRiskModel) -> dict[str, Any]:
    """FastAPI's document for the API routes, plus the infer routes (plain Starlette routes) described with
    kserve's V2 schema types, the binary tensor extension and the error answers."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=f"Credit-risk predictor for model {model.name} version {model.version}: Open Inference "
        "Protocol (V2) over HTTP (gRPC on its own port) and the original /predict API.",
        routes=app.routes,
    )
    for operations in document["paths"].values():  # parameter errors answer 400 {"error"}, not FastAPI's 422
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses["400"] = ERROR_RESPONSES["400"]
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    refs = {}
    for schema_type in (InferenceRequest, InferenceResponse):
        schema = schema_type.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[schema_type.__name__] = schema
        refs[schema_type.__name__] = {"$ref": f"#/components/schemas/{schema_type.__name__}"}
    for versioned in (False, True):
        parameters = [{"name": "model_name", "in": "path", "required": True, "schema": {"type": "string"}}]
        if versioned:
            parameters.append(
                {"name": "model_version", "in": "path", "required": True, "schema": {"type": "string"}}
            )
        parameters.append({"name": "Inference-Header-Content-Length", "in": "header", "required": False,
                           "schema": {"type": "integer", "minimum": 0}})  # fmt: skip
        path = "/v2/models/{model_name}" + ("/versions/{model_version}" if versioned else "") + "/infer"
        document["paths"][path] = {"post": {
            "tags": ["V2"],
            "summary": "Infer" + (" (a given version)" if versioned else ""),
            "operationId": "infer_versioned" if versioned else "infer",
            "parameters": parameters,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": refs["InferenceRequest"]},
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"},
                    "x-description": "the binary tensor extension: a JSON header of Inference-Header-Content-Length "
                    "bytes, then each input's raw little-endian data",
                },
            }},
            "responses": {"200": {"description": "the scores", "content": {
                "application/json": {"schema": refs["InferenceResponse"]},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            }}, **ERROR_RESPONSES},
        }}  # fmt: skip
    app.openapi_schema = document
    return document
