"""Fixtures shared by every test: settings, app, client, report and token factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from flask import Flask
from flask.testing import FlaskClient
from moto import mock_aws

from reporting_svc import create_app
from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import mint_token
from reporting_svc.publish import publish_report
from reporting_svc.settings import Settings, load_settings
from reporting_svc.storage import JobRecord, Store

DOWNLOAD = "/ec-reporting-svc/rest/v2.0/reports/download"
SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
STUDY = "CFD8129A430A473C8A02F4BA5DAAD865"
OTHER_STUDY = "0123456789ABCDEF0123456789ABCDEF"
BUCKET = "reports-test"


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a test: a store and var dir under tmp_path, a known secret."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "local_root": tmp_path / "reports",
            "var_dir": tmp_path / "var",
            "jwt_secret": SECRET,
        }
        values.update(overrides)
        return load_settings({}, values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def store(app: Flask) -> Store:
    store: Store = app.extensions["reporting_svc"].store
    return store


@pytest.fixture
def publish(store: Store, tmp_path: Path) -> Callable[..., JobRecord]:
    """Publish a report into the app's store: ``publish(b"bytes", "name.csv", **options)``."""
    counter = iter(range(1_000_000))

    def make(
        content: bytes = b"subjectId,visit\nS-0001,Screening\n",
        file_name: str = "report.csv",
        *,
        study_id: str | None = STUDY,
        mode: str = "test",
        report_name: str = "Subject Data Extract",
        **options: Any,
    ) -> JobRecord:
        folder = tmp_path / "upstream" / str(next(counter))
        folder.mkdir(parents=True)
        path = folder / file_name
        path.write_bytes(content)
        return publish_report(
            store, path, report_name=report_name, mode=mode, study_id=study_id, **options
        )

    return make


@pytest.fixture
def token(settings: Settings) -> Callable[..., str]:
    """Mint a token: ``token("STUDY:test:REPORTING_VIEW", ..., subject="alice", ttl=60)``."""

    def make(*grants: str, subject: str = "alice", ttl: int = 300) -> str:
        return mint_token(settings, subject, [parse_grant(g) for g in grants], ttl=ttl)

    return make


@pytest.fixture
def bearer(token: Callable[..., str]) -> str:
    """A token allowed to download the test-mode reports of STUDY."""
    return token(f"{STUDY}:test:REPORTING_VIEW")


@pytest.fixture
def download(client: FlaskClient) -> Callable[..., Any]:
    """Call the download endpoint: ``download({"id": ...}, token=..., method="GET")``."""

    def call(
        query: dict[str, str] | str,
        token: str | None = None,
        method: str = "GET",
        headers: dict[str, str] | None = None,
    ) -> Any:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        return client.open(
            DOWNLOAD, method=method, query_string=query, headers=all_headers, buffered=True
        )

    return call


@pytest.fixture
def s3_bucket() -> Iterator[Any]:
    """moto's in-process S3 with an empty bucket; yields the boto3 client."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def error_of(response: Any) -> dict[str, Any]:
    """The ``errorData`` of an envelope, after checking the envelope's shape."""
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["status"] == "error"
    assert body["result"] is None
    data: dict[str, Any] = body["errorData"]
    assert data["errorCode"] == f"REPT_{response.status_code}"
    return data
