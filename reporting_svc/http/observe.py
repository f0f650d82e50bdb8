"""One log line and the request counters for every answer, whatever produced it."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from ..metrics import AUTH_FAILURES, HTTP_REQUESTS
from .response_headers import request_id

log = logging.getLogger("reporting_svc.requests")
UNMATCHED = "unmatched"


def route_name() -> str:
    """The view's short name (``download``, ``healthz``, ...): a bounded label set."""
    endpoint = request.url_rule.endpoint if request.url_rule else UNMATCHED
    return endpoint.rpartition(".")[2]


def _started() -> None:
    g.started = time.perf_counter()


def _observe(response: Response) -> Response:
    route = route_name()
    HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
    if response.status_code == 401:
        AUTH_FAILURES.labels(_auth_failure(response)).inc()
    principal = g.get("principal")
    log.info(
        "request",
        extra={
            "requestId": request_id(),
            "subject": principal.subject if principal else None,
            "route": route,
            "method": request.method,
            "status": response.status_code,
            "duration": round(time.perf_counter() - g.get("started", time.perf_counter()), 6),
        },
    )
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
