"""Errors of the predictor. Each class carries the HTTP status it answers with; bodies are V2 ``{"error": ...}``."""

from __future__ import annotations

from http import HTTPStatus

from kserve.errors import InvalidInput


class ServingError(Exception):
    """Base class: ``status`` is the HTTP status, ``str(error)`` the message a client reads."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR


class InvalidRequest(InvalidInput, ServingError):
    """The request is well-formed HTTP but not a valid credit-risk scoring request (400).

    Subclasses kserve's ``InvalidInput`` so kserve's own V2 handlers answer it with 400 too.
    """

    status = HTTPStatus.BAD_REQUEST

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class PayloadTooLarge(ServingError):
    """The request body exceeds ``max_request_bytes`` (413)."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class VersionNotServed(ServingError):
    """A versioned V2 path names a version this server does not serve (404)."""

    status = HTTPStatus.NOT_FOUND


class ModelLoadError(Exception):
    """The model cannot be loaded or does not honour the serving contract. The process exits non-zero."""
