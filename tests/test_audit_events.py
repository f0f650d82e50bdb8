"""Every kind of download attempt leaves exactly the records docs/api.md §4 prescribes."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from typing import Any

import pytest
from prometheus_client import REGISTRY
from werkzeug.test import EnvironBuilder

from reporting_svc.lifecycle import Operator, withdraw_job
from reporting_svc.storage import StoreError
from tests.support import BUCKET, DOWNLOAD, OTHER_STUDY, STUDY, error_of

CONTENT = b"subjectId,visit\n" + b"S-0001,Screening\n" * 100
SIZE = len(CONTENT)
S3 = {"store": "s3", "s3_bucket": BUCKET, "s3_region": "us-east-1"}


@pytest.fixture
def overrides() -> dict[str, Any]:
    """Settings of this module's app beyond the defaults; tests parametrize it."""
    return {}


@pytest.fixture
def settings(make_settings: Any, overrides: dict[str, Any], request: Any) -> Any:
    """The app's settings; an S3 store is created inside moto's in-process mock."""
    if overrides.get("store") == "s3":
        request.getfixturevalue("s3_bucket")
    return make_settings(**overrides)


@pytest.fixture
def job(publish: Any) -> Any:
    return publish(CONTENT, "visits.csv")


@pytest.fixture
def events(audit_records: Any, settings: Any) -> Any:
    """``events()``: the trail's records grouped by requestId, in the order written."""

    def group() -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in audit_records(settings.audit_path):
            grouped[record["requestId"]].append(record)
        return dict(grouped)

    return group


def only_attempt(events: Any, response: Any) -> list[dict[str, Any]]:
    """The records of the one attempt made, after checking it is the only one on record."""
    grouped = events()
    assert list(grouped) == [response.headers["X-Request-ID"]]
    records: list[dict[str, Any]] = grouped[response.headers["X-Request-ID"]]
    return records


@pytest.mark.parametrize(
    ("headers", "status", "sent"),
    [({}, 200, SIZE), ({"Range": "bytes=100-199"}, 206, 100)],
    ids=["full", "range"],
)
def test_bytes_sent_leave_a_start_then_an_end_with_the_count_and_complete_true(
    download: Any, bearer: str, job: Any, events: Any, headers: Any, status: int, sent: int
) -> None:
    response = download({"id": job.id}, bearer, headers=headers)

    start, end = only_attempt(events, response)
    assert response.status_code == status
    assert (start["event"], end["event"]) == ("start", "end")
    assert start["status"] == end["status"] == status
    assert (start["bytesSent"], start["complete"]) == (None, None)
    assert (end["bytesSent"], end["complete"]) == (sent, True)
    assert end["prev"] == start["hash"]
    assert start["subject"] == "alice"
    assert (start["jobId"], start["studyId"], start["mode"]) == (job.id, STUDY, "test")
    assert (start["reportName"], start["sha256"]) == (job.reportName, job.sha256)
    assert start["delivery"] == "stream"


def test_start_is_on_record_before_the_first_byte_and_end_only_after_the_close(
    client: Any, bearer: str, job: Any, events: Any
) -> None:
    response = client.get(
        DOWNLOAD,
        query_string={"id": job.id},
        headers={"Authorization": f"Bearer {bearer}"},
        buffered=False,
    )

    assert [r["event"] for rs in events().values() for r in rs] == ["start"]
    assert response.get_data() == CONTENT
    response.close()
    assert [r["event"] for rs in events().values() for r in rs] == ["start", "end"]


def refusals(job: Any, token: Any) -> dict[str, Any]:
    """For each kind of refusal: the query, the token and the headers that provoke it."""
    granted = token(f"{STUDY}:test:REPORTING_VIEW")
    return {
        "400-missing-id": ({}, granted, {}),
        "400-invalid-id": ({"id": "not-a-guid"}, granted, {}),
        "401-no-token": ({"id": job.id}, None, {}),
        "401-no-permission": ({"id": job.id}, token(f"{OTHER_STUDY}:test:REPORTING_VIEW"), {}),
        "404": ({"id": "0" * 32}, granted, {}),
        "416": ({"id": job.id}, granted, {"Range": f"bytes={SIZE}-"}),
    }


@pytest.mark.parametrize(
    "kind",
    ["400-missing-id", "400-invalid-id", "401-no-token", "401-no-permission", "404", "416"],
)
def test_each_refusal_leaves_one_refused_record_with_its_status(
    download: Any, token: Any, job: Any, events: Any, kind: str
) -> None:
    query, sent_token, headers = refusals(job, token)[kind]

    response = download(query, sent_token, headers=headers)

    (record,) = only_attempt(events, response)
    assert response.status_code == int(kind[:3])
    assert record["event"] == "refused"
    assert record["status"] == response.status_code
    assert (record["bytesSent"], record["complete"]) == (None, None)


def test_refusal_records_who_asked_and_the_id_they_asked_for(
    download: Any, token: Any, job: Any, events: Any
) -> None:
    response = download({"id": job.id}, token(f"{OTHER_STUDY}:test:REPORTING_VIEW", subject="eve"))

    (record,) = only_attempt(events, response)
    assert (record["subject"], record["jobId"], record["studyId"]) == ("eve", job.id, STUDY)


def test_a_store_failure_leaves_one_refused_record_with_503(
    download: Any, bearer: str, job: Any, events: Any, monkeypatch: Any, store: Any
) -> None:
    def unreachable(job_id: str) -> Any:
        raise StoreError("connection refused")

    monkeypatch.setattr(store, "get_record", unreachable)

    response = download({"id": job.id}, bearer)

    (record,) = only_attempt(events, response)
    assert response.status_code == 503
    assert (record["event"], record["status"], record["jobId"]) == ("refused", 503, job.id)


def test_not_modified_leaves_one_not_modified_record(
    download: Any, bearer: str, job: Any, events: Any
) -> None:
    etag = f'"{job.sha256}"'

    response = download({"id": job.id}, bearer, headers={"If-None-Match": etag})

    (record,) = only_attempt(events, response)
    assert response.status_code == 304
    assert (record["event"], record["status"]) == ("not-modified", 304)


def test_head_leaves_one_head_record(download: Any, bearer: str, job: Any, events: Any) -> None:
    response = download({"id": job.id}, bearer, method="HEAD")

    (record,) = only_attempt(events, response)
    assert (record["event"], record["status"], record["bytesSent"]) == ("head", 200, None)


@pytest.mark.parametrize("overrides", [{**S3, "s3_delivery": "redirect"}], ids=["s3-redirect"])
def test_s3_redirect_leaves_one_redirect_record(
    download: Any, bearer: str, job: Any, events: Any
) -> None:
    response = download({"id": job.id}, bearer)

    (record,) = only_attempt(events, response)
    assert response.status_code == 302
    assert (record["event"], record["status"], record["delivery"]) == ("redirect", 302, "redirect")


@pytest.mark.parametrize("overrides", [{**S3, "s3_delivery": "proxy"}], ids=["s3-proxy"])
def test_s3_proxy_leaves_start_and_end_with_the_bytes_sent(
    download: Any, bearer: str, job: Any, events: Any
) -> None:
    response = download({"id": job.id}, bearer, headers={"Range": "bytes=0-9"})

    start, end = only_attempt(events, response)
    assert response.data == CONTENT[:10]
    assert (start["event"], end["event"], end["status"]) == ("start", "end", 206)
    assert (end["bytesSent"], end["complete"], end["delivery"]) == (10, True, "proxy")


@pytest.mark.parametrize("overrides", [{"local_delivery": "x-accel"}], ids=["x-accel"])
@pytest.mark.parametrize(("headers", "status"), [({}, 200), ({"Range": "bytes=5-9"}, 206)])
def test_x_accel_leaves_start_and_end_without_a_byte_count(
    download: Any, bearer: str, job: Any, events: Any, headers: Any, status: int
) -> None:
    response = download({"id": job.id}, bearer, headers=headers)

    start, end = only_attempt(events, response)
    assert "X-Accel-Redirect" in response.headers
    assert (start["event"], end["event"]) == ("start", "end")
    assert start["status"] == end["status"] == status
    assert (end["bytesSent"], end["complete"], end["delivery"]) == (None, None, "x-accel")


@pytest.mark.parametrize("overrides", [{"audit_file": "/dev/full"}], ids=["disk-full"])
def test_download_with_a_full_audit_disk_is_refused_with_503_and_logged(
    download: Any, bearer: str, job: Any, caplog: Any
) -> None:
    with caplog.at_level(logging.ERROR):
        response = download({"id": job.id}, bearer)

    assert response.status_code == 503
    assert error_of(response)["errorMessage"] == "Audit trail unavailable"
    assert response.headers["Retry-After"].isdigit()
    assert CONTENT[:32] not in response.data
    assert any(
        entry.levelno == logging.ERROR and "No space left" in entry.getMessage()
        for entry in caplog.records
    )


@pytest.mark.parametrize("overrides", [{"audit_file": "/dev/full"}], ids=["disk-full"])
def test_a_refusal_with_a_full_audit_disk_still_answers_its_own_status(
    download: Any, job: Any
) -> None:
    response = download({"id": job.id})

    assert response.status_code == 401
    assert error_of(response)["errorCode"] == "REPT_401"


@pytest.mark.parametrize("overrides", [{"audit_file": "/dev/full"}], ids=["disk-full"])
def test_head_with_a_full_audit_disk_is_refused_like_a_download(
    download: Any, bearer: str, job: Any
) -> None:
    response = download({"id": job.id}, bearer, method="HEAD")

    assert response.status_code == 503
    assert "ETag" not in response.headers
    assert "Content-Disposition" not in response.headers


@pytest.mark.parametrize("overrides", [{"audit_file": "/dev/full"}], ids=["disk-full"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_audit_failure_answer_carries_the_common_headers_and_is_counted_as_503(
    client: Any, bearer: str, job: Any, method: str
) -> None:
    labels = {"route": "download", "method": method, "status": "503"}
    before = REGISTRY.get_sample_value("reporting_http_requests_total", labels) or 0.0

    response = client.open(
        DOWNLOAD,
        method=method,
        query_string={"id": job.id},
        headers={"Authorization": f"Bearer {bearer}", "X-Request-ID": "audit-down-1"},
    )

    assert response.status_code == 503
    assert response.headers["X-Request-ID"] == "audit-down-1"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Retry-After"].isdigit()
    assert REGISTRY.get_sample_value("reporting_http_requests_total", labels) == before + 1


def call_wsgi(app: Any, job: Any, bearer: str) -> Any:
    """Call the app's WSGI callable directly, as a server would; returns the body iterable."""
    environ = EnvironBuilder(
        path=DOWNLOAD, query_string={"id": job.id}, headers={"Authorization": f"Bearer {bearer}"}
    ).get_environ()
    statuses: list[str] = []
    body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    assert statuses == ["200 OK"]
    return body


def test_a_client_that_stops_reading_leaves_an_end_record_marked_incomplete(
    app: Any, publish: Any, bearer: str, events: Any
) -> None:
    big = publish(os.urandom(4 * 1024 * 1024 + 17), "big.bin")
    body = call_wsgi(app, big, bearer)

    first = next(iter(body))
    body.close()

    (records,) = events().values()
    start, end = records
    assert 0 < len(first) < big.size
    assert (start["event"], end["event"]) == ("start", "end")
    assert end["complete"] is False
    assert end["bytesSent"] == len(first)


@pytest.mark.parametrize(
    "overrides", [{**S3, "s3_delivery": "proxy", "s3_chunk_size": 65536}], ids=["s3-proxy"]
)
def test_a_store_failing_mid_stream_leaves_an_end_record_marked_incomplete(
    app: Any, publish: Any, bearer: str, events: Any, fail_mid_stream: Any
) -> None:
    big = publish(os.urandom(512 * 1024), "big.bin")
    fail_mid_stream()
    body = call_wsgi(app, big, bearer)

    with pytest.raises(StoreError):
        list(body)
    body.close()

    (records,) = events().values()
    assert records[-1]["event"] == "end"
    assert (records[-1]["bytesSent"], records[-1]["complete"]) == (65536, False)


@pytest.mark.parametrize("overrides", [{"trusted_proxies": "127.0.0.1"}], ids=["trusted"])
def test_client_address_comes_from_x_forwarded_for_behind_a_trusted_proxy(
    client: Any, bearer: str, job: Any, events: Any
) -> None:
    response = client.head(
        DOWNLOAD,
        query_string={"id": job.id},
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
        headers={"Authorization": f"Bearer {bearer}", "X-Forwarded-For": "203.0.113.7"},
    )

    (record,) = only_attempt(events, response)
    assert record["clientAddress"] == "203.0.113.7"


@pytest.mark.parametrize(
    ("overrides", "peer"),
    [({}, "127.0.0.1"), ({"trusted_proxies": "127.0.0.1"}, "198.51.100.9")],
    ids=["no-trusted-proxy", "untrusted-peer"],
)
def test_client_address_is_the_peer_when_it_is_no_trusted_proxy(
    client: Any, bearer: str, job: Any, events: Any, peer: str
) -> None:
    response = client.head(
        DOWNLOAD,
        query_string={"id": job.id},
        environ_base={"REMOTE_ADDR": peer},
        headers={"Authorization": f"Bearer {bearer}", "X-Forwarded-For": "203.0.113.7"},
    )

    (record,) = only_attempt(events, response)
    assert record["clientAddress"] == peer


def test_user_agent_and_request_id_sent_by_the_client_are_recorded(
    download: Any, bearer: str, job: Any, events: Any
) -> None:
    response = download(
        {"id": job.id},
        bearer,
        method="HEAD",
        headers={"User-Agent": "curl/8.5.0", "X-Request-ID": "trace-42"},
    )

    (record,) = only_attempt(events, response)
    assert (record["requestId"], record["userAgent"]) == ("trace-42", "curl/8.5.0")


@pytest.mark.parametrize("overrides", [{"audit_sink": "stdout"}], ids=["stdout"])
def test_stdout_sink_alone_writes_start_and_end_to_stdout_and_no_file(
    download: Any, bearer: str, job: Any, settings: Any, capsys: Any
) -> None:
    capsys.readouterr()

    response = download({"id": job.id}, bearer)

    lines = capsys.readouterr().out.splitlines()
    assert response.status_code == 200
    assert [line.split('"event":"')[1].split('"')[0] for line in lines] == ["start", "end"]
    assert not settings.audit_path.exists()


@pytest.mark.parametrize("damage", ["{}", "[1, 2]", "not json"])
def test_a_damaged_head_file_refuses_downloads_with_503_and_still_answers_refusals(
    download: Any, bearer: str, job: Any, settings: Any, damage: str
) -> None:
    settings.audit_path.parent.mkdir(parents=True, exist_ok=True)
    settings.audit_path.with_name("audit.jsonl.head").write_text(damage)

    granted = download({"id": job.id}, bearer)
    refused = download({"id": job.id})

    assert granted.status_code == 503
    assert error_of(granted)["errorMessage"] == "Audit trail unavailable"
    assert refused.status_code == 401


@pytest.mark.parametrize("method", ["OPTIONS", "POST", "DELETE", "XAAA"])
def test_another_method_on_the_download_url_is_refused_with_one_record(
    client, audit_records, method
):
    response = client.open(
        DOWNLOAD, method=method, query_string={"id": "A" * 32}, headers={"X-Request-ID": "m1"}
    )

    assert response.status_code == 405
    records = [record for record in audit_records() if record["requestId"] == "m1"]
    assert [(record["event"], record["status"]) for record in records] == [("refused", 405)]


WITHDRAWAL_REASON = "issued with the wrong cut-off"
# Answers to a caller granted the job that tell it something about the job: each waits
# for its record. kind: (method, query beyond the id, headers, withdrawn, status, event)
GRANTED_ANSWERS = {
    "304": ("GET", {}, "If-None-Match", False, 304, "not-modified"),
    "412": ("GET", {}, "If-Match", False, 412, "refused"),
    "416": ("GET", {}, "Range", False, 416, "refused"),
    "410": ("GET", {}, None, True, 410, "refused"),
    "404-filter": ("GET", {"mode": "active"}, None, False, 404, "refused"),
    "head": ("HEAD", {}, None, False, 200, "head"),
}
# What those answers reveal of the job, in a header.
JOB_HEADERS = ("ETag", "Last-Modified", "Content-Range", "Repr-Digest", "Content-Disposition")


@pytest.fixture
def ask_granted(app: Any, download: Any, bearer: str, job: Any) -> Any:
    """``ask_granted(kind)``: one of GRANTED_ANSWERS' requests, the job withdrawn first
    when the kind needs it (while the trail still takes the ``withdrawn`` record)."""

    def call(kind: str, *, before: Any = None) -> Any:
        method, query, header, withdrawn, _, _ = GRANTED_ANSWERS[kind]
        if withdrawn:
            services = app.extensions["reporting_svc"]
            withdraw_job(
                services.store,
                services.catalog,
                services.audit,
                job.id,
                reason=WITHDRAWAL_REASON,
                operator=Operator("ops-anna", "test"),
                now=services.clock(),
            )
        headers = {
            "If-None-Match": {"If-None-Match": f'"{job.sha256}"'},
            "If-Match": {"If-Match": '"0000"'},
            "Range": {"Range": f"bytes={SIZE}-"},
        }.get(header or "", {})
        if before is not None:
            before()
        return download({"id": job.id, **query}, bearer, method=method, headers=headers)

    return call


@pytest.fixture(params=["damaged-head", "failing-sink"])
def break_trail(request: Any, app: Any, settings: Any, monkeypatch: Any) -> Any:
    """``break_trail()``: make every record fail from now on, by damaging the trail's head
    file or by making its sink's append fail (a full disk)."""

    def damage_head() -> None:
        settings.audit_path.with_name("audit.jsonl.head").write_text("not json")

    def fail_appends() -> None:
        def full(*args: Any, **kwargs: Any) -> Any:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(app.extensions["reporting_svc"].audit.chained, "append", full)

    return damage_head if request.param == "damaged-head" else fail_appends


@pytest.mark.parametrize("kind", list(GRANTED_ANSWERS))
def test_an_answer_to_a_granted_caller_without_its_record_is_a_503_that_reveals_nothing(
    ask_granted: Any, break_trail: Any, job: Any, kind: str
) -> None:
    response = ask_granted(kind, before=break_trail)

    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    for name in JOB_HEADERS:
        assert name not in response.headers
    if response.request.method == "GET":
        assert error_of(response)["errorMessage"] == "Audit trail unavailable"
        assert WITHDRAWAL_REASON.encode() not in response.data
        assert job.sha256.encode() not in response.data


@pytest.mark.parametrize("kind", list(GRANTED_ANSWERS))
def test_an_answer_to_a_granted_caller_carries_its_record(
    ask_granted: Any, events: Any, kind: str
) -> None:
    *_, status, event = GRANTED_ANSWERS[kind]

    response = ask_granted(kind)

    (record,) = events()[response.headers["X-Request-ID"]]
    assert response.status_code == status
    assert (record["event"], record["status"], record["subject"]) == (event, status, "alice")
