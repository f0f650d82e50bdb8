"""Hostile input: arbitrary methods, query strings and header values against live gunicorn.

Every answer must be a documented status, never 5xx; every 4xx from the app is a
well-formed envelope; and a 200 or 206 body is always a slice of the published file.
gunicorn refuses some requests itself before the app sees them (an invalid method or
header, an oversized request line or header field) with 400, 414 or 431, in the same
envelope (reporting_svc.server.worker).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
from collections import Counter
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.integration.processes import Processes, run_cli
from tests.reliability.deployments import Deployment, deploy, wait_for_records
from tests.support import STUDY

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

CONTENT = os.urandom(64 * 1024 + 3)
APP_STATUSES = {200, 206, 304, 400, 401, 404, 405, 416}
GUNICORN_STATUSES = {400, 414, 431}
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
PARAMETERS = ["id", "studyId", "mode", "reportName", "rptKickoffDatetime", "x", "ID", ""]

# Latin-1 without CR, LF and NUL: what http.client lets through as a header value.
header_text = st.text(
    st.characters(min_codepoint=1, max_codepoint=255, exclude_characters="\r\n"), max_size=300
)
oversized = st.integers(8000, 9000).map(lambda n: "a" * n)


def plausible_values(deployment: Deployment) -> dict[str, st.SearchStrategy[str]]:
    """Values near the valid ones, so the property reaches 200, 206, 304 and 416 too."""
    etag = f'"{hashlib.sha256(CONTENT).hexdigest()}"'
    return {
        "Range": st.one_of(
            st.integers(0, len(CONTENT) * 2).map(lambda start: f"bytes={start}-"),
            st.integers(1, 100).map(lambda length: f"bytes=-{length}"),
            st.sampled_from(
                [
                    "bytes=0-0",
                    "bytes=0-9,20-29",
                    "bytes=5-2",
                    "items=0-1",
                    "bytes=-0",
                    "bytes=0-18446744073709551616",
                ]
            ),
        ),
        "If-None-Match": st.sampled_from([etag, "*", f"W/{etag}", '"other"', etag + ", *"]),
        "If-Range": st.sampled_from([etag, '"other"', "Thu, 01 Jan 1970 00:00:00 GMT"]),
        "Authorization": st.sampled_from(
            [f"Bearer {deployment.token}", "Bearer x.y.z", "Basic dXNlcjpwYXNz", "Bearer "]
        ),
        "X-Request-ID": st.sampled_from(["abc-123", "x" * 129, "a b", "ok:1.2_3"]),
    }


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Draw from one of the strategies, each with its weight."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda index: table[index])


def requests_for(deployment: Deployment) -> st.SearchStrategy[dict[str, Any]]:
    """A method, a query string and some headers: mostly plausible, partly arbitrary,
    sometimes oversized, so every answer of the endpoint is reached."""
    plausible = plausible_values(deployment)
    job = deployment.jobs["report.bin"]
    method = weighted(
        (6, st.just("GET")),
        (2, st.just("HEAD")),
        (1, st.sampled_from(["POST", "PUT", "DELETE", "PATCH", "TRACE", "OPTIONS"])),
        (1, st.from_regex(r"[A-Za-z]{1,12}", fullmatch=True)),
    )
    value = weighted((2, st.just(job)), (2, st.text(max_size=80)), (1, oversized))
    pairs = st.lists(st.tuples(st.sampled_from(PARAMETERS), value), max_size=4)
    query = weighted(
        (6, st.just(f"id={job}")),
        (1, st.just(f"id={job.lower()}&mode=TEST&studyId={STUDY}")),
        (1, st.just("id=" + "0" * 32)),
        (2, pairs.map(lambda items: "&".join(f"{quote(k)}={quote(v)}" for k, v in items))),
        (1, st.binary(max_size=120).map(lambda raw: quote(raw, safe="=&;%+"))),
    )
    headers = st.fixed_dictionaries(
        {},
        optional={
            name: weighted((15, strategy), (4, header_text), (1, oversized))
            for name, strategy in plausible.items()
        },
    )
    authorised = weighted((3, st.just(f"Bearer {deployment.token}")), (1, st.just(None)))
    return st.builds(
        lambda method, query, headers, authorization: {
            "method": method,
            "query": query,
            "headers": {"Authorization": authorization, **headers}
            if authorization and "Authorization" not in headers
            else headers,
        },
        method,
        query,
        headers,
        authorised,
    )


def unsatisfiable_range(deployment: Deployment) -> dict[str, Any]:
    """A granted GET whose Range starts past the file's end: 416."""
    return {
        "method": "GET",
        "query": f"id={deployment.jobs['report.bin']}",
        "headers": {
            "Authorization": f"Bearer {deployment.token}",
            "Range": f"bytes={len(CONTENT)}-",
        },
    }


def send(deployment: Deployment, attempt: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    host, port = deployment.address()
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        path = f"/ec-reporting-svc/rest/v2.0/reports/download?{attempt['query']}"
        connection.request(attempt["method"], path, headers=attempt["headers"])
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def check_answer(
    attempt: dict[str, Any], status: int, headers: dict[str, str], body: bytes
) -> None:
    """The property: a documented status, a well-formed error, never a foreign byte.

    gunicorn's refusals come in the same envelope with a new request id (the sent one may
    be what it could not parse), so a sane id is echoed on every answer but those.
    """
    assert status < 500, (status, body[:300])
    assert status in APP_STATUSES | GUNICORN_STATUSES, (status, body[:300])
    sent_id = attempt["headers"].get("X-Request-ID", "").strip(" \t")
    if SANE_REQUEST_ID.fullmatch(sent_id) and status not in GUNICORN_STATUSES:
        assert headers["x-request-id"] == sent_id
    elif headers["x-request-id"] != sent_id:
        assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    if attempt["method"] == "HEAD":
        assert body == b""
    elif status >= 400:
        assert headers["content-type"] == "application/json"
        envelope = json.loads(body)
        assert set(envelope) == {"status", "result", "errorData"}
        assert (envelope["status"], envelope["result"]) == ("error", None)
        assert envelope["errorData"]["errorCode"] == f"REPT_{status}"
        assert isinstance(envelope["errorData"]["errorMessage"], str)
    elif status == 206:
        first, last, size = map(
            int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", headers["content-range"]).groups()
        )
        assert size == len(CONTENT)
        assert body == CONTENT[first : last + 1]
    elif status == 200 and attempt["method"] == "GET":
        assert body == CONTENT
    else:  # 304, HEAD, and Flask's automatic OPTIONS answer
        assert body == b""


@pytest.fixture(scope="module", params=["stream", "s3 x-accel"])
def deployment(
    request: pytest.FixtureRequest, module_processes: Processes, moto_server: str
) -> Deployment:
    """gunicorn alone, and nginx relaying from moto's S3 server."""
    return deploy(
        module_processes, request.param, {"report.bin": CONTENT}, moto=moto_server, workers=2
    )


def test_hostile_requests_get_documented_answers_and_never_a_foreign_byte(
    deployment: Deployment,
) -> None:
    seen: Counter[int] = Counter()

    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(attempt=requests_for(deployment))
    @example(attempt=unsatisfiable_range(deployment))  # the rarest answer, reached for sure
    def answers_well(attempt: dict[str, Any]) -> None:
        status, headers, body = send(deployment, attempt)
        seen[status] += 1
        check_answer(attempt, status, headers, body)

    answers_well()

    assert set(seen) >= APP_STATUSES, f"the examples did not reach every answer: {seen}"

    verified = run_cli("audit", "verify", env=deployment.env)
    assert verified.stdout.startswith("OK: ")


def test_options_request_leaves_one_record_and_no_download_start(deployment: Deployment) -> None:
    attempt = {
        "method": "OPTIONS",
        "query": f"id={deployment.jobs['report.bin']}",
        "headers": {"X-Request-ID": "options-probe"},
    }
    status, headers, body = send(deployment, attempt)
    check_answer(attempt, status, headers, body)

    records = wait_for_records(deployment.audit_file, {"options-probe": 1}, timeout=2)
    events = [record["event"] for record in records["options-probe"]]
    assert len(events) == 1 and "start" not in events, events
