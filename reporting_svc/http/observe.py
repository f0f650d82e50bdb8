"""The request counters for every answer, and the app's fields for its access log line.

gunicorn writes one access line per request (reporting_svc.server.logger); the app
hands it what only the app knows, the caller, the route and the status the client gets
(nginx's, for an x-accel answer), through the WSGI environ, rather than writing a second
line of its own.

Only a view knows who asked and what status its answer is sent with, so an audited view
hands an ``Observed`` value over with ``observed_by_view``; this module's after-request
step reads it there. Every other answer (a route's 404 or 405, health, metrics) is
observed from its response alone. The step stays app-wide, rather than being called by
the view, so an answer that never reaches a view is counted and logged the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request

from ..logs import ACCESS_FIELDS
from ..metrics import AUTH_FAILURES, HTTP_REQUESTS
from .methods import method_label

UNMATCHED = "unmatched"
# Where a view leaves its Observed value in the WSGI environ.
OBSERVED = "reporting_svc.observed"


@dataclass(frozen=True)
class Observed:
    """What the view knows of its answer: the caller (None when unknown) and the status
    the client gets (nginx's 206 for an x-accel range handed over as a 200)."""

    subject: str | None
    status: int


def observed_by_view(environ: dict[str, Any], observed: Observed) -> None:
    """Hand the view's ``observed`` to this request's metrics and access line."""
    environ[OBSERVED] = observed


def route_name() -> str:
    """The view's short name (``download``, ``healthz``, ...): a bounded label set."""
    endpoint = request.url_rule.endpoint if request.url_rule else UNMATCHED
    return endpoint.rpartition(".")[2]


def _observe(response: Response) -> Response:
    route = route_name()
    observed: Observed = request.environ.get(OBSERVED) or Observed(None, response.status_code)
    HTTP_REQUESTS.labels(route, method_label(request.method), str(observed.status)).inc()
    if response.status_code == 401:
        AUTH_FAILURES.labels(_auth_failure(response)).inc()
    request.environ[ACCESS_FIELDS] = {
        "subject": observed.subject,
        "route": route,
        "status": observed.status,
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
    app.after_request(_observe)
