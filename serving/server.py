"""kserve's ``ModelServer`` serving the credit-risk model, with the REST application completed.

kserve provides the worker processes, the health, readiness and server-metadata endpoints, and
``Model.__call__`` with its built-in latency histograms. On top, the application here adds what a bank's
platform needs and kserve lacks out of the box:

* The V2 infer route, JSON and binary tensors, parsed and written with orjson and answering every
  malformed request with 400 ``{"error": ...}`` (kserve's own route answers some with FastAPI's 422
  ``{"detail": ...}`` or with 500, and spends two thirds of a one-row request on parsing and encoding).
* Versioned V2 paths (``/v2/models/NAME/versions/V[/ready|/infer]``) served for the loaded version (404
  for another) instead of kserve's 501; model metadata lists the version and platform.
* ``/metrics`` aggregated over all workers, with drift gauges (:mod:`serving.metrics`).
* The original API: ``POST /predict`` and ``GET /health`` (:mod:`serving.protocol.legacy`).
* A request body limit (413), request count / latency metrics by route, model and status, and one log
  line per client error instead of kserve's ERROR-level traceback.

kserve builds its REST servers from two names in ``kserve.model_server``; :class:`CreditRiskModelServer`
points them at the subclasses below before starting. Worker processes receive these objects pickled, so
the same application is built in every worker.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import logging
import socket
import termios
from http import HTTPStatus
from typing import Any

import kserve.model_server as kserve_model_server
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from kserve import ModelServer
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess, RESTServerProcess
from kserve.protocol.rest.server import RESTServer
from kserve.protocol.rest.v2_endpoints import V2Endpoints

from serving.errors import PayloadTooLarge, ServingError, VersionNotServed
from serving.metrics import RequestMetricsMiddleware
from serving.model import CreditRiskModel
from serving.protocol import legacy, v2

log = logging.getLogger(__name__)


class CreditRiskRESTServer(RESTServer):
    """kserve's REST server with the predictor's routes, limits, error bodies and metrics, run by a
    :class:`DrainingServer`."""

    def create_application(self) -> None:
        # kserve's run() (a worker process) and start() (--workers 1) both build the app here, then serve.
        self._server = DrainingServer(self.config)
        super().create_application()

    def _credit_risk_model(self) -> CreditRiskModel:
        for model in self.dataplane.model_registry.get_models().values():
            if isinstance(model, CreditRiskModel):
                return model
        raise RuntimeError("no CreditRiskModel is registered with the model server")

    def _add_middlewares(self, app: FastAPI) -> None:
        # kserve's own middleware only logs timings; the metrics middleware measures the same and more.
        model = self._credit_risk_model()
        # One log line per request costs as much as scoring a row; the metrics count every request anyway.
        logging.getLogger("uvicorn.access").disabled = not model.settings.access_log
        app.add_middleware(BodyLimitMiddleware, limit=model.settings.max_request_bytes)
        app.add_middleware(RequestMetricsMiddleware, metrics=lambda: model.metrics, default_model=model.name)

    def _register_endpoints(self, app: FastAPI) -> None:
        # Registered first, so these win over kserve's routes for the same paths.
        model = self._credit_risk_model()
        register_endpoints(app, model, V2Endpoints(self.dataplane, self.model_repository_extension))
        super()._register_endpoints(app)
        document_openapi(app, model)

    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        # Client errors: the V2 body and one log line, not kserve's ERROR-level traceback per bad request.
        app.add_exception_handler(RequestValidationError, _invalid_body_handler)
        app.add_exception_handler(ServingError, _client_error_handler)
        app.add_exception_handler(InvalidInput, _client_error_handler)
        app.add_exception_handler(ModelNotFound, _client_error_handler)


class CreditRiskRESTServerMultiProcess(RESTServerMultiProcess):
    """kserve's multi-worker server, building each worker's application with :class:`CreditRiskRESTServer`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rest_server.__class__ = CreditRiskRESTServer

    def init_processes(self, sockets: list[socket.socket]) -> None:
        self._listeners = sockets
        super().init_processes(sockets)

    async def terminate_all(self) -> None:
        """Close the parent's copy of the listening socket before stopping the workers: kserve keeps it
        until the parent exits, so while the workers drain, the kernel went on completing new connections
        that nobody would accept — held, then reset up to the grace period later, instead of refused."""
        for listener in getattr(self, "_listeners", []):
            listener.close()
        await super().terminate_all()

    async def keep_subprocess_alive(self, sockets: list) -> None:
        """Replace a worker that exited; leave a running one alone.

        kserve pings every worker over a pipe with a blocking 5 s wait inside the event loop and kills
        any that does not answer — including one still importing at start-up, so a SIGTERM in the first
        seconds left the parent stuck restarting workers until SIGKILL. A worker that hangs while running
        is the liveness probe's to catch.
        """
        for index, process in enumerate(self._processes):
            if self.should_exit.is_set():
                return
            if process._process.exitcode is None:
                continue
            log.warning(
                "worker %s exited with code %s; starting a new one", process.pid, process._process.exitcode
            )
            replacement = RESTServerProcess(
                sockets, self._rest_server.run, log_config_file=self.log_config_file
            )
            replacement.start()
            self._processes[index] = replacement


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a shutdown that drops no request sent on a kept-alive connection.

    uvicorn's own shutdown closes every connection with no request in progress at once. A connection whose
    next request already sits unread in its socket (the worker was busy scoring) is then closed with
    unread data, which the kernel answers with a TCP reset: the client loses a request it sent before the
    signal. Here, once the listeners are closed, every answer carries ``Connection: close`` (so each
    connection ends cleanly after its current or next request), and the server itself closes a connection
    only when it is idle, nothing waits unread in its socket, and it has stayed so for ``idle_seconds`` —
    time for a client in mid-exchange to send its next request. Then uvicorn's shutdown proper: wait for
    the running requests, up to the grace period.
    """

    idle_seconds = 0.5
    tick_seconds = 0.02

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        state = self.server_state
        state.default_headers = [
            *state.default_headers,
            (b"connection", b"close"),
        ]  # read by each new request
        loop = asyncio.get_running_loop()
        grace = self.config.timeout_graceful_shutdown  # None: uvicorn waits for as long as it takes
        deadline = loop.time() + (grace if grace is not None else float("inf"))
        idle_since: dict[Any, float] = {}
        while loop.time() < deadline:
            waiting = False  # for an idle connection to time out, or an unread request to be read
            now = loop.time()
            for connection in list(state.connections):
                cycle = getattr(connection, "cycle", None)
                if cycle is not None and not cycle.response_complete:  # answering: closes after it
                    cycle.keep_alive = False
                    idle_since.pop(connection, None)
                elif getattr(connection, "pipeline", None) or _unread_bytes(connection.transport):
                    idle_since.pop(connection, None)  # a request is waiting: it is read and answered next
                    waiting = True
                elif now - idle_since.setdefault(connection, now) >= self.idle_seconds:
                    connection.transport.close()
                else:
                    waiting = True
            if not waiting:
                break
            await asyncio.sleep(self.tick_seconds)
        if grace is not None:  # uvicorn's wait for the running requests gets the rest of the grace period
            self.config.timeout_graceful_shutdown = max(0.0, deadline - loop.time())  # type: ignore[assignment]
        await super().shutdown(sockets)


def _unread_bytes(transport: asyncio.Transport) -> int:
    """Bytes the kernel holds for this connection that the server has not read yet (FIONREAD)."""
    sock = transport.get_extra_info("socket")
    if sock is None or transport.is_closing():
        return 0
    count = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    except OSError:
        return 0
    return count[0]


class CreditRiskModelServer(ModelServer):
    """``kserve.ModelServer`` that serves with :class:`CreditRiskRESTServer`."""

    def start(self, models: list) -> None:
        kserve_model_server.RESTServer = CreditRiskRESTServer
        kserve_model_server.RESTServerMultiProcess = CreditRiskRESTServerMultiProcess
        super().start(models)


# -------------------------------------------------------------------------------------------------- routes


def register_endpoints(app: FastAPI, model: CreditRiskModel, endpoints: V2Endpoints) -> None:
    def check(model_name: str, model_version: str | None = None) -> None:
        if model_name != model.name:
            raise ModelNotFound(model_name)
        if model_version is not None and model_version != model.version:
            raise VersionNotServed(
                f"model {model_name} version {model_version} is not served here; this server serves version "
                f"{model.version}"
            )

    async def metrics(request: Request) -> Response:
        if model.metrics is None:
            raise ModelNotReady(model.name)
        body, content_type = model.metrics.render(request.headers.get("accept"))
        return Response(content=body, headers={"content-type": content_type})

    async def metadata(model_name: str, model_version: str | None = None) -> dict[str, Any]:
        check(model_name, model_version)
        return {
            "name": model.name,
            "versions": [model.version],
            "platform": "onnxruntime_onnx",
            "inputs": model.get_input_types(),
            "outputs": model.get_output_types(),
        }

    async def ready(model_name: str, model_version: str | None = None) -> Any:
        """Model readiness; the version comes from the path or the ``model_version`` query parameter
        (kserve answers that one with 501 "Model versioning not supported yet")."""
        check(model_name, model_version)
        return await endpoints.model_ready(model_name)

    async def infer(request: Request) -> Response:
        """V2 inference, JSON or binary tensors, through kserve's ``Model.__call__`` (its built-in
        histograms included). Parsed and written with orjson: kserve's own route parses with the standard
        library, validates twice with pydantic and encodes with FastAPI's pure-Python ``jsonable_encoder``
        — two thirds of a one-row request's time — and answers malformed input with 422 or 500."""
        check(request.path_params["model_name"], request.path_params.get("model_version"))
        if not model.ready:
            raise ModelNotReady(model.name)
        body = await request.body()
        header_length = request.headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        if header_length is None:
            infer_request = v2.read_json_request(body, model.name)
        else:
            infer_request = v2.read_binary_request(body, header_length, model.name)
        response, _ = await model(infer_request)
        content, headers = v2.write_response(infer_request, response)
        return Response(content=content, headers=headers)

    async def predict(request: Request) -> Response:
        if not model.ready:
            raise ModelNotReady(model.name)
        rows, single = legacy.decode(
            await request.body(), model.contract.feature_names, model.settings.max_batch_rows
        )
        return _json(legacy.encode(model.score(rows), model.version, single))

    async def health() -> dict[str, Any]:
        return {
            "status": "alive",
            "ready": model.ready,
            "model_name": model.name,
            "model_version": model.version,
        }

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.add_api_route("/v2/models/{model_name}", metadata, methods=["GET"], tags=["V2"])
    app.add_api_route(
        "/v2/models/{model_name}/versions/{model_version}", metadata, methods=["GET"], tags=["V2"]
    )
    app.add_api_route("/v2/models/{model_name}/ready", ready, methods=["GET"], tags=["V2"])
    app.add_api_route(
        "/v2/models/{model_name}/versions/{model_version}/ready", ready, methods=["GET"], tags=["V2"]
    )
    app.add_route("/v2/models/{model_name}/infer", infer, methods=["POST"])
    app.add_route("/v2/models/{model_name}/versions/{model_version}/infer", infer, methods=["POST"])

    async def repository(request: Request) -> Response:
        """kserve's model repository extension would let any caller unload the model over plain HTTP
        (scoring then answers 503 while the health checks stay green): this server loads its one model at
        start-up, so these routes, registered before kserve's, answer 404."""
        return _json({"error": f"the model repository extension is disabled: {request.url.path}"}, 404)

    async def explain(request: Request) -> Response:
        # kserve answers 501 (a server error, which would count towards the error-ratio alert).
        return _json({"error": "this predictor has no explainer"}, 404)

    for action in ("load", "unload"):
        app.add_route(f"/v2/repository/models/{{model_name}}/{action}", repository, methods=["POST"])
    app.add_route("/v1/models/{model_name}:explain", explain, methods=["POST"])
    app.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        tags=["legacy"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": legacy.request_schema(len(model.contract.feature_names))}
                },
            },
            "responses": _ERROR_RESPONSES,
        },
    )
    app.add_api_route("/health", health, methods=["GET"], tags=["legacy"])


# -------------------------------------------------------------------------------------------------- OpenAPI

_ERROR = {"application/json": {"schema": {"type": "object", "required": ["error"],
                                          "properties": {"error": {"type": "string"}}}}}  # fmt: skip
_ERROR_RESPONSES = {
    "400": {"description": "bad input: what is wrong is in 'error'", "content": _ERROR},
    "404": {"description": "unknown model or version", "content": _ERROR},
    "413": {"description": "the body exceeds --max-request-bytes", "content": _ERROR},
    "503": {"description": "the model is not ready", "content": _ERROR},
}
_INFER = "/v2/models/{model_name}/infer"
_INFER_VERSIONED = "/v2/models/{model_name}/versions/{model_version}/infer"


def document_openapi(app: FastAPI, model: CreditRiskModel) -> None:
    """Make ``/openapi.json`` describe the served infer routes (plain Starlette routes, for speed, so FastAPI
    leaves kserve's description in place): the error answers instead of kserve's 422, the binary tensor
    extension, and the versioned path."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        paths = document.get("paths", {})
        for path in [p for p in paths if p.startswith("/v2/repository/") or p.endswith(":explain")]:
            del paths[path]  # disabled (see register_endpoints)
        operation = paths.get(_INFER, {}).get("post")
        if operation is not None:
            operation["responses"] = {
                "200": operation.get("responses", {}).get("200", {"description": "the scores"}),
                **_ERROR_RESPONSES,
            }
            operation.setdefault("requestBody", {}).setdefault("content", {})["application/octet-stream"] = {
                "schema": {"type": "string", "format": "binary"},
                "x-description": "the binary tensor extension: a JSON header of Inference-Header-Content-Length "
                "bytes, then each input's raw little-endian data",
            }
            operation["parameters"] = [
                *(p for p in operation.get("parameters", []) if p.get("name") != "model_version"),
                {"name": "Inference-Header-Content-Length", "in": "header", "required": False,
                 "schema": {"type": "integer", "minimum": 0}},
            ]  # fmt: skip
            versioned = orjson.loads(orjson.dumps(operation))
            versioned["operationId"] = f"{operation.get('operationId', 'infer')}_versioned"
            versioned["parameters"].append(
                {"name": "model_version", "in": "path", "required": True, "schema": {"type": "string"}}
            )
            paths[_INFER_VERSIONED] = {"post": versioned}
        document["info"]["description"] = (
            f"Credit-risk predictor for model {model.name} version {model.version}: Open Inference Protocol (V2) "
            "and the original /predict API."
        )
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


# -------------------------------------------------------------------------------------------------- errors


_CLIENT_STATUS = {InvalidInput: HTTPStatus.BAD_REQUEST, ModelNotFound: HTTPStatus.NOT_FOUND}


def _json(content: object, status: int = 200) -> Response:
    return Response(content=orjson.dumps(content), status_code=status, media_type="application/json")


async def _client_error_handler(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status", None) or next(
        s for cls, s in _CLIENT_STATUS.items() if isinstance(exc, cls)
    )
    log.info("%d %s %s: %s", status, request.method, request.url.path, exc)
    return _json({"error": str(exc)}, status)


async def _invalid_body_handler(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's body validation (malformed JSON, a V2 body missing fields) as a V2 400 error."""
    errors = list(exc.errors())
    # The V2 body is declared "InferenceRequest or raw bytes": the bytes alternative's complaint is noise.
    errors = [e for e in errors if "bytes" not in e.get("loc", ())] or errors
    problems = []
    for error in errors[:5]:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "InferenceRequest")]
        detail = error.get("ctx", {}).get("error")
        if error.get("type") == "json_invalid":
            where = f"JSON at position {loc[0]}" if loc else "JSON"
            problems.append(f"malformed {where}{f': {detail}' if detail else ''}")
        else:
            problems.append(f"{'.'.join(loc) or 'body'}: {error.get('msg')}")
    message = "invalid inference request: " + "; ".join(problems)
    log.info("400 %s %s: %s", request.method, request.url.path, message)
    return _json({"error": message}, HTTPStatus.BAD_REQUEST)


# -------------------------------------------------------------------------------------------------- body limit


class BodyLimitMiddleware:
    """Refuses request bodies above ``limit`` bytes with 413, before the application reads them."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                # Read (and drop) what the client is sending, so it sees the 413 rather than a reset
                # connection; a client that keeps sending far past the limit is cut off.
                await _drain(receive, 4 * self.limit)
                await _reject(send, self.limit)
                return
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): read up to the limit, then replay the body to the application.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await _reject(send, self.limit)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _drain(receive: Any, cap: int) -> None:
    seen = 0
    while seen <= cap:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _reject(send: Any, limit: int) -> None:
    error = PayloadTooLarge(f"the request body exceeds the limit of {limit:,} bytes: send smaller batches")
    body = orjson.dumps({"error": str(error)})
    await send(
        {
            "type": "http.response.start",
            "status": int(error.status),
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
