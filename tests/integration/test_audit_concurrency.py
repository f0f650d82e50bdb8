"""Many processes, threads and gunicorn workers on one audit trail: one unbroken chain."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import socket
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from reporting_svc.audit.sinks import FileSink
from tests.support import DOWNLOAD, STUDY

pytestmark = pytest.mark.integration

PROCESSES = 4
THREADS = 5
PER_THREAD = 50
APPENDS = PROCESSES * THREADS * PER_THREAD
SMALL = 200 * 1024 + 7
BIG = 20 * 1024 * 1024


def append_records(path: str, process: int) -> None:
    """One process of the hammer: THREADS threads, each appending PER_THREAD records."""
    sink = FileSink(Path(path))

    def run(thread: int) -> None:
        for number in range(PER_THREAD):
            sink.append(
                {
                    "event": "head",
                    "requestId": f"p{process}-t{thread}-{number:03d}",
                    "userAgent": f"hammer/{process}-{thread} " + "x" * 500,
                }
            )

    threads = [threading.Thread(target=run, args=(thread,)) for thread in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_processes_and_threads_appending_at_once_leave_one_verifiable_chain(
    tmp_path: Path, cli: Any, service_env: dict[str, str]
) -> None:
    path = tmp_path / "var" / "audit.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=append_records, args=(str(path), process))
        for process in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES

    result = cli("audit", "verify", str(path), env=service_env)

    content = path.read_bytes()
    records = read_records(path)
    assert content.endswith(b"\n")
    assert len(content.splitlines()) == APPENDS
    ids = [record["requestId"] for record in records]
    assert sorted(ids) == sorted(
        f"p{p}-t{t}-{n:03d}"
        for p in range(PROCESSES)
        for t in range(THREADS)
        for n in range(PER_THREAD)
    )
    for record in records:  # a line made of two records' halves would fail here
        process, thread, _ = record["requestId"].split("-")
        assert record["userAgent"] == f"hammer/{process[1:]}-{thread[1:]} " + "x" * 500
    for writer in {i.rsplit("-", 1)[0] for i in ids}:
        own = [i for i in ids if i.rsplit("-", 1)[0] == writer]
        assert own == sorted(own), f"{writer}'s records are out of order"
    last = records[-1]["hash"]
    assert json.loads(path.with_name("audit.jsonl.head").read_text()) == {
        "records": APPENDS,
        "hash": last,
        "size": path.stat().st_size,
    }
    assert result.stdout == f"OK: {APPENDS} records, last hash {last}\n"


@pytest.fixture
def env(service_env: dict[str, str]) -> dict[str, str]:
    """The service's environment with four gunicorn workers sharing the trail."""
    # 16 clients at once, one caller: a slot for each in any one worker and in the
    # caller's share, so none is refused as busy.
    return {
        **service_env,
        "WEB_CONCURRENCY": "4",
        "GUNICORN_THREADS": "18",
        "REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT": "16",
    }


@pytest.fixture
def audit_file(env: dict[str, str]) -> Path:
    return Path(env["REPORTING_SVC_VAR_DIR"]) / "audit.jsonl"


def grouped_records(path: Path) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in read_records(path) if path.exists() else []:
        grouped[record["requestId"]].append(record)
    return grouped


def wait_for_records(path: Path, expected: dict[str, int], timeout: float = 20.0) -> Any:
    """Poll the trail until each request id has its number of records (end records are
    written when the server closes the body, which may be just after the client is done)."""
    deadline = time.monotonic() + timeout
    while True:
        grouped = grouped_records(path)
        if all(len(grouped.get(i, [])) >= n for i, n in expected.items()):
            return grouped
        if time.monotonic() > deadline:
            return grouped
        time.sleep(0.1)


def test_mixed_requests_through_gunicorn_workers_leave_exactly_the_prescribed_records(
    tmp_path: Path,
    env: dict[str, str],
    audit_file: Path,
    cli: Any,
    cli_publish: Any,
    cli_token: Any,
    serve: Any,
) -> None:
    report = tmp_path / "upstream" / "extract.bin"
    report.parent.mkdir()
    content = os.urandom(SMALL)
    report.write_bytes(content)
    job = cli_publish(env, report)["id"]
    token = cli_token(env, f"{STUDY}:test:REPORTING_VIEW")
    base = serve(env)
    rng = random.Random(4)
    kinds = ["full", "range", "head", "401", "404", "416"]
    plan = [(f"{kinds[n % len(kinds)]}-{n}", kinds[n % len(kinds)]) for n in range(200)]
    ranges = {rid: sorted(rng.sample(range(SMALL), 2)) for rid, kind in plan if kind == "range"}

    def attempt(request_id: str, kind: str) -> tuple[str, int, bytes]:
        headers = {"X-Request-ID": request_id, "Authorization": f"Bearer {token}"}
        params = {"id": "0" * 32 if kind == "404" else job}
        if kind == "401":
            del headers["Authorization"]
        if kind == "range":
            headers["Range"] = "bytes={}-{}".format(*ranges[request_id])
        if kind == "416":
            headers["Range"] = f"bytes={SMALL}-"
        method = "HEAD" if kind == "head" else "GET"
        response = requests.request(
            method, base + DOWNLOAD, params=params, headers=headers, timeout=60
        )
        return request_id, response.status_code, response.content

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda item: attempt(*item), plan))

    expected_status = {"full": 200, "range": 206, "head": 200, "401": 401, "404": 404, "416": 416}
    for (request_id, kind), (_, status, body) in zip(plan, answers, strict=True):
        assert status == expected_status[kind], request_id
        if kind == "full":
            assert body == content
    counts = {rid: 2 if kind in ("full", "range") else 1 for rid, kind in plan}
    grouped = wait_for_records(audit_file, counts)
    assert set(grouped) == set(counts)
    for request_id, kind in plan:
        records = grouped[request_id]
        events = [record["event"] for record in records]
        assert {record["status"] for record in records} == {expected_status[kind]}, request_id
        if kind in ("full", "range"):
            first, last = ranges.get(request_id, (0, SMALL - 1))
            assert events == ["start", "end"], request_id
            assert (records[1]["bytesSent"], records[1]["complete"]) == (last - first + 1, True)
        else:
            assert events == ["head" if kind == "head" else "refused"], request_id
    verified = cli("audit", "verify", env=env)
    total = sum(counts.values())
    assert verified.stdout.startswith(f"OK: {total} records, last hash ")


def test_a_client_that_disconnects_half_way_leaves_an_incomplete_end_record(
    tmp_path: Path,
    env: dict[str, str],
    audit_file: Path,
    cli: Any,
    cli_publish: Any,
    cli_token: Any,
    serve: Any,
) -> None:
    report = tmp_path / "upstream" / "big.bin"
    report.parent.mkdir()
    report.write_bytes(os.urandom(BIG))
    job = cli_publish(env, report)["id"]
    token = cli_token(env, f"{STUDY}:test:REPORTING_VIEW")
    address = urlsplit(serve(env))
    received = 0

    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(
            (
                f"GET {DOWNLOAD}?id={job} HTTP/1.1\r\nHost: {address.netloc}\r\n"
                f"Authorization: Bearer {token}\r\nX-Request-ID: walked-away\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
        )
        while received < 256 * 1024:
            chunk = sock.recv(65536)
            assert chunk, "the server closed the connection early"
            received += len(chunk)

    grouped = wait_for_records(audit_file, {"walked-away": 2})
    start, end = grouped["walked-away"]
    assert (start["event"], end["event"]) == ("start", "end")
    assert end["complete"] is False
    assert 0 < end["bytesSent"] < BIG
    cli("audit", "verify", env=env)
