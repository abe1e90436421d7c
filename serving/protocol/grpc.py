"""The Open Inference Protocol (KServe V2) over gRPC: kserve's ``inference.GRPCInferenceService``, serving
one model object with the same codec, limits and metrics as the HTTP routes.

* :class:`InferenceServicer` answers ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata and
  ModelInfer (the repository extension is not served: UNIMPLEMENTED). A ``ModelInferRequest`` becomes a
  :class:`serving.protocol.v2.Request` — typed ``contents`` through :func:`v2.tensor_from_values`, or
  ``raw_input_contents`` through :func:`v2.tensor_from_bytes` — and the answer carries every output in
  ``raw_output_contents`` (little-endian; BYTES length-prefixed), which both ``tritonclient.grpc``'s
  ``InferResult.as_numpy`` and kserve's ``InferResponse.from_grpc`` decode.
* Every :class:`ServingError` aborts with its own ``grpc_code`` and message, capped at 2 kB (a client
  mistake is INVALID_ARGUMENT or NOT_FOUND, inference before the model is loaded UNAVAILABLE); anything
  else is a server bug: INTERNAL, logged with its traceback. A message over ``max_request_bytes`` is
  refused by grpc itself (RESOURCE_EXHAUSTED) before it reaches the servicer. Metadata, as over HTTP, is
  answered before the model is ready.
* Each RPC is counted in ``model.metrics`` under the route ``/inference.GRPCInferenceService/<Method>``
  with the HTTP equivalent of its status (200 for OK).

:func:`create_server` builds the (unstarted) ``grpc.aio`` server on ``settings.host:settings.grpc_port``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

import grpc
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

import serving
from serving.errors import (
    InvalidRequest,
    ModelNotFound,
    ModelNotReady,
    RouteNotFound,
    ServingError,
    VersionNotServed,
)
from serving.protocol import v2

log = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
UNKNOWN_MODEL = "unknown"  # the metrics label of a request naming a model not served here
MAX_DETAILS_BYTES = 2048  # percent-encoded in the grpc-message trailer: 6 kB at most

# The typed field of InferTensorContents each datatype travels in. FP16 has none: it goes raw only.
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_ALL_FIELDS = tuple(sorted(set(CONTENTS_FIELD.values())))

Response = TypeVar("Response")


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The V2 gRPC service for one model (``model.name``, ``model.version``); async, for ``grpc.aio``."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    # ------------------------------------------------------------------------------------------ health

    async def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext):
        return await self._answer("ServerLive", None, context, lambda: pb.ServerLiveResponse(live=True))

    async def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext):
        return await self._answer(
            "ServerReady", None, context, lambda: pb.ServerReadyResponse(ready=bool(self.model.ready))
        )

    async def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext):
        def ready() -> pb.ModelReadyResponse:
            self._served(request.name, request.version)
            return pb.ModelReadyResponse(ready=bool(self.model.ready))

        return await self._answer("ModelReady", request.name, context, ready)

    # ------------------------------------------------------------------------------------------ metadata

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext):
        return await self._answer(
            "ServerMetadata",
            None,
            context,
            lambda: pb.ServerMetadataResponse(
                name=serving.SERVER_NAME, version=serving.__version__, extensions=[]
            ),
        )

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext):
        def metadata() -> pb.ModelMetadataResponse:  # answered before the model is ready, as over HTTP
            self._served(request.name, request.version)
            document = self.model.metadata()
            tensor = pb.ModelMetadataResponse.TensorMetadata
            inputs, outputs = document.pop("inputs"), document.pop("outputs")
            return pb.ModelMetadataResponse(
                **document, inputs=[tensor(**t) for t in inputs], outputs=[tensor(**t) for t in outputs]
            )

        return await self._answer("ModelMetadata", request.name, context, metadata)

    # ------------------------------------------------------------------------------------------ inference

    async def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext):
        async def infer() -> pb.ModelInferResponse:
            self._served(request.model_name, request.model_version)
            self._ready()
            parsed = read_request(request)
            outputs, _ = await self.model(parsed)  # kserve's Model.__call__: (result, response headers)
            return write_response(parsed, outputs, self.model.name, outputs.model_version(self.model.version))

        return await self._answer("ModelInfer", request.model_name, context, infer)

    # ------------------------------------------------------------------------------------------ not served

    async def RepositoryModelLoad(self, request: pb.RepositoryModelLoadRequest, context):
        return await self._answer("RepositoryModelLoad", request.model_name, context, _no_repository)

    async def RepositoryModelUnload(self, request: pb.RepositoryModelUnloadRequest, context):
        return await self._answer("RepositoryModelUnload", request.model_name, context, _no_repository)

    # ------------------------------------------------------------------------------------------ plumbing

    def _served(self, name: str, version: str) -> None:
        """``name`` must be the served model; an empty ``version`` means the served one."""
        if name != self.model.name:
            raise ModelNotFound(name, self.model.name)
        if version and version != self.model.version:
            raise VersionNotServed(
                f"model '{self.model.name}' has no version {v2.describe(version)} here; "
                f"this server serves version '{self.model.version}'"
            )

    def _ready(self) -> None:
        if not self.model.ready:
            raise ModelNotReady(f"model '{self.model.name}' is not loaded yet: retry later")

    async def _answer(
        self,
        method: str,
        model_name: str | None,
        context: grpc.aio.ServicerContext,
        handler: Callable[[], Response | Awaitable[Response]],
    ) -> Response:
        """Run ``handler``, count the RPC, and turn errors into gRPC statuses."""
        started = time.perf_counter()
        label = self.model.name if model_name is None or model_name == self.model.name else UNKNOWN_MODEL
        route = f"/{SERVICE}/{method}"
        try:
            response = handler()
            if isinstance(response, Awaitable):
                response = await response
        except ServingError as error:
            self._record(route, label, error.status, started)
            await context.abort(error.grpc_code, _details(str(error)))
        except Exception:
            log.exception("gRPC %s failed", method)
            self._record(route, label, HTTPStatus.INTERNAL_SERVER_ERROR, started)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal server error in {method} (logged)")
        self._record(route, label, HTTPStatus.OK, started)
        return response

    def _record(self, route: str, label: str, status: int, started: float) -> None:
        metrics = self.model.metrics
        if metrics is not None:
            metrics.record(route, label, int(status), time.perf_counter() - started)


def _no_repository() -> None:
    raise RouteNotFound("the model repository extension is not served: this server serves one model")


# ---------------------------------------------------------------------------------------------- the codec


def read_request(request: pb.ModelInferRequest) -> v2.Request:
    """A :class:`v2.Request` from a ``ModelInferRequest``: every input from its typed ``contents`` or, when
    the request carries ``raw_input_contents``, every input from its raw bytes (the spec allows no mix)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidRequest(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs: with raw contents, "
            "every input has exactly one"
        )
    inputs = []
    for i, tensor in enumerate(request.inputs):
        where = f"inputs[{i}]"
        shape = list(tensor.shape)
        if raw:
            if tensor.HasField("contents"):
                raise InvalidRequest(
                    f"{where} {v2.quoted_name(tensor.name)} has contents while the request carries "
                    "raw_input_contents: send every input raw or none"
                )
            inputs.append(v2.tensor_from_bytes(tensor.name, tensor.datatype, shape, raw[i], where))
        else:
            values = _contents(tensor, where)
            # typed contents hold no stray booleans: the codec can skip looking for them
            inputs.append(
                v2.tensor_from_values(tensor.name, tensor.datatype, shape, values, where, booleans=False)
            )
    outputs = tuple(v2.RequestedOutput(name=o.name, binary=None) for o in request.outputs)
    return v2.Request(
        id=request.id,
        inputs=tuple(inputs),
        outputs=outputs or None,
        binary_output=False,  # binary_data_output is an HTTP extension: over gRPC every output is raw
        parameters=_parameters(request.parameters),
    )


def _contents(tensor: pb.ModelInferRequest.InferInputTensor, where: str) -> list:
    """The values of ``tensor`` from the one ``*_contents`` field its datatype travels in."""
    datatype = tensor.datatype
    if datatype not in v2.DATATYPES:
        return []  # the codec refuses the datatype itself, with the message (and hint) HTTP clients get
    label = f"{where} {v2.quoted_name(tensor.name)} ({datatype})"
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidRequest(
            f"{label}: {datatype} has no typed contents field over gRPC; send it in raw_input_contents"
        )
    contents = tensor.contents
    wrong = [f for f in _ALL_FIELDS if f != field and len(getattr(contents, f))]
    if wrong:
        raise InvalidRequest(f"{label}: values are in {', '.join(wrong)}; {datatype} values go in {field}")
    if not tensor.HasField("contents"):
        raise InvalidRequest(
            f"{label}: has no contents; send its values in contents.{field}, or every input in "
            "raw_input_contents"
        )
    return list(getattr(contents, field))


def _details(message: str) -> str:
    """The status message, at most ``MAX_DETAILS_BYTES`` of UTF-8: it travels in a trailer, and a client
    refuses trailers over 8-16 kB (a status it would never see: it reports RESOURCE_EXHAUSTED instead)."""
    encoded = message.encode()
    if len(encoded) <= MAX_DETAILS_BYTES:
        return message
    return encoded[: MAX_DETAILS_BYTES - 3].decode(errors="ignore") + "…"


def _parameters(parameters: Any) -> dict[str, object]:
    """The request's ``InferParameter`` map as plain values (a parameter with no value: None)."""
    out: dict[str, object] = {}
    for key, parameter in parameters.items():
        which = parameter.WhichOneof("parameter_choice")
        out[key] = getattr(parameter, which) if which else None
    return out


def write_response(
    request: v2.Request, outputs: v2.Outputs, model_name: str, model_version: str
) -> pb.ModelInferResponse:
    """The requested outputs (or all four), each in ``raw_output_contents`` in the same order."""
    answer = v2.response_outputs(request, outputs)
    tensor = pb.ModelInferResponse.InferOutputTensor
    return pb.ModelInferResponse(
        model_name=model_name,
        model_version=model_version,
        id=request.id or "",  # proto3 cannot tell an absent id from "": what was sent comes back
        outputs=[tensor(name=n, datatype=d, shape=list(data.shape)) for n, d, data, _ in answer],
        raw_output_contents=[v2.raw_bytes(d, data) for _, d, data, _ in answer],
    )


# ---------------------------------------------------------------------------------------------- the server


def create_server(model: Any, settings: Any) -> grpc.aio.Server:
    """The gRPC server of ``model``, not started (call inside the running event loop that will serve it).

    Listens on ``settings.host:settings.grpc_port``; messages (both ways) up to ``settings.max_request_bytes``
    (grpc refuses larger ones with RESOURCE_EXHAUSTED, compressed ones by their decompressed size); a
    connection that has not finished its HTTP/2 (and TLS) handshake after ``settings.header_timeout_seconds``
    is closed (grpc's default waits 60 s); ``SO_REUSEPORT`` when ``settings.workers > 1``, so every worker
    process binds the same port; TLS when ``settings.ssl_certfile`` and ``ssl_keyfile`` are set, re-read when
    either file changes (a rotated certificate serves new connections without a restart).
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_request_bytes),
            # Answers are bounded by max_batch_rows; an echoed id can take one over the request's limit.
            ("grpc.max_send_message_length", -1),
            ("grpc.server_handshake_timeout_ms", max(1, round(settings.header_timeout_seconds * 1000))),
            ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ]
    )
    server.add_generic_rpc_handlers((_handlers(InferenceServicer(model)),))
    host = settings.host
    address = f"[{host}]:{settings.grpc_port}" if ":" in host else f"{host}:{settings.grpc_port}"
    certfile, keyfile = settings.ssl_certfile, settings.ssl_keyfile
    if certfile and keyfile:
        server.add_secure_port(address, tls_credentials(Path(certfile), Path(keyfile)))
    else:
        server.add_insecure_port(address)
    return server


class _Undecodable:
    """What the lenient deserializer hands over for bytes that are not the method's message."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _lenient(message_type: Any) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return message_type.FromString(data)
        except Exception as exc:  # protobuf's DecodeError, or invalid UTF-8 in a string field
            return _Undecodable(exc)

    return parse


def _tolerant(servicer: InferenceServicer, name: str, type_name: str) -> Callable[..., Awaitable[Any]]:
    behaviour = getattr(servicer, name)

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Undecodable):

            def refuse() -> None:
                raise InvalidRequest(f"the message is not a valid {type_name}: {request.error}")

            return await servicer._answer(name, None, context, refuse)
        return await behaviour(request, context)

    return call


def _handlers(servicer: InferenceServicer) -> grpc.GenericRpcHandler:
    """The service's method handlers, as kserve's generated ``add_..._to_server`` builds them but with a
    lenient deserializer: grpc answers UNKNOWN when deserializing fails, before any servicer code runs, and
    a message that does not decode is the client's mistake (INVALID_ARGUMENT), counted like any other."""
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    handlers = {}
    for method in service.methods:
        request_type = getattr(pb, method.input_type.name)
        response_type = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _tolerant(servicer, method.name, method.input_type.name),
            request_deserializer=_lenient(request_type),
            response_serializer=response_type.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


def tls_credentials(certfile: Path, keyfile: Path) -> grpc.ServerCredentials:
    """Server credentials from PEM files, re-read at each TLS handshake and swapped when they changed.

    The files' contents are compared, not their times (a few kB per new connection; a rotation that lands
    within the file system's timestamp granularity would otherwise go unseen)."""

    def read() -> tuple[bytes, bytes]:
        return keyfile.read_bytes(), certfile.read_bytes()

    current = {"pair": read()}

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        try:
            pair = read()
        except OSError as exc:  # mid-rotation: keep serving the previous certificate
            log.warning("TLS certificate reload failed (%s); keeping the current one", exc)
            return None
        if pair == current["pair"]:
            return None  # keep the configuration in use
        current["pair"] = pair
        log.info("TLS certificate reloaded from %s", certfile)
        return grpc.ssl_server_certificate_configuration([pair])

    return grpc.dynamic_ssl_server_credentials(
        grpc.ssl_server_certificate_configuration([current["pair"]]), fetch
    )
