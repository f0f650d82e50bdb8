"""The reports API: download a completed report job's file."""

from typing import NoReturn

from flask import Blueprint, current_app, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.routing import Rule

from ..errors import PermissionDenied
from ..http import headers as h
from ..http.delivered import Delivered
from ..http.methods import METHODS
from ..jobs.availability import check_available
from ..jobs.filters import check_filters
from ..jobs.finding import find_job
from ..services import Services
from . import paths
from .arguments import parser
from .audited import Attempt, audited, download_event
from .contract import FILE, answers, operation, reads, refuses
from .schemas import DownloadQuerySchema

bp = Blueprint("reports", __name__, url_prefix=paths.REPORTS)
_schema = DownloadQuerySchema()
ANSWERED = ("GET", "HEAD")
# Every request to the download URL is an attempt on record, whatever its method.
OTHER_METHODS = tuple(method for method in METHODS if method not in ANSWERED)


@bp.route("/download", methods=ANSWERED, provide_automatic_options=False)
@operation(get="downloadReport", head="headReport", query=DownloadQuerySchema)
# HEAD ignores Range (RFC 9110 defines ranges for GET only), so it never answers 206 or 416.
@reads(h.RANGE, h.IF_RANGE, methods=["GET"])
@reads(*h.PRECONDITION_HEADERS, *h.CACHE_VALIDATORS, h.REQUEST_ID)
@answers(200, "The whole file, byte for byte.", body=FILE, headers=h.FILE_HEADERS)
@answers(
    206,
    "The single range asked for.",
    body=FILE,
    headers=(*h.FILE_HEADERS, h.CONTENT_RANGE),
    methods=["GET"],
)
@answers(
    302,
    "S3 redirect mode: a presigned URL with the same type and disposition.",
    headers=(h.LOCATION,),
)
@answers(304, "The caller's copy is current.", optional=(h.ETAG,))
@refuses(
    {
        400: "Insufficient or invalid parameters; `details` names each one and its rule.",
        401: "No valid credentials (step 1), or no permission for the job (step 4).",
        404: "No completed job with this id, or a filter differs from the job's value.",
        410: "The job expired or was withdrawn; `details` says when or why. Only after every "
        "other check passed, so a caller who may not see the job never gets it.",
        412: "If-Match or If-Unmodified-Since names another version of the file.",
        429: "This caller already has its share of the host's downloads in progress, or (from "
        "the proxy in front) too many requests from this client address; retry later.",
        500: "A fault of the service or its store, never a stack trace or a path.",
        503: "The report store or the audit trail is unavailable, or the host is sending as "
        "many downloads as it can; retry later.",
    }
)
@refuses(
    {416: "The single `Range` cannot be satisfied; `Content-Range` gives the size."},
    methods=["GET"],
)
@audited(download_event, names_delivery=True)
def download(attempt: Attempt) -> Delivered:
    """Download the file of a completed report job as an attachment (GET and HEAD)."""
    services: Services = current_app.extensions["reporting_svc"]
    attempt.principal = principal = services.authenticate(request)
    query = parser.parse(_schema, request)
    attempt.job = record = find_job(services.store, query.id)
    attempt.granted = bool(services.authorise(principal, record))
    if not attempt.granted:
        raise PermissionDenied(record.requiredPermission)
    check_filters(query.filters, record)
    check_available(services.store, record, services.clock())
    return services.delivery.respond(record, request, principal.subject)


@bp.route("/download", methods=OTHER_METHODS, provide_automatic_options=False)
@audited(download_event, names_delivery=True)
def download_other_method(attempt: Attempt) -> NoReturn:
    """Any other method on the download URL: refused, and on record like every attempt."""
    raise MethodNotAllowed(valid_methods=ANSWERED)


@bp.record_once
def _any_other_method(state: BlueprintSetupState) -> None:
    """Methods outside HTTP's registry (``XAAA``) are attempts too: a rule without a method
    list matches them all, after the GET and HEAD rule has taken its own."""
    state.app.url_map.add(Rule(paths.DOWNLOAD, endpoint="reports.download_other_method"))
