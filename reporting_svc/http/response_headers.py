"""Headers every response carries, errors included, and the request id they echo."""

import re
import uuid

from flask import Flask, Response, request

from .headers import REQUEST_ID, REQUEST_ID_PATTERN

# What every answer says besides its request id, gunicorn's own refusals included
# (reporting_svc.server.worker writes those without Flask).
COMMON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_SANE_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
# Where the request's id is kept: in its WSGI environ, which lives exactly as long as it.
_ENVIRON_KEY = "reporting_svc.request_id"


def request_id() -> str:
    """The caller's ``X-Request-ID`` when sane, else a new one; fixed for the request."""
    environ = request.environ
    if _ENVIRON_KEY not in environ:
        sent = request.headers.get(REQUEST_ID, "")
        environ[_ENVIRON_KEY] = sent if _SANE_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
    return str(environ[_ENVIRON_KEY])


def _add_headers(response: Response) -> Response:
    response.headers.update(COMMON_HEADERS)
    response.headers[REQUEST_ID] = request_id()
    return response


def register_response_headers(app: Flask) -> None:
    app.after_request(_add_headers)
