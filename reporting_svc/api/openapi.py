"""The OpenAPI document, generated from the schemas that validate requests, and its docs page."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, jsonify, render_template_string, send_file, url_for
from marshmallow import Schema, fields, validate

from ..lifecycle.sample import (
    SAMPLE_JOB_ID,
    SAMPLE_KICKOFF,
    SAMPLE_MODE,
    SAMPLE_REPORT_ID,
    SAMPLE_REPORT_NAME,
    SAMPLE_STUDY_ID,
)
from . import paths
from .listing import download_list
from .listing_schemas import DecimalInteger, ListingQuerySchema, ListingSchema
from .printable import printable_pattern
from .reports import download
from .schemas import (
    CASE_INSENSITIVE,
    EMPTY_MEANS_ABSENT,
    DownloadQuerySchema,
    Guid,
    Instant,
    ReportName,
)

bp = Blueprint("openapi", __name__, url_prefix=paths.ROOT)

BINARY = {"schema": {"type": "string", "format": "binary"}}
ERROR_STATUSES = {
    400: "Insufficient or invalid parameters; `details` names each one and its rule.",
    401: "No valid credentials (step 1), or no permission for the job (step 4).",
    404: "No completed job with this id, or a filter differs from the job's value.",
    410: "The job expired or was withdrawn; `details` says when or why. Only after every "
    "other check passed, so a caller who may not see the job never gets it.",
    412: "If-Match or If-Unmodified-Since names another version of the file.",
    416: "The single `Range` cannot be satisfied; `Content-Range` gives the size.",
    429: "This caller already has its share of the host's downloads in progress, or (from "
    "the proxy in front) too many requests from this client address; retry later.",
    500: "A fault of the service or its store, never a stack trace or a path.",
    503: "The report store or the audit trail is unavailable, or the host is sending as "
    "many downloads as it can; retry later.",
}
# HEAD ignores Range (RFC 9110 defines ranges for GET only), so it never answers these.
RANGE_STATUSES = (206, 416)
# Each query parameter's example is the sample report's own value (``reporting-svc serve``
# publishes it on the embedded default), so the examples together download a real file.
EXAMPLES: dict[str, Any] = {
    "id": SAMPLE_JOB_ID,
    "studyId": SAMPLE_STUDY_ID,
    "mode": SAMPLE_MODE,
    "reportName": SAMPLE_REPORT_NAME,
    "rptKickoffDatetime": SAMPLE_KICKOFF,
    "rptId": SAMPLE_REPORT_ID,
    "limit": 20,
    "offset": 0,
}
LIST_ERROR_STATUSES = {
    400: "Insufficient or invalid parameters; `details` names each one and its rule.",
    401: "No valid credentials.",
    403: "No grant of any permission for the query's study (and mode, when given).",
    429: "Too many requests from this client (answered by the proxy in front).",
    500: "A fault of the service, never a stack trace or a path.",
    503: "The report catalog or the audit trail is unavailable; retry later.",
}


def _header(description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


REQUEST_ID = _header(
    "The caller's X-Request-ID when sane, else a new one; on every response.",
    {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
    required=True,
)
ETAG = _header(
    "Strong, from the file's SHA-256.", {"type": "string", "pattern": '^"[0-9a-f]{64}"$'}
)
FILE_HEADERS = {
    "Content-Disposition": _header(
        "attachment, with an ASCII filename and RFC 5987 filename* (RFC 6266).",
        {"type": "string", "pattern": "^attachment"},
        required=True,
    ),
    "ETag": {**ETAG, "required": True},
    "Repr-Digest": _header(
        "SHA-256 of the whole file (RFC 9530), also on a 206.",
        {"type": "string", "pattern": "^sha-256=:[A-Za-z0-9+/]{43}=:$"},
        required=True,
    ),
    "X-Request-ID": REQUEST_ID,
}
CONTENT_RANGE = _header(
    "The span sent (206) or the file's size (416).",
    {"type": "string", "pattern": r"^bytes ([0-9]+-[0-9]+|\*)/[0-9]+$"},
    required=True,
)
RETRY_AFTER = _header("Seconds to wait before retrying.", {"type": "string", "pattern": "^[0-9]+$"})
# Werkzeug's helpers read these, not a schema; listed so clients (and schemathesis) use them.
RANGE_HEADERS = [
    {"in": "header", "name": name, "schema": {"type": "string"}} for name in ("Range", "If-Range")
]
OTHER_HEADERS = [
    {"in": "header", "name": name, "schema": {"type": "string"}}
    for name in (
        "If-Match",
        "If-Unmodified-Since",
        "If-None-Match",
        "If-Modified-Since",
        "X-Request-ID",
    )
]


class ErrorDataSchema(Schema):
    """What went wrong: ``REPT_`` plus the status, a fixed message per kind, details or null."""

    errorCode = fields.String(required=True, metadata={"pattern": "^REPT_[0-9]{3}$"})  # noqa: N815
    errorMessage = fields.String(required=True)  # noqa: N815
    details = fields.String(required=True, allow_none=True)


class ErrorSchema(Schema):
    """The envelope of every error, as ``errors.envelope`` builds it."""

    status = fields.String(required=True, validate=validate.OneOf(["error"]))
    result = fields.Raw(required=True, metadata={"type": "null"})
    errorData = fields.Nested(ErrorDataSchema, required=True)  # noqa: N815


def build_spec(
    download_path: str = paths.DOWNLOAD, list_path: str = paths.DOWNLOAD_LIST
) -> dict[str, Any]:
    """The OpenAPI 3.1 document: the download (GET and HEAD) and the download list."""
    plugin = MarshmallowPlugin()
    spec = APISpec("reporting-svc", version("reporting-svc"), "3.1.0", plugins=[plugin])
    converter = plugin.converter
    assert converter is not None, "APISpec sets it up when it takes the plugin"
    converter.add_attribute_function(_own_fields)  # type: ignore[no-untyped-call]
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    spec.components.schema("Error", schema=ErrorSchema)
    spec.components.schema("DownloadList", schema=ListingSchema)

    def query(schema: type[Schema]) -> list[dict[str, Any]]:
        parameters = converter.schema2parameters(schema, location="query")
        return [_document_normalising(parameter) for parameter in parameters]

    download_query = query(DownloadQuerySchema)
    spec.path(
        path=download_path,
        operations={
            "get": _operation(
                "downloadReport",
                download,
                download_query + RANGE_HEADERS + OTHER_HEADERS,
                _responses(body=True),
            ),
            "head": _operation(
                "headReport", download, download_query + OTHER_HEADERS, _responses(body=False)
            ),
        },
    )
    list_query = [*query(ListingQuerySchema), OTHER_HEADERS[-1]]
    spec.path(
        path=list_path,
        operations={
            "get": _operation("downloadList", download_list, list_query, _list_responses())
        },
    )
    return spec.to_dict()


def _own_fields(self: Any, field: Any, **kwargs: Any) -> dict[str, Any]:
    """Our fields parse text themselves: a Guid's ``pattern`` is the text it accepts, a
    DecimalInteger is an integer in its range, a ReportName is printable throughout, an
    Instant has the form of an RFC 3339 date-time."""
    if isinstance(field, Guid):
        return {"type": "string", "pattern": field.pattern}
    if isinstance(field, Instant):
        return {"pattern": field.pattern}
    if isinstance(field, ReportName):
        return {
            "pattern": printable_pattern(field.metadata["minLength"], field.metadata["maxLength"])
        }
    if isinstance(field, DecimalInteger):
        return {"type": "integer", "minimum": field.minimum, "maximum": field.maximum}
    return {}


def _document_normalising(parameter: dict[str, Any]) -> dict[str, Any]:
    """Show what the schema's ``pre_load`` does, which no field declares (case and
    emptiness), and the sample's value as the example."""
    schema = parameter["schema"]
    parameter["example"] = EXAMPLES[parameter["name"]]
    if parameter["name"] in CASE_INSENSITIVE:
        choices = schema.pop("enum")
        schema.update(pattern=_any_case(choices), examples=choices)
    if parameter["name"] in EMPTY_MEANS_ABSENT and not parameter.get("required"):
        parameter["description"] = parameter.get("description", "") + " Empty counts as absent."
    return parameter


def _any_case(choices: list[str]) -> str:
    """A regex for the choices in any letter case: ECMA-262 patterns have no inline flags."""
    spelled = (
        "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in choice)
        for choice in choices
    )
    return f"^(?:{'|'.join(spelled)})$"


def _operation(
    operation_id: str,
    view: Callable[..., Any],
    parameters: list[dict[str, Any]],
    responses: dict[int, Any],
) -> dict[str, Any]:
    """An operation whose summary is its view's docstring."""
    return {
        "operationId": operation_id,
        "summary": (view.__doc__ or "").strip(),
        "tags": ["reports"],
        "security": [{"bearerAuth": []}],
        "parameters": parameters,
        "responses": responses,
    }


def _list_responses() -> dict[int, Any]:
    """The download list's answers: a page of runs, or an error in the envelope."""
    page = {"content": {"application/json": {"schema": "DownloadList"}}}
    return {
        200: {
            "description": "The runs the caller may download, newest first, and their count.",
            "headers": {"X-Request-ID": REQUEST_ID},
            **page,
        },
        **_error_responses(LIST_ERROR_STATUSES, body=True),
    }


def _responses(*, body: bool) -> dict[int, Any]:
    """Every status the endpoint answers; a HEAD answer has the headers and never a body,
    and no range answers."""
    file = {"content": {"application/octet-stream": BINARY, "*/*": BINARY}} if body else {}
    only_id = {"X-Request-ID": REQUEST_ID}
    responses: dict[int, Any] = {
        200: {"description": "The whole file, byte for byte.", "headers": FILE_HEADERS, **file},
        206: {
            "description": "The single range asked for.",
            "headers": {**FILE_HEADERS, "Content-Range": CONTENT_RANGE},
            **file,
        },
        302: {
            "description": "S3 redirect mode: a presigned URL with the same type and disposition.",
            "headers": {
                "Location": _header("The presigned URL.", {"type": "string"}, required=True),
                **only_id,
            },
        },
        304: {"description": "The caller's copy is current.", "headers": {"ETag": ETAG, **only_id}},
    }
    responses |= _error_responses(ERROR_STATUSES, body=body)
    if body:
        return responses
    return {status: answer for status, answer in responses.items() if status not in RANGE_STATUSES}


def _error_responses(statuses: dict[int, str], *, body: bool) -> dict[int, Any]:
    """The envelope's answers with the headers each status carries."""
    error = {"content": {"application/json": {"schema": ErrorSchema}}} if body else {}
    responses: dict[int, Any] = {}
    for status, description in statuses.items():
        headers: dict[str, Any] = {"X-Request-ID": REQUEST_ID}
        if status == 401:
            headers["WWW-Authenticate"] = _header(
                "Bearer, with error=invalid_token or insufficient_scope.",
                {"type": "string", "pattern": "^Bearer"},
                required=True,
            )
        elif status == 416:
            headers["Content-Range"] = CONTENT_RANGE
        elif status in (429, 503):
            headers["Retry-After"] = RETRY_AFTER
        responses[status] = {"description": description, "headers": headers, **error}
    return responses


@cache
def _redoc_bundle() -> Path:
    """Redoc's standalone build as drf-spectacular-sidecar ships it, found without importing
    the package (its ``__init__`` imports Django, which this service never runs), when the
    page first asks for it: building the app needs no docs page."""
    spec = find_spec("drf_spectacular_sidecar")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("drf-spectacular-sidecar is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    return package / "static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>reporting-svc API</title></head>
<body>
<p>The OpenAPI document: <a href="{{ spec_url }}">{{ spec_url }}</a></p>
<redoc spec-url="{{ spec_url }}"></redoc>
<script src="{{ redoc_url }}"></script>
</body>
</html>
"""
# Only this service may be reached from the page. Redoc styles itself with inline styles
# and runs its search index in a worker made from a blob: URL.
DOCS_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src blob:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI document, unauthenticated: integrators read it before they hold a token."""
    return jsonify(build_spec(url_for("reports.download"), url_for("listing.download_list")))


@bp.get("/docs")
def docs() -> Response:
    """A page that renders the document with Redoc, served from here: no CDN is reached."""
    page = render_template_string(
        DOCS_PAGE,
        spec_url=url_for("openapi.openapi_document"),
        redoc_url=url_for("openapi.redoc"),
    )
    return Response(page, mimetype="text/html", headers={"Content-Security-Policy": DOCS_POLICY})


@bp.get("/docs/redoc.standalone.js")
def redoc() -> Response:
    """Redoc's script for the docs page, from the installed package rather than a CDN."""
    return send_file(_redoc_bundle(), mimetype="text/javascript")
