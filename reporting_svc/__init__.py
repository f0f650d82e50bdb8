"""reporting-svc: serves generated clinical-trial reports over the reporting REST API."""

from __future__ import annotations

from flask import Flask

from .errors import register_error_handlers
from .http.response_headers import register_response_headers
from .services import Services
from .settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the WSGI app: settings, the services it shares, its blueprints and handlers."""
    settings = settings or load_settings()
    app = Flask(__name__)
    register_services(app, settings)
    register_blueprints(app)
    register_error_handlers(app)
    register_response_headers(app)
    return app


def register_services(app: Flask, settings: Settings) -> None:
    app.extensions["reporting_svc"] = Services.from_settings(settings)


def register_blueprints(app: Flask) -> None:
    from .api import reports

    app.register_blueprint(reports.bp)


__all__ = ["Settings", "create_app", "load_settings"]
