"""Slow clients: 50 downloads crawling at about 1 KiB/s through nginx do not stall the others."""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time

import pytest
import requests

from tests.integration.processes import Processes
from tests.reliability.clients import read_head, send_download
from tests.reliability.deployments import Deployment, deploy

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

SLOW_CLIENTS = 50
SLOW_SECONDS = 10
LARGE = os.urandom(1024 * 1024)
SMALL = os.urandom(1024)
# Scheduler noise on a 2-core machine shared by client and servers is a few milliseconds.
NOISE_FLOOR = 0.05


def timed_download(session: requests.Session, deployment: Deployment) -> float:
    """Seconds for one whole small download, checked byte for byte."""
    began = time.perf_counter()
    response = session.get(
        deployment.download_url("small.bin"),
        headers={"Authorization": f"Bearer {deployment.token}"},
        timeout=30,
    )
    elapsed = time.perf_counter() - began
    assert response.status_code == 200
    assert response.content == SMALL
    return elapsed


def crawl(sockets: list[socket.socket], received: list[int], until: float) -> None:
    """Every second, read 1 KiB from each slow socket, until the time is up."""
    while time.monotonic() < until:
        for number, sock in enumerate(sockets):
            received[number] += len(sock.recv(1024))
        time.sleep(1)


def test_fifty_slow_clients_do_not_slow_down_other_downloads(processes: Processes) -> None:
    """The median latency of small downloads while 50 clients crawl stays within twice its
    idle median, plus NOISE_FLOOR (50 ms) for the scheduler noise of a 2-core machine
    shared by the clients, nginx and gunicorn."""
    reports = {"large.bin": LARGE, "small.bin": SMALL}
    deployment = deploy(processes, "stream", reports, workers=2, nginx=True)
    session = requests.Session()
    timed_download(session, deployment)  # warm up the connection and a worker
    idle = statistics.median(timed_download(session, deployment) for _ in range(10))
    sockets = []
    try:
        for number in range(SLOW_CLIENTS):
            sockets.append(
                send_download(deployment, "large.bin", f"slow-{number}", receive_buffer=4096)
            )
        heads = [read_head(sock) for sock in sockets]
        received = [len(body) for _, _, body in heads]
        crawler = threading.Thread(
            target=crawl, args=(sockets, received, time.monotonic() + SLOW_SECONDS)
        )
        crawler.start()
        time.sleep(2)
        busy = []
        for _ in range(20):
            busy.append(timed_download(session, deployment))
            time.sleep(0.2)
        crawler.join()
        assert [status for status, _, _ in heads] == [200] * SLOW_CLIENTS
        assert max(received) < len(LARGE), "a slow client was not slow: the test holds nothing"
    finally:
        for sock in sockets:
            sock.close()
        session.close()
    assert statistics.median(busy) <= 2 * idle + NOISE_FLOOR, (idle, sorted(busy))
