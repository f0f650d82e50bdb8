"""Headers every response carries, errors included, and the request id they echo."""

import re
import uuid

from flask import Flask, Response, g, request

REQUEST_ID = "X-Request-ID"
# What every answer says besides its request id, gunicorn's own refusals included
# (reporting_svc.server.worker writes those without Flask).
COMMON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id() -> str:
    """The caller's ``X-Request-ID`` when sane, else a new one; fixed for the request."""
    if "request_id" not in g:
        sent = request.headers.get(REQUEST_ID, "")
        g.request_id = sent if _SANE_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
    return str(g.request_id)


def _add_headers(response: Response) -> Response:
    response.headers.update(COMMON_HEADERS)
    response.headers[REQUEST_ID] = request_id()
    return response


def register_response_headers(app: Flask) -> None:
    app.after_request(_add_headers)
