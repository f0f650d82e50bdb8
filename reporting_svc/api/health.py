"""Liveness, readiness and metrics, outside the API prefix, unauthenticated and unaudited."""

from __future__ import annotations

import functools
import ipaddress
import secrets

from flask import Blueprint, Response, current_app, jsonify, request

from ..auth.bearer import bearer_token
from ..catalog.bounds import answer_within
from ..errors import NotReady, envelope, error_response
from ..metrics import exposition
from ..networks import parse_networks
from ..services import Services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """The store and catalog are reachable and the audit trail writable; 503 naming what is
    not. A database that does not answer within the readiness timeout is not reachable."""
    services: Services = current_app.extensions["reporting_svc"]
    with answer_within(services.settings.readiness_timeout):
        checks = (services.store.check(), services.catalog.check(), services.audit.check())
    problems = [problem for problem in checks if problem]
    if problems:
        return error_response(NotReady("; ".join(problems)))
    return jsonify(status="ready")


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format, for the networks (or the token) the settings allow."""
    if not _may_scrape():
        return envelope(403, "Forbidden", "metrics are not open to this client")
    body, content_type = exposition()
    return Response(body, content_type=content_type)


def _may_scrape() -> bool:
    settings = current_app.extensions["reporting_svc"].settings
    if settings.metrics_token:
        sent = bearer_token(request) or ""
        return secrets.compare_digest(sent.encode(), settings.metrics_token.encode())
    try:
        peer = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(peer in network for network in _allowed_networks(settings.metrics_allow))


# Parsed on the first scrape, not on every one (the settings have checked them).
_allowed_networks = functools.cache(parse_networks)
