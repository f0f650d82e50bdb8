"""Gunicorn workers SIGKILLed under load, as an OOM killer, gunicorn's own timeout or a
careless deploy does: the moments a kill lands at, and the chaos run that the reliability
suite and ``python -m bench.worker_kills`` (hundreds of kills) both make."""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.processes import children
from tests.reliability.deployments import Deployment

#: Of the kills, every this many aims at the window between a batch's bytes and its head.
AIMED_EVERY = 4
#: How long a worker under load may take to reach its next head rewrite.
AIM_SECONDS = 20.0
TCP_LISTEN = "0A"


def freeze(pid: int) -> None:
    """SIGSTOP and wait until the process is stopped, so it accepts nothing more."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "T":
        assert time.monotonic() < deadline, f"worker {pid} did not stop"
        time.sleep(0.01)


def holds_audit_lock(pid: int, audit_file: Path) -> bool:
    """Whether the process holds the trail's flock (it is inside an append), per /proc/locks.

    No process holds the lock of a trail not yet written (a kill before the first download).
    """
    try:
        inode = audit_file.stat().st_ino
    except FileNotFoundError:
        return False
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


@contextmanager
def stopped_mid_append(pid: int, audit_file: Path, timeout: float = AIM_SECONDS) -> Iterator[None]:
    """The worker stopped at its next head rewrite, for the block: a batch's bytes on the
    trail, its head not yet rewritten, the trail's lock held.

    The window is two syscalls wide, too narrow to hit by freezing the worker at random:
    strace makes the worker's first write to the head file fail with EINTR, unwritten,
    and stops the worker with SIGSTOP before it can retry. The block SIGKILLs it there,
    or the worker stays stopped once strace has let go.
    """
    head = audit_file.with_name(audit_file.name + ".head")
    handle, name = tempfile.mkstemp(prefix="strace-", suffix=".log")
    os.close(handle)
    log = Path(name)
    # -f: gthread starts threads as requests come; -P: only syscalls on the head file.
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", str(log), "-p", str(pid), "-e", "trace=pwrite64",
         "-P", str(head), "-e", "inject=pwrite64:error=EINTR:signal=SIGSTOP:when=1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while "(INJECTED)" not in log.read_text() or not all_stopped(pid):
            if tracer.poll() is not None:
                raise AssertionError(f"strace -p {pid} ended: {tracer.communicate()[1]!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {pid} wrote no audit head within {timeout}s")
            time.sleep(0.005)
        yield
    finally:
        # strace detaches from whatever it still traces: the worker, if the block left it
        # alive, stays stopped; a killed one's threads are gone.
        tracer.terminate()
        try:
            tracer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait()
        log.unlink()


def all_stopped(pid: int) -> bool:
    """Whether every thread of the process is stopped (by a signal or its tracer)."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            states.append((task / "stat").read_text().rpartition(")")[2].split()[0])
        except OSError:  # a thread that has just ended
            continue
    return all(state in ("t", "T") for state in states)


@contextmanager
def holding_audit_lock(audit_file: Path, timeout: float = 10.0) -> Iterator[None]:
    """The trail's lock held by this process for the block: no worker is inside an
    append, every appender waits at the lock."""
    with audit_file.open("rb") as trail:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(trail.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{audit_file}'s lock never came free"
                time.sleep(0.001)
        try:
            yield
        finally:
            fcntl.flock(trail.fileno(), fcntl.LOCK_UN)


@dataclass
class Attempt:
    """One download: when it was sent, its status (None: the connection failed), and why
    it is not the report (None: it is)."""

    sent: float
    status: int | None
    problem: str | None


@dataclass
class ChaosRun:
    """What a chaos run saw: each kill's time, how many were aimed and how many landed
    mid-append, and every download attempt of every client."""

    kills: list[float] = field(default_factory=list)
    aimed: int = 0
    mid_append: int = 0
    attempts: list[Attempt] = field(default_factory=list)

    def refused(self) -> list[Attempt]:
        """Answers that are not the report: what a person would have had to fix."""
        return [a for a in self.attempts if a.status is not None and a.problem is not None]

    def cut(self) -> list[Attempt]:
        """Requests whose connection failed: the killed workers' own."""
        return [a for a in self.attempts if a.status is None]

    def served_after_each_kill(self) -> bool:
        """Whether a download sent after each kill, before the next, got the report."""
        ends = [*self.kills[1:], float("inf")]
        served = sorted(a.sent for a in self.attempts if a.problem is None)
        return all(
            any(k < sent < end for sent in served) for k, end in zip(self.kills, ends, strict=True)
        )

    def summary(self) -> dict[str, int]:
        return {
            "kills": len(self.kills),
            "aimed": self.aimed,
            "mid_append": self.mid_append,
            "requests": len(self.attempts),
            "served": sum(a.problem is None for a in self.attempts),
            "cut": len(self.cut()),
            "refused": len(self.refused()),
        }


def fetch(connection: http.client.HTTPConnection, deployment: Deployment, report: str) -> Attempt:
    """GET a report on the keep-alive connection (reconnecting if closed); check its bytes."""
    sent = time.monotonic()
    try:
        path = deployment.download_url(report).removeprefix(deployment.url)
        connection.request("GET", path, headers={"Authorization": f"Bearer {deployment.token}"})
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        return Attempt(sent, None, f"{type(error).__name__}: {error}")
    digest = hashlib.sha256(deployment.reports[report]).hexdigest()
    if response.status != 200 or hashlib.sha256(body).hexdigest() != digest:
        return Attempt(sent, response.status, f"status {response.status}: {body[:200]!r}")
    return Attempt(sent, response.status, None)


@contextmanager
def downloading(deployment: Deployment, clients: int) -> Iterator[list[Attempt]]:
    """``clients`` threads download the deployment's reports in turn until the block ends;
    the list fills with their attempts once they have stopped."""
    host, port = deployment.address()
    stop_at = threading.Event()
    attempts: list[Attempt] = []

    def client() -> list[Attempt]:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        names, made = list(deployment.reports), list[Attempt]()
        while not stop_at.is_set():
            made.append(fetch(connection, deployment, names[len(made) % len(names)]))
        connection.close()
        return made

    with ThreadPoolExecutor(max_workers=clients) as pool:
        running = [pool.submit(client) for _ in range(clients)]
        try:
            yield attempts
        finally:  # the clients stop however this ends, or the pool would wait for them
            stop_at.set()
        attempts.extend(attempt for future in running for attempt in future.result())


def kill_at_random(
    deployment: Deployment, *, kills: int, interval: float, clients: int, seed: int
) -> ChaosRun:
    """Under ``clients``-way downloads, SIGKILL a random worker every ``interval`` seconds
    on average, ``kills`` times; every ``AIMED_EVERY``-th kill is aimed at the moment
    between a batch's bytes and its head: a real kill of the busiest worker (one that
    holds no connection writes no head), stopped there first."""
    chance = random.Random(seed)
    run = ChaosRun()
    port = deployment.address()[1]
    with downloading(deployment, clients) as attempts:
        for number in range(kills):
            time.sleep(interval * chance.uniform(0.5, 1.5))
            workers = sorted(children(deployment.master))
            if not workers:
                continue
            if number % AIMED_EVERY == AIMED_EVERY - 1:
                victim = max(workers, key=lambda pid: len(connections_of(pid, port)))
                with stopped_mid_append(victim, deployment.audit_file):
                    run.aimed += 1
                    run.mid_append += landed_mid_append(victim, deployment.audit_file)
                    os.kill(victim, signal.SIGKILL)
            else:
                victim = chance.choice(workers)
                freeze(victim)
                run.mid_append += landed_mid_append(victim, deployment.audit_file)
                os.kill(victim, signal.SIGKILL)
            run.kills.append(time.monotonic())
        time.sleep(interval)
    run.attempts = attempts
    return run


def landed_mid_append(pid: int, audit_file: Path) -> bool:
    """Whether the stopped worker holds the trail's lock between a batch's bytes and its head."""
    return holds_audit_lock(pid, audit_file) and mid_append(audit_file)


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
