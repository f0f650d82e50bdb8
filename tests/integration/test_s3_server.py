"""Black-box against moto's S3 server: publish with the command, serve with gunicorn, download."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import load_settings
from reporting_svc.storage import JobExists
from reporting_svc.storage.s3 import S3Store
from tests.support import DOWNLOAD, STUDY

pytestmark = pytest.mark.integration

GRANT = f"{STUDY}:test:REPORTING_VIEW"


@pytest.fixture
def reports(tmp_path: Path) -> dict[str, Path]:
    """A small CSV and a 2 MiB binary file, as upstream would produce them."""
    folder = tmp_path / "upstream"
    folder.mkdir()
    csv = folder / "subject-data-extract.csv"
    csv.write_text("subjectId,visit\nS-0001,Screening\nS-0002,Week 4\n")
    binary = folder / "dump.zip"
    binary.write_bytes(os.urandom(2 * 1024 * 1024))
    return {"csv": csv, "binary": binary}


def _expected_headers(path: Path, content_type: str) -> dict[str, str]:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return {
        "Content-Type": content_type,
        "Content-Disposition": f'attachment; filename="{path.name}"',
        "Content-Length": str(path.stat().st_size),
        "ETag": f'"{digest.hex()}"',
        "Repr-Digest": f"sha-256=:{base64.b64encode(digest).decode()}:",
    }


TYPES = {"csv": "text/csv", "binary": "application/zip"}


def test_proxy_mode_streams_cli_published_reports_through_gunicorn(
    cli_publish, cli_token, serve, s3_env, reports
):
    records = {kind: cli_publish(s3_env, path) for kind, path in reports.items()}
    token = cli_token(s3_env, GRANT)
    base = serve(s3_env)

    for kind, path in reports.items():
        response = requests.get(
            base + DOWNLOAD,
            params={"id": records[kind]["id"]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 200, kind
        assert response.content == path.read_bytes(), kind
        for name, value in _expected_headers(path, TYPES[kind]).items():
            assert response.headers[name] == value, (kind, name)
        assert response.headers["Cache-Control"] == "no-store"


def test_redirect_mode_sends_a_presigned_url_that_moto_serves(
    cli_publish, cli_token, serve, s3_env, moto_server, reports
):
    env = {**s3_env, "REPORTING_SVC_S3_DELIVERY": "redirect"}
    records = {kind: cli_publish(env, path) for kind, path in reports.items()}
    token = cli_token(env, GRANT)
    base = serve(env)

    for kind, path in reports.items():
        response = requests.get(
            base + DOWNLOAD,
            params={"id": records[kind]["id"]},
            headers={"Authorization": f"Bearer {token}"},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 302, kind
        assert response.headers["Cache-Control"] == "no-store"
        location = response.headers["Location"]
        assert location.startswith(moto_server + "/"), kind
        assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == ["60"]

        followed = requests.get(location, timeout=30)

        assert followed.status_code == 200, kind
        assert followed.content == path.read_bytes(), kind
        expected = _expected_headers(path, TYPES[kind])
        assert followed.headers["Content-Type"] == expected["Content-Type"]
        assert followed.headers["Content-Disposition"] == expected["Content-Disposition"]
        # The SHA-256 S3 checked at publish, which a client compares with its file's. The
        # URL asks for it in its query; moto's server reads the ask from a header only.
        checked = requests.get(location, headers={"x-amz-checksum-mode": "ENABLED"}, timeout=30)
        digest = base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()
        assert checked.headers["x-amz-checksum-sha256"] == digest, kind
        assert "x-amz-checksum-mode=ENABLED" in location


def test_redirect_mode_head_answers_the_same_302(cli_publish, cli_token, serve, s3_env, reports):
    env = {**s3_env, "REPORTING_SVC_S3_DELIVERY": "redirect"}
    record = cli_publish(env, reports["csv"])
    base = serve(env)

    response = requests.head(
        base + DOWNLOAD,
        params={"id": record["id"]},
        headers={"Authorization": f"Bearer {cli_token(env, GRANT)}"},
        timeout=30,
    )

    assert response.status_code == 302
    assert "response-content-disposition=" in response.headers["Location"]


def test_publishing_an_existing_id_with_the_cli_is_refused(cli_publish, cli, s3_env, reports):
    record = cli_publish(s3_env, reports["csv"])

    again = cli(
        "publish",
        str(reports["binary"]),
        "--report-name",
        "Other",
        "--mode",
        "test",
        "--study-id",
        STUDY,
        "--job-id",
        record["id"],
        env=s3_env,
        check=False,
    )

    assert again.returncode == 1
    assert "already exists" in again.stderr


@pytest.fixture
def server_store(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> S3Store:
    """An S3Store built from the service's own settings, talking HTTP to moto's server."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, s3_env[name])
    return S3Store.from_settings(load_settings(s3_env))


def test_s3_store_puts_and_gets_over_http(server_store, reports):
    path = reports["binary"]
    record = publish_report(server_store, path, report_name="Dump", mode="test", study_id=STUDY)

    assert server_store.get_record(record.id) == record
    assert server_store.size_of(record) == path.stat().st_size
    assert server_store.open_range(record, 0, record.size).body.read() == path.read_bytes()
    assert list(server_store.job_ids()) == [record.id]
    assert server_store.get_record("0" * 32) is None
    with pytest.raises(JobExists):
        server_store.put(record, io.BytesIO(b"replacement"))
    assert server_store.open_range(record, 0, record.size).body.read() == path.read_bytes()


def test_s3_store_forwards_a_byte_range_over_http(server_store, reports):
    path = reports["binary"]
    record = publish_report(server_store, path, report_name="Dump", mode="test", study_id=STUDY)

    part = server_store.open_range(record, 1000, 1000).body.read()

    assert part == path.read_bytes()[1000:2000]
