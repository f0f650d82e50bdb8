"""The concurrency scenario: N clients each reading one large report slowly, at once.

``/healthz`` p99 is given over the whole run (arrivals included: every client's request
is decided by the service, in the same thread pool as the probe) and over the steady
state once every client has had its answer.

It knows only URLs and pids, so any delivery mode is measured the same way: the clients
connect to ``download`` (nginx or gunicorn), ``/healthz`` is asked of gunicorn itself,
and a small report's download is timed through the same front as the slow clients.

The slow clients are coroutines of one asyncio loop (each a socket and a few KiB), so
thousands cost the client little; the probes run in a process of their own, so a busy
loop cannot delay what they time. Each probe runs first on the idle servers, then while
every slow client is connected.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .measure import peak_memory_mib, reset_peak_memory

KIB = 1024
# A client's receive buffer: small, so the server cannot park much of the report in it.
RECEIVE_BUFFER = 32 * KIB
# Connections opened per step while the clients ramp up, and the pause between steps:
# a burst of thousands would overflow the listen backlog before anyone is slow.
RAMP_STEP = 200
RAMP_PAUSE = 0.05
HEAD_TIMEOUT = 30.0
PROBE_INTERVAL = 0.1
# Probed and thrown away before the idle figures: the workers of a service just started
# are still importing (boto3 takes a second), and the first answers would count as idle.
WARM_UP = 3.0


@dataclass(frozen=True)
class Scenario:
    """Where the clients go and how they behave; ``pids`` are masters to measure."""

    name: str
    download: str
    small: str
    health: str
    token: str
    clients: int
    rate: int = 16 * KIB
    seconds: float = 20.0
    gunicorn_pid: int | None = None
    nginx_pid: int | None = None


@dataclass
class ClientResult:
    """What one slow client saw."""

    status: int | None = None
    head_ms: float | None = None
    head_at: float = 0.0
    received: int = 0
    last_progress: float = 0.0
    error: str | None = None


@dataclass
class ProbeResult:
    """Latencies (ms) and statuses of the health and small-download probes."""

    health_ms: list[float] = field(default_factory=list)
    health_at: list[float] = field(default_factory=list)
    small_ms: list[float] = field(default_factory=list)
    small_at: list[float] = field(default_factory=list)
    small_statuses: dict[str, int] = field(default_factory=dict)
    health_failures: int = 0


@dataclass
class Outcome:
    """The scenario's figures, as the report prints and latest.json stores them."""

    name: str
    clients: int
    admitted: int
    refused: int
    failed: int
    progressed: int
    refused_max_ms: float | None
    refused_p99_ms: float | None
    health_p99_idle_ms: float | None
    health_p99_busy_ms: float | None
    health_p99_steady_ms: float | None
    health_failures: int
    small_p50_idle_ms: float | None
    small_p50_busy_ms: float | None
    small_p50_steady_ms: float | None
    small_statuses_busy: dict[str, int]
    worker_peak_mib: float | None
    nginx_peak_mib: float | None
    errors: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _request(url: str, token: str | None) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    authorization = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
        f"{authorization}Connection: close\r\n\r\n"
    )
    return parts.hostname, parts.port, head.encode()


async def _slow_client(
    address: tuple[str, int], request: bytes, rate: int, until: float, result: ClientResult
) -> None:
    """Send the GET, read the head, then ``rate`` bytes a second until ``until``."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.setblocking(False)
    started = loop.time()
    writer = None
    try:
        await asyncio.wait_for(loop.sock_connect(sock, address), HEAD_TIMEOUT)
        reader, writer = await asyncio.open_connection(sock=sock, limit=rate)
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        result.head_ms = (loop.time() - started) * 1000
        result.head_at = time.monotonic()
        result.status = int(head.split(maxsplit=2)[1])
        if result.status != 200:
            return
        while loop.time() < until:
            chunk = await asyncio.wait_for(reader.read(rate), max(0.1, until - loop.time()))
            if not chunk:
                result.error = "closed"
                return
            result.received += len(chunk)
            result.last_progress = time.monotonic()
            await asyncio.sleep(1.0)
    except TimeoutError:
        result.error = "timeout" if result.status is None else result.error
    except OSError as error:
        result.error = type(error).__name__
    finally:
        if writer is not None:
            writer.close()
        else:
            sock.close()


async def _all_clients(scenario: Scenario) -> list[ClientResult]:
    host, port, request = _request(scenario.download, scenario.token)
    results = [ClientResult() for _ in range(scenario.clients)]
    ramp = scenario.clients // RAMP_STEP * RAMP_PAUSE
    until = asyncio.get_running_loop().time() + ramp + scenario.seconds
    tasks = []
    for number, result in enumerate(results):
        tasks.append(
            asyncio.create_task(_slow_client((host, port), request, scenario.rate, until, result))
        )
        if (number + 1) % RAMP_STEP == 0:
            await asyncio.sleep(RAMP_PAUSE)
    await asyncio.gather(*tasks)
    return results


def _timed_get(url: str, token: str | None) -> tuple[int | None, float]:
    """One request on a new connection, read to the end: (status, milliseconds)."""
    host, port, request = _request(url, token)
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(request)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return None, (time.perf_counter() - started) * 1000
    return int(data.split(maxsplit=2)[1]), (time.perf_counter() - started) * 1000


def probe(health: str, small: str, token: str, seconds: float) -> ProbeResult:
    """Ask /healthz every PROBE_INTERVAL and download the small report every fifth time."""
    result = ProbeResult()
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        status, elapsed = _timed_get(health, None)
        if status == 200:
            result.health_ms.append(elapsed)
            result.health_at.append(time.monotonic())
        else:
            result.health_failures += 1
        if rounds % 5 == 0:
            status, elapsed = _timed_get(small, token)
            result.small_ms.append(elapsed)
            result.small_at.append(time.monotonic())
            key = str(status)
            result.small_statuses[key] = result.small_statuses.get(key, 0) + 1
        rounds += 1
        time.sleep(PROBE_INTERVAL)
    return result


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _after(values: list[float], times: list[float], moment: float) -> list[float]:
    """The values measured after ``moment``."""
    return [value for value, at in zip(values, times, strict=True) if at > moment]


def _peak(pid: int | None) -> float | None:
    return max(peak_memory_mib(pid), default=None) if pid else None


def run_scenario(scenario: Scenario, idle_seconds: float = 5.0) -> Outcome:
    """Probe the idle servers, then run every slow client with the probes beside them."""
    with ProcessPoolExecutor(max_workers=1) as pool:
        pool.submit(probe, scenario.health, scenario.small, scenario.token, WARM_UP).result()
        idle = pool.submit(
            probe, scenario.health, scenario.small, scenario.token, idle_seconds
        ).result()
        for pid in (scenario.gunicorn_pid, scenario.nginx_pid):
            if pid:
                reset_peak_memory(pid)
        ramp = scenario.clients // RAMP_STEP * RAMP_PAUSE
        busy_future = pool.submit(
            probe, scenario.health, scenario.small, scenario.token, ramp + scenario.seconds
        )
        started = time.monotonic()
        clients = asyncio.run(_all_clients(scenario))
        busy = busy_future.result()
    midpoint = started + ramp + scenario.seconds / 2
    # Once every client has its answer, the servers only move bytes: the steady state.
    arrived = max((c.head_at for c in clients), default=started)
    refused_ms = [c.head_ms for c in clients if c.status == 503 and c.head_ms is not None]
    errors: dict[str, int] = {}
    for client in clients:
        if client.error:
            errors[client.error] = errors.get(client.error, 0) + 1
    return Outcome(
        name=scenario.name,
        clients=scenario.clients,
        admitted=sum(c.status == 200 for c in clients),
        refused=sum(c.status == 503 for c in clients),
        failed=sum(c.status not in (200, 503) for c in clients),
        progressed=sum(c.status == 200 and c.last_progress > midpoint for c in clients),
        refused_max_ms=max(refused_ms, default=None),
        refused_p99_ms=_percentile(refused_ms, 0.99),
        health_p99_idle_ms=_percentile(idle.health_ms, 0.99),
        health_p99_busy_ms=_percentile(busy.health_ms, 0.99),
        health_p99_steady_ms=_percentile(_after(busy.health_ms, busy.health_at, arrived), 0.99),
        health_failures=busy.health_failures,
        small_p50_idle_ms=statistics.median(idle.small_ms) if idle.small_ms else None,
        small_p50_busy_ms=statistics.median(busy.small_ms) if busy.small_ms else None,
        small_p50_steady_ms=_percentile(_after(busy.small_ms, busy.small_at, arrived), 0.5),
        small_statuses_busy=busy.small_statuses,
        worker_peak_mib=_peak(scenario.gunicorn_pid),
        nginx_peak_mib=_peak(scenario.nginx_pid),
        errors=errors,
    )
