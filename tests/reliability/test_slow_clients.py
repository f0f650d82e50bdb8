"""Slow clients past capacity: refused with 503 at once, never a hang, and health answers.

The report is far larger than every socket buffer on the path (client, nginx, gunicorn),
so a client that reads slowly really holds a worker thread for as long as it reads: with
a report that fits in the buffers the worker would finish at once and hold nothing.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from harness import nginx
from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import mint_token
from reporting_svc.settings import load_settings
from tests.integration.processes import Processes
from tests.reliability.clients import read_head, read_to_end, send_download
from tests.reliability.deployments import (
    GRANT,
    Deployment,
    deploy,
    wait_for_records,
    wait_for_workers,
)

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

HUGE = 256 * 1024 * 1024
# One worker of four threads: two download slots (all threads but two), so two slow
# clients fill it and six more downloads than that outnumber its threads.
THREADS = 4
SLOTS = 2
PAST_CAPACITY = 6
HEALTH = ("/healthz", "/readyz", "/metrics")
# A host of three workers, each with threads for all of the host's eight downloads; two
# callers fill it with four each.
WORKERS = 3
HOST_SLOTS = 8
SHARE = 4


def hold_slots(deployment: Deployment) -> list[socket.socket]:
    """SLOTS downloads of the huge report that read nothing after their headers."""
    slow = [
        send_download(deployment, "huge.bin", f"slow-{number}", receive_buffer=4096)
        for number in range(SLOTS)
    ]
    assert [read_head(sock)[0] for sock in slow] == [200] * SLOTS
    return slow


def read_whole(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """A short answer whole (status, headers, body); the socket is closed after it."""
    with sock:
        status, headers, start = read_head(sock)
        return status, headers, start + read_to_end(sock)


def health_answers(deployment: Deployment) -> list[int]:
    """The status of each health endpoint, asked of gunicorn (nginx does not proxy them);
    a request that waited for a thread would time out here."""
    return [requests.get(deployment.service_url + path, timeout=10).status_code for path in HEALTH]


def admitted_again(deployment: Deployment, attempts: int = 50) -> bool:
    """Whether a download starts again once the slow clients have gone: their slots come
    back when the worker notices the disconnect, which takes a moment."""
    for attempt in range(attempts):
        sock = send_download(deployment, "huge.bin", f"again-{attempt}")
        status = read_head(sock)[0]
        sock.close()
        if status == 200:
            return True
        # Until the worker notices, the slow downloads still hold the host's slots (503)
        # and, as they are this caller's, its whole share (429).
        assert status in (503, 429)
        time.sleep(0.2)
    return False


@pytest.mark.parametrize(
    ("mode", "behind_nginx"),
    [("stream", False), ("stream", True), ("proxy", False)],
    ids=["stream-gunicorn", "stream-behind-nginx", "proxy-moto"],
)
def test_downloads_past_capacity_are_refused_at_once_and_health_still_answers(
    processes: Processes, moto_server: str, mode: str, behind_nginx: bool
) -> None:
    deployment = deploy(
        processes,
        mode,
        {},
        moto=moto_server,
        workers=1,
        nginx=behind_nginx,
        sparse={"huge.bin": HUGE},
        GUNICORN_THREADS=str(THREADS),
        REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT=str(SLOTS),  # the host's, not one caller's
    )
    slow = hold_slots(deployment)
    try:
        another = as_caller(deployment, "bob")  # past the host's slots, not alice's share
        extra = [
            send_download(another, "huge.bin", f"busy-{number}") for number in range(PAST_CAPACITY)
        ]
        refused = [read_whole(sock) for sock in extra]
        during = health_answers(deployment)
        still_sending = [len(sock.recv(65536)) for sock in slow]
    finally:
        for sock in slow:
            sock.close()

    assert [status for status, _, _ in refused] == [503] * PAST_CAPACITY
    assert all(headers["retry-after"].isdigit() for _, headers, _ in refused)
    assert all(b'"REPT_503"' in body for _, _, body in refused)
    assert during == [200, 200, 200]
    assert all(still_sending), "a slow client got nothing more: its download had stopped"
    assert admitted_again(deployment)
    expected = {f"busy-{n}": 1 for n in range(PAST_CAPACITY)} | {
        f"slow-{n}": 2 for n in range(SLOTS)
    }
    records = wait_for_records(deployment.audit_file, expected)
    assert all(
        (records[f"busy-{n}"][0]["event"], records[f"busy-{n}"][0]["status"]) == ("refused", 503)
        for n in range(PAST_CAPACITY)
    )
    assert all(records[f"slow-{n}"][-1]["complete"] is False for n in range(SLOTS))


def as_caller(deployment: Deployment, subject: str) -> Deployment:
    """The deployment with a token of ``subject`` (the same grant as alice's)."""
    settings = load_settings(deployment.env)
    token = mint_token(settings, subject, [parse_grant(GRANT)], ttl=3600)
    return dataclasses.replace(deployment, token=token)


@contextmanager
def accepting(deployment: Deployment, workers: str) -> Iterator[None]:
    """``any``: every worker accepts as the kernel wakes them; ``one``: all but one are
    stopped, so one worker is handed every connection (the most uneven a host can be)."""
    pids = sorted(wait_for_workers(deployment.master, WORKERS))
    assert len(pids) == WORKERS
    stopped = pids[1:] if workers == "one" else []
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("workers", ["any", "one"], ids=["any-worker-accepts", "one-accepts-all"])
def test_a_host_admits_its_capacity_whichever_worker_accepts_and_one_caller_only_its_share(
    processes: Processes, workers: str
) -> None:
    deployment = deploy(
        processes,
        "stream",
        {},
        workers=WORKERS,
        sparse={"huge.bin": HUGE},
        GUNICORN_THREADS=str(HOST_SLOTS + 2),
        REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT=str(SHARE),
    )
    first, second, third = (as_caller(deployment, name) for name in ("ann", "ben", "cat"))
    with accepting(deployment, workers):
        held = [
            send_download(caller, "huge.bin", f"held-{n}", receive_buffer=4096)
            for n, caller in enumerate([first, second] * SHARE)
        ]
        try:
            admitted = [read_head(sock)[0] for sock in held]
            past_share = read_whole(send_download(first, "huge.bin", "past-share"))
            past_host = [
                read_whole(send_download(third, "huge.bin", f"past-host-{n}")) for n in range(2)
            ]
        finally:
            for sock in held:
                sock.close()

    assert admitted == [200] * HOST_SLOTS
    assert past_share[0] == 429
    assert b'"REPT_429"' in past_share[2]
    assert past_share[1]["retry-after"].isdigit()
    assert [status for status, _, _ in past_host] == [503, 503]
    assert admitted_again(as_caller(deployment, "cat"))


def test_nginx_holds_one_client_address_to_its_downloads_in_progress(
    processes: Processes,
) -> None:
    limit = nginx.per_address()
    deployment = deploy(
        processes,
        "stream",
        {},
        workers=1,
        sparse={"huge.bin": HUGE},
        GUNICORN_THREADS=str(limit + 4),
        REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT=str(limit + 2),
    )
    root = Path(deployment.env["REPORTING_SVC_LOCAL_ROOT"])
    front = processes.behind_nginx(deployment.service_url, root, rate="10r/s")  # as shipped
    through_nginx = dataclasses.replace(deployment, url=front)
    held = [
        send_download(through_nginx, "huge.bin", f"held-{n}", receive_buffer=4096)
        for n in range(limit)
    ]
    try:
        admitted = [read_head(sock)[0] for sock in held]
        past = read_whole(send_download(through_nginx, "huge.bin", "past-address"))
        held.append(send_download(deployment, "huge.bin", "direct"))
        service_had_room = read_head(held[-1])[0]
    finally:
        for sock in held:
            sock.close()

    assert admitted == [200] * limit
    assert past[0] == 429
    assert b'"REPT_429"' in past[2]
    assert past[1]["retry-after"] == "1"
    assert service_had_room == 200
