"""Gunicorn workers SIGKILLed under load, as an OOM killer, gunicorn's own timeout or a
careless deploy does: the moments a kill lands at, and the chaos run that the reliability
suite and ``python -m bench.worker_kills`` (hundreds of kills) both make."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import signal
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
#: How long an aimed kill tries to catch a worker in that window before it kills anyway;
#: until one kill has landed there, each aimed kill tries for longer.
AIM_SECONDS = 2.0
FIRST_AIM_SECONDS = 20.0


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


def caught_mid_append(pid: int, audit_file: Path, timeout: float) -> bool:
    """Freeze the worker, thawing and retrying until it is caught holding the trail's lock
    between a batch's bytes and its head; False (the worker frozen anyway) at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        freeze(pid)
        if holds_audit_lock(pid, audit_file) and mid_append(audit_file):
            return True
        if time.monotonic() > deadline:
            return False
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.002)


@dataclass
class Attempt:
    """One download: when it was sent, its status (None: the connection failed), and why
    it is not the report (None: it is)."""

    sent: float
    status: int | None
    problem: str | None


@dataclass
class ChaosRun:
    """What a chaos run saw: each kill's time and whether it landed mid-append, and every
    download attempt of every client."""

    kills: list[float] = field(default_factory=list)
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
    between a batch's bytes and its head (a real kill, of a worker frozen there), so at
    least one lands there unless no worker is caught there in ``FIRST_AIM_SECONDS``."""
    chance = random.Random(seed)
    run = ChaosRun()
    with downloading(deployment, clients) as attempts:
        for number in range(kills):
            time.sleep(interval * chance.uniform(0.5, 1.5))
            workers = sorted(children(deployment.master))
            if not workers:
                continue
            victim = chance.choice(workers)
            aimed = number % AIMED_EVERY == AIMED_EVERY - 1
            timeout = (AIM_SECONDS if run.mid_append else FIRST_AIM_SECONDS) if aimed else 0.0
            run.mid_append += caught_mid_append(victim, deployment.audit_file, timeout)
            os.kill(victim, signal.SIGKILL)
            run.kills.append(time.monotonic())
        time.sleep(interval)
    run.attempts = attempts
    return run
