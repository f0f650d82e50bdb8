"""The OpenAPI document: valid, generated from the query schema, and true to real answers."""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.metadata import distribution
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from reporting_svc.api.listing_schemas import ListingQuerySchema
from reporting_svc.api.openapi import build_spec
from reporting_svc.api.schemas import DownloadQuerySchema
from reporting_svc.catalog import Catalog
from reporting_svc.lifecycle.sample import ensure_sample
from reporting_svc.storage import JobRecord, Store
from reporting_svc.storage.record import MAX_REPORT_NAME
from tests.support import DOWNLOAD, DOWNLOAD_LIST, STUDY

OPENAPI = "/ec-reporting-svc/openapi.json"
DOCS = "/ec-reporting-svc/docs"
REDOC = "/ec-reporting-svc/docs/redoc.standalone.js"
HEAD_STATUSES = {"200", "302", "304", "400", "401", "404", "410", "412", "429", "500", "503"}
# HEAD ignores Range, so only GET answers 206 and 416.
STATUSES = {"get": HEAD_STATUSES | {"206", "416"}, "head": HEAD_STATUSES}
ERRORS = {"400", "401", "404", "410", "412", "416", "429", "500", "503"}
JOB_ID = "6A7C29DD011241DFBE1B64399283C860"
DOC = build_spec()


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    """The document as the running app serves it, fetched without a token."""
    response = client.get(OPENAPI)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return body


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    operations: dict[str, dict[str, Any]] = document["paths"][DOWNLOAD]
    return operations


def query_parameter(document: dict[str, Any], method: str, name: str) -> dict[str, Any]:
    found = [
        parameter
        for parameter in operations(document)[method]["parameters"]
        if parameter["in"] == "query" and parameter["name"] == name
    ]
    assert len(found) == 1
    return found[0]


def schema_accepts(name: str, value: str) -> bool:
    """Whether DownloadQuerySchema loads ``value`` for parameter ``name``."""
    try:
        DownloadQuerySchema().load({"id": JOB_ID, name: value})
    except ValidationError:
        return False
    return True


def test_served_document_is_valid_openapi_3_1_and_needs_no_token(document: dict[str, Any]) -> None:
    validate(document)

    assert document["openapi"] == "3.1.0"
    assert set(operations(document)) == {"get", "head"}


def test_query_parameters_are_exactly_the_fields_of_the_download_schema(
    document: dict[str, Any],
) -> None:
    fields = DownloadQuerySchema().fields
    for method in ("get", "head"):
        query = {
            parameter["name"]: parameter
            for parameter in operations(document)[method]["parameters"]
            if parameter["in"] == "query"
        }
        assert set(query) == {field.data_key or name for name, field in fields.items()}
        assert {name for name, parameter in query.items() if parameter["required"]} == {"id"}


def test_field_rules_carry_into_the_parameter_schemas(document: dict[str, Any]) -> None:
    report_name = query_parameter(document, "get", "reportName")["schema"]
    kickoff = query_parameter(document, "get", "rptKickoffDatetime")["schema"]

    assert (report_name["minLength"], report_name["maxLength"]) == (1, MAX_REPORT_NAME)
    assert (kickoff["type"], kickoff["format"]) == ("string", "date-time")
    assert re.fullmatch(kickoff["pattern"], "2025-06-04T11:27:52.014Z")
    assert "enum" not in query_parameter(document, "get", "mode")["schema"]
    assert re.fullmatch(report_name["pattern"], "Subject Data Extract")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("id", JOB_ID),
        ("id", JOB_ID.lower()),
        ("id", "6a7c29dd-0112-41df-BE1B-64399283c860"),
        ("id", JOB_ID[:-1]),
        ("id", JOB_ID + "0"),
        ("id", "G" + JOB_ID[1:]),
        ("id", "6A7C29DD0112-41DF-BE1B-64399283C860"),
        ("studyId", STUDY),
        ("studyId", ""),
        ("studyId", "null"),
        ("studyId", "NuLL"),
        ("studyId", "none"),
        ("studyId", STUDY + "0"),
        ("mode", "test"),
        ("mode", "ACTIVE"),
        ("mode", "Training"),
        ("mode", "prod"),
        ("mode", "testing"),
        ("reportName", "Subject Data Extract"),
        ("reportName", "Übersicht: Blutdruck 😀"),
        ("reportName", "x" * MAX_REPORT_NAME),
        ("reportName", "x" * (MAX_REPORT_NAME + 1)),
        ("reportName", "tab\there"),
        ("reportName", "line\u2028separator"),
        ("reportName", "no\u00a0break"),
        ("reportName", "soft\u00adhyphen"),
        ("reportName", "bidi\u202eoverride"),
    ],
)
def test_documented_pattern_accepts_what_the_schema_accepts(
    document: dict[str, Any], name: str, value: str
) -> None:
    pattern = query_parameter(document, "get", name)["schema"]["pattern"]

    assert bool(re.search(pattern, value)) == schema_accepts(name, value)


@pytest.mark.parametrize("name", ["id", "studyId", "mode", "reportName"])
def test_every_value_the_pattern_allows_is_loaded_by_the_schema(name: str) -> None:
    pattern = query_parameter(DOC, "get", name)["schema"]["pattern"]

    @settings(max_examples=200, derandomize=True, deadline=None)
    @given(st.from_regex(pattern, fullmatch=True))
    def loads(value: str) -> None:
        assert schema_accepts(name, value), value

    loads()


def test_every_instant_the_document_allows_is_loaded_by_the_schema() -> None:
    schema = query_parameter(DOC, "get", "rptKickoffDatetime")["schema"]
    documented = OAS31Validator(schema, format_checker=OAS31Validator.FORMAT_CHECKER)

    @settings(max_examples=300, derandomize=True, deadline=None)
    @given(st.from_regex(schema["pattern"], fullmatch=True).filter(documented.is_valid))
    def loads(value: str) -> None:
        assert schema_accepts("rptKickoffDatetime", value), value

    loads()


def test_every_status_is_documented_and_errors_use_the_envelope(document: dict[str, Any]) -> None:
    for method, operation in operations(document).items():
        responses = operation["responses"]
        assert set(responses) == STATUSES[method], method
        for status in ERRORS & STATUSES[method]:
            assert "X-Request-ID" in responses[status]["headers"]
            if method == "get":
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}
            else:
                assert "content" not in responses[status], "a HEAD answer has no body"


def test_envelope_schema_names_status_result_and_error_data(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]

    assert schemas["Error"]["required"] == ["errorData", "result", "status"]
    assert schemas["Error"]["properties"]["result"] == {"type": "null"}
    assert schemas["ErrorData"]["required"] == ["details", "errorCode", "errorMessage"]


def test_success_is_a_binary_body_with_the_file_headers(document: dict[str, Any]) -> None:
    responses = operations(document)["get"]["responses"]
    binary = {"schema": {"type": "string", "format": "binary"}}

    for status in ("200", "206"):
        assert responses[status]["content"] == {"application/octet-stream": binary, "*/*": binary}
        assert {"Content-Disposition", "ETag", "Repr-Digest", "X-Request-ID"} <= set(
            responses[status]["headers"]
        )
    assert "Content-Range" in responses["206"]["headers"]
    assert "Content-Range" in responses["416"]["headers"]
    assert "Location" in responses["302"]["headers"]
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "Retry-After" in responses["503"]["headers"]
    assert "content" not in operations(document)["head"]["responses"]["200"]


def test_security_scheme_is_a_bearer_jwt_required_by_both_operations(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]

    assert schemes == {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
    for operation in operations(document).values():
        assert operation["security"] == [{"bearerAuth": []}]


@pytest.mark.parametrize(
    ("query", "use_token"),
    [({"id": "nope"}, True), ({"id": JOB_ID}, False), ({"id": JOB_ID}, True), ({}, True)],
    ids=["invalid-400", "no-token-401", "unknown-job-404", "missing-id-400"],
)
def test_real_error_answers_match_the_documented_envelope(
    document: dict[str, Any],
    download: Callable[..., Any],
    bearer: str,
    query: dict[str, str],
    use_token: bool,
) -> None:
    response = download(query, bearer if use_token else None)
    schema = {"$ref": "#/components/schemas/Error", "components": document["components"]}

    assert str(response.status_code) in ERRORS
    OAS31Validator(schema).validate(response.get_json())


def test_real_file_headers_match_their_documented_schemas(
    document: dict[str, Any],
    publish: Callable[..., JobRecord],
    download: Callable[..., Any],
    bearer: str,
) -> None:
    record = publish(file_name="Übersicht 2025.csv")
    response = download({"id": record.id}, bearer, headers={"Range": "bytes=0-9"})
    documented = operations(document)["get"]["responses"]["206"]["headers"]

    assert response.status_code == 206
    for name, header in documented.items():
        OAS31Validator(header["schema"]).validate(response.headers[name])


def test_download_list_documents_every_parameter_and_status(document: dict[str, Any]) -> None:
    operation = document["paths"][DOWNLOAD_LIST]["get"]
    query = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}

    assert set(query) == set(ListingQuerySchema().fields)
    assert {name for name, p in query.items() if p["required"]} == {"studyId", "limit", "offset"}
    assert query["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert query["offset"]["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
    assert set(operation["responses"]) == {"200", "400", "401", "403", "429", "500", "503"}
    assert operation["security"] == [{"bearerAuth": []}]


def test_a_real_listing_and_its_refusal_match_the_documented_schemas(
    document: dict[str, Any], listing: Callable[..., Any], publish: Callable[..., JobRecord], token
) -> None:
    publish(rpt_id="E341BB429E7D44E3989D113A504F3BF8")
    caller = token(f"{STUDY}:test:REPORTING_VIEW")
    values = {"studyId": STUDY, "limit": "5", "offset": "0"}

    listed = listing(values, caller)
    refused = listing({**values, "mode": "active"}, caller)

    assert (listed.status_code, refused.status_code) == (200, 403)
    for response, name in [(listed, "DownloadList"), (refused, "Error")]:
        schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
        OAS31Validator(schema).validate(response.get_json())


def test_docs_page_renders_the_served_document(client: FlaskClient) -> None:
    response = client.get(DOCS)
    page = response.get_data(as_text=True)

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert f'spec-url="{OPENAPI}"' in page
    assert f'href="{OPENAPI}"' in page


def test_docs_page_loads_redoc_from_the_service_and_names_no_other_host(
    client: FlaskClient,
) -> None:
    page = client.get(DOCS).get_data(as_text=True)

    assert f'<script src="{REDOC}"></script>' in page
    assert "//" not in page


def test_docs_page_policy_allows_only_this_service(client: FlaskClient) -> None:
    policy = client.get(DOCS).headers["Content-Security-Policy"]
    directives = dict(directive.split(" ", 1) for directive in policy.split("; "))
    sources = {source for value in directives.values() for source in value.split()}

    assert sources <= {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"


def test_redoc_is_served_byte_for_byte_from_the_installed_package(client: FlaskClient) -> None:
    shipped = next(
        file
        for file in distribution("drf-spectacular-sidecar").files or []
        if file.name == "redoc.standalone.js"
    )
    response = client.get(REDOC)

    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_data() == shipped.locate().read_bytes()


@pytest.mark.parametrize(
    ("path", "method", "success"),
    [(DOWNLOAD, "get", 200), (DOWNLOAD, "head", 200), (DOWNLOAD_LIST, "get", 200)],
)
def test_the_examples_together_reach_the_sample_report(
    document: dict[str, Any],
    client: FlaskClient,
    store: Store,
    catalog: Catalog,
    token: Callable[..., str],
    path: str,
    method: str,
    success: int,
) -> None:
    """Every query parameter has an example, and sending them all (as a client trying the
    document does) gets the sample's file or its listing, not a 400 or a 404."""
    record = ensure_sample(store, catalog)
    query = [p for p in document["paths"][path][method]["parameters"] if p["in"] == "query"]
    caller = token(f"{record.studyId}:{record.mode}:REPORTING_VIEW")

    response = client.open(
        path,
        method=method.upper(),
        query_string={parameter["name"]: parameter["example"] for parameter in query},
        headers={"Authorization": f"Bearer {caller}"},
    )

    assert response.status_code == success
    if path == DOWNLOAD_LIST:
        assert [run["downloadId"] for run in response.get_json()["result"]["reportRunStatus"]] == [
            record.id
        ]
    else:
        assert response.headers["ETag"] == f'"{record.sha256}"'
