"""Errors of the predictor. Each class carries the HTTP status and the gRPC status code it answers with;
``str(error)`` is the message a client reads (``{"error": ...}`` over HTTP, the status details over gRPC)."""

from __future__ import annotations

import json
from http import HTTPStatus

import grpc


class ServingError(Exception):
    """Base class of the errors a client can cause or be told about."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR
    grpc_code = grpc.StatusCode.INTERNAL
    headers: dict[str, str] | None = None  # sent with the HTTP answer


class InvalidRequest(ServingError):
    """Well-formed HTTP or gRPC, but not a valid scoring request: the message names the offending element."""

    status = HTTPStatus.BAD_REQUEST
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class ModelNotFound(ServingError):
    """The request names a model this server does not serve."""

    status = HTTPStatus.NOT_FOUND
    grpc_code = grpc.StatusCode.NOT_FOUND

    def __init__(self, name: str, served: str) -> None:
        shown = (
            f"'{name}'"
            if len(name) <= 40 and name.isprintable()
            else json.dumps(name[:40], ensure_ascii=False) + "…"
        )
        super().__init__(f"model {shown} is not served here; this server serves '{served}'")


class VersionNotServed(ServingError):
    """The request names a version of the model this server does not serve."""

    status = HTTPStatus.NOT_FOUND
    grpc_code = grpc.StatusCode.NOT_FOUND


class RouteNotFound(ServingError):
    """No route has this path (HTTP only)."""

    status = HTTPStatus.NOT_FOUND
    grpc_code = grpc.StatusCode.UNIMPLEMENTED


class ModelNotReady(ServingError):
    """The model is not loaded (yet): retry later."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    grpc_code = grpc.StatusCode.UNAVAILABLE


class PayloadTooLarge(ServingError):
    """The request exceeds ``max_request_bytes``."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class RequestTimeout(ServingError):
    """The client sent its headers or body too slowly (HTTP only: gRPC has deadlines)."""

    status = HTTPStatus.REQUEST_TIMEOUT
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class ServerBusy(ServingError):
    """Too many open connections, or the server is shutting down: retry on another replica."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    grpc_code = grpc.StatusCode.UNAVAILABLE


class ModelLoadError(Exception):
    """The model cannot be loaded or does not honour the serving contract. The process exits non-zero."""
