"""Ranges, If-Range, If-None-Match, If-Modified-Since and HEAD on the local store (stream)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask, request
from werkzeug.http import http_date, parse_date

from reporting_svc.errors import PreconditionFailed, RangeNotSatisfiable
from reporting_svc.http.conditional import Answer, decide
from reporting_svc.storage import JobRecord
from tests.support import STUDY, error_of

CONTENT = bytes((i * 7 + 3) % 256 for i in range(1000))
SIZE = len(CONTENT)

Download = Callable[..., Any]
Publish = Callable[..., JobRecord]


@pytest.fixture
def job(publish: Publish) -> JobRecord:
    return publish(CONTENT, "extract.bin")


@pytest.fixture
def get(job: JobRecord, bearer: str, download: Download) -> Callable[..., Any]:
    """Download ``job`` with extra request headers: ``get({"Range": ...}, method="GET")``."""

    def call(headers: dict[str, str] | None = None, method: str = "GET") -> Any:
        return download({"id": job.id}, bearer, method=method, headers=headers)

    return call


@pytest.fixture
def full(get: Callable[..., Any]) -> Any:
    """The plain 200 answer, to compare validators and digests with."""
    response = get()
    assert response.status_code == 200
    return response


def _etag(record: JobRecord) -> str:
    return f'"{record.sha256}"'


def _assert_whole_file(response: Any) -> None:
    assert response.status_code == 200
    assert response.data == CONTENT
    assert response.headers["Content-Length"] == str(SIZE)
    assert "Content-Range" not in response.headers


# --- ranges ----------------------------------------------------------------------------


def test_a_full_download_advertises_byte_ranges(full: Any) -> None:
    assert full.headers["Accept-Ranges"] == "bytes"
    assert "Content-Range" not in full.headers


@pytest.mark.parametrize(
    ("spec", "start", "stop"),
    [
        pytest.param("bytes=100-199", 100, 200, id="a-b"),
        pytest.param("bytes=0-0", 0, 1, id="first-byte"),
        pytest.param(f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE, id="last-byte"),
        pytest.param("bytes=900-", 900, SIZE, id="a-"),
        pytest.param("bytes=-37", SIZE - 37, SIZE, id="-n"),
        pytest.param(f"bytes=-{SIZE * 3}", 0, SIZE, id="suffix-longer-than-file"),
        pytest.param(f"bytes=990-{SIZE * 5}", 990, SIZE, id="end-past-eof-clipped"),
    ],
)
def test_a_single_range_gives_206_with_exactly_those_bytes(
    get: Callable[..., Any], full: Any, spec: str, start: int, stop: int
) -> None:
    response = get({"Range": spec})

    assert response.status_code == 206
    assert response.data == CONTENT[start:stop]
    assert response.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert response.headers["Content-Length"] == str(stop - start)
    for name in ("ETag", "Repr-Digest", "Last-Modified", "Content-Type", "Accept-Ranges"):
        assert response.headers[name] == full.headers[name], name


def test_the_digest_of_a_part_is_the_digest_of_the_whole_file(get: Callable[..., Any]) -> None:
    response = get({"Range": "bytes=10-19"})

    digest = base64.b64encode(hashlib.sha256(CONTENT).digest()).decode()
    assert response.headers["Repr-Digest"] == f"sha-256=:{digest}:"
    assert response.headers["ETag"] == f'"{hashlib.sha256(CONTENT).hexdigest()}"'


@pytest.mark.parametrize(
    "spec",
    [
        f"bytes={SIZE}-",
        f"bytes={SIZE + 10}-{SIZE + 20}",
        "bytes=-0",
        "bytes=5-2",
        "bytes=abc",
        "bytes=0-99999999999999999999999",
    ],
)
def test_an_unsatisfiable_range_is_a_416_envelope_naming_the_size(
    get: Callable[..., Any], spec: str
) -> None:
    response = get({"Range": spec})

    assert response.status_code == 416
    assert error_of(response)["errorCode"] == "REPT_416"
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    assert "Repr-Digest" not in response.headers
    assert "Content-Disposition" not in response.headers


@pytest.mark.parametrize(
    "spec",
    ["bytes=0-1,5-6", "bytes=5-6,0-1", "bytes=0-9,5-15", "bytes=-5,0-1", "bytes=0-1, -3"],
)
def test_a_multi_range_request_gets_the_whole_file(get: Callable[..., Any], spec: str) -> None:
    _assert_whole_file(get({"Range": spec}))


@pytest.mark.parametrize("spec", ["items=0-1", "lines=-3", "0-1"])
def test_an_unknown_range_unit_gets_the_whole_file(get: Callable[..., Any], spec: str) -> None:
    _assert_whole_file(get({"Range": spec}))


def test_an_empty_file_ignores_a_range_and_sends_an_empty_200(
    publish: Publish, bearer: str, download: Download
) -> None:
    record = publish(b"", "empty.csv")

    response = download({"id": record.id}, bearer, headers={"Range": "bytes=0-9"})

    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == "0"
    assert "Content-Range" not in response.headers


# --- If-Range --------------------------------------------------------------------------


def test_if_range_with_the_current_etag_gives_206(get: Callable[..., Any], job: JobRecord) -> None:
    response = get({"Range": "bytes=10-19", "If-Range": _etag(job)})

    assert response.status_code == 206
    assert response.data == CONTENT[10:20]


@pytest.mark.parametrize(
    "validator",
    ['"0123abcd"', 'W/"{sha}"', "{sha}", '"{sha}", "0123abcd"'],
    ids=["stale-etag", "weak-etag", "unquoted-etag", "a-list"],
)
def test_if_range_with_another_or_weak_etag_gives_the_whole_file(
    get: Callable[..., Any], job: JobRecord, validator: str
) -> None:
    value = validator.format(sha=job.sha256)

    _assert_whole_file(get({"Range": "bytes=10-19", "If-Range": value}))


def test_if_range_with_the_exact_last_modified_date_gives_206(
    get: Callable[..., Any], full: Any
) -> None:
    response = get({"Range": "bytes=10-19", "If-Range": full.headers["Last-Modified"]})

    assert response.status_code == 206
    assert response.data == CONTENT[10:20]


@pytest.mark.parametrize("seconds", [-1, 1, 3600])
def test_if_range_with_another_date_gives_the_whole_file(
    get: Callable[..., Any], full: Any, seconds: int
) -> None:
    last_modified = parse_date(full.headers["Last-Modified"])
    assert last_modified is not None
    other = http_date(last_modified + timedelta(seconds=seconds))

    _assert_whole_file(get({"Range": "bytes=10-19", "If-Range": other}))


def test_if_range_without_a_range_is_ignored(get: Callable[..., Any]) -> None:
    _assert_whole_file(get({"If-Range": '"stale"'}))


# --- revalidation ----------------------------------------------------------------------


@pytest.mark.parametrize("form", ["exact", "in-a-list", "star", "weak"])
def test_if_none_match_that_matches_gives_304_with_validators_only(
    get: Callable[..., Any], full: Any, job: JobRecord, form: str
) -> None:
    value = {
        "exact": _etag(job),
        "in-a-list": f'"aaaa", {_etag(job)}, "bbbb"',
        "star": "*",
        "weak": f"W/{_etag(job)}",  # If-None-Match uses the weak comparison (RFC 9110)
    }[form]

    response = get({"If-None-Match": value})

    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == full.headers["ETag"]
    assert "Repr-Digest" not in response.headers
    assert "Content-Disposition" not in response.headers
    assert "Content-Range" not in response.headers


def test_if_none_match_that_differs_gives_the_whole_file(get: Callable[..., Any]) -> None:
    _assert_whole_file(get({"If-None-Match": '"0123abcd", "4567ef"'}))


def test_if_none_match_wins_over_if_modified_since(get: Callable[..., Any], full: Any) -> None:
    response = get(
        {"If-None-Match": '"0123abcd"', "If-Modified-Since": full.headers["Last-Modified"]}
    )

    _assert_whole_file(response)


def test_if_none_match_that_matches_wins_over_an_old_if_modified_since(
    get: Callable[..., Any], job: JobRecord
) -> None:
    response = get(
        {"If-None-Match": _etag(job), "If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )

    assert response.status_code == 304


@pytest.mark.parametrize("seconds", [0, 1, 86400])
def test_if_modified_since_at_or_after_last_modified_gives_304(
    get: Callable[..., Any], full: Any, seconds: int
) -> None:
    last_modified = parse_date(full.headers["Last-Modified"])
    assert last_modified is not None

    response = get({"If-Modified-Since": http_date(last_modified + timedelta(seconds=seconds))})

    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == full.headers["ETag"]


def test_if_modified_since_before_last_modified_gives_the_whole_file(
    get: Callable[..., Any], full: Any
) -> None:
    last_modified = parse_date(full.headers["Last-Modified"])
    assert last_modified is not None

    _assert_whole_file(get({"If-Modified-Since": http_date(last_modified - timedelta(seconds=1))}))


def test_a_matching_if_none_match_wins_over_a_range(
    get: Callable[..., Any], job: JobRecord
) -> None:
    response = get({"If-None-Match": _etag(job), "Range": "bytes=0-9"})

    assert response.status_code == 304
    assert "Content-Range" not in response.headers


# --- preconditions (RFC 9110 §13.2.2) ---------------------------------------------------

OLD_DATE = "Mon, 01 Jan 2001 00:00:00 GMT"
FUTURE_DATE = "Fri, 01 Jan 2100 00:00:00 GMT"


def _validator_values(job: JobRecord, full: Any) -> dict[str, str]:
    return {"etag": _etag(job), "last_modified": full.headers["Last-Modified"]}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"If-Match": "{etag}"}, id="if-match-exact"),
        pytest.param({"If-Match": '"aaaa", {etag}'}, id="if-match-in-a-list"),
        pytest.param({"If-Match": "*"}, id="if-match-star"),
        pytest.param({"If-Unmodified-Since": "{last_modified}"}, id="ius-at-last-modified"),
        pytest.param({"If-Unmodified-Since": FUTURE_DATE}, id="ius-later"),
        pytest.param({"If-Unmodified-Since": "not a date"}, id="ius-not-a-date-is-ignored"),
        pytest.param({"If-Match": "{etag}", "If-Unmodified-Since": OLD_DATE}, id="if-match-wins"),
    ],
)
def test_a_precondition_that_holds_gives_the_whole_file(
    get: Callable[..., Any], job: JobRecord, full: Any, headers: dict[str, str]
) -> None:
    values = _validator_values(job, full)

    _assert_whole_file(get({k: v.format(**values) for k, v in headers.items()}))


@pytest.mark.parametrize(
    ("headers", "method"),
    [
        pytest.param({"If-Match": '"0123abcd"'}, "GET", id="if-match-other"),
        pytest.param({"If-Match": "W/{etag}"}, "GET", id="if-match-weak-never-matches"),
        pytest.param({"If-Match": ""}, "GET", id="if-match-empty"),
        pytest.param({"If-Unmodified-Since": OLD_DATE}, "GET", id="ius-earlier"),
        pytest.param(
            {"If-Match": '"0123abcd"', "If-Unmodified-Since": FUTURE_DATE},
            "GET",
            id="if-match-wins-over-ius",
        ),
        pytest.param({"If-Match": '"0123abcd"', "If-None-Match": "{etag}"}, "GET", id="before-304"),
        pytest.param(
            {"If-Unmodified-Since": OLD_DATE, "If-Modified-Since": FUTURE_DATE},
            "GET",
            id="ius-before-ims",
        ),
        pytest.param(
            {"If-Match": '"0123abcd"', "Range": "bytes=0-9", "If-Range": "{etag}"},
            "GET",
            id="before-range",
        ),
        pytest.param({"If-Match": '"0123abcd"'}, "HEAD", id="head"),
    ],
)
def test_a_precondition_that_fails_is_a_412_envelope_with_the_common_headers(
    get: Callable[..., Any],
    job: JobRecord,
    full: Any,
    headers: dict[str, str],
    method: str,
) -> None:
    values = _validator_values(job, full)
    sent = {k: v.format(**values) for k, v in headers.items()}

    response = get({**sent, "X-Request-ID": "precondition-1"}, method=method)

    assert response.status_code == 412
    if method == "GET":
        assert error_of(response)["errorCode"] == "REPT_412"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-ID"] == "precondition-1"
    assert "Content-Disposition" not in response.headers


def test_a_precondition_that_holds_lets_a_range_through(
    get: Callable[..., Any], job: JobRecord
) -> None:
    response = get({"If-Match": _etag(job), "Range": "bytes=10-19"})

    assert response.status_code == 206
    assert response.data == CONTENT[10:20]


def test_a_failed_precondition_is_audited_as_refused(
    get: Callable[..., Any], job: JobRecord, audit_records: Callable[..., Any]
) -> None:
    get({"If-Match": '"0123abcd"', "X-Request-ID": "precondition-2"})

    [record] = [r for r in audit_records() if r["requestId"] == "precondition-2"]
    assert (record["event"], record["status"], record["jobId"]) == ("refused", 412, job.id)


# --- HEAD ------------------------------------------------------------------------------


def test_head_gives_the_headers_of_a_full_get_and_no_body(
    get: Callable[..., Any], full: Any
) -> None:
    head = get(method="HEAD")

    assert head.status_code == 200
    assert head.data == b""
    for name in ("Content-Length", "ETag", "Last-Modified", "Repr-Digest", "Accept-Ranges"):
        assert head.headers[name] == full.headers[name], name


@pytest.mark.parametrize("spec", ["bytes=0-9", f"bytes={SIZE}-", "bytes=0-1,5-6"])
def test_head_ignores_a_range(get: Callable[..., Any], spec: str) -> None:
    head = get({"Range": spec}, method="HEAD")

    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["Content-Length"] == str(SIZE)
    assert "Content-Range" not in head.headers


def test_head_with_a_matching_if_none_match_gives_304(
    get: Callable[..., Any], job: JobRecord
) -> None:
    head = get({"If-None-Match": _etag(job)}, method="HEAD")

    assert head.status_code == 304
    assert head.headers["ETag"] == _etag(job)
    assert "Repr-Digest" not in head.headers


# --- common headers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        pytest.param({"Range": "bytes=0-9"}, 206, id="206"),
        pytest.param({"Range": f"bytes={SIZE}-"}, 416, id="416"),
        pytest.param({"If-None-Match": "*"}, 304, id="304"),
    ],
)
def test_partial_not_modified_and_unsatisfiable_answers_carry_the_common_headers(
    get: Callable[..., Any], extra: dict[str, str], status: int
) -> None:
    response = get({**extra, "X-Request-ID": "resume-42"})

    assert response.status_code == status
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-ID"] == "resume-42"


# --- decide, directly ------------------------------------------------------------------


def _record(size: int = SIZE) -> JobRecord:
    return JobRecord(
        id="6A7C29DD011241DFBE1B64399283C860",
        studyId=STUDY,
        mode="test",
        reportName="Subject Data Extract",
        rptKickoffDatetime="2025-06-04T11:00:00.000Z",
        rptFormat="BIN",
        status="COMPLETED",
        fileName="extract.bin",
        contentType="application/octet-stream",
        size=size,
        sha256="ab" * 32,
        completedAt="2025-06-04T11:27:52.014Z",
    )


def _decide(app: Flask, headers: dict[str, str], method: str = "GET", size: int = SIZE) -> Answer:
    with app.test_request_context(method=method, headers=headers):
        return decide(request, _record(size))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({}, Answer(200, 0, SIZE), id="plain"),
        pytest.param({"Range": "bytes=10-19"}, Answer(206, 10, 20), id="a-b"),
        pytest.param({"Range": "bytes=-10"}, Answer(206, SIZE - 10, SIZE), id="-n"),
        pytest.param({"Range": "bytes=990-5000"}, Answer(206, 990, SIZE), id="clipped"),
        pytest.param({"Range": "bytes=0-1,4-5"}, Answer(200, 0, SIZE), id="multi"),
        pytest.param({"Range": "bytes=4-5,0-1"}, Answer(200, 0, SIZE), id="multi-unordered"),
        pytest.param({"Range": f"bytes=-{SIZE + 1}"}, Answer(206, 0, SIZE), id="long-suffix"),
        pytest.param({"If-Match": f'"{"ab" * 32}"'}, Answer(200, 0, SIZE), id="if-match"),
        pytest.param(
            {"If-Match": f'"{"ab" * 32}"', "Range": "bytes=0-9"},
            Answer(206, 0, 10),
            id="if-match-range",
        ),
        pytest.param({"Range": "items=0-1"}, Answer(200, 0, SIZE), id="unit"),
        pytest.param({"If-None-Match": f'"{"ab" * 32}"'}, Answer(304, 0, 0), id="inm"),
        pytest.param(
            {"If-Modified-Since": "Wed, 04 Jun 2025 11:27:52 GMT"}, Answer(304, 0, 0), id="ims"
        ),
        pytest.param(
            {"Range": "bytes=0-9", "If-Range": "Wed, 04 Jun 2025 11:27:52 GMT"},
            Answer(206, 0, 10),
            id="if-range-date",
        ),
        pytest.param(
            {"Range": "bytes=0-9", "If-Range": "Wed, 04 Jun 2025 11:27:53 GMT"},
            Answer(200, 0, SIZE),
            id="if-range-other-date",
        ),
        pytest.param(
            {"Range": "bytes=0-9", "If-Range": f'"{"ab" * 32}"'}, Answer(206, 0, 10), id="if-range"
        ),
        pytest.param(
            {"Range": "bytes=0-9", "If-Range": f'W/"{"ab" * 32}"'},
            Answer(200, 0, SIZE),
            id="if-range-weak",
        ),
    ],
)
def test_decide_answers_from_the_record_and_headers(
    app: Flask, headers: dict[str, str], expected: Answer
) -> None:
    assert _decide(app, headers) == expected


def test_decide_gives_head_the_whole_file_despite_a_range(app: Flask) -> None:
    assert _decide(app, {"Range": "bytes=0-9"}, method="HEAD") == Answer(200, 0, SIZE)


def test_decide_gives_an_empty_file_the_whole_file_despite_a_range(app: Flask) -> None:
    assert _decide(app, {"Range": "bytes=0-9"}, size=0) == Answer(200, 0, 0)


@pytest.mark.parametrize(
    "if_range",
    [
        "Wednesday, 04-Jun-25 11:27:52 GMT",
        "Wed Jun  4 11:27:52 2025",
        "Wed, 04 Jun 2025 12:27:52 +0100",
        "wed, 04 jun 2025 11:27:52 gmt",
    ],
    ids=["rfc850", "asctime", "numeric-zone", "lower-case"],
)
def test_decide_resumes_only_on_the_exact_last_modified_value(app: Flask, if_range: str) -> None:
    # RFC 9110 §13.1.5: the date must exactly match Last-Modified; nginx would resume on
    # some of these (it parses them), but it only sees ranges the service resumes itself.
    headers = {"Range": "bytes=0-9", "If-Range": if_range}

    assert _decide(app, headers) == Answer(200, 0, SIZE)


MAX_OFF_T = 2**63 - 1


@pytest.mark.parametrize(
    ("spec", "start", "stop"),
    [
        pytest.param("BYTES=10-19", 10, 20, id="unit-in-capitals"),
        pytest.param("Bytes=10-19", 10, 20, id="unit-mixed-case"),
        pytest.param("bytes= 10 - 19 ", 10, 20, id="spaces-around-numbers"),
        pytest.param("bytes=  -10", SIZE - 10, SIZE, id="spaces-before-suffix"),
        pytest.param("bytes=10- ", 10, SIZE, id="open-ended-with-space"),
        pytest.param("bytes=" + "0" * 40 + "10-19", 10, 20, id="leading-zeros"),
        pytest.param(f"bytes=0-{MAX_OFF_T}", 0, SIZE, id="largest-end"),
        pytest.param(f"bytes=-{MAX_OFF_T}", 0, SIZE, id="largest-suffix"),
    ],
)
def test_decide_satisfies_what_nginx_satisfies(
    app: Flask, spec: str, start: int, stop: int
) -> None:
    assert _decide(app, {"Range": spec}) == Answer(206, start, stop)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(f"bytes={SIZE}-", id="start-at-eof"),
        pytest.param("bytes=-0", id="empty-suffix"),
        pytest.param("bytes=5-2", id="end-before-start"),
        pytest.param("bytes=0-99999999999999999999999", id="end-overflows-off_t"),
        pytest.param(f"bytes=0-{MAX_OFF_T + 1}", id="end-just-overflows"),
        pytest.param(f"bytes={MAX_OFF_T + 1}-", id="start-overflows"),
        pytest.param(f"bytes=-{MAX_OFF_T + 1}", id="suffix-overflows"),
        pytest.param("bytes=0-" + "9" * 5000, id="more-digits-than-int-parses"),
        pytest.param("bytes=0-\t9", id="tab-after-dash"),
        pytest.param("bytes=\t0-9", id="tab-before-start"),
        pytest.param("bytes=- 5", id="space-inside-suffix"),
        pytest.param("bytes=+1-5", id="plus-sign"),
        pytest.param("bytes=1_0-20", id="underscore-digits"),
        pytest.param("bytes=0-9;", id="trailing-garbage"),
        pytest.param("bytes=", id="no-range"),
        pytest.param("bytes=-", id="dash-only"),
        pytest.param("bytes=--5", id="double-dash"),
        pytest.param("bytes=1-2-3", id="three-numbers"),
    ],
)
def test_decide_refuses_what_nginx_refuses_with_the_size(app: Flask, spec: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as raised:
        _decide(app, {"Range": spec})

    assert raised.value.headers == {"Content-Range": f"bytes */{SIZE}"}


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({"If-Match": '"0123abcd"'}, "If-Match"),
        ({"If-Match": f'W/"{"ab" * 32}"'}, "If-Match"),
        ({"If-Unmodified-Since": "Wed, 04 Jun 2025 11:27:51 GMT"}, "If-Unmodified-Since"),
    ],
    ids=["other-etag", "weak-etag", "a-second-early"],
)
def test_decide_raises_precondition_failed_naming_the_header(
    app: Flask, headers: dict[str, str], detail: str
) -> None:
    with pytest.raises(PreconditionFailed) as raised:
        _decide(app, headers)

    assert detail in str(raised.value)


@pytest.mark.parametrize("spec", [f"bytes={SIZE}-", "bytes=-0", "bytes=5-2"])
def test_decide_raises_range_not_satisfiable_with_the_size(app: Flask, spec: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as raised:
        _decide(app, {"Range": spec})

    assert raised.value.headers == {"Content-Range": f"bytes */{SIZE}"}


def test_an_answer_knows_its_length_and_content_range() -> None:
    answer = Answer(206, 10, 20)

    assert answer.length == 10
    assert answer.content_range(SIZE) == f"bytes 10-19/{SIZE}"
