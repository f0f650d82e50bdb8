"""A gunicorn worker killed with SIGKILL under load: the others go on, the master replaces it.

Each client keeps one keep-alive connection, and a connection belongs to the worker that
accepted it. The victim is frozen (SIGSTOP) while its connections are read from /proc,
so the set is exact when SIGKILL lands: only requests on those connections may fail.

Killed between writing its records and rewriting the head (a window of two syscalls, held
under the trail's lock), the worker leaves a trail longer than its head says. No writer
can tell that from lines someone else added, so the trail then takes no record and every
download is refused with 503 until an operator runs ``audit repair``, which adopts the
records and puts the repair on the chain.
"""

from __future__ import annotations

import hashlib
import http.client
import json
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

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

WORKERS = 4
CLIENTS = 24
REPORTS = {"small.bin": os.urandom(1024), "medium.bin": os.urandom(1024 * 1024)}
DIGESTS = {name: hashlib.sha256(content).hexdigest() for name, content in REPORTS.items()}
TCP_LISTEN = "0A"


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


def freeze(pid: int) -> None:
    """SIGSTOP and wait until the process is stopped, so it accepts nothing more."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "T":
        assert time.monotonic() < deadline, f"worker {pid} did not stop"
        time.sleep(0.01)


def holds_audit_lock(pid: int, audit_file: Path) -> bool:
    """Whether the process holds the trail's flock (it is inside an append), per /proc/locks."""
    inode = audit_file.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        # A waiter's line reads "N: -> FLOCK ...", so fields[1] is not FLOCK there.
        holder = fields[1] == "FLOCK" and int(fields[4]) == pid
        if holder and int(fields[5].rsplit(":", 1)[1]) == inode:
            return True
    return False


def mid_append(audit_file: Path) -> bool:
    """A record is written but the head not yet updated: the file is longer than it says."""
    head = json.loads(audit_file.with_name(audit_file.name + ".head").read_text())
    return bool(audit_file.stat().st_size != head["size"])


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
    killer, gunicorn's own timeout) lands there sooner or later under load. Then every
    worker refuses downloads (503) until ``audit repair`` has run, and serves them after.
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
    repaired_at = float("-inf")  # no refusal is expected unless the trail needs repair

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
            if moment == "mid-audit-append":
                repair = run_cli(
                    "audit", "repair", "--by", "reliability-test", "--yes", env=deployment.env
                )
                repaired_at = time.monotonic()
            time.sleep(3)
        finally:  # the clients stop however this ends, or the pool would wait for them
            stop_at.set()
        attempts = [attempt for future in running for attempt in future.result()]

    assert victims_connections, "the killed worker held no connection"
    failures = [a for a in attempts if a.problem is not None]
    record_property("requests_failed_on_the_killed_worker", len(failures))
    record_property("requests", len(attempts))
    elsewhere = [a for a in failures if a.port not in victims_connections]
    refused_until_repaired = [
        a for a in elsewhere if str(a.problem).startswith("status 503,") and a.sent < repaired_at
    ]
    others = [a for a in elsewhere if a not in refused_until_repaired]
    assert others == [], f"requests on other workers failed: {others[:5]}"
    assert len(failures) - len(refused_until_repaired) <= len(victims_connections), failures
    assert [a for a in attempts if a.sent > killed_at and a.problem is None] != []
    assert victim not in replaced
    assert len(replaced) == WORKERS
    assert len(workers & replaced) == WORKERS - 1
    if moment == "mid-audit-append":
        assert refused_until_repaired != []
        assert "adopt " in repair.stdout and "whole chained record(s)" in repair.stdout
        assert [a for a in attempts if a.sent > repaired_at and a.problem is not None] == []
        verified = run_cli("audit", "verify", env=deployment.env)
        assert verified.stdout.startswith("OK: ")
