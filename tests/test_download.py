"""The download endpoint on the local store: headers, bytes, the order of checks, failures."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.http import parse_date

from reporting_svc.storage import JobRecord, Store
from reporting_svc.storage.local import LocalStore
from tests.support import DOWNLOAD, OTHER_STUDY, STUDY, error_of

CSV = b"subjectId,visit\nS-0001,Screening\n"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
KICKOFF = "2025-06-04T11:27:52.014Z"
UNKNOWN_ID = "6A7C29DD011241DFBE1B64399283C860"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

Download = Callable[..., Any]
Publish = Callable[..., JobRecord]


@pytest.fixture
def job(publish: Publish) -> JobRecord:
    return publish(CSV, "report.csv", kickoff=KICKOFF)


def _job_file(store: Store, record: JobRecord, name: str) -> Path:
    """``jobs/<ID>/<name>`` under the local store's root."""
    assert isinstance(store, LocalStore)
    return store.root / "jobs" / record.id / name


def _assert_no_leak(response: Any, tmp_path: Path) -> None:
    body = response.get_data(as_text=True)
    assert str(tmp_path) not in body
    assert "Traceback" not in body
    assert "jobs/" not in body


# --- success ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "content_type"),
    [
        ("report.csv", "text/csv"),
        ("report.pdf", "application/pdf"),
        ("report.xlsx", XLSX),
        ("report.zip", "application/zip"),
        ("report.weird-format", "application/octet-stream"),
    ],
)
def test_content_type_follows_the_job_format(
    publish: Publish, bearer: str, download: Download, file_name: str, content_type: str
) -> None:
    record = publish(b"payload", file_name)

    response = download({"id": record.id}, bearer)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type


def test_success_headers_describe_the_file(job: JobRecord, bearer: str, download: Download) -> None:
    digest = hashlib.sha256(CSV).digest()

    response = download({"id": job.id}, bearer)

    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="report.csv"'
    assert response.headers["Content-Length"] == str(len(CSV))
    assert response.headers["ETag"] == f'"{digest.hex()}"'
    assert response.get_etag() == (digest.hex(), False)
    assert response.headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_last_modified_is_the_job_completion_time(
    job: JobRecord, bearer: str, download: Download
) -> None:
    response = download({"id": job.id}, bearer)

    assert parse_date(response.headers["Last-Modified"]) == job.completed.replace(microsecond=0)


def test_non_ascii_file_name_has_ascii_fallback_and_filename_star(
    publish: Publish, bearer: str, download: Download
) -> None:
    content = "prénom,visite\nÉlodie,Sélection\n".encode()
    record = publish(content, "Données été.csv")

    response = download({"id": record.id}, bearer)

    assert response.status_code == 200
    assert response.data == content
    disposition = response.headers["Content-Disposition"]
    assert disposition.isascii()
    assert disposition == (
        'attachment; filename="Donnees ete.csv"; '
        "filename*=UTF-8''Donn%C3%A9es%20%C3%A9t%C3%A9.csv"
    )


@pytest.mark.parametrize(
    ("content", "file_name"),
    [
        pytest.param(CSV, "report.csv", id="csv"),
        pytest.param(b"\x00" + os.urandom(64 * 1024) + b"\x00\r\n\x00", "blob.bin", id="binary"),
        pytest.param(os.urandom(1024 * 1024 * 2 + 17), "big.zip", id="over-two-blocks"),
        pytest.param(b"", "empty.csv", id="empty"),
    ],
)
def test_body_is_the_file_byte_for_byte(
    publish: Publish, bearer: str, download: Download, content: bytes, file_name: str
) -> None:
    record = publish(content, file_name)

    response = download({"id": record.id}, bearer)

    assert response.status_code == 200
    assert response.data == content
    assert response.headers["Content-Length"] == str(len(content))


# --- X-Request-ID ----------------------------------------------------------------------


@pytest.mark.parametrize("sent", ["abc-123", "req.1:2_3-x", "r" * 128])
def test_sane_request_id_is_echoed(
    job: JobRecord, bearer: str, download: Download, sent: str
) -> None:
    response = download({"id": job.id}, bearer, headers={"X-Request-ID": sent})

    assert response.headers["X-Request-ID"] == sent


@pytest.mark.parametrize(
    "sent",
    ["r" * 129, "has spaces", "semi;colon", 'quote"d', "ünïcode", ""],
    ids=["too-long", "spaces", "semicolon", "quote", "non-ascii", "empty"],
)
def test_insane_request_id_is_replaced_with_a_sane_one(
    job: JobRecord, bearer: str, download: Download, sent: str
) -> None:
    response = download(
        {"id": job.id}, bearer, headers={"X-Request-ID": sent.encode().decode("latin-1")}
    )

    assert response.status_code == 200
    replaced = response.headers["X-Request-ID"]
    assert replaced != sent
    assert SANE_REQUEST_ID.fullmatch(replaced)


def test_new_request_ids_differ_between_requests(
    job: JobRecord, bearer: str, download: Download
) -> None:
    first = download({"id": job.id}, bearer).headers["X-Request-ID"]
    second = download({"id": job.id}, bearer).headers["X-Request-ID"]

    assert first != second


@pytest.mark.parametrize(
    ("query", "authorised", "status"),
    [
        ({"id": UNKNOWN_ID}, False, 401),
        ({"id": "bad"}, True, 400),
        ({"id": UNKNOWN_ID}, True, 404),
    ],
)
def test_error_responses_carry_the_common_headers(
    bearer: str, download: Download, query: dict[str, str], authorised: bool, status: int
) -> None:
    response = download(query, bearer if authorised else None, headers={"X-Request-ID": "trace-42"})

    assert response.status_code == status
    assert response.headers["X-Request-ID"] == "trace-42"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_error_response_replaces_an_insane_request_id(bearer: str, download: Download) -> None:
    response = download({"id": UNKNOWN_ID}, bearer, headers={"X-Request-ID": "x" * 200})

    assert response.status_code == 404
    assert SANE_REQUEST_ID.fullmatch(response.headers["X-Request-ID"])
    assert response.headers["X-Request-ID"] != "x" * 200


# --- order of checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [{"id": "not-a-guid"}, {}, {"id": UNKNOWN_ID, "mode": "bogus"}],
    ids=["bad-id", "no-id", "bad-mode"],
)
def test_missing_token_is_401_before_parameters_are_checked(
    download: Download, query: dict[str, str]
) -> None:
    response = download(query)

    assert response.status_code == 401
    assert error_of(response)["errorCode"] == "REPT_401"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_bad_token_is_401_invalid_token_before_parameters_are_checked(download: Download) -> None:
    response = download({"id": "not-a-guid"}, "not.a.jwt")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_bad_parameters_are_400_before_the_job_is_looked_up(
    bearer: str, download: Download
) -> None:
    response = download({"id": UNKNOWN_ID, "studyId": "nope"}, bearer)

    assert response.status_code == 400


def test_unknown_job_is_404(bearer: str, download: Download) -> None:
    response = download({"id": UNKNOWN_ID}, bearer)

    assert response.status_code == 404
    assert error_of(response)["errorCode"] == "REPT_404"


@pytest.mark.parametrize(
    ("job_options", "grant", "filters"),
    [
        pytest.param(
            {"mode": "active"},
            f"{STUDY}:test:REPORTING_VIEW",
            {"mode": "test"},
            id="other-mode-queried-as-own-mode",
        ),
        pytest.param(
            {"study_id": None},
            f"{STUDY}:test:REPORTING_VIEW",
            {"studyId": STUDY},
            id="tenant-job-for-study-grant",
        ),
        pytest.param(
            {}, "tenant:test:REPORTING_VIEW", {"studyId": "null"}, id="study-job-for-tenant-grant"
        ),
        pytest.param(
            {"study_id": OTHER_STUDY},
            f"{STUDY}:test:REPORTING_VIEW",
            {"reportName": "Guessed", "rptKickoffDatetime": "2020-01-01T00:00:00Z"},
            id="other-study-with-guessed-name-and-time",
        ),
    ],
)
def test_caller_without_the_grant_is_refused_before_filters_apply(
    publish: Publish,
    token: Callable[..., str],
    download: Download,
    job_options: dict[str, Any],
    grant: str,
    filters: dict[str, str],
) -> None:
    record = publish(CSV, **job_options)

    response = download({"id": record.id, **filters}, token(grant))

    assert response.status_code == 401
    error = error_of(response)
    assert error["errorCode"] == "REPT_401"
    assert "REPORTING_VIEW" in error["details"]
    assert response.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'


def test_permission_is_checked_against_the_job_study_not_the_query(
    publish: Publish, bearer: str, download: Download
) -> None:
    record = publish(CSV, study_id=OTHER_STUDY)

    response = download({"id": record.id, "studyId": STUDY}, bearer)

    assert response.status_code == 401


def test_refusal_does_not_reveal_the_job_study_or_name(
    publish: Publish, bearer: str, download: Download
) -> None:
    record = publish(CSV, study_id=OTHER_STUDY, report_name="Secret Unblinded Listing")

    response = download({"id": record.id}, bearer)

    assert response.status_code == 401
    body = response.get_data(as_text=True)
    assert OTHER_STUDY not in body
    assert "Secret Unblinded Listing" not in body


@pytest.mark.parametrize(
    ("job_options", "grant", "filters"),
    [
        pytest.param(
            {}, f"{STUDY}:test:REPORTING_VIEW", {"studyId": OTHER_STUDY}, id="other-study"
        ),
        pytest.param(
            {}, f"{STUDY}:test:REPORTING_VIEW", {"studyId": "null"}, id="null-study-for-study-job"
        ),
        pytest.param(
            {}, f"{STUDY}:test:REPORTING_VIEW", {"studyId": ""}, id="empty-study-for-study-job"
        ),
        pytest.param(
            {"study_id": None},
            "tenant:test:REPORTING_VIEW",
            {"studyId": STUDY},
            id="guid-study-for-tenant-job",
        ),
        pytest.param({}, f"{STUDY}:test:REPORTING_VIEW", {"mode": "active"}, id="mode"),
        pytest.param(
            {}, f"{STUDY}:test:REPORTING_VIEW", {"reportName": "Other Report"}, id="report-name"
        ),
        pytest.param(
            {},
            f"{STUDY}:test:REPORTING_VIEW",
            {"reportName": "subject data extract"},
            id="report-name-case",
        ),
        pytest.param(
            {},
            f"{STUDY}:test:REPORTING_VIEW",
            {"rptKickoffDatetime": "2025-06-04T11:27:52.015Z"},
            id="kickoff-1ms-later",
        ),
        pytest.param(
            {},
            f"{STUDY}:test:REPORTING_VIEW",
            {"rptKickoffDatetime": "2025-06-04T11:27:52.014+02:00"},
            id="kickoff-same-wall-clock-other-zone",
        ),
    ],
)
def test_filter_that_differs_is_404_for_an_authorised_caller(
    publish: Publish,
    token: Callable[..., str],
    download: Download,
    job_options: dict[str, Any],
    grant: str,
    filters: dict[str, str],
) -> None:
    record = publish(CSV, kickoff=KICKOFF, **job_options)

    response = download({"id": record.id, **filters}, token(grant))

    assert response.status_code == 404
    assert error_of(response) == error_of(download({"id": UNKNOWN_ID}, token(grant)))


@pytest.mark.parametrize(
    "kickoff",
    [
        "2025-06-04T11:27:52.014Z",
        "2025-06-04T13:27:52.014+02:00",
        "2025-06-04T06:27:52.014-05:00",
        "2025-06-04T11:27:52.014000+00:00",
    ],
)
def test_kickoff_filter_matches_the_same_instant_in_any_zone(
    job: JobRecord, bearer: str, download: Download, kickoff: str
) -> None:
    response = download({"id": job.id, "rptKickoffDatetime": kickoff}, bearer)

    assert response.status_code == 200


def test_every_matching_filter_together_downloads(
    job: JobRecord, bearer: str, download: Download
) -> None:
    query = {
        "id": job.id,
        "studyId": STUDY,
        "mode": "test",
        "reportName": "Subject Data Extract",
        "rptKickoffDatetime": KICKOFF,
    }

    response = download(query, bearer)

    assert response.status_code == 200
    assert response.data == CSV


def test_tenant_report_downloads_with_tenant_grant_and_null_study(
    publish: Publish, token: Callable[..., str], download: Download
) -> None:
    record = publish(CSV, "hsl.csv", study_id=None)

    response = download({"id": record.id, "studyId": "null"}, token("tenant:test:REPORTING_VIEW"))

    assert response.status_code == 200
    assert response.data == CSV


# --- records and files the store holds -------------------------------------------------


@pytest.mark.parametrize("status", ["RUNNING", "FAILED", "QUEUED"])
def test_job_not_completed_is_404(
    job: JobRecord, store: Store, bearer: str, download: Download, status: str
) -> None:
    path = _job_file(store, job, "record.json")
    data = json.loads(path.read_bytes())
    data["status"] = status
    path.write_text(json.dumps(data))

    response = download({"id": job.id}, bearer)

    assert response.status_code == 404


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_deleted_file_is_500_without_a_path(
    job: JobRecord, store: Store, bearer: str, download: Download, tmp_path: Path, method: str
) -> None:
    _job_file(store, job, "content").unlink()

    response = download({"id": job.id}, bearer, method=method)

    assert response.status_code == 500
    if method == "GET":
        assert error_of(response)["errorCode"] == "REPT_500"
        _assert_no_leak(response, tmp_path)


@pytest.mark.parametrize("change", [b"extra", None], ids=["grown", "truncated"])
def test_file_whose_size_differs_from_the_record_is_500(
    job: JobRecord,
    store: Store,
    bearer: str,
    download: Download,
    tmp_path: Path,
    change: bytes | None,
) -> None:
    path = _job_file(store, job, "content")
    path.write_bytes(CSV + change if change else CSV[:-3])

    response = download({"id": job.id}, bearer)

    assert response.status_code == 500
    assert error_of(response)["errorCode"] == "REPT_500"
    _assert_no_leak(response, tmp_path)


# --- required permission ---------------------------------------------------------------


def test_report_requiring_another_permission_refuses_reporting_view(
    publish: Publish, bearer: str, download: Download
) -> None:
    record = publish(CSV, required_permission="UNBLINDED_VIEW")

    response = download({"id": record.id}, bearer)

    assert response.status_code == 401
    assert "UNBLINDED_VIEW" in error_of(response)["details"]
    assert response.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'


@pytest.mark.parametrize("permissions", ["UNBLINDED_VIEW", "REPORTING_VIEW,UNBLINDED_VIEW"])
def test_report_requiring_another_permission_allows_its_holder(
    publish: Publish, token: Callable[..., str], download: Download, permissions: str
) -> None:
    record = publish(CSV, required_permission="UNBLINDED_VIEW")

    response = download({"id": record.id}, token(f"{STUDY}:test:{permissions}"))

    assert response.status_code == 200
    assert response.data == CSV


# --- HEAD, other methods and routes ----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "authorised"),
    [
        pytest.param(None, True, id="200"),
        pytest.param({"id": "bad"}, True, id="400"),
        pytest.param({"id": UNKNOWN_ID}, True, id="404"),
        pytest.param(None, False, id="401"),
    ],
)
def test_head_answers_the_status_and_headers_of_get_without_body(
    job: JobRecord,
    bearer: str,
    download: Download,
    query: dict[str, str] | None,
    authorised: bool,
) -> None:
    query = query or {"id": job.id}
    headers = {"X-Request-ID": "same-for-both"}
    caller = bearer if authorised else None

    get = download(query, caller, headers=headers)
    head = download(query, caller, method="HEAD", headers=headers)

    assert head.status_code == get.status_code
    assert dict(head.headers) == dict(get.headers)
    assert head.data == b""
    assert get.data != b""


def test_unknown_route_is_a_404_envelope(client: FlaskClient, bearer: str, tmp_path: Path) -> None:
    response = client.get(
        "/ec-reporting-svc/rest/v2.0/reports/nope", headers={"Authorization": f"Bearer {bearer}"}
    )

    assert response.status_code == 404
    assert error_of(response)["errorCode"] == "REPT_404"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    _assert_no_leak(response, tmp_path)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_a_405_envelope(
    job: JobRecord, bearer: str, download: Download, method: str
) -> None:
    response = download({"id": job.id}, bearer, method=method)

    assert response.status_code == 405
    assert error_of(response)["errorCode"] == "REPT_405"
    assert {"GET", "HEAD"} <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_download_path_with_trailing_segment_is_404(client: FlaskClient) -> None:
    response = client.get(DOWNLOAD + "/../../../etc/passwd")

    assert response.status_code == 404
    assert "root:" not in response.get_data(as_text=True)
