"""Typed API errors and the one place that turns any failure into the JSON envelope."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from .catalog import CatalogError, SchemaBehind
from .metrics import STORE_ERRORS
from .storage.base import FileMissing, StoreError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API answers with its envelope; subclasses fix status and message."""

    status = 500
    message = "Internal server error"

    def __init__(self, details: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(details or self.message)
        self.details = details
        self.headers = headers or {}

    @property
    def code(self) -> str:
        return f"REPT_{self.status}"


class InsufficientParameters(ApiError):
    status = 400
    message = "Insufficient parameters"


class InvalidParameters(ApiError):
    status = 400
    message = "Invalid parameters"


class Unauthenticated(ApiError):
    """Step 1 of the checks: no usable credentials."""

    status = 401
    message = "Unauthorized: missing or invalid credentials"

    def __init__(self, details: str, *, token_sent: bool):
        challenge = 'Bearer error="invalid_token"' if token_sent else "Bearer"
        super().__init__(details, headers={"WWW-Authenticate": challenge})


class PermissionDenied(ApiError):
    """Step 4 of the checks: valid credentials without the job's permission."""

    status = 401
    message = "Unauthorized: User does not have access to the requested resource"

    def __init__(self, permission: str):
        super().__init__(
            f"User role is missing required permission {permission}",
            headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
        )


class ListingForbidden(ApiError):
    """The download list's authorisation (docs/api.md §5): no grant at all for the query's scope."""

    status = 403
    message = "User not authorized to view download list."

    def __init__(self, scope: str, mode: str | None):
        where = f"{scope} in mode {mode}" if mode else scope
        super().__init__(f"User holds no grant for {where}")


class JobNotFound(ApiError):
    """No such job, an incomplete one, or a filter mismatch: deliberately indistinguishable."""

    status = 404
    message = "Not found"

    def __init__(self) -> None:
        super().__init__("No completed report job matches the request")


class ReportGone(ApiError):
    """The job expired or was withdrawn (docs/api.md §6); only a caller who may see it learns so."""

    status = 410
    message = "Report no longer available"


class PreconditionFailed(ApiError):
    """If-Match or If-Unmodified-Since names another version of the file (RFC 9110 §13.2.2)."""

    status = 412
    message = "Precondition failed"


class RangeNotSatisfiable(ApiError):
    """A ``bytes`` Range that cannot be satisfied; tells the client the file's size."""

    status = 416
    message = "Range not satisfiable"

    def __init__(self, size: int):
        super().__init__(
            f"the requested range is not within the file's {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )


class Unavailable(ApiError):
    """A 503 the client should retry: ``Retry-After`` tells it when."""

    status = 503
    retry_after = 5
    default_details = ""

    def __init__(self, details: str | None = None):
        super().__init__(
            details or self.default_details, headers={"Retry-After": str(self.retry_after)}
        )


class StoreUnavailable(Unavailable):
    message = "Report store unavailable"
    default_details = "The report store cannot be reached; try again later"


class TooManyDownloads(Unavailable):
    """Every download slot of this host (or of this worker's threads) is sending a file:
    refused at once, not queued."""

    message = "Too many downloads in progress"
    default_details = "This server is sending as many downloads as it can; try again later"


class TooManyDownloadsForCaller(ApiError):
    """The caller already holds its share of the host's download slots: 429, not queued."""

    status = 429
    message = "Too many downloads by this caller"
    retry_after = 5

    def __init__(self) -> None:
        super().__init__(
            "This caller is receiving as many downloads at once as one caller may;"
            " try again when one has finished",
            headers={"Retry-After": str(self.retry_after)},
        )


class NotReady(Unavailable):
    """Readiness: a dependency a download needs cannot be used now; details name each."""

    message = "Not ready"


class NotUpgraded(NotReady):
    """A database's schema is behind this version's: the deploy step that upgrades it has
    not run, and no request runs it (docs/deploying.md); details name the command."""


class CatalogUnavailable(Unavailable):
    message = "Report catalog unavailable"
    default_details = "The report catalog cannot be reached; try again later"


class AuditUnavailable(Unavailable):
    """The audit record a download needs could not be written: nothing is served without it."""

    message = "Audit trail unavailable"
    default_details = "The download cannot be recorded, so it is refused; try again later"


class ReportFileUnavailable(ApiError):
    """The record exists but its file is gone or wrong: a fault of the store, not the caller."""

    status = 500
    message = "Report file unavailable"


def envelope_body(status: int, message: str, details: str | None) -> dict[str, Any]:
    """The error body every non-success answer uses, also outside Flask (the worker)."""
    return {
        "status": "error",
        "result": None,
        "errorData": {"errorCode": f"REPT_{status}", "errorMessage": message, "details": details},
    }


def envelope(status: int, message: str, details: str | None) -> Response:
    """The error body as a Flask response with its status."""
    response = jsonify(envelope_body(status, message, details))
    response.status_code = status
    return response


def error_response(error: ApiError) -> Response:
    """The envelope for ``error``, for the rare place that must answer instead of raising."""
    response = envelope(error.status, error.message, error.details)
    response.headers.update(error.headers)
    return response


def _api_error(error: ApiError) -> Response:
    if isinstance(error, ReportFileUnavailable):
        STORE_ERRORS.labels("mismatch").inc()
    if error.status >= 500:
        log.error("%s: %s", error.message, error.details)
    return error_response(error)


def _catalog_error(error: CatalogError) -> Response:
    log.error("report catalog failed: %s", error)
    return error_response(CatalogUnavailable())


def _schema_behind(error: SchemaBehind) -> Response:
    log.error("not ready: %s", error)
    return error_response(NotUpgraded(str(error)))


def _store_error(error: StoreError) -> Response:
    STORE_ERRORS.labels("unavailable").inc()
    log.error("report store failed: %s", error)
    return error_response(StoreUnavailable())


def _file_missing(error: FileMissing) -> Response:
    STORE_ERRORS.labels("missing").inc()
    log.error("report file missing from the store for job %s", error)
    return error_response(ReportFileUnavailable("The report file is missing from the store"))


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    response = envelope(status, error.name, error.description)
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _unexpected(error: Exception) -> Response:
    log.exception("unhandled error", exc_info=error)
    return envelope(500, ApiError.message, None)


_HANDLERS: dict[type[BaseException], Callable[[Any], Response]] = {
    ApiError: _api_error,
    StoreError: _store_error,
    CatalogError: _catalog_error,
    SchemaBehind: _schema_behind,
    FileMissing: _file_missing,
    HTTPException: _http_error,
    Exception: _unexpected,
}


def response_for(error: Exception) -> Response:
    """The envelope for any failure: typed errors, the store's, Werkzeug's (404, 405, ...)
    and any other, each by the handler of its nearest class, as Flask would pick it.

    The app's one error handler, and the audit decorator's for what a view raises, so the
    decorator puts on record the very answer the client gets.
    """
    handler = next(_HANDLERS[kind] for kind in type(error).__mro__ if kind in _HANDLERS)
    return handler(error)


def register_error_handlers(app: Flask) -> None:
    """Answer every failure outside a view (routing's 404 and 405, ...) with the envelope."""
    app.register_error_handler(Exception, response_for)
