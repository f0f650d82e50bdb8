"""A gunicorn worker killed with SIGKILL under load: the others go on, the master replaces it.

Each client keeps one keep-alive connection, and a connection belongs to the worker that
accepted it. The victim is frozen (SIGSTOP) while its connections are read from /proc,
so the set is exact when SIGKILL lands: only requests on those connections may fail.

Killed between writing its records and rewriting the head (a window of two syscalls, held
under the trail's lock), the worker leaves a trail longer than its head says, and the
intent it wrote before appending: the next writer completes the batch, and no download
is refused on its account. Workers killed at random under load, some of them in that
window, leave a trail that verifies and a host that never needed a person.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.processes import children
from tests.integration.processes import Processes, run_cli
from tests.reliability.deployments import Deployment, deploy, wait_for_workers
from tests.reliability.kills import freeze, holds_audit_lock, kill_at_random, mid_append

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

WORKERS = 4
CLIENTS = 24
REPORTS = {"small.bin": os.urandom(1024), "medium.bin": os.urandom(1024 * 1024)}
DIGESTS = {name: hashlib.sha256(content).hexdigest() for name, content in REPORTS.items()}
TCP_LISTEN = "0A"
CHAOS_KILLS = 16


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


def connections_of(pid: int, server_port: int) -> set[int]:
    """The client ports of the established connections process ``pid`` holds to the port."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed since the listing: a live worker's descriptors come and go
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if inode in inodes and state != TCP_LISTEN and int(local.split(":")[1], 16) == server_port:
            ports.add(int(remote.split(":")[1], 16))
    return ports


def freeze_at(pid: int, moment: str, audit_file: Path, timeout: float = 20.0) -> None:
    """Freeze the worker at the moment wanted, thawing and retrying until it is caught there.

    ``outside-audit-append``: not holding the trail's lock. ``mid-audit-append``: holding
    it, between writing a record and updating the head.
    """
    deadline = time.monotonic() + timeout
    while True:
        freeze(pid)
        locked = holds_audit_lock(pid, audit_file)
        if moment == "outside-audit-append" and not locked:
            return
        if moment == "mid-audit-append" and locked and mid_append(audit_file):
            return
        os.kill(pid, signal.SIGCONT)
        if time.monotonic() > deadline:
            pytest.skip(f"the worker was never caught {moment}")
        time.sleep(0.002)


def wait_for_replacement(master: int, victim: int, timeout: float = 30.0) -> set[int]:
    """Poll until the victim is gone and the master has WORKERS workers again, or the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        pids = children(master)
        if (victim not in pids and len(pids) == WORKERS) or time.monotonic() > deadline:
            return pids
        time.sleep(0.1)


@pytest.mark.parametrize("moment", ["outside-audit-append", "mid-audit-append"])
def test_killed_worker_fails_only_its_own_connections_and_is_replaced(
    processes: Processes, record_property: Callable[[str, object], None], moment: str
) -> None:
    """Requests on the victim's connections may fail; their number is recorded, and bounded
    by its connections (a client reconnects after a failure, to a live worker).

    The kill lands at a chosen moment of the audit trail's append: outside it, and in the
    middle (record written, head not yet): a short window, but a real SIGKILL (the OOM
    killer, gunicorn's own timeout) lands there sooner or later under load. The next
    writer completes the killed one's batch: no other request fails, no repair is needed.
    """
    # One worker alone has a download slot for every client, and their one caller a share
    # of all: none is refused as busy while the others are being killed.
    deployment = deploy(
        processes,
        "stream",
        REPORTS,
        workers=WORKERS,
        GUNICORN_THREADS=str(CLIENTS + 2),
        REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT=str(CLIENTS),
    )
    host, port = deployment.address()
    workers = wait_for_workers(deployment.master, WORKERS)
    assert len(workers) == WORKERS
    stop_at = threading.Event()

    def client(number: int) -> list[Attempt]:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        names = list(REPORTS)
        attempts = []
        while not stop_at.is_set():
            attempts.append(fetch(connection, deployment, names[len(attempts) % len(names)]))
        connection.close()
        return attempts

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        running = [pool.submit(client, number) for number in range(CLIENTS)]
        try:
            time.sleep(3)
            # The busiest worker: a kill that hits no connection would show nothing.
            victim = max(workers, key=lambda pid: len(connections_of(pid, port)))
            freeze_at(victim, moment, deployment.audit_file)
            victims_connections = connections_of(victim, port)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            replaced = wait_for_replacement(deployment.master, victim)
            time.sleep(3)
        finally:  # the clients stop however this ends, or the pool would wait for them
            stop_at.set()
        attempts = [attempt for future in running for attempt in future.result()]

    assert victims_connections, "the killed worker held no connection"
    failures = [a for a in attempts if a.problem is not None]
    record_property("requests_failed_on_the_killed_worker", len(failures))
    record_property("requests", len(attempts))
    others = [a for a in failures if a.port not in victims_connections]
    assert others == [], f"requests on other workers failed: {others[:5]}"
    assert len(failures) <= len(victims_connections), failures
    assert [a for a in attempts if a.sent > killed_at and a.problem is None] != []
    assert victim not in replaced
    assert len(replaced) == WORKERS
    assert len(workers & replaced) == WORKERS - 1
    verified = run_cli("audit", "verify", env=deployment.env)
    assert verified.stdout.startswith("OK: ")
    assert "repair" not in deployment.audit_file.read_text()


def test_workers_killed_at_random_under_load_never_need_a_person(
    processes: Processes, record_property: Callable[[str, object], None]
) -> None:
    """32-way downloads, a random worker SIGKILLed every 1.5 s on average, some of the
    kills between a batch's bytes and its head: no download is refused, each kill is
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
    assert run.mid_append >= 1, run.summary()
    verified = run_cli("audit", "verify", env=deployment.env)
    assert verified.stdout.startswith("OK: "), verified.stdout
