"""Load with verification: 64 clients for RELIABILITY_SECONDS over three delivery modes.

Every byte is checked by the client (the SHA-256 of a whole file, the exact bytes of a
range) and every request is matched, by the X-Request-ID the client gave it, to exactly
the audit records docs/api.md §4 prescribes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from tests.integration.processes import Processes, run_cli
from tests.reliability.conftest import load_seconds
from tests.reliability.deployments import Deployment, deploy, wait_for_records

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

CONCURRENCY = 64
REPORTS = {
    "small.bin": os.urandom(1024),
    "medium.bin": os.urandom(1024 * 1024),
    "large.bin": os.urandom(8 * 1024 * 1024 + 5),
}
DIGESTS = {name: hashlib.sha256(content).hexdigest() for name, content in REPORTS.items()}
# Enough threads (and so download slots) that no client of the load is ever refused as
# busy, nor its one caller past its share: this test checks what is sent,
# tests/reliability/test_slow_clients.py capacity.
ROOMY = {
    "GUNICORN_THREADS": str(CONCURRENCY + 2),
    "REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT": str(CONCURRENCY),
}


@dataclass(frozen=True)
class Outcome:
    """One request of the load: what was asked, and what was wrong with the answer if any."""

    request_id: str
    mode: str
    report: str
    status: int
    length: int
    problem: str | None


def one_request(
    session: requests.Session, rng: random.Random, deployment: Deployment, request_id: str
) -> Outcome:
    """A full or ranged GET of a random report, checked byte for byte."""
    name = rng.choice(list(REPORTS))
    content = REPORTS[name]
    size = len(content)
    headers = {"Authorization": f"Bearer {deployment.token}", "X-Request-ID": request_id}
    first, last = 0, size - 1
    if rng.random() < 0.5:
        first = rng.randrange(size)
        last = rng.randrange(first, size)
        headers["Range"] = f"bytes={first}-{last}"
    status = 206 if "Range" in headers else 200
    outcome = Outcome(request_id, deployment.mode, name, status, last - first + 1, None)
    try:
        response = session.get(deployment.download_url(name), headers=headers, timeout=120)
    except requests.RequestException as error:
        return _failed(outcome, f"{type(error).__name__}: {error}")
    body = response.content
    if response.status_code != status:
        return _failed(outcome, f"status {response.status_code}: {body[:200]!r}")
    if status == 200 and hashlib.sha256(body).hexdigest() != DIGESTS[name]:
        return _failed(outcome, f"wrong body: {len(body)} bytes")
    if status == 206:
        if response.headers.get("Content-Range") != f"bytes {first}-{last}/{size}":
            return _failed(outcome, f"Content-Range {response.headers.get('Content-Range')}")
        if body != content[first : last + 1]:
            return _failed(outcome, f"wrong range bytes: {len(body)} bytes")
    return outcome


def _failed(outcome: Outcome, problem: str) -> Outcome:
    return Outcome(**{**outcome.__dict__, "problem": problem})


def keep_alive_session() -> requests.Session:
    """A session that resends a GET once when a reused connection closes before any answer.

    gunicorn closes a connection idle for its ``keepalive`` seconds; a client that picks
    it from its pool at that moment sees it close with no response. RFC 9112 §9.3.1 lets
    a client retry an idempotent request then, and curl and browsers do. The retry cannot
    hide a request the service saw: that one would leave two more audit records under the
    same request id, and ``audit_discrepancies`` finds them.
    """
    session = requests.Session()
    retry = Retry(total=1, connect=1, read=1, status=0, other=0, allowed_methods={"GET"})
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


def run_load(deployments: list[Deployment], seconds: float) -> list[Outcome]:
    """CONCURRENCY threads, a session each, sending random requests until the time is up."""
    deadline = time.monotonic() + seconds

    def client(number: int) -> list[Outcome]:
        rng = random.Random(number)
        outcomes = []
        with keep_alive_session() as session:
            while time.monotonic() < deadline:
                request_id = f"load-{number:02d}-{len(outcomes):05d}"
                deployment = rng.choice(deployments)
                outcomes.append(one_request(session, rng, deployment, request_id))
        return outcomes

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        return [outcome for done in pool.map(client, range(CONCURRENCY)) for outcome in done]


def audit_discrepancies(deployment: Deployment, outcomes: list[Outcome]) -> list[str]:
    """Request ids whose records differ from docs/api.md §4's start + end, and unexpected ids.

    With x-accel nginx sends the bytes, so the ``end`` record leaves ``bytesSent`` and
    ``complete`` null (docs/audit.md); nginx's access log has the count.
    """
    grouped = wait_for_records(deployment.audit_file, {o.request_id: 2 for o in outcomes})
    wrong = [f"unexpected {i}" for i in set(grouped) - {o.request_id for o in outcomes}]
    for outcome in outcomes:
        records = grouped.get(outcome.request_id, [])
        sent, complete = (None, None) if deployment.mode == "x-accel" else (outcome.length, True)
        expected = [
            ("start", outcome.status, None, None, deployment.jobs[outcome.report]),
            ("end", outcome.status, sent, complete, deployment.jobs[outcome.report]),
        ]
        actual = [
            (r["event"], r["status"], r["bytesSent"], r["complete"], r["jobId"]) for r in records
        ]
        if actual != expected:
            wrong.append(f"{outcome.request_id}: {actual}")
    return wrong


def nginx_log_discrepancies(deployment: Deployment, outcomes: list[Outcome]) -> list[str]:
    """Request ids whose nginx access log line does not show the whole answer sent."""
    deadline = time.monotonic() + 10
    while True:
        lines: dict[str, list[tuple[int, int]]] = {}
        for line in deployment.nginx_access_log.read_text().splitlines():
            entry = json.loads(line)
            lines.setdefault(entry["requestId"], []).append((entry["status"], entry["bytesSent"]))
        wrong = [
            f"{o.request_id}: {lines.get(o.request_id)}"
            for o in outcomes
            if lines.get(o.request_id) != [(o.status, o.length)]
        ]
        if not wrong or time.monotonic() > deadline:
            return wrong
        time.sleep(0.1)


def test_mixed_load_sends_every_byte_right_and_leaves_exactly_the_prescribed_records(
    processes: Processes, moto_server: str
) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        deployments = list(
            pool.map(
                lambda mode: deploy(processes, mode, REPORTS, moto=moto_server, **ROOMY),
                ["stream", "x-accel", "proxy"],
            )
        )

    outcomes = run_load(deployments, load_seconds())

    problems = [o for o in outcomes if o.problem is not None]
    assert problems == [], f"{len(problems)} of {len(outcomes)} requests went wrong"
    for deployment in deployments:
        own = [o for o in outcomes if o.mode == deployment.mode]
        assert {o.report for o in own} == set(REPORTS), f"{deployment.mode}: sizes not mixed"
        assert {o.status for o in own} == {200, 206}, f"{deployment.mode}: ranges not mixed"
        assert audit_discrepancies(deployment, own) == [], deployment.mode
        if deployment.mode == "x-accel":
            assert nginx_log_discrepancies(deployment, own) == []
        verified = run_cli("audit", "verify", env=deployment.env)
        assert verified.stdout.startswith(f"OK: {2 * len(own)} records, last hash "), (
            deployment.mode
        )
