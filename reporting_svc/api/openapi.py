"""The OpenAPI document, built from what each view declares (``api/contract.py``) and the
schemas that validate requests, and its docs page."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    render_template_string,
    request,
    send_file,
    url_for,
)
from marshmallow import Schema

from ..http import headers as h
from ..lifecycle.sample import (
    SAMPLE_JOB_ID,
    SAMPLE_KICKOFF,
    SAMPLE_MODE,
    SAMPLE_REPORT_ID,
    SAMPLE_REPORT_NAME,
    SAMPLE_STUDY_ID,
)
from . import listing, paths, reports
from .contract import FILE, Contract, Json, Outcome, contract_of
from .listing_schemas import DecimalInteger
from .printable import printable_pattern
from .schemas import CASE_INSENSITIVE, EMPTY_MEANS_ABSENT, Guid, Instant, ReportName

bp = Blueprint("openapi", __name__, url_prefix=paths.ROOT)

BINARY = {"schema": {"type": "string", "format": "binary"}}
FILE_CONTENT = {"application/octet-stream": BINARY, "*/*": BINARY}
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


def _header(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "schema": schema}


# What each response header a view declares holds; every answer carries the request id.
RESPONSE_HEADERS = {
    h.REQUEST_ID: _header(
        "The caller's X-Request-ID when sane, else a new one; on every response.",
        {"type": "string", "pattern": f"^{h.REQUEST_ID_PATTERN}$"},
    ),
    h.CONTENT_DISPOSITION: _header(
        "attachment, with an ASCII filename and RFC 5987 filename* (RFC 6266).",
        {"type": "string", "pattern": "^attachment"},
    ),
    h.ETAG: _header(
        "Strong, from the file's SHA-256.", {"type": "string", "pattern": '^"[0-9a-f]{64}"$'}
    ),
    h.REPR_DIGEST: _header(
        "SHA-256 of the whole file (RFC 9530), also on a 206.",
        {"type": "string", "pattern": "^sha-256=:[A-Za-z0-9+/]{43}=:$"},
    ),
    h.CONTENT_RANGE: _header(
        "The span sent (206) or the file's size (416).",
        {"type": "string", "pattern": r"^bytes ([0-9]+-[0-9]+|\*)/[0-9]+$"},
    ),
    h.LOCATION: _header("The presigned URL.", {"type": "string"}),
    h.RETRY_AFTER: _header(
        "Seconds to wait before retrying.", {"type": "string", "pattern": "^[0-9]+$"}
    ),
    h.WWW_AUTHENTICATE: _header(
        "Bearer, with error=invalid_token or insufficient_scope.",
        {"type": "string", "pattern": "^Bearer"},
    ),
}


def build_spec(app: Flask | None = None, script_root: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every view of ``app`` that declares a contract
    (``api/contract.py``), at its URL under ``script_root``; without an app, of the API's
    blueprints as the service registers them."""
    plugin = MarshmallowPlugin()
    spec = APISpec("reporting-svc", version("reporting-svc"), "3.1.0", plugins=[plugin])
    converter = plugin.converter
    assert converter is not None, "APISpec sets it up when it takes the plugin"
    converter.add_attribute_function(_own_fields)  # type: ignore[no-untyped-call]
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    app = app or _api_app()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        contract = contract_of(view)
        if contract is None:
            continue
        for outcome in contract.outcomes:
            if isinstance(outcome.body, Json) and outcome.body.name not in spec.components.schemas:
                spec.components.schema(outcome.body.name, schema=outcome.body.schema)
        query = [
            _document_normalising(parameter)
            for parameter in converter.schema2parameters(contract.query or Schema, location="query")
        ]
        spec.path(
            path=script_root + rule.rule,
            operations={
                method: _operation(operation_id, view, query, contract, method)
                for method, operation_id in contract.operations.items()
            },
        )
    return spec.to_dict()


@cache
def _api_app() -> Flask:
    """A bare app holding the API's blueprints, for a document built outside a request."""
    app = Flask(__name__, static_folder=None)
    app.register_blueprint(reports.bp)
    app.register_blueprint(listing.bp)
    return app


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
    query: list[dict[str, Any]],
    contract: Contract,
    method: str,
) -> dict[str, Any]:
    """An operation whose summary is its view's docstring, with the headers the view reads
    and the statuses it answers for this method (a HEAD answer never has a body)."""
    headers = [
        {"in": "header", "name": header.name, "schema": {"type": "string"}}
        for header in contract.request_headers
        if header.read_on(method)
    ]
    outcomes = sorted(
        (outcome for outcome in contract.outcomes if outcome.answers(method)),
        key=lambda outcome: outcome.status,
    )
    return {
        "operationId": operation_id,
        "summary": (view.__doc__ or "").strip(),
        "tags": ["reports"],
        "security": [{"bearerAuth": []}],
        "parameters": query + headers,
        "responses": {
            outcome.status: _response(outcome, body=method != "head") for outcome in outcomes
        },
    }


def _response(outcome: Outcome, *, body: bool) -> dict[str, Any]:
    """One status's answer: its headers, each required or not, and its body's content."""
    headers = {
        name: {**RESPONSE_HEADERS[name], "required": name in (h.REQUEST_ID, *outcome.headers)}
        for name in (*outcome.headers, h.REQUEST_ID, *outcome.optional)
    }
    answer: dict[str, Any] = {"description": outcome.description, "headers": headers}
    if body and isinstance(outcome.body, Json):
        answer["content"] = {"application/json": {"schema": outcome.body.name}}
    elif body and outcome.body == FILE:
        answer["content"] = FILE_CONTENT
    return answer


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
    return jsonify(build_spec(current_app, request.script_root))


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
