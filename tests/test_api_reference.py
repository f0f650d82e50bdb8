"""docs/api.md, the contract a user reads, against the OpenAPI document and the code.

Each table of the page that the document or the code also states is read here and
compared both ways, so a parameter, status, header, error code or audit field cannot be
added, dropped or moved on one side only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from werkzeug.http import HTTP_STATUS_CODES

from reporting_svc import errors
from reporting_svc.api.openapi import build_spec
from reporting_svc.audit.chain import LINE_FIELDS
from reporting_svc.audit.policy import AWAITED_EVENTS, UNAWAITED_EVENTS
from reporting_svc.server.worker import REFUSALS
from tests.support import DOWNLOAD, DOWNLOAD_LIST

PAGE = Path(__file__).parent.parent / "docs" / "api.md"
DOCUMENT = build_spec()
OPERATIONS = {("get", DOWNLOAD), ("head", DOWNLOAD), ("get", DOWNLOAD_LIST)}


def table(heading: str) -> list[dict[str, str]]:
    """The rows of the first table under ``### heading`` (or ``##``), cells without
    backticks, keyed by the header row's names."""
    text = PAGE.read_text()
    start = re.search(rf"^#+ {re.escape(heading)}$", text, re.MULTILINE)
    assert start, f"docs/api.md has no heading {heading!r}"
    lines = text[start.end() :].splitlines()
    rows = _first_table(lines)
    names = _cells(rows[0])
    return [dict(zip(names, _cells(row), strict=True)) for row in rows[2:]]


def _first_table(lines: list[str]) -> list[str]:
    found: list[str] = []
    for line in lines:
        if line.startswith("|"):
            found.append(line)
        elif found or line.startswith("#"):
            break
    return found


def _cells(row: str) -> list[str]:
    return [cell.strip().replace("`", "") for cell in row.strip().strip("|").split("|")]


def operation(method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = DOCUMENT["paths"][path][method]
    return found


def parameters(method: str, path: str, where: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation(method, path)["parameters"] if p["in"] == where}


def error_classes() -> list[type[errors.ApiError]]:
    """Every typed error of the package that has its own message (``Unavailable`` is only
    the 503s' common base), subclasses of subclasses included; not the ones tests define."""
    found: list[type[errors.ApiError]] = []
    waiting: list[type[errors.ApiError]] = [errors.ApiError]
    while waiting:
        cls = waiting.pop()
        if "message" in vars(cls) and cls.__module__.startswith("reporting_svc."):
            found.append(cls)
        waiting.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize(
    ("heading", "path"),
    [("Download parameters", DOWNLOAD), ("Download list parameters", DOWNLOAD_LIST)],
)
def test_parameters_are_the_documents_with_the_same_required_ones(heading: str, path: str) -> None:
    rows = {row["parameter"]: row["required"] for row in table(heading)}

    for method in {method for method, where in OPERATIONS if where == path}:
        query = parameters(method, path, "query")
        assert set(rows) == set(query), method
        assert {name for name, required in rows.items() if required == "yes"} == {
            name for name, parameter in query.items() if parameter["required"]
        }


def test_download_statuses_per_method_are_the_documents() -> None:
    rows = table("Download statuses")

    for method in ("get", "head"):
        listed = {row["status"] for row in rows if row[method.upper()] == "yes"}
        assert listed == set(operation(method, DOWNLOAD)["responses"]), method
    assert {row["status"] for row in rows if row["HEAD"] == "no"} == {"206", "416"}


def test_download_list_statuses_are_the_documents() -> None:
    listed = {row["status"] for row in table("Download list statuses")}

    assert listed == set(operation("get", DOWNLOAD_LIST)["responses"])


def test_request_headers_per_method_are_the_documents() -> None:
    rows = table("Download request headers")

    for method in ("get", "head"):
        listed = {row["header"] for row in rows if method.upper() in row["methods"].split(", ")}
        assert listed == set(parameters(method, DOWNLOAD, "header")), method


def test_response_headers_are_on_exactly_the_documented_statuses() -> None:
    documented: dict[str, set[str]] = {}
    for method in ("get", "head"):
        for status, response in operation(method, DOWNLOAD)["responses"].items():
            for name in response.get("headers", {}):
                documented.setdefault(name, set()).add(status)
    every = {
        status for method in ("get", "head") for status in operation(method, DOWNLOAD)["responses"]
    }

    listed = {
        row["header"]: every
        if row["statuses"] == "every answer"
        else set(row["statuses"].split(", "))
        for row in table("Download response headers")
    }

    assert listed == documented


def test_every_error_statuses_code_is_listed_with_the_codes_messages() -> None:
    rows = {(row["code"], row["errorMessage"]) for row in table("Error codes")}
    typed = {(f"REPT_{cls.status}", cls.message) for cls in error_classes()}
    answered = {
        f"REPT_{status}"
        for method, path in OPERATIONS
        for status in operation(method, path)["responses"]
        if int(status) >= 400
    }

    assert typed <= rows, "every typed error of errors.py, with its message"
    assert "REPT_412" in {code for code, _ in rows}
    assert answered | {f"REPT_{status}" for status in REFUSALS} <= {code for code, _ in rows}
    for code, message in rows - typed:
        status = int(code.removeprefix("REPT_"))
        assert status in HTTP_STATUS_CODES or status in REFUSALS, code
        assert message, code


def test_audit_fields_are_the_records_in_their_order() -> None:
    assert [row["field"] for row in table("Audit record fields")] == list(LINE_FIELDS)


def test_audit_events_include_every_event_the_service_writes() -> None:
    listed = {row["event"] for row in table("Audit events")}

    written = AWAITED_EVENTS | UNAWAITED_EVENTS | {"refused", "not-modified"}
    assert written | {"withdrawn", "purged", "repair"} == listed


def test_no_page_points_outside_the_repository_for_the_contract() -> None:
    root = PAGE.parent.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    sources = [
        *sorted((root / "reporting_svc").rglob("*.py")),
        *(path for path in sorted((root / "tests").rglob("*.py")) if path != Path(__file__)),
    ]

    cited = [
        str(path.relative_to(root)) for path in pages + sources if "SPEC" in _without_names(path)
    ]

    assert cited == []


def _without_names(path: Path) -> str:
    """The file's text without identifiers that merely contain SPEC (``MAX_SPEC``)."""
    return re.sub(r"\w*SPEC\w+|\w+SPEC\b", "", path.read_text())


def anchors() -> set[str]:
    """The page's headings as GitHub makes them into anchors."""
    headings = re.findall(r"^#+ (.+)$", PAGE.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_link_and_section_reference_to_the_page_exists() -> None:
    root = PAGE.parent.parent
    other_pages = [root / "README.md", *(path for path in root.glob("docs/*.md") if path != PAGE)]
    linked = {
        (path.name, anchor)
        for path in other_pages
        for anchor in re.findall(r"api\.md#([\w-]+)", path.read_text())
    } | {(PAGE.name, anchor) for anchor in re.findall(r"\]\(#([\w-]+)\)", PAGE.read_text())}
    sections = {anchor.split("-", 1)[0] for anchor in anchors() if anchor[0].isdigit()}
    cited = {
        (path.name, number)
        for folder in ("reporting_svc", "tests")
        for path in (root / folder).rglob("*.py")
        for number in re.findall(r"docs/api\.md §(\d)", path.read_text())
    }

    assert {(name, anchor) for name, anchor in linked if anchor not in anchors()} == set()
    assert {(name, number) for name, number in cited if number not in sections} == set()
    assert len(linked) > 10 and cited, "the pages and the code point at the page's sections"
