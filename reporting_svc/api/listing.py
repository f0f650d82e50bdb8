"""The report metadata API: the download list, which runs the caller may download."""

from flask import Blueprint, current_app, jsonify, request

from ..catalog import Page
from ..http.delivered import Delivered
from ..http.headers import REQUEST_ID
from ..jobs.listing import ListingQuery, list_runs
from ..services import Services
from . import paths
from .arguments import parser
from .audited import Attempt, audited, listing_event
from .contract import Json, answers, operation, reads, refuses
from .listing_schemas import ListingQuerySchema, ListingSchema

bp = Blueprint("listing", __name__, url_prefix=paths.REPORT_METADATA)
_query = ListingQuerySchema()
_answer = ListingSchema()


@bp.get("/downloadList", provide_automatic_options=False)
@operation(get="downloadList", query=ListingQuerySchema)
@reads(REQUEST_ID)
@answers(
    200,
    "The runs the caller may download, newest first, and their count.",
    body=Json("DownloadList", ListingSchema),
)
@refuses(
    {
        400: "Insufficient or invalid parameters; `details` names each one and its rule.",
        401: "No valid credentials.",
        403: "No grant of any permission for the query's study (and mode, when given).",
        429: "Too many requests from this client (answered by the proxy in front).",
        500: "A fault of the service, never a stack trace or a path.",
        503: "The report catalog or the audit trail is unavailable; retry later.",
    }
)
@audited(listing_event)
def download_list(attempt: Attempt) -> Delivered:
    """List the completed report runs of a study (or the tenant) the caller may download."""
    services: Services = current_app.extensions["reporting_svc"]
    attempt.principal = services.authenticate(request)
    query: ListingQuery = parser.parse(_query, request)
    attempt.study_id, attempt.mode = query.study_id, query.mode
    page = list_runs(
        services.catalog, services.authorise, attempt.principal, query, services.clock()
    )
    return Delivered.answer(jsonify(_answer.dump(_envelope(query, page))))


def _envelope(query: ListingQuery, page: Page) -> dict[str, object]:
    return {
        "status": "success",
        "errorData": None,
        "result": {
            "hasMore": "true" if query.offset + len(page.records) < page.total else "false",
            "totalResults": page.total,
            "count": len(page.records),
            "limit": query.limit,
            "offset": query.offset,
            "reportId": query.rpt_id,
            "reportRunStatus": page.records,
        },
    }
