"""The clients: wrk for many small requests, one download at a time for a large file.

wrk gets a Lua script that sends the token and prints its summary as JSON, so nothing is
parsed out of its human-readable report. Large files are fetched one at a time and timed
by the client itself: curl writing to /dev/null, or boto3 reading 1 MiB chunks for the S3
anchor. A 256 MiB download takes a tenth of a second here, too short for one to mean
much on a shared machine, so downloads repeat until a measurement has lasted as long as
a wrk run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .reports import MIB

WRK = shutil.which("wrk") or "wrk"
CURL = shutil.which("curl") or "curl"

# wrk calls done() once at the end; latency percentiles are in microseconds.
_WRK_SCRIPT = """
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p99_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class Sample:
    """What one measurement saw from the client's side."""

    requests: int
    seconds: float
    bytes: int
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    error_kinds: dict[str, int] | None = None

    @property
    def requests_per_second(self) -> float:
        """Completed requests per second of the run."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def mib_per_second(self) -> float:
        """Bytes received (bodies and headers) per second, in MiB."""
        return self.bytes / MIB / self.seconds if self.seconds else 0.0


def write_wrk_script(folder: Path) -> Path:
    """Write the Lua script once per run; wrk reads the token from the environment."""
    path = folder / "bench.lua"
    path.write_text(_WRK_SCRIPT)
    return path


def run_wrk(
    url: str, *, connections: int, seconds: float, script: Path, token: str | None
) -> Sample:
    """wrk at ``connections`` open connections for ``seconds``, on 1 thread per core (2)."""
    threads = min(connections, 2)
    command = [
        WRK,
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=30s",
        "--latency",
        f"--script={script}",
        url,
    ]
    result = subprocess.run(
        command,
        env={"BENCH_TOKEN": token or "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    )
    line = next(row for row in result.stdout.splitlines() if row.startswith("BENCH "))
    data: dict[str, Any] = json.loads(line.removeprefix("BENCH "))
    kinds = {key: data[key] for key in ("connect", "read", "write", "status", "timeout")}
    return Sample(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        bytes=data["bytes"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=sum(kinds.values()),
        error_kinds={key: count for key, count in kinds.items() if count},
    )


def _curl(url: str, token: str | None, *, follow: bool, write_out: str, timeout: int) -> list[str]:
    """Fetch ``url`` to /dev/null with curl; the fields ``write_out`` asks for."""
    command = [CURL, "--silent", "--show-error", "--output", "/dev/null", "--write-out", write_out]
    if follow:
        command.append("--location")
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    result = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=timeout, check=True
    )
    return result.stdout.split()


def curl_status(url: str, token: str | None, *, follow: bool) -> tuple[int, int]:
    """One request with curl: the final status and the body size (a sanity check)."""
    status, size = _curl(
        url, token, follow=follow, write_out="%{http_code} %{size_download}", timeout=600
    )
    return int(status), int(size)


def curl_download(
    url: str, token: str | None, *, expected: int, follow: bool, until: str = "time_total"
) -> Sample:
    """One whole download to /dev/null, timed by curl: ``time_total`` (all of it), or
    ``time_starttransfer`` (to the first body byte; with a redirect followed, from the
    first request on)."""
    status, seconds, size = _curl(
        url,
        token,
        follow=follow,
        write_out=f"%{{http_code}} %{{{until}}} %{{size_download}}",
        timeout=1800,
    )
    errors = int(int(status) != 200 or int(size) != expected)
    return _single(int(size), float(seconds), errors)


def boto3_download(client: Any, bucket: str, key: str, *, expected: int) -> Sample:
    """``get_object`` straight from the S3 server, the body read in 1 MiB chunks."""
    started = time.perf_counter()
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    size = 0
    for chunk in iter(lambda: body.read(MIB), b""):
        size += len(chunk)
    seconds = time.perf_counter() - started
    return _single(size, seconds, int(size != expected))


def repeated(download: Callable[[], Sample], seconds: float) -> Sample:
    """Downloads one after another until ``seconds`` of downloading (at least one).

    Throughput is all bytes over all the time; p50 and p99 are of the single downloads.
    """
    samples = [download()]
    while sum(sample.seconds for sample in samples) < seconds:
        samples.append(download())
    times = sorted(sample.seconds * 1000 for sample in samples)
    return Sample(
        requests=len(samples),
        seconds=sum(sample.seconds for sample in samples),
        bytes=sum(sample.bytes for sample in samples),
        p50_ms=times[(len(times) - 1) // 2],
        p99_ms=times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
        errors=sum(sample.errors for sample in samples),
    )


def _single(size: int, seconds: float, errors: int) -> Sample:
    """A single download: its latency is its whole time."""
    return Sample(1, seconds, size, seconds * 1000, seconds * 1000, errors)
