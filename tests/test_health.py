"""Liveness, readiness and the metrics endpoint: unauthenticated, unaudited, access-checked."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from reporting_svc import create_app
from reporting_svc.settings import Settings
from reporting_svc.storage import JobRecord, Store, s3
from reporting_svc.storage.local import LocalStore
from tests.support import BUCKET, error_of

MakeSettings = Callable[..., Settings]
LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}
ELSEWHERE = {"REMOTE_ADDR": "10.1.2.3"}
METRICS_TOKEN = "metrics-scrape-token-0123456789"


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _download_samples() -> tuple[float, ...]:
    """Everything that counts a download, to show that probes change none of it."""
    return (
        _sample("reporting_download_duration_seconds_count"),
        _sample("reporting_download_bytes_total", delivery="stream"),
        _sample("reporting_downloads_in_flight"),
        sum(
            _sample("reporting_http_requests_total", route="download", method="GET", status=status)
            for status in ("200", "401", "404")
        ),
    )


def _assert_not_ready(response: Any, reason: str) -> None:
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    data = error_of(response)
    assert data["errorMessage"] == "Not ready"
    assert reason in data["details"]


# --- liveness and readiness ------------------------------------------------------------


def test_healthz_answers_without_a_token(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_answers_ready_when_store_and_audit_file_work(client: FlaskClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}


def test_readyz_is_503_naming_the_store_when_the_local_root_is_gone(
    client: FlaskClient, store: Store
) -> None:
    assert isinstance(store, LocalStore)
    shutil.rmtree(store.root)

    response = client.get("/readyz")

    _assert_not_ready(response, "local store's root directory")
    assert str(store.root) not in response.get_data(as_text=True)


def test_readyz_is_503_naming_the_audit_file_when_it_cannot_be_opened(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file where the audit directory should be")
    client = create_app(make_settings(audit_file=str(blocker / "audit.jsonl"))).test_client()

    response = client.get("/readyz")

    _assert_not_ready(response, "audit file cannot be opened")
    assert "local store" not in error_of(response)["details"]


def test_readyz_is_503_naming_the_catalog_when_it_cannot_be_opened(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file where the catalog's directory should be")
    url = f"sqlite:///{blocker}/catalog.sqlite3"
    client = create_app(make_settings(catalog_url=url, upgraded=False)).test_client()

    response = client.get("/readyz")

    _assert_not_ready(response, "the catalog cannot be read")
    assert str(blocker) not in error_of(response)["details"]


def test_readyz_names_every_problem_at_once(make_settings: MakeSettings, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    app = create_app(make_settings(audit_file=str(blocker / "audit.jsonl")))
    shutil.rmtree(app.extensions["reporting_svc"].store.root)

    response = app.test_client().get("/readyz")

    _assert_not_ready(response, "local store's root directory")
    assert "audit file cannot be opened" in error_of(response)["details"]


def test_readyz_is_503_naming_the_bucket_when_s3_is_unreachable(
    unreachable_s3: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def quick(**options: Any) -> Config:
        """The store's own client options, but one attempt that gives up within a second."""
        options.update(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1})
        return Config(**options)

    monkeypatch.setattr(s3, "Config", quick)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    response = create_app(unreachable_s3).test_client().get("/readyz")

    _assert_not_ready(response, "S3 bucket cannot be reached")
    assert "EndpointConnectionError" in error_of(response)["details"]
    assert "check REPORTING_SVC_S3_ENDPOINT_URL" in error_of(response)["details"]


def test_readyz_is_503_naming_the_bucket_when_it_was_deleted(
    make_settings: MakeSettings, s3_bucket: Any
) -> None:
    app = create_app(make_settings(store="s3", s3_bucket=BUCKET, s3_region="us-east-1"))
    assert app.test_client().get("/readyz").status_code == 200
    s3_bucket.delete_bucket(Bucket=BUCKET)

    response = app.test_client().get("/readyz")

    _assert_not_ready(response, "S3 bucket cannot be reached")
    assert "create it, or correct REPORTING_SVC_S3_BUCKET" in error_of(response)["details"]


def test_readyz_without_aws_credentials_says_which_variables_to_set(
    no_aws_credentials: None, unreachable_s3: Settings
) -> None:
    response = create_app(unreachable_s3).test_client().get("/readyz")

    _assert_not_ready(response, "S3 bucket cannot be reached")
    assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in error_of(response)["details"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_leave_no_audit_record_and_count_no_download(
    client: FlaskClient,
    publish: Callable[..., JobRecord],
    audit_records: Callable[..., list[dict[str, Any]]],
    path: str,
) -> None:
    publish()
    before = _download_samples()
    route = path.strip("/")
    probes = _sample("reporting_http_requests_total", route=route, method="GET", status="200")

    for _ in range(3):
        assert client.get(path).status_code == 200

    assert audit_records() == []
    assert _download_samples() == before
    after = _sample("reporting_http_requests_total", route=route, method="GET", status="200")
    assert after == probes + 3


def test_failed_readiness_leaves_no_audit_record(
    client: FlaskClient, store: Store, audit_records: Callable[..., list[dict[str, Any]]]
) -> None:
    assert isinstance(store, LocalStore)
    shutil.rmtree(store.root)

    assert client.get("/readyz").status_code == 503

    assert audit_records() == []


# --- metrics access --------------------------------------------------------------------


def test_metrics_answer_loopback_in_prometheus_text_format(client: FlaskClient) -> None:
    client.get("/healthz")

    response = client.get("/metrics", environ_base=LOOPBACK)

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "version=" in response.headers["Content-Type"]
    text = response.get_data(as_text=True)
    assert "# TYPE reporting_http_requests_total counter" in text
    assert 'reporting_http_requests_total{method="GET",route="healthz",status="200"}' in text
    assert "# TYPE reporting_download_duration_seconds histogram" in text
    assert "# TYPE reporting_downloads_in_flight gauge" in text


def test_metrics_refuse_other_addresses_by_default(client: FlaskClient) -> None:
    response = client.get("/metrics", environ_base=ELSEWHERE)

    assert response.status_code == 403
    assert error_of(response)["errorMessage"] == "Forbidden"
    assert "reporting_http_requests_total" not in response.get_data(as_text=True)


def test_metrics_answer_an_allowed_network(make_settings: MakeSettings) -> None:
    client = create_app(make_settings(metrics_allow="127.0.0.1,10.0.0.0/8")).test_client()

    assert client.get("/metrics", environ_base=ELSEWHERE).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code == 403


@pytest.fixture
def token_app(make_settings: MakeSettings) -> Flask:
    """An app whose metrics need a token; loopback alone is not enough."""
    return create_app(make_settings(metrics_token=METRICS_TOKEN))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-the-metrics-token"},
        {"Authorization": f"Basic {METRICS_TOKEN}"},
        {"Authorization": f"Bearer {METRICS_TOKEN}x"},
        {"Authorization": METRICS_TOKEN},
    ],
    ids=["no-token", "wrong-token", "other-scheme", "longer-token", "token-without-scheme"],
)
def test_metrics_with_a_token_refuse_callers_without_it(
    token_app: Flask, headers: dict[str, str]
) -> None:
    response = token_app.test_client().get("/metrics", headers=headers, environ_base=LOOPBACK)

    assert response.status_code == 403
    assert error_of(response)["errorCode"] == "REPT_403"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_metrics_with_a_token_answer_it_from_any_address(token_app: Flask, scheme: str) -> None:
    response = token_app.test_client().get(
        "/metrics", headers={"Authorization": f"{scheme} {METRICS_TOKEN}"}, environ_base=ELSEWHERE
    )

    assert response.status_code == 200
    assert "reporting_http_requests_total" in response.get_data(as_text=True)
