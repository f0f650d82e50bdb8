"""Slow clients past capacity: refused with 503 at once, never a hang, and health answers.

The report is far larger than every socket buffer on the path (client, nginx, gunicorn),
so a client that reads slowly really holds a worker thread for as long as it reads: with
a report that fits in the buffers the worker would finish at once and hold nothing.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.integration.processes import Processes
from tests.reliability.clients import read_head, read_to_end, send_download
from tests.reliability.deployments import Deployment, deploy, wait_for_records

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

HUGE = 256 * 1024 * 1024
# One worker of four threads: two download slots (all threads but two), so two slow
# clients fill it and six more downloads than that outnumber its threads.
THREADS = 4
SLOTS = 2
PAST_CAPACITY = 6
HEALTH = ("/healthz", "/readyz", "/metrics")


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
        assert status == 503
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
    )
    slow = hold_slots(deployment)
    try:
        extra = [
            send_download(deployment, "huge.bin", f"busy-{number}")
            for number in range(PAST_CAPACITY)
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
