"""The reports API: download a completed report job's file."""

from flask import Blueprint, Response, current_app, g, request

from ..errors import JobNotFound, PermissionDenied
from ..services import Services
from .arguments import parser
from .attempts import record_attempt
from .schemas import DownloadQuerySchema

PREFIX = "/ec-reporting-svc/rest/v2.0/reports"
DOWNLOAD_PATH = PREFIX + "/download"

bp = Blueprint("reports", __name__, url_prefix=PREFIX)
_schema = DownloadQuerySchema()


@bp.after_app_request
def _record_attempt(response: Response) -> Response:
    """Every request to the download URL is an attempt, a 405 for another method included,
    so the hook runs app-wide and picks its requests by path."""
    return record_attempt(response) if request.path == DOWNLOAD_PATH else response


@bp.get("/download", provide_automatic_options=False)
def download() -> Response:
    """Download the file of a completed report job as an attachment (GET and HEAD)."""
    services: Services = current_app.extensions["reporting_svc"]
    g.principal = services.authenticate(request)
    query = parser.parse(_schema, request)
    g.job = record = services.find_job(query.id)
    if not services.authorise(g.principal, record):
        raise PermissionDenied(record.requiredPermission)
    if not query.matches(record):
        raise JobNotFound()
    return services.delivery.respond(record, request)
