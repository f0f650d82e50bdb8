"""The reports API: download a completed report job's file."""

from typing import NoReturn

from flask import Blueprint, current_app, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.routing import Rule

from ..errors import JobNotFound, PermissionDenied
from ..http.delivery import Delivered
from ..services import Services
from . import paths
from .arguments import parser
from .audited import Attempt, audited, download_event
from .schemas import DownloadQuerySchema

bp = Blueprint("reports", __name__, url_prefix=paths.REPORTS)
_schema = DownloadQuerySchema()
# Every request to the download URL is an attempt on record, whatever its method.
OTHER_METHODS = ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")


@bp.get("/download", provide_automatic_options=False)
@audited(download_event, names_delivery=True)
def download(attempt: Attempt) -> Delivered:
    """Download the file of a completed report job as an attachment (GET and HEAD)."""
    services: Services = current_app.extensions["reporting_svc"]
    attempt.principal = principal = services.authenticate(request)
    query = parser.parse(_schema, request)
    attempt.job = record = services.find_job(query.id)
    attempt.granted = bool(services.authorise(principal, record))
    if not attempt.granted:
        raise PermissionDenied(record.requiredPermission)
    if not query.matches(record):
        raise JobNotFound()
    services.check_available(record)
    return services.delivery.respond(record, request, principal.subject)


@bp.route("/download", methods=OTHER_METHODS, provide_automatic_options=False)
@audited(download_event, names_delivery=True)
def download_other_method(attempt: Attempt) -> NoReturn:
    """Any other method on the download URL: refused, and on record like every attempt."""
    raise MethodNotAllowed(valid_methods=["GET", "HEAD"])


@bp.record_once
def _any_other_method(state: BlueprintSetupState) -> None:
    """Methods outside HTTP's registry (``XAAA``) are attempts too: a rule without a method
    list matches them all, after the GET and HEAD rule has taken its own."""
    state.app.url_map.add(Rule(paths.DOWNLOAD, endpoint="reports.download_other_method"))
