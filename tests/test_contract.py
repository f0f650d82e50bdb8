"""What a view declares (api/contract.py) is what the OpenAPI document states, and only that."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response

from reporting_svc.api.contract import FILE, Contract, answers, contract_of, operation, refuses
from reporting_svc.api.openapi import build_spec
from reporting_svc.http.headers import ETAG, REQUEST_ID, WWW_AUTHENTICATE


def declared(app: Flask) -> dict[tuple[str, str], Contract]:
    """Each documented (path, method) of the app and the contract of its view."""
    found: dict[tuple[str, str], Contract] = {}
    for rule in app.url_map.iter_rules():
        contract = contract_of(app.view_functions[rule.endpoint])
        if contract is not None:
            found |= {(rule.rule, method): contract for method in contract.operations}
    return found


def test_the_document_states_exactly_the_statuses_the_views_declare(app: Flask) -> None:
    document = build_spec(app)
    views = declared(app)
    stated = {
        (path, method) for path, operations in document["paths"].items() for method in operations
    }

    assert stated == set(views)
    assert {("get", "downloadReport"), ("head", "headReport"), ("get", "downloadList")} == {
        (method, contract.operations[method]) for (_, method), contract in views.items()
    }
    for (path, method), contract in views.items():
        statuses = {o.status for o in contract.outcomes if o.answers(method)}
        assert set(map(int, document["paths"][path][method]["responses"])) == statuses


def test_a_status_declared_on_a_view_is_documented_for_its_path() -> None:
    app = Flask(__name__)
    bp = Blueprint("toy", __name__)

    @bp.get("/toy")
    @operation(get="getToy", head="headToy")
    @answers(200, "The toy.", body=FILE, headers=(ETAG,))
    @answers(206, "Part of the toy.", body=FILE, methods=["GET"])
    @refuses({401: "Who are you?"})
    def toy() -> Response:
        """Fetch the toy."""
        return Response("toy")

    app.register_blueprint(bp)
    paths: dict[str, Any] = build_spec(app, "/mounted")["paths"]

    assert set(paths) == {"/mounted/toy"}
    get, head = paths["/mounted/toy"]["get"], paths["/mounted/toy"]["head"]
    assert (get["operationId"], get["summary"]) == ("getToy", "Fetch the toy.")
    assert list(get["responses"]) == ["200", "206", "401"]
    assert list(head["responses"]) == ["200", "401"]
    assert set(get["responses"]["200"]["headers"]) == {ETAG, REQUEST_ID}
    assert "content" in get["responses"]["200"] and "content" not in head["responses"]["200"]
    assert get["responses"]["401"]["description"] == "Who are you?"
    assert get["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert get["responses"]["401"]["headers"][WWW_AUTHENTICATE]["required"] is True
