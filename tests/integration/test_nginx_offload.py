"""nginx changes nothing a client can see: x-accel through nginx equals the worker's answer.

Local x-accel is compared with ``stream`` from gunicorn, S3 x-accel (nginx relaying from
moto's S3 server) with ``proxy``. And what nginx sends is what the audit trail says: every
Range, however odd, gets the status the service decided and recorded.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.processes import (
    Processes,
    publish_with_cli,
    s3_env,
    service_env,
    token_with_cli,
)
from tests.support import DOWNLOAD, STUDY

pytestmark = pytest.mark.integration

COMPARED = [
    "Content-Type",
    "Content-Disposition",
    "Content-Length",
    "Content-Range",
    "Accept-Ranges",
    "ETag",
    "Last-Modified",
    "Repr-Digest",
    "Cache-Control",
    "X-Content-Type-Options",
    "X-Request-ID",
    "WWW-Authenticate",
]


@dataclass
class Pair:
    """The same store served two ways, and what a client needs to ask both."""

    direct: str
    through_nginx: str
    record: dict[str, str]
    token: str
    trail: Path
    behind: str  # the x-accel service nginx fronts: its /metrics
    log: Path  # and its standard error, where gunicorn writes the access lines


# Per store: the delivery setting, the mode the worker sends the bytes in, nginx's mode.
STORES = {
    "local": ("REPORTING_SVC_LOCAL_DELIVERY", "stream", "x-accel"),
    "s3": ("REPORTING_SVC_S3_DELIVERY", "proxy", "x-accel"),
}


@pytest.fixture(scope="module", params=list(STORES))
def pair(request: pytest.FixtureRequest, module_processes: Processes, moto_server: str) -> Pair:
    setting, by_worker, by_nginx = STORES[request.param]
    folder = module_processes.folder / request.param
    folder.mkdir()
    env = service_env(folder)
    if request.param == "s3":
        env = s3_env(env, moto_server)
    path = folder / "Données 2025.csv"
    path.write_bytes(os.urandom(700_000))
    record = publish_with_cli(env, path)
    direct = module_processes.serve({**env, setting: by_worker})
    accel = module_processes.serve({**env, setting: by_nginx})
    nginx = module_processes.behind_nginx(accel, Path(env["REPORTING_SVC_LOCAL_ROOT"]))
    token = token_with_cli(env, f"{STUDY}:test:REPORTING_VIEW")
    trail = Path(env["REPORTING_SVC_VAR_DIR"]) / "audit.jsonl"
    log = module_processes.folder / f"serve-{accel.rsplit(':', 1)[1]}.stderr"
    return Pair(direct, nginx, record, token, trail, accel, log)


STALE = '"' + "0" * 64 + '"'
CASES = {
    "full": ("GET", {}),
    "range": ("GET", {"Range": "bytes=1000-1999"}),
    "suffix": ("GET", {"Range": "bytes=-10"}),
    "open-ended": ("GET", {"Range": "bytes=699990-"}),
    "several ranges": ("GET", {"Range": "bytes=0-1,5-6"}),
    "fresh if-range": ("GET", {"Range": "bytes=5-9", "If-Range": "{etag}"}),
    "stale if-range": ("GET", {"Range": "bytes=5-9", "If-Range": STALE}),
    "if-range date": ("GET", {"Range": "bytes=5-9", "If-Range": "{last_modified}"}),
    "not modified": ("GET", {"If-None-Match": "{etag}"}),
    "modified since": ("GET", {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}),
    "unsatisfiable": ("GET", {"Range": "bytes=700000-"}),
    "range past off_t": ("GET", {"Range": "bytes=0-99999999999999999999999"}),
    "if-match": ("GET", {"If-Match": "{etag}", "Range": "bytes=10-19"}),
    "if-match fails": ("GET", {"If-Match": STALE}),
    "if-unmodified-since": ("GET", {"If-Unmodified-Since": "{last_modified}"}),
    "if-unmodified-since fails": ("GET", {"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}),
    "head": ("HEAD", {"Range": "bytes=0-9"}),
    "no token": ("GET", {"Authorization": ""}),
}


def _ask(base: str, pair: Pair, method: str, headers: dict[str, str]) -> requests.Response:
    sent = {"Authorization": f"Bearer {pair.token}", "X-Request-ID": "offload-1", **headers}
    return requests.request(
        method,
        f"{base}{DOWNLOAD}",
        params={"id": pair.record["id"]},
        headers={name: value for name, value in sent.items() if value},
        allow_redirects=False,
        timeout=30,
    )


@pytest.mark.parametrize("case", list(CASES))
def test_nginx_x_accel_answers_exactly_as_gunicorn_streams(pair: Pair, case: str) -> None:
    method, template = CASES[case]
    reference = _ask(pair.direct, pair, method, {})
    values = {
        "etag": reference.headers["ETag"],
        "last_modified": reference.headers["Last-Modified"],
    }
    headers = {name: value.format(**values) for name, value in template.items()}

    direct = _ask(pair.direct, pair, method, headers)
    offloaded = _ask(pair.through_nginx, pair, method, headers)

    assert offloaded.status_code == direct.status_code
    assert offloaded.content == direct.content
    for name in COMPARED:
        assert offloaded.headers.get(name) == direct.headers.get(name), name


@pytest.mark.parametrize("case", list(CASES))
def test_nginx_sends_no_header_twice(pair: Pair, case: str) -> None:
    method, template = CASES[case]
    headers = {
        name: value.format(etag='"x"', last_modified="x") for name, value in template.items()
    }

    response = _ask(pair.through_nginx, pair, method, headers)

    names = [name.lower() for name in response.raw.headers]
    assert sorted(names) == sorted(set(names))


def test_internal_location_is_not_reachable_from_outside(pair: Pair) -> None:
    key = f"jobs/{pair.record['id']}/content"
    for path in (f"full/{key}", f"range/{key}", "s3"):
        response = requests.get(f"{pair.through_nginx}/_reporting_svc_files/{path}", timeout=30)

        assert response.status_code == 404
        assert len(response.content) < 1000


@pytest.mark.parametrize("case", list(CASES))
def test_nothing_of_s3_reaches_the_client(pair: Pair, case: str) -> None:
    method, template = CASES[case]
    headers = {
        name: value.format(etag='"x"', last_modified="x") for name, value in template.items()
    }

    offloaded = _ask(pair.through_nginx, pair, method, headers)
    direct = _ask(pair.direct, pair, method, headers)

    names = {name.lower() for name in offloaded.headers}
    assert not [name for name in names if name.startswith(("x-amz", "x-reporting-svc"))]
    assert names - {"server", "date", "connection"} == {name.lower() for name in direct.headers} - {
        "server",
        "date",
        "connection",
        "keep-alive",
    }


SIZE = 700_000
NUMBERS = st.one_of(
    st.integers(0, SIZE + 10),
    st.integers(2**63 - 2, 2**63 + 2),
    st.text("0123456789", min_size=1, max_size=30),
).map(str)
BLANKS = st.sampled_from(["", " ", "  ", "\t"])
UNITS = st.sampled_from(["bytes", "BYTES", "Bytes", "bytes "])
RANGES = st.one_of(
    st.tuples(UNITS, BLANKS, NUMBERS, BLANKS, BLANKS, NUMBERS | st.just(""), BLANKS).map(
        lambda p: f"{p[0]}={p[1]}{p[2]}{p[3]}-{p[4]}{p[5]}{p[6]}"
    ),
    st.tuples(UNITS, BLANKS, BLANKS, NUMBERS, BLANKS).map(
        lambda p: f"{p[0]}={p[1]}-{p[2]}{p[3]}{p[4]}"
    ),
    st.text("0123456789-,; +_=\tbytesBYTES", max_size=24).map(lambda text: "bytes=" + text),
)


def _trail_status(pair: Pair, request_id: str) -> int:
    """The status the audit trail recorded for a request (its first record)."""
    for line in pair.trail.read_bytes().splitlines():
        record = json.loads(line)
        if record["requestId"] == request_id:
            return int(record["status"])
    raise AssertionError(f"no audit record for {request_id}")


@settings(max_examples=150, deadline=None, derandomize=True)
@given(RANGES)
def test_nginx_sends_the_status_the_trail_records_for_any_range(pair: Pair, spec: str) -> None:
    request_id = f"range-{uuid.uuid4().hex}"
    headers = {"Range": spec, "X-Request-ID": request_id}

    offloaded = _ask(pair.through_nginx, pair, "GET", headers)
    direct = _ask(pair.direct, pair, "GET", {"Range": spec})

    assert offloaded.status_code == _trail_status(pair, request_id)
    if spec.endswith("\t"):
        # gunicorn alone strips the tab (RFC 9110); nginx, and so the service behind it, not.
        return
    assert offloaded.status_code == direct.status_code
    assert offloaded.headers.get("Content-Range") == direct.headers.get("Content-Range")
    assert offloaded.content == direct.content


# gunicorn writes a request's access line once the answer has gone: long enough to wait.
ACCESS_LINE_WAIT = 10.0


def _requests_counted(pair: Pair, status: str) -> float:
    """The x-accel service's count of download GETs answered with ``status``."""
    text = requests.get(f"{pair.behind}/metrics", timeout=30).text
    wanted = {"route": "download", "method": "GET", "status": status}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "reporting_http_requests_total" and sample.labels == wanted:
                return sample.value
    return 0.0


def _access_line(pair: Pair, request_id: str) -> dict[str, object]:
    """The x-accel service's access line for a request, once gunicorn has written it."""
    deadline = time.monotonic() + ACCESS_LINE_WAIT
    while time.monotonic() < deadline:
        for line in pair.log.read_text().splitlines():
            entry: dict[str, object] = json.loads(line)
            if entry.get("message") == "access" and entry.get("requestId") == request_id:
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no access line for {request_id} within {ACCESS_LINE_WAIT} s")


@pytest.mark.parametrize(("spec", "status"), [(None, 200), ("bytes=10-19", 206)])
def test_metrics_access_line_and_trail_all_count_the_status_nginx_sends(
    pair: Pair, spec: str | None, status: int
) -> None:
    request_id = f"counted-{uuid.uuid4().hex}"
    other = 206 if status == 200 else 200
    counted, miscounted = _requests_counted(pair, str(status)), _requests_counted(pair, str(other))

    response = _ask(
        pair.through_nginx, pair, "GET", {"Range": spec or "", "X-Request-ID": request_id}
    )

    assert response.status_code == status
    assert _trail_status(pair, request_id) == status
    assert _access_line(pair, request_id)["status"] == status
    assert _requests_counted(pair, str(status)) == counted + 1
    assert _requests_counted(pair, str(other)) == miscounted
