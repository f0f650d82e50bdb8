"""The Prometheus metrics each answer moves, read from the registry before and after."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from reporting_svc import create_app
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import Settings
from reporting_svc.storage import JobRecord, Store, StoreError
from reporting_svc.storage.local import LocalStore
from tests.support import BUCKET, DOWNLOAD, OTHER_STUDY, STUDY

CONTENT = b"subjectId,visit\n" + b"S-0001,Screening\n" * 50
UNKNOWN_ID = "6A7C29DD011241DFBE1B64399283C860"

Download = Callable[..., Any]


def sample(name: str, **labels: str) -> float:
    """A sample's current value; a labelled child not yet created counts as 0."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """How much one sample has changed since this object was made."""

    def __init__(self, name: str, **labels: str):
        self.name = name
        self.labels = labels
        self.before = sample(name, **labels)

    @property
    def value(self) -> float:
        return sample(self.name, **self.labels) - self.before


def requests_total(route: str, status: str, method: str = "GET") -> Delta:
    return Delta("reporting_http_requests_total", route=route, method=method, status=status)


@pytest.fixture
def job(publish: Callable[..., JobRecord]) -> JobRecord:
    return publish(CONTENT, "report.csv")


def _content_file(store: Store, record: JobRecord) -> Path:
    assert isinstance(store, LocalStore)
    return store.content_path(record)


# --- reporting_http_requests_total -----------------------------------------------------


def test_a_download_counts_one_request_under_route_download(
    job: JobRecord, bearer: str, download: Download
) -> None:
    ok, bad = requests_total("download", "200"), requests_total("download", "400")

    assert download({"id": job.id}, bearer).status_code == 200

    assert ok.value == 1
    assert bad.value == 0


def test_a_bad_request_counts_under_its_status(bearer: str, download: Download) -> None:
    bad, ok = requests_total("download", "400"), requests_total("download", "200")

    assert download({"id": "not-a-guid"}, bearer).status_code == 400

    assert bad.value == 1
    assert ok.value == 0


def test_head_counts_under_its_own_method(job: JobRecord, bearer: str, download: Download) -> None:
    head, get = requests_total("download", "200", "HEAD"), requests_total("download", "200")

    assert download({"id": job.id}, bearer, method="HEAD").status_code == 200

    assert (head.value, get.value) == (1, 0)


@pytest.mark.parametrize(
    ("headers", "status", "other"),
    [({}, "200", "206"), ({"Range": "bytes=5-9"}, "206", "200")],
    ids=["full", "range"],
)
def test_an_x_accel_answer_counts_under_the_status_nginx_sends(
    make_settings: Callable[..., Settings],
    bearer: str,
    tmp_path: Path,
    headers: dict[str, str],
    status: str,
    other: str,
) -> None:
    app = create_app(make_settings(local_delivery="x-accel"))
    upload = tmp_path / "extract.csv"
    upload.write_bytes(CONTENT)
    record = publish_report(
        app.extensions["reporting_svc"].store,
        upload,
        report_name="Subject Data Extract",
        mode="test",
        study_id=STUDY,
    )
    sent, not_sent = requests_total("download", status), requests_total("download", other)

    response = app.test_client().get(
        DOWNLOAD,
        query_string={"id": record.id},
        headers={"Authorization": f"Bearer {bearer}", **headers},
    )

    assert "X-Accel-Redirect" in response.headers
    assert (sent.value, not_sent.value) == (1, 0)


@pytest.mark.parametrize("path", ["/nowhere", "/ec-reporting-svc/rest/v2.0/reports/x"])
def test_an_unknown_path_counts_as_route_unmatched(client: FlaskClient, path: str) -> None:
    unmatched = requests_total("unmatched", "404")

    assert client.get(path).status_code == 404

    assert unmatched.value == 1


def _request_series() -> set[tuple[tuple[str, str], ...]]:
    return {
        tuple(sorted(sample.labels.items()))
        for metric in REGISTRY.collect()
        if metric.name == "reporting_http_requests"
        for sample in metric.samples
        if sample.name == "reporting_http_requests_total"
    }


def test_unknown_methods_add_no_series_and_count_as_other(client: FlaskClient) -> None:
    client.open("/nowhere", method="XAAA")
    series = _request_series()
    other = requests_total("unmatched", "404", "other")

    for n in range(300):
        assert client.open("/nowhere", method=f"X{n:03d}").status_code == 404

    assert _request_series() == series
    assert other.value == 300


@pytest.mark.parametrize("method", ["DELETE", "OPTIONS", "PATCH"])
def test_a_known_method_keeps_its_own_label(client: FlaskClient, method: str) -> None:
    counted = requests_total("unmatched", "404", method)

    client.open("/nowhere", method=method)

    assert counted.value == 1


# --- reporting_auth_failures_total -----------------------------------------------------


def _auth_failures(reason: str) -> Delta:
    return Delta("reporting_auth_failures_total", reason=reason)


@pytest.mark.parametrize(
    ("token_of", "reason"),
    [
        (lambda token: None, "missing_token"),
        (lambda token: "not.a.jwt", "invalid_token"),
        (lambda token: token(f"{OTHER_STUDY}:test:REPORTING_VIEW"), "insufficient_scope"),
    ],
    ids=["missing_token", "invalid_token", "insufficient_scope"],
)
def test_each_refusal_counts_its_reason_once(
    job: JobRecord,
    token: Callable[..., str],
    download: Download,
    token_of: Callable[[Callable[..., str]], str | None],
    reason: str,
) -> None:
    others = [r for r in ("missing_token", "invalid_token", "insufficient_scope") if r != reason]
    counted, first, second = (_auth_failures(r) for r in (reason, *others))

    assert download({"id": job.id}, token_of(token)).status_code == 401

    assert counted.value == 1
    assert (first.value, second.value) == (0, 0)


def test_a_report_needing_another_permission_counts_insufficient_scope(
    publish: Callable[..., JobRecord], bearer: str, download: Download
) -> None:
    record = publish(CONTENT, required_permission="UNBLINDED_VIEW")

    counted = _auth_failures("insufficient_scope")

    assert download({"id": record.id}, bearer).status_code == 401

    assert counted.value == 1


def test_success_and_not_found_count_no_auth_failure(
    job: JobRecord, bearer: str, download: Download
) -> None:
    reasons = [_auth_failures(r) for r in ("missing_token", "invalid_token", "insufficient_scope")]

    assert download({"id": job.id}, bearer).status_code == 200
    assert download({"id": UNKNOWN_ID}, bearer).status_code == 404

    assert [delta.value for delta in reasons] == [0, 0, 0]


# --- reporting_store_errors_total ------------------------------------------------------


def _store_errors(kind: str) -> Delta:
    return Delta("reporting_store_errors_total", kind=kind)


def test_a_failing_store_counts_unavailable(
    job: JobRecord,
    store: Store,
    bearer: str,
    download: Download,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(job_id: str) -> JobRecord:
        raise StoreError("disk on fire")

    monkeypatch.setattr(store, "get_record", fail)

    unavailable = _store_errors("unavailable")

    assert download({"id": job.id}, bearer).status_code == 503

    assert unavailable.value == 1


def test_a_deleted_file_counts_missing(
    job: JobRecord, store: Store, bearer: str, download: Download
) -> None:
    _content_file(store, job).unlink()

    missing, mismatch = _store_errors("missing"), _store_errors("mismatch")

    assert download({"id": job.id}, bearer).status_code == 500

    assert missing.value == 1
    assert mismatch.value == 0


def test_a_truncated_file_counts_mismatch(
    job: JobRecord, store: Store, bearer: str, download: Download
) -> None:
    _content_file(store, job).write_bytes(CONTENT[:-5])

    mismatch, missing = _store_errors("mismatch"), _store_errors("missing")

    assert download({"id": job.id}, bearer).status_code == 500

    assert mismatch.value == 1
    assert missing.value == 0


def test_a_successful_download_counts_no_store_error(
    job: JobRecord, bearer: str, download: Download
) -> None:
    kinds = [_store_errors(kind) for kind in ("unavailable", "missing", "mismatch")]

    assert download({"id": job.id}, bearer).status_code == 200

    assert [delta.value for delta in kinds] == [0, 0, 0]


# --- download bytes, duration and in flight --------------------------------------------


def _bytes_sent() -> Delta:
    return Delta("reporting_download_bytes_total", delivery="stream")


def _downloads() -> Delta:
    return Delta("reporting_download_duration_seconds_count")


def test_a_full_download_adds_its_bytes_and_one_duration(
    job: JobRecord, bearer: str, download: Download
) -> None:
    sent, downloads = _bytes_sent(), _downloads()

    response = download({"id": job.id}, bearer)

    assert response.data == CONTENT
    assert sent.value == len(CONTENT)
    assert downloads.value == 1


def test_a_range_adds_only_the_bytes_of_the_range(
    job: JobRecord, bearer: str, download: Download
) -> None:
    sent, downloads = _bytes_sent(), _downloads()

    response = download({"id": job.id}, bearer, headers={"Range": "bytes=10-29"})

    assert response.status_code == 206
    assert sent.value == 20
    assert downloads.value == 1


def test_each_download_observes_one_duration(
    job: JobRecord, bearer: str, download: Download
) -> None:
    downloads = _downloads()

    for _ in range(3):
        assert download({"id": job.id}, bearer).status_code == 200

    assert downloads.value == 3


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("HEAD", {}, 200),
        ("GET", {"Range": "bytes=99999-"}, 416),
        ("GET", {"If-None-Match": "*"}, 304),
    ],
    ids=["head", "unsatisfiable-range", "not-modified"],
)
def test_answers_without_file_bytes_are_not_downloads(
    job: JobRecord,
    bearer: str,
    download: Download,
    method: str,
    headers: dict[str, str],
    status: int,
) -> None:
    sent, downloads = _bytes_sent(), _downloads()

    response = download({"id": job.id}, bearer, method=method, headers=headers)

    assert response.status_code == status
    assert (sent.value, downloads.value) == (0, 0)


def test_an_s3_proxy_download_adds_its_bytes_under_delivery_proxy(
    make_settings: Callable[..., Settings],
    s3_bucket: Any,
    token: Callable[..., str],
    tmp_path: Path,
) -> None:
    app = create_app(make_settings(store="s3", s3_bucket=BUCKET, s3_region="us-east-1"))
    upload = tmp_path / "extract.csv"
    upload.write_bytes(CONTENT)
    record = publish_report(
        app.extensions["reporting_svc"].store,
        upload,
        report_name="Subject Data Extract",
        mode="test",
        study_id=STUDY,
    )
    proxied, streamed = Delta("reporting_download_bytes_total", delivery="proxy"), _bytes_sent()

    response = app.test_client().get(
        DOWNLOAD,
        query_string={"id": record.id},
        headers={"Authorization": f"Bearer {token(f'{STUDY}:test:REPORTING_VIEW')}"},
        buffered=True,
    )

    assert response.data == CONTENT
    assert (proxied.value, streamed.value) == (len(CONTENT), 0)


def test_in_flight_rises_while_the_body_is_open_and_falls_when_closed(
    job: JobRecord, bearer: str, client: FlaskClient
) -> None:
    idle = sample("reporting_downloads_in_flight")

    response = client.get(
        DOWNLOAD,
        query_string={"id": job.id},
        headers={"Authorization": f"Bearer {bearer}"},
        buffered=False,
    )
    try:
        assert response.status_code == 200
        assert sample("reporting_downloads_in_flight") == idle + 1
        first: bytes = next(iter(response.response))  # type: ignore[assignment]
    finally:
        response.close()

    assert CONTENT.startswith(first)
    assert sample("reporting_downloads_in_flight") == idle


def test_a_body_closed_early_counts_only_the_bytes_sent(
    publish: Callable[..., JobRecord], bearer: str, client: FlaskClient
) -> None:
    content = bytes(range(256)) * (3 * Store.block_size // 256)
    record = publish(content, "big.bin")

    sent = _bytes_sent()

    response = client.get(
        DOWNLOAD,
        query_string={"id": record.id, "studyId": STUDY},
        headers={"Authorization": f"Bearer {bearer}"},
        buffered=False,
    )
    first: bytes = next(iter(response.response))  # type: ignore[assignment]
    response.close()

    assert 0 < len(first) < len(content)
    assert sent.value == len(first)
