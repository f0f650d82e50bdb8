"""A gunicorn worker killed with SIGKILL under load: the others go on, the master replaces it.

Each client keeps one keep-alive connection, and a connection belongs to the worker that
accepted it. The victim is stopped while its connections are read from /proc, so the set
is exact when SIGKILL lands: only requests on those connections may fail.

Killed between writing its records and rewriting the head (a window of two syscalls, held
under the trail's lock, where strace stops it), the worker leaves a trail longer than its
head says, and the intent it wrote before appending: the next writer completes the batch,
and no download is refused on its account. Workers killed at random under load, some of
them in that window, leave a trail that verifies and a host that never needed a person.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.processes import children
from tests.integration.processes import Processes, run_cli
from tests.reliability.deployments import Deployment, deploy, wait_for_workers
from tests.reliability.kills import (
    AIMED_EVERY,
    connections_of,
    freeze,
    holding_audit_lock,
    holds_audit_lock,
    kill_at_random,
    mid_append,
    stopped_mid_append,
)

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

WORKERS = 4
CLIENTS = 24
REPORTS = {"small.bin": os.urandom(1024), "medium.bin": os.urandom(1024 * 1024)}
DIGESTS = {name: hashlib.sha256(content).hexdigest() for name, content in REPORTS.items()}
CHAOS_KILLS = 16
#: How long the clients may take to be served (at the start, and again after the kill).
SERVED_WITHIN = 60.0


@dataclass(frozen=True)
class Attempt:
    """One request: the client's port (which names its connection), when, and what went wrong."""

    port: int
    sent: float
    problem: str | None


def fetch(connection: http.client.HTTPConnection, deployment: Deployment, report: str) -> Attempt:
    """GET a report on the connection (reconnecting if it is closed) and check its bytes."""
    sent = time.monotonic()
    try:
        if connection.sock is None:
            connection.connect()
    except OSError as error:  # no worker's fault: the master's socket should always accept
        return Attempt(0, sent, f"connect: {error}")
    port = connection.sock.getsockname()[1]
    try:
        path = deployment.download_url(report).removeprefix(deployment.url)
        connection.request("GET", path, headers={"Authorization": f"Bearer {deployment.token}"})
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        return Attempt(port, sent, f"{type(error).__name__}: {error}")
    if response.status != 200 or hashlib.sha256(body).hexdigest() != DIGESTS[report]:
        return Attempt(port, sent, f"status {response.status}, {len(body)} bytes")
    return Attempt(port, sent, None)


@contextmanager
def stopped_at(pid: int, moment: str, audit_file: Path) -> Iterator[None]:
    """The worker stopped at the moment wanted, for the block that kills it.

    ``outside-audit-append``: this test holds the trail's lock, so the worker cannot be
    inside an append. ``mid-audit-append``: strace stops it holding the lock, between a
    batch written and the head that names it.
    """
    if moment == "mid-audit-append":
        with stopped_mid_append(pid, audit_file):
            yield
    else:
        with holding_audit_lock(audit_file):
            freeze(pid)
            yield


def served_since(progress: list[list[Attempt]], moment: float) -> bool:
    """Whether every client has been served a request it sent after ``moment``."""
    return all(any(a.sent > moment and a.problem is None for a in mine) for mine in progress)


def wait_until(condition: Callable[[], bool], timeout: float = SERVED_WITHIN) -> bool:
    """Poll the condition until it holds or the timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def wait_for_replacement(master: int, victim: int, timeout: float = 30.0) -> set[int]:
    """Poll until the victim is gone and the master has WORKERS workers again, or the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        pids = children(master)
        if (victim not in pids and len(pids) == WORKERS) or time.monotonic() > deadline:
            return pids
        time.sleep(0.1)


@pytest.fixture(scope="module")
def deployment(module_processes: Processes) -> Deployment:
    """One deployment for both moments: each test finds WORKERS workers, kills one, and
    waits until the master has replaced it.

    One worker alone has a download slot for every client, and their one caller a share
    of all: none is refused as busy while the others are being killed.
    """
    return deploy(
        module_processes,
        "stream",
        REPORTS,
        workers=WORKERS,
        GUNICORN_THREADS=str(CLIENTS + 2),
        REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT=str(CLIENTS),
    )


@pytest.mark.parametrize("moment", ["outside-audit-append", "mid-audit-append"])
def test_killed_worker_fails_only_its_own_connections_and_is_replaced(
    deployment: Deployment, record_property: Callable[[str, object], None], moment: str
) -> None:
    """Requests on the victim's connections may fail; their number is recorded, and bounded
    by its connections (a client reconnects after a failure, to a live worker).

    The kill lands at a chosen moment of the audit trail's append: outside it, and in the
    middle (record written, head not yet): a short window, but a real SIGKILL (the OOM
    killer, gunicorn's own timeout) lands there sooner or later under load. The next
    writer completes the killed one's batch: no other request fails, no repair is needed.
    """
    host, port = deployment.address()
    workers = wait_for_workers(deployment.master, WORKERS)
    assert len(workers) == WORKERS
    stop_at = threading.Event()
    progress: list[list[Attempt]] = [[] for _ in range(CLIENTS)]

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        names, mine = list(REPORTS), progress[number]
        while not stop_at.is_set():
            mine.append(fetch(connection, deployment, names[len(mine) % len(names)]))
        connection.close()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        running = [pool.submit(client, number) for number in range(CLIENTS)]
        try:
            # Every client served once: every connection is open and belongs to a worker.
            all_connected = wait_until(lambda: served_since(progress, started))
            # The busiest worker: a kill that hits no connection would show nothing.
            victim = max(workers, key=lambda pid: len(connections_of(pid, port)))
            with stopped_at(victim, moment, deployment.audit_file):
                locked = holds_audit_lock(victim, deployment.audit_file)
                midway = mid_append(deployment.audit_file)
                victims_connections = connections_of(victim, port)
                os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            replaced = wait_for_replacement(deployment.master, victim)
            replaced_at = time.monotonic()
            all_served_again = wait_until(lambda: served_since(progress, replaced_at))
        finally:  # the clients stop however this ends, or the pool would wait for them
            stop_at.set()
        for future in running:
            future.result()
    attempts = [attempt for mine in progress for attempt in mine]

    assert all_connected, "the clients were not all served before the kill"
    assert (locked, midway) == ((True, True) if moment == "mid-audit-append" else (False, False))
    assert victims_connections, "the killed worker held no connection"
    failures = [a for a in attempts if a.problem is not None]
    record_property("requests_failed_on_the_killed_worker", len(failures))
    record_property("requests", len(attempts))
    others = [a for a in failures if a.port not in victims_connections]
    assert others == [], f"requests on other workers failed: {others[:5]}"
    assert len(failures) <= len(victims_connections), failures
    assert [a for a in attempts if a.sent > killed_at and a.problem is None] != []
    assert all_served_again, "a client was not served again after the worker was replaced"
    assert victim not in replaced
    assert len(replaced) == WORKERS
    assert len(workers & replaced) == WORKERS - 1
    verified = run_cli("audit", "verify", env=deployment.env)
    assert verified.stdout.startswith("OK: ")
    assert "repair" not in deployment.audit_file.read_text()


def test_workers_killed_at_random_under_load_never_need_a_person(
    processes: Processes, record_property: Callable[[str, object], None]
) -> None:
    """32-way downloads, a random worker SIGKILLed every 1.5 s on average, every 4th kill
    between a batch's bytes and its head: no download is refused, each kill is
    followed by downloads served, and the trail verifies. (Hundreds of kills:
    ``python -m bench.worker_kills``.)"""
    deployment = deploy(
        processes,
        "stream",
        {"small.bin": REPORTS["small.bin"]},
        GUNICORN_THREADS=str(34),
        REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT=str(32),  # the 32 clients' one caller
    )
    wait_for_workers(deployment.master, WORKERS)

    run = kill_at_random(deployment, kills=CHAOS_KILLS, interval=1.5, clients=32, seed=20)

    for name, value in run.summary().items():
        record_property(name, value)
    assert run.refused() == [], run.refused()[:5]
    assert run.served_after_each_kill()
    assert run.aimed == CHAOS_KILLS // AIMED_EVERY, run.summary()
    assert run.mid_append >= run.aimed, run.summary()
    verified = run_cli("audit", "verify", env=deployment.env)
    assert verified.stdout.startswith("OK: "), verified.stdout
