"""The error envelope: typed API errors, Werkzeug's, unexpected ones and the store's."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, abort
from flask.testing import FlaskClient
from werkzeug.exceptions import TooManyRequests

from reporting_svc.errors import (
    ApiError,
    InsufficientParameters,
    InvalidParameters,
    JobNotFound,
    PermissionDenied,
    ReportFileUnavailable,
    StoreUnavailable,
    Unauthenticated,
)
from reporting_svc.storage import JobRecord, Store, StoreError
from tests.support import STUDY, error_of

BOOM = "/test-only/boom"


class Teapot(ApiError):
    """A subclass the service does not define: the envelope must still follow its fields."""

    status = 418
    message = "I'm a teapot"


def _raising(app: Flask, error: BaseException) -> FlaskClient:
    """Register a throwaway route that raises ``error`` and return a client for the app."""

    def boom() -> str:
        raise error

    app.add_url_rule(BOOM, "boom", boom)
    return app.test_client()


def test_api_error_subclass_answers_its_status_message_details_and_headers(app: Flask) -> None:
    client = _raising(app, Teapot("short and stout", headers={"X-Extra": "1"}))

    response = client.get(BOOM)

    assert response.status_code == 418
    assert response.get_json() == {
        "status": "error",
        "result": None,
        "errorData": {
            "errorCode": "REPT_418",
            "errorMessage": "I'm a teapot",
            "details": "short and stout",
        },
    }
    assert response.headers["X-Extra"] == "1"


@pytest.mark.parametrize(
    ("error", "status", "message", "challenge"),
    [
        (InsufficientParameters("id: is required"), 400, "Insufficient parameters", None),
        (InvalidParameters("mode: bad"), 400, "Invalid parameters", None),
        (Unauthenticated("no token", token_sent=False), 401, None, "Bearer"),
        (Unauthenticated("expired", token_sent=True), 401, None, 'Bearer error="invalid_token"'),
        (PermissionDenied("REPORTING_VIEW"), 401, None, 'Bearer error="insufficient_scope"'),
        (JobNotFound(), 404, "Not found", None),
        (ReportFileUnavailable("gone"), 500, "Report file unavailable", None),
        (StoreUnavailable(), 503, "Report store unavailable", None),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, ApiError) else None,
)
def test_service_errors_answer_their_envelope(
    app: Flask, error: ApiError, status: int, message: str | None, challenge: str | None
) -> None:
    response = _raising(app, error).get(BOOM)

    assert response.status_code == status
    data = error_of(response)
    assert data["details"] == error.details
    if message is not None:
        assert data["errorMessage"] == message
    assert response.headers.get("WWW-Authenticate") == challenge


def test_api_error_without_details_answers_null_details(app: Flask) -> None:
    response = _raising(app, InvalidParameters()).get(BOOM)

    assert error_of(response)["details"] is None
    assert error_of(response)["errorMessage"] == "Invalid parameters"


def test_werkzeug_http_exception_keeps_its_status_and_headers(app: Flask) -> None:
    response = _raising(app, TooManyRequests(retry_after=7)).get(BOOM)

    assert response.status_code == 429
    data = error_of(response)
    assert data["errorCode"] == "REPT_429"
    assert data["errorMessage"] == "Too Many Requests"
    assert response.headers["Retry-After"] == "7"
    assert response.headers["Content-Type"] == "application/json"


def test_abort_becomes_an_envelope(app: Flask) -> None:
    app.add_url_rule(BOOM, "boom", lambda: abort(403))

    response = app.test_client().get(BOOM)

    assert response.status_code == 403
    assert error_of(response)["errorMessage"] == "Forbidden"


def test_unexpected_exception_is_a_500_envelope_without_its_text(
    app: Flask, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    client = _raising(app, RuntimeError("secret detail"))

    with caplog.at_level(logging.ERROR):
        response = client.get(BOOM, headers={"X-Request-ID": "trace-500"})

    assert response.status_code == 500
    data = error_of(response)
    assert data["errorMessage"] == "Internal server error"
    assert data["details"] is None
    body = response.get_data(as_text=True)
    assert "secret detail" not in body
    assert "RuntimeError" not in body
    assert "Traceback" not in body
    assert str(tmp_path) not in body
    assert response.headers["X-Request-ID"] == "trace-500"
    assert response.headers["Cache-Control"] == "no-store"
    assert "secret detail" in caplog.text  # operators still see what went wrong


def test_store_failure_is_503_with_retry_after_and_no_store_detail(
    app: Flask,
    store: Store,
    publish: Callable[..., JobRecord],
    token: Callable[..., str],
    download: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = publish()

    def unreachable(job_id: str) -> JobRecord | None:
        raise StoreError("cannot read record: /srv/reports/jobs/secret/record.json")

    monkeypatch.setattr(store, "get_record", unreachable)

    response = download({"id": record.id}, token(f"{STUDY}:test:REPORTING_VIEW"))

    assert response.status_code == 503
    data = error_of(response)
    assert data["errorCode"] == "REPT_503"
    assert int(response.headers["Retry-After"]) > 0
    assert "/srv/reports" not in response.get_data(as_text=True)
