"""The local store behind nginx (``x-accel``): the service decides, nginx sends the bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request

from reporting_svc import create_app
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import Settings, SettingsError
from reporting_svc.storage import JobRecord, Store
from reporting_svc.storage.local import LocalStore
from tests.support import DOWNLOAD, SERVICE_HEADERS, STUDY, error_of

CONTENT = b"subjectId,visit\n" + b"S-0001,Screening\n" * 40
SIZE = len(CONTENT)

Download = Callable[..., Any]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(local_delivery="x-accel")


@pytest.fixture
def job(publish: Callable[..., JobRecord]) -> JobRecord:
    return publish(CONTENT, "Übersicht.csv")


@pytest.fixture
def get(job: JobRecord, token: Callable[..., str], download: Download) -> Callable[..., Any]:
    """Download ``job`` with extra request headers, as an authorised caller."""
    bearer = token(f"{STUDY}:test:REPORTING_VIEW")

    def call(headers: dict[str, str] | None = None, method: str = "GET") -> Any:
        return download({"id": job.id}, bearer, method=method, headers=headers)

    return call


def _location(kind: str, record: JobRecord, prefix: str = "/_reporting_svc_files/") -> str:
    return f"{prefix}{kind}/jobs/{record.id}/content"


def _assert_handed_to_nginx(response: Any, location: str) -> None:
    assert response.status_code == 200
    assert response.headers["X-Accel-Redirect"] == location
    assert response.data == b""
    assert response.headers.get("Content-Length", "0") == "0"
    assert "Content-Range" not in response.headers


def test_a_get_hands_the_whole_file_to_nginx_with_the_services_headers(
    get: Callable[..., Any], job: JobRecord
) -> None:
    response = get({"X-Request-ID": "accel-1"})

    _assert_handed_to_nginx(response, _location("full", job))
    for name in SERVICE_HEADERS:
        assert response.headers.get(name), name
    assert response.headers["Content-Type"] == "text/csv"
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="Ubersicht.csv"'
    )
    assert response.headers["ETag"] == f'"{job.sha256}"'
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Request-ID"] == "accel-1"


def test_a_satisfiable_range_goes_to_the_range_location(
    get: Callable[..., Any], job: JobRecord
) -> None:
    response = get({"Range": "bytes=10-19", "If-Range": f'"{job.sha256}"'})

    _assert_handed_to_nginx(response, _location("range", job))
    assert response.headers["ETag"] == f'"{job.sha256}"'


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Range": "bytes=10-19", "If-Range": '"stale"'}, id="stale-if-range"),
        pytest.param({"Range": "bytes=0-1,5-6"}, id="multi-range"),
        pytest.param({"Range": "items=0-1"}, id="unknown-unit"),
    ],
)
def test_a_range_that_must_be_ignored_goes_to_the_full_location(
    get: Callable[..., Any], job: JobRecord, headers: dict[str, str]
) -> None:
    _assert_handed_to_nginx(get(headers), _location("full", job))


def test_a_304_is_answered_by_the_service(get: Callable[..., Any], job: JobRecord) -> None:
    response = get({"If-None-Match": f'"{job.sha256}"'})

    assert response.status_code == 304
    assert "X-Accel-Redirect" not in response.headers
    assert response.headers["ETag"] == f'"{job.sha256}"'


def test_a_416_is_answered_by_the_service(get: Callable[..., Any]) -> None:
    response = get({"Range": f"bytes={SIZE}-"})

    assert response.status_code == 416
    assert "X-Accel-Redirect" not in response.headers
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    assert error_of(response)["errorCode"] == "REPT_416"


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        pytest.param({"If-Match": "{etag}"}, 200, CONTENT, id="if-match"),
        pytest.param({"If-Match": "*", "Range": "bytes=10-19"}, 206, CONTENT[10:20], id="range"),
        pytest.param(
            {"If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}, 200, CONTENT, id="ius"
        ),
    ],
)
def test_a_request_with_preconditions_is_sent_by_the_service_not_nginx(
    get: Callable[..., Any], job: JobRecord, headers: dict[str, str], status: int, body: bytes
) -> None:
    # nginx would test them again against its own (absent) ETag and the file's mtime.
    response = get({k: v.format(etag=f'"{job.sha256}"') for k, v in headers.items()})

    assert response.status_code == status
    assert "X-Accel-Redirect" not in response.headers
    assert response.data == body


def test_a_412_is_answered_by_the_service(get: Callable[..., Any]) -> None:
    response = get({"If-Match": '"0123abcd"'})

    assert response.status_code == 412
    assert "X-Accel-Redirect" not in response.headers
    assert error_of(response)["errorCode"] == "REPT_412"


@pytest.mark.parametrize("extra", [{}, {"Range": "bytes=0-9"}])
def test_head_is_answered_by_the_service_with_the_full_length(
    get: Callable[..., Any], job: JobRecord, extra: dict[str, str]
) -> None:
    response = get(extra, method="HEAD")

    assert response.status_code == 200
    assert "X-Accel-Redirect" not in response.headers
    assert response.headers["Content-Length"] == str(SIZE)
    assert "Content-Range" not in response.headers
    assert response.headers["ETag"] == f'"{job.sha256}"'
    assert response.data == b""


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_missing_file_is_a_500_not_a_redirect(
    get: Callable[..., Any], job: JobRecord, store: Store, method: str
) -> None:
    assert isinstance(store, LocalStore)
    store.content_path(job).unlink()

    response = get(method=method)

    assert response.status_code == 500
    assert "X-Accel-Redirect" not in response.headers
    if method == "GET":
        details = error_of(response)["details"] or ""
        assert "jobs/" not in details


def test_a_file_whose_size_differs_from_the_record_is_a_500_not_a_redirect(
    get: Callable[..., Any], job: JobRecord, store: Store
) -> None:
    assert isinstance(store, LocalStore)
    store.content_path(job).write_bytes(CONTENT + b"tampered")

    response = get()

    assert response.status_code == 500
    assert "X-Accel-Redirect" not in response.headers
    assert error_of(response)["errorCode"] == "REPT_500"


@pytest.mark.parametrize("prefix", ["/files/", "/files", "/internal/reports/"])
def test_a_custom_prefix_names_the_internal_location(
    make_settings: Callable[..., Settings],
    token: Callable[..., str],
    tmp_path: Path,
    prefix: str,
) -> None:
    app = create_app(make_settings(local_delivery="x-accel", x_accel_prefix=prefix))
    source = tmp_path / "r.csv"
    source.write_bytes(CONTENT)
    record = publish_report(
        app.extensions["reporting_svc"].store,
        source,
        report_name="Subject Data Extract",
        mode="test",
        study_id=STUDY,
    )
    headers = {"Authorization": f"Bearer {token(f'{STUDY}:test:REPORTING_VIEW')}"}

    full = app.test_client().get(DOWNLOAD, query_string={"id": record.id}, headers=headers)
    part = app.test_client().get(
        DOWNLOAD, query_string={"id": record.id}, headers={**headers, "Range": "bytes=0-9"}
    )

    base = "/" + prefix.strip("/") + "/"
    assert full.headers["X-Accel-Redirect"] == _location("full", record, base)
    assert part.headers["X-Accel-Redirect"] == _location("range", record, base)


@pytest.mark.parametrize("prefix", ["files/", "/files/../etc/", "/..", "", "/", "//"])
def test_settings_refuse_a_prefix_that_is_not_an_absolute_clean_location(
    make_settings: Callable[..., Settings], prefix: str
) -> None:
    with pytest.raises(SettingsError, match="X_ACCEL_PREFIX"):
        make_settings(local_delivery="x-accel", x_accel_prefix=prefix)


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 200), ({"Range": "bytes=10-19"}, 206)],
    ids=["full", "range"],
)
def test_the_delivered_value_carries_the_status_nginx_sends_and_no_body_of_the_workers(
    app: Flask, job: JobRecord, headers: dict[str, str], status: int
) -> None:
    delivery = app.extensions["reporting_svc"].delivery

    with app.test_request_context(DOWNLOAD, query_string={"id": job.id}, headers=headers):
        delivered = delivery.respond(job, request, "alice")

    assert "X-Accel-Redirect" in delivered.response.headers
    assert (delivered.response.status_code, delivered.status) == (200, status)
    assert delivered.body is None


def test_a_request_with_preconditions_is_delivered_with_the_body_the_worker_sends(
    app: Flask, job: JobRecord
) -> None:
    delivery = app.extensions["reporting_svc"].delivery
    headers = {"If-Match": f'"{job.sha256}"', "Range": "bytes=10-19"}

    with app.test_request_context(DOWNLOAD, query_string={"id": job.id}, headers=headers):
        delivered = delivery.respond(job, request, "alice")
    delivered.response.close()

    assert (delivered.response.status_code, delivered.status) == (206, 206)
    assert delivered.body is not None and delivered.body.length == 10
