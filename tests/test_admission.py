"""Admission control: a process, a host and one caller send at most their limits of
downloads, and every way a download ends gives its slot back (docs/api.md §1, Capacity)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from reporting_svc.errors import TooManyDownloads, TooManyDownloadsForCaller
from reporting_svc.http import admission as admission_module
from reporting_svc.http.admission import Admission
from reporting_svc.http.bodies import TrackedBody
from reporting_svc.http.slots import HostSlots, Refusal
from reporting_svc.storage import StoreError
from tests.support import BUCKET, DOWNLOAD, STUDY, error_of

CONTENT = os.urandom(3 * 1024 * 1024 + 5)
S3 = {"store": "s3", "s3_bucket": BUCKET, "s3_region": "us-east-1", "s3_chunk_size": 65536}


@pytest.fixture
def settings(make_settings: Any, request: Any) -> Any:
    """One download slot; a test adds settings by parametrizing this fixture indirectly."""
    extra: dict[str, Any] = getattr(request, "param", {})
    if extra.get("store") == "s3":
        request.getfixturevalue("s3_bucket")
    return make_settings(**{"max_downloads_per_worker": 1, **extra})


@pytest.fixture
def slots_file(tmp_path: Any) -> Any:
    return tmp_path / "download-slots"


@pytest.fixture
def admission(slots_file: Any) -> Callable[..., Admission]:
    """``admission(host, share=)``: one process's admission on the test's slots file; each
    call opens its own descriptor, so two stand for two worker processes of a host."""

    def make(
        host: int = 1, *, share: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> Admission:
        return Admission(HostSlots(slots_file, host, share), clock=clock)

    return make


@pytest.fixture
def job(publish: Any) -> Any:
    return publish(CONTENT, "extract.bin")


@pytest.fixture
def fetch(client: FlaskClient, token: Callable[..., str], job: Any) -> Callable[..., Any]:
    """Start a download of the job without reading its body:
    ``fetch(method=, headers=, subject=)``."""

    def call(
        method: str = "GET", headers: dict[str, str] | None = None, subject: str = "alice"
    ) -> Any:
        bearer = token(f"{STUDY}:test:REPORTING_VIEW", subject=subject)
        return client.open(
            DOWNLOAD,
            method=method,
            query_string={"id": job.id},
            headers={"Authorization": f"Bearer {bearer}", **(headers or {})},
            buffered=False,
        )

    return call


@contextmanager
def slot_taken(fetch: Callable[..., Any], subject: str = "alice") -> Iterator[Any]:
    """A download in flight, its body unread, for as long as the block runs."""
    response = fetch(subject=subject)
    try:
        assert response.status_code == 200
        yield response
    finally:
        response.close()


def admits_another(fetch: Callable[..., Any], subject: str = "bob") -> bool:
    """Whether a download by another caller than alice now starts (200) rather than being
    refused as busy (503)."""
    response = fetch(subject=subject)
    response.close()
    assert response.status_code in (200, 503)
    return bool(response.status_code == 200)


def refused_busy() -> float:
    return REGISTRY.get_sample_value("reporting_downloads_refused_busy_total") or 0.0


def test_a_download_past_the_limit_is_refused_at_once_with_503_and_retry_after(
    fetch: Callable[..., Any], audit_records: Any
) -> None:
    before = refused_busy()
    with slot_taken(fetch):
        response = fetch(headers={"X-Request-ID": "past-the-limit"}, subject="bob")

    assert response.status_code == 503
    data = error_of(response)
    assert data["errorMessage"] == "Too many downloads in progress"
    assert response.headers["Retry-After"].isdigit()
    assert response.headers["X-Request-ID"] == "past-the-limit"
    assert refused_busy() == before + 1
    [record] = [r for r in audit_records() if r["requestId"] == "past-the-limit"]
    assert (record["event"], record["status"], record["delivery"]) == ("refused", 503, "stream")


def test_a_download_that_was_read_whole_gives_its_slot_back(fetch: Callable[..., Any]) -> None:
    with slot_taken(fetch) as response:
        assert response.get_data() == CONTENT

    assert admits_another(fetch)


def test_a_client_that_disconnects_half_way_gives_its_slot_back(
    fetch: Callable[..., Any],
) -> None:
    with slot_taken(fetch) as response:
        first = next(iter(response.response))
        assert 0 < len(first) < len(CONTENT)
        assert not admits_another(fetch)

    assert admits_another(fetch)


@pytest.mark.parametrize("settings", [S3], ids=["s3-proxy"], indirect=True)
def test_a_store_failing_mid_stream_gives_the_slot_back(
    fetch: Callable[..., Any], store: Any, fail_mid_stream: Callable[[], None], monkeypatch: Any
) -> None:
    real_open_range = store.open_range
    fail_mid_stream()
    with slot_taken(fetch) as response, pytest.raises(StoreError):
        list(response.response)

    monkeypatch.setattr(store, "open_range", real_open_range)
    assert admits_another(fetch)


@pytest.mark.parametrize(
    "settings", [{"audit_file": "/dev/full"}], ids=["audit-disk-full"], indirect=True
)
def test_a_download_whose_start_record_fails_gives_the_slot_back(
    fetch: Callable[..., Any], app: Any
) -> None:
    response = fetch()
    response.close()
    assert error_of(response)["errorMessage"] == "Audit trail unavailable"

    # Every download is refused while the trail is unwritable: ask the slots themselves.
    release = app.extensions["reporting_svc"].delivery.admission.admit("alice")
    release()


@pytest.mark.parametrize(
    "failure",
    ["store-unreachable", "file-shorter-than-its-record"],
)
def test_a_download_that_fails_before_its_body_gives_the_slot_back(
    fetch: Callable[..., Any], store: Any, job: Any, monkeypatch: Any, failure: str
) -> None:
    real_open_range = store.open_range
    if failure == "store-unreachable":

        def broken(*args: Any) -> Any:
            raise StoreError("connection refused")

        monkeypatch.setattr(store, "open_range", broken)
        expected = 503
    else:
        path = store.root / "jobs" / job.id / "content"
        path.write_bytes(CONTENT[:-1])
        expected = 500

    response = fetch()
    response.close()
    assert response.status_code == expected

    monkeypatch.setattr(store, "open_range", real_open_range)
    if failure != "store-unreachable":
        path.write_bytes(CONTENT)
    assert admits_another(fetch)


@pytest.mark.parametrize(
    ("settings", "method", "headers", "status"),
    [
        ({}, "HEAD", {}, 200),
        ({}, "GET", {"If-None-Match": "*"}, 304),
        ({"local_delivery": "x-accel"}, "GET", {}, 200),
    ],
    ids=["head", "not-modified", "x-accel"],
    indirect=["settings"],
)
def test_answers_that_send_no_bytes_from_the_worker_take_no_slot(
    fetch: Callable[..., Any], method: str, headers: dict[str, str], status: int
) -> None:
    with slot_taken(fetch):
        response = fetch(method, headers)
        response.close()

    assert response.status_code == status


def test_health_is_answered_while_every_slot_is_taken(
    fetch: Callable[..., Any], client: FlaskClient
) -> None:
    with slot_taken(fetch):
        answers = [client.get(path).status_code for path in ("/healthz", "/readyz", "/metrics")]

    assert answers == [200, 200, 200]


def test_a_body_gives_its_slot_back_even_when_reporting_its_count_fails(
    admission: Callable[..., Admission],
) -> None:
    one = admission()
    body = TrackedBody(open(os.devnull, "rb"), 0, 0, release=one.admit("alice"))  # noqa: SIM115

    def failing(sent: int) -> None:
        raise RuntimeError("the end record could not be prepared")

    body.when_closed(failing)
    with pytest.raises(RuntimeError):
        body.close()
    body.close()

    one.admit("alice")()


class HeldClock:
    """A monotonic clock in seconds that moves only when the test moves it, or by ``tick``
    each time it is read."""

    def __init__(self, tick: float = 0.0) -> None:
        self.at = 1000.0
        self.tick = tick

    def __call__(self) -> float:
        self.at += self.tick
        return self.at


def counting_refusals(monkeypatch: pytest.MonkeyPatch, one: Admission) -> threading.Semaphore:
    """A semaphore released each time ``one`` looks for a slot and is refused one."""
    refusals = threading.Semaphore(0)
    take = one.slots.take

    def counted(subject: str) -> tuple[int, int] | Refusal:
        taken = take(subject)
        if isinstance(taken, Refusal):
            refusals.release()
        return taken

    monkeypatch.setattr(one.slots, "take", counted)
    return refusals


@pytest.mark.parametrize("subject", ["alice", "bob"], ids=["same-caller", "other-caller"])
def test_while_slots_are_coming_free_a_download_waits_for_one(
    monkeypatch: pytest.MonkeyPatch, admission: Callable[..., Admission], subject: str
) -> None:
    clock = HeldClock()
    one = admission(clock=clock)
    one.admit("alice")()  # a short download came and went: slots are turning over
    release = one.admit("alice")
    refusals = counting_refusals(monkeypatch, one)

    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(one.admit, subject)
        assert refusals.acquire(timeout=10), "the download never looked for a slot"
        assert not waiting.done()  # refused a slot, it waits instead of raising
        release()
        waited = waiting.result(timeout=10)

    clock.at += admission_module.CHURN_WINDOW + 1
    clock.tick = admission_module.SLOT_WAIT / 2
    with pytest.raises(TooManyDownloads):  # the slot it waited for is its own now
        one.admit("carol")
    waited()
    one.admit("carol")()


def test_when_no_slot_came_free_lately_a_download_is_refused_without_waiting(
    monkeypatch: pytest.MonkeyPatch, admission: Callable[..., Admission]
) -> None:
    clock = HeldClock()
    one = admission(clock=clock)
    one.admit("alice")()  # the last slot to come free ...
    one.admit("alice")  # ... went to a slow client, which still holds it
    clock.at += admission_module.CHURN_WINDOW + 0.001  # ... longer ago than the window
    clock.tick = admission_module.SLOT_WAIT / 2  # one that waits gives up at its second look
    refusals = counting_refusals(monkeypatch, one)

    with pytest.raises(TooManyDownloads):
        one.admit("bob")
    assert refusals.acquire(blocking=False) and not refusals.acquire(blocking=False)


def test_a_slot_given_back_twice_counts_once(admission: Callable[..., Admission]) -> None:
    one = admission()
    release = one.admit("alice")
    release()
    release()

    one.admit("alice")
    with pytest.raises(TooManyDownloads):
        one.admit("bob")


@pytest.mark.parametrize(
    "settings",
    [{"max_downloads_per_worker": 3, "max_downloads_per_subject": 2}],
    ids=["share-of-2-in-3"],
    indirect=True,
)
def test_a_caller_holding_its_share_is_refused_with_429_while_another_still_gets_a_slot(
    fetch: Callable[..., Any], audit_records: Any
) -> None:
    with slot_taken(fetch), slot_taken(fetch):
        response = fetch(headers={"X-Request-ID": "past-the-share"})
        response.close()
        other_admitted = admits_another(fetch)

    assert response.status_code == 429
    assert error_of(response)["errorCode"] == "REPT_429"
    assert error_of(response)["errorMessage"] == "Too many downloads by this caller"
    assert response.headers["Retry-After"].isdigit()
    assert other_admitted
    [record] = [r for r in audit_records() if r["requestId"] == "past-the-share"]
    assert (record["event"], record["status"], record["subject"]) == ("refused", 429, "alice")


def test_the_host_refuses_only_when_all_its_processes_together_are_full(
    admission: Callable[..., Admission],
) -> None:
    first, second = admission(2, share=2), admission(2, share=2)

    first.admit("alice")
    second.admit("bob")  # the first worker's free thread does not count: the host is full

    for worker in (first, second):
        with pytest.raises(TooManyDownloads):
            worker.admit("carol")


def test_a_callers_share_is_counted_across_the_hosts_processes(
    admission: Callable[..., Admission],
) -> None:
    first, second = admission(3, share=1), admission(3, share=1)
    first.admit("alice")

    with pytest.raises(TooManyDownloadsForCaller):
        second.admit("alice")
    second.admit("bob")
    second.admit("carol")  # alice's refusal took no slot of the host's


def test_a_killed_process_gives_its_slots_back_at_once(
    admission: Callable[..., Admission], slots_file: Any
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_EVERY_SLOT, str(slots_file)], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"holding\n"
        with pytest.raises(TooManyDownloads):
            admission(2, share=2).admit("alice")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)

    admission(2, share=2).admit("alice")


# A worker that takes both of a host's slots and is then killed before it gives them back.
HOLD_EVERY_SLOT = """
import sys, time
from pathlib import Path
from reporting_svc.http.slots import HostSlots, Refusal
slots = HostSlots(Path(sys.argv[1]), 2, 1)
assert not any(isinstance(slots.take(subject), Refusal) for subject in ("x", "y"))
print("holding", flush=True)
time.sleep(60)
"""
