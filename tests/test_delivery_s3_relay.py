"""S3 behind nginx (``x-accel`` on an S3 store): the service decides, nginx relays from S3."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from prometheus_client import REGISTRY

from reporting_svc.http.delivery import RELAY_RANGE_HEADER, RELAY_URL_HEADER
from reporting_svc.storage import JobRecord, layout
from tests.support import BUCKET, SERVICE_HEADERS, STUDY, error_of

PREFIX = "reports/"
EXPIRES = 3
CONTENT = os.urandom(10_000)
STALE = '"' + "0" * 64 + '"'


@pytest.fixture
def settings(make_settings, s3_bucket):
    """An S3 app in x-accel mode created inside moto's mock, with a short URL lifetime."""
    return make_settings(
        store="s3",
        s3_bucket=BUCKET,
        s3_region="us-east-1",
        s3_prefix=PREFIX,
        s3_delivery="x-accel",
        x_accel_presign_expires=EXPIRES,
    )


@pytest.fixture
def job(publish: Callable[..., JobRecord]) -> JobRecord:
    return publish(CONTENT, "Übersicht.csv")


@pytest.fixture
def get(job: JobRecord, token: Callable[..., str], download: Callable[..., Any]) -> Any:
    """Download ``job`` with extra request headers, as an authorised caller."""
    bearer = token(f"{STUDY}:test:REPORTING_VIEW")

    def call(headers: dict[str, str] | None = None, method: str = "GET") -> Any:
        return download({"id": job.id}, bearer, method=method, headers=headers)

    return call


def _assert_relayed(response: Any, job: JobRecord) -> dict[str, str]:
    """The answer sends nginx to the S3 location with a presigned URL of the job's object;
    returns the URL's query."""
    assert response.status_code == 200
    assert response.headers["X-Accel-Redirect"] == "/_reporting_svc_files/relay"
    assert response.data == b""
    assert response.headers.get("Content-Length", "0") == "0"
    assert "Content-Range" not in response.headers
    url = urlsplit(response.headers[RELAY_URL_HEADER])
    assert url.path.endswith(f"/{PREFIX}{layout.content_key(job.id)}")
    return {name: values[0] for name, values in parse_qs(url.query).items()}


def test_a_get_hands_nginx_a_short_lived_url_and_the_services_headers(
    get: Callable[..., Any], job: JobRecord
) -> None:
    response = get({"X-Request-ID": "relay-1"})

    query = _assert_relayed(response, job)
    assert query["X-Amz-Expires"] == str(EXPIRES)
    assert RELAY_RANGE_HEADER not in response.headers
    for name in SERVICE_HEADERS:
        assert response.headers.get(name), name
    assert response.headers["ETag"] == f'"{job.sha256}"'
    assert response.headers["X-Request-ID"] == "relay-1"


def test_the_url_fetches_the_object_with_the_range_the_service_decided(
    get: Callable[..., Any], job: JobRecord
) -> None:
    response = get({"Range": "bytes=-100"})

    _assert_relayed(response, job)
    relayed_range = response.headers[RELAY_RANGE_HEADER]
    assert relayed_range == f"bytes={len(CONTENT) - 100}-{len(CONTENT) - 1}"
    fetched = requests.get(  # what nginx does, against moto's mock
        response.headers[RELAY_URL_HEADER], headers={"Range": relayed_range}, timeout=10
    )
    assert fetched.status_code == 206
    assert fetched.content == CONTENT[-100:]


@pytest.mark.parametrize(
    "headers",
    [
        {"Range": "bytes=0-9,20-29"},
        {"Range": "bytes=5-9", "If-Range": STALE},
        {"Range": "items=0-9"},
    ],
    ids=["several-ranges", "stale-if-range", "unknown-unit"],
)
def test_a_range_the_service_ignores_is_not_forwarded_to_s3(
    get: Callable[..., Any], job: JobRecord, headers: dict[str, str]
) -> None:
    response = get(headers)

    _assert_relayed(response, job)
    assert RELAY_RANGE_HEADER not in response.headers


def test_a_request_with_a_precondition_that_holds_is_relayed_too(
    get: Callable[..., Any], job: JobRecord
) -> None:
    response = get({"If-Match": f'"{job.sha256}"', "Range": "bytes=10-19"})

    _assert_relayed(response, job)
    assert response.headers[RELAY_RANGE_HEADER] == "bytes=10-19"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"If-None-Match": "{etag}"}, 304),
        ({"If-Match": STALE}, 412),
        ({"Range": f"bytes={len(CONTENT)}-"}, 416),
    ],
    ids=["not-modified", "precondition-failed", "unsatisfiable"],
)
def test_what_the_record_decides_is_answered_by_the_service_without_a_url(
    get: Callable[..., Any], job: JobRecord, headers: dict[str, str], status: int
) -> None:
    sent = {name: value.format(etag=f'"{job.sha256}"') for name, value in headers.items()}

    response = get(sent)

    assert response.status_code == status
    assert "X-Accel-Redirect" not in response.headers
    assert RELAY_URL_HEADER not in response.headers


def test_head_is_answered_by_the_service(get: Callable[..., Any]) -> None:
    response = get(method="HEAD")

    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(CONTENT))
    assert "X-Accel-Redirect" not in response.headers


def test_an_object_deleted_under_its_record_is_a_500_without_a_url(
    get: Callable[..., Any], job: JobRecord, s3_bucket: Any
) -> None:
    s3_bucket.delete_object(Bucket=BUCKET, Key=PREFIX + layout.content_key(job.id))

    response = get()

    assert response.status_code == 500
    assert error_of(response)["errorCode"] == "REPT_500"
    assert RELAY_URL_HEADER not in response.headers


def test_a_relayed_range_counts_in_the_metrics_as_the_206_nginx_sends(
    get: Callable[..., Any],
) -> None:
    labels = {"route": "download", "method": "GET", "status": "206"}
    before = REGISTRY.get_sample_value("reporting_http_requests_total", labels) or 0.0

    response = get({"Range": "bytes=10-19"})

    assert response.headers[RELAY_RANGE_HEADER] == "bytes=10-19"
    assert REGISTRY.get_sample_value("reporting_http_requests_total", labels) == before + 1
