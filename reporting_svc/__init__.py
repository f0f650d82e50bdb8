"""reporting-svc: serves generated clinical-trial reports over the reporting REST API."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .http.client_address import TrustedProxies
from .networks import parse_networks
from .settings import Settings, load_settings

if TYPE_CHECKING:
    from flask import Flask


def create_app(settings: Settings | None = None) -> Flask:
    """Build the WSGI app: settings, the services it shares, its blueprints and handlers.

    Flask and the service's modules are imported here, not with the package: the ``fetch``
    client imports this package with the base install alone (no ``server`` extra), and
    gunicorn's settings must load before anything imports prometheus_client.
    """
    from flask import Flask

    from .errors import register_error_handlers
    from .http.observe import register_observers
    from .http.response_headers import register_response_headers, request_id
    from .logs import configure_logging

    settings = settings or load_settings()
    app = Flask(__name__)
    configure_logging(settings.log_level.upper(), request_id)
    warn_about_dev_secret(settings)
    register_services(app, settings)
    register_blueprints(app)
    register_error_handlers(app)
    register_response_headers(app)
    register_observers(app)
    trust_proxies(app, settings)
    return app


def warn_about_dev_secret(settings: Settings) -> None:
    """A generated secret suits a laptop, never production: say so in every worker's log."""
    if settings.dev_secret:
        logging.getLogger(__name__).warning(
            "no signing key is configured: tokens are checked with the development secret "
            "kept under %s; set REPORTING_SVC_JWT_JWKS_FILE (or another key) in production",
            settings.var_dir,
        )


def trust_proxies(app: Flask, settings: Settings) -> None:
    """Believe X-Forwarded-For/-Proto from the configured proxies, and only from them."""
    if settings.trusted_proxies:
        trusted = parse_networks(settings.trusted_proxies)
        app.wsgi_app = TrustedProxies(app.wsgi_app, trusted)  # type: ignore[method-assign]


def register_services(app: Flask, settings: Settings) -> None:
    from .services import Services

    app.extensions["reporting_svc"] = Services.from_settings(settings)


def register_blueprints(app: Flask) -> None:
    from .api import health, listing, openapi, reports

    app.register_blueprint(reports.bp)
    app.register_blueprint(listing.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)


__all__ = ["Settings", "create_app", "load_settings"]
