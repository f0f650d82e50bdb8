"""The request counters for every answer, and the app's fields for its access log line.

gunicorn writes one access line per request (reporting_svc.server.logger); the app
hands it what only the app knows, the caller, the route and the status the client gets
(nginx's, for an x-accel answer), through the WSGI environ, rather than writing a second
line of its own.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from ..logs import ACCESS_FIELDS
from ..metrics import AUTH_FAILURES, HTTP_REQUESTS, method_label
from .delivery import status_sent

UNMATCHED = "unmatched"


def route_name() -> str:
    """The view's short name (``download``, ``healthz``, ...): a bounded label set."""
    endpoint = request.url_rule.endpoint if request.url_rule else UNMATCHED
    return endpoint.rpartition(".")[2]


def _started() -> None:
    """When the request arrived: the download duration metric counts from here."""
    g.started = time.perf_counter()


def _observe(response: Response) -> Response:
    route = route_name()
    status = status_sent(response)
    HTTP_REQUESTS.labels(route, method_label(request.method), str(status)).inc()
    if response.status_code == 401:
        AUTH_FAILURES.labels(_auth_failure(response)).inc()
    principal = g.get("principal")
    request.environ[ACCESS_FIELDS] = {
        "subject": principal.subject if principal else None,
        "route": route,
        "status": status,
    }
    return response


def _auth_failure(response: Response) -> str:
    challenge = response.headers.get("WWW-Authenticate", "")
    if "insufficient_scope" in challenge:
        return "insufficient_scope"
    if "invalid_token" in challenge:
        return "invalid_token"
    return "missing_token"


def register_observers(app: Flask) -> None:
    app.before_request(_started)
    app.after_request(_observe)
