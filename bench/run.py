"""One benchmark run: start the servers, publish the reports, measure every round, stop all.

Everything lives under one temporary folder and every process is stopped in ``finally``,
so an error or Ctrl-C leaves nothing listening.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import nginx
from harness.processes import free_port

from . import load
from .anchors import STORE_ROOT_VARIABLE
from .measure import ServerProbe, load_average, tree_cpu_seconds
from .reports import Report, bench_token, local_env, publish_all, s3_client, s3_env
from .servers import Servers, static_site
from .targets import ORDER, S3_DIRECT, S3_TARGETS, Endpoints, Target, build_targets, rotated

CONTENT_KEY = "clinical/jobs/{job_id}/content"
PRESIGN_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Plan:
    """What to measure: sizes for wrk and for single downloads, connections, rounds."""

    small_sizes: list[int]
    large_sizes: list[int]
    connections: list[int]
    rounds: int
    duration: float


@dataclass
class Measurement:
    """One target on one workload in one round, as stored in latest.json."""

    round: int
    workload: str
    size: int
    connections: int
    target: str
    requests: int
    seconds: float
    bytes: int
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    gunicorn_cpu_s: float | None
    nginx_cpu_s: float | None
    worker_peak_mib: list[float] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class RunResult:
    """All measurements plus what the report states about the conditions."""

    measurements: list[Measurement]
    load_before: str
    load_after: str
    seconds: float

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RunResult:
        """The result as ``as_json`` stored it in latest.json."""
        return cls(
            [Measurement(**entry) for entry in raw["measurements"]],
            raw["load_before"],
            raw["load_after"],
            raw["seconds"],
        )

    def as_json(self) -> dict[str, Any]:
        """The raw figures, one dict per measurement."""
        return {
            "load_before": self.load_before,
            "load_after": self.load_after,
            "seconds": self.seconds,
            "measurements": [asdict(measurement) for measurement in self.measurements],
        }


FIRST_BYTE = "first byte"


def workload_name(label: str, connections: int) -> str:
    """``1 KiB c64`` for wrk, ``256 MiB single`` for one download."""
    return f"{label} c{connections}" if connections else f"{label} single"


def first_byte_workload(label: str) -> str:
    """``1 KiB first byte``: time to the first byte at one connection."""
    return f"{label} {FIRST_BYTE}"


def run(plan: Plan, log: Callable[[str], None] = print) -> RunResult:
    """Start servers under a temporary folder, measure the plan, stop everything."""
    started = time.monotonic()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="reporting-svc-bench-") as temp:
        folder = Path(temp)
        servers = Servers(folder)
        try:
            targets, reports, token, s3 = _start(servers, folder, plan, log)
            script = load.write_wrk_script(folder)
            _preflight(targets, reports, token, log)
            measurements = []
            for round_index in range(plan.rounds):
                log(f"round {round_index + 1} of {plan.rounds}")
                for report in reports:
                    small = report.size in plan.small_sizes
                    for connections in plan.connections if small else [0]:
                        for name in rotated(ORDER, round_index):
                            measurement = _measure(
                                targets[name], report, connections, plan, script, token, s3
                            )
                            measurement.round = round_index + 1
                            measurements.append(measurement)
                            log(_line(measurement))
                smallest = min(reports, key=lambda each: each.size)
                for name in rotated(S3_TARGETS, round_index):
                    measurement = _first_byte(targets[name], smallest, plan, token)
                    measurement.round = round_index + 1
                    measurements.append(measurement)
                    log(_line(measurement))
        finally:
            servers.stop_all()
    return RunResult(measurements, load_before, load_average(), time.monotonic() - started)


def _start(
    servers: Servers, folder: Path, plan: Plan, log: Callable[[str], None]
) -> tuple[dict[str, Target], list[Report], str, tuple[Any, str]]:
    """Servers, published reports and the token; returns the bound targets."""
    local = local_env(dict(os.environ), folder)
    endpoint = servers.moto()
    s3 = s3_env(local, endpoint)
    sizes = plan.small_sizes + plan.large_sizes
    reports = publish_all(sizes, folder / "files", [local, s3], log=log)
    token = bench_token(local)
    store_root = Path(local["REPORTING_SVC_LOCAL_ROOT"])
    log("starting gunicorn (5 services + anchors), nginx (3) and moto")
    stream = servers.service({**local, "REPORTING_SVC_LOCAL_DELIVERY": "stream"}, "stream")
    x_accel = servers.service({**local, "REPORTING_SVC_LOCAL_DELIVERY": "x-accel"}, "x-accel")
    proxy = servers.service({**s3, "REPORTING_SVC_S3_DELIVERY": "proxy"}, "proxy")
    redirect = servers.service(
        {**s3, "REPORTING_SVC_S3_DELIVERY": "redirect", "REPORTING_SVC_PRESIGN_EXPIRES": "600"},
        "redirect",
    )
    s3_x_accel = servers.service({**s3, "REPORTING_SVC_S3_DELIVERY": "x-accel"}, "s3-x-accel")
    anchors = servers.anchors({**local, STORE_ROOT_VARIABLE: str(store_root)})
    front, static = free_port(), free_port()
    front_pid = servers.nginx(
        "service",
        nginx.site(front, x_accel.url, store_root, folder) + static_site(static, store_root),
        [front, static],
    )
    bare = free_port()
    bare_pid = servers.nginx("anchors", nginx.site(bare, anchors.url, store_root, folder), [bare])
    relay = free_port()
    relay_pid = servers.nginx(
        "s3-x-accel", nginx.site(relay, s3_x_accel.url, store_root, folder), [relay]
    )
    client = s3_client(endpoint)
    bucket = s3["REPORTING_SVC_S3_BUCKET"]

    def presigned(report: Report) -> str:
        key = CONTENT_KEY.format(job_id=report.job_id)
        url: str = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=PRESIGN_SECONDS
        )
        return url

    endpoints = Endpoints(
        stream=stream.url,
        stream_pid=stream.pid,
        x_accel=f"http://127.0.0.1:{front}",
        x_accel_pid=x_accel.pid,
        x_accel_nginx_pid=front_pid,
        proxy=proxy.url,
        proxy_pid=proxy.pid,
        redirect=redirect.url,
        redirect_pid=redirect.pid,
        s3_x_accel=f"http://127.0.0.1:{relay}",
        s3_x_accel_pid=s3_x_accel.pid,
        s3_x_accel_nginx_pid=relay_pid,
        anchors=anchors.url,
        anchors_pid=anchors.pid,
        anchors_nginx=f"http://127.0.0.1:{bare}",
        anchors_nginx_pid=bare_pid,
        static=f"http://127.0.0.1:{static}",
        presigned=presigned,
    )
    return build_targets(endpoints), reports, token, (client, bucket)


def _preflight(
    targets: dict[str, Target], reports: list[Report], token: str, log: Callable[[str], None]
) -> None:
    """Every target answers the smallest report whole before anything is timed."""
    report = min(reports, key=lambda each: each.size)
    for target in targets.values():
        status, size = load.curl_status(
            target.url(report), token if target.token else None, follow=target.follow
        )
        if (status, size) != (200, report.size):
            raise RuntimeError(f"{target.name}: got {status} with {size} bytes, not the report")
    log(f"preflight: all {len(targets)} targets deliver the {report.label} report whole")


def _measure(
    target: Target,
    report: Report,
    connections: int,
    plan: Plan,
    script: Path,
    token: str,
    s3: tuple[Any, str],
) -> Measurement:
    """One measurement of ``target``, bracketed by the server-side probes."""
    probe = ServerProbe(target.gunicorn_pid) if target.gunicorn_pid else None
    nginx_before = tree_cpu_seconds(target.nginx_pid) if target.nginx_pid else 0.0
    if probe:
        probe.start()
    sent_token = token if target.token else None
    if connections:
        sample = load.run_wrk(
            target.url(report),
            connections=connections,
            seconds=plan.duration,
            script=script,
            token=sent_token,
        )
    elif target.name == S3_DIRECT:
        client, bucket = s3
        key = CONTENT_KEY.format(job_id=report.job_id)
        sample = load.repeated(
            lambda: load.boto3_download(client, bucket, key, expected=report.size),
            plan.duration,
        )
    else:
        sample = load.repeated(
            lambda: load.curl_download(
                target.url(report), sent_token, expected=report.size, follow=target.follow
            ),
            plan.duration,
        )
    cpu, peaks = probe.finish() if probe else (None, [])
    nginx_cpu = tree_cpu_seconds(target.nginx_pid) - nginx_before if target.nginx_pid else None
    workload = workload_name(report.label, connections)
    return _measurement(target, report, workload, connections, sample, (cpu, nginx_cpu, peaks))


def _first_byte(target: Target, report: Report, plan: Plan, token: str) -> Measurement:
    """Time to the first byte of ``report`` from ``target``, one request at a time (curl)."""
    sample = load.repeated(
        lambda: load.curl_download(
            target.url(report),
            token if target.token else None,
            expected=report.size,
            follow=target.follow,
            until="time_starttransfer",
        ),
        plan.duration,
    )
    return _measurement(target, report, first_byte_workload(report.label), 0, sample)


def _measurement(
    target: Target,
    report: Report,
    workload: str,
    connections: int,
    sample: load.Sample,
    probed: tuple[float | None, float | None, list[float]] = (None, None, []),
) -> Measurement:
    """A measurement of ``sample``; ``probed`` is gunicorn's CPU, nginx's CPU and the
    workers' peaks, when the servers were probed."""
    cpu, nginx_cpu, peaks = probed
    return Measurement(
        round=0,
        workload=workload,
        size=report.size,
        connections=connections,
        target=target.name,
        requests=sample.requests,
        seconds=sample.seconds,
        bytes=sample.bytes,
        p50_ms=sample.p50_ms,
        p99_ms=sample.p99_ms,
        errors=sample.errors,
        gunicorn_cpu_s=cpu,
        nginx_cpu_s=nginx_cpu,
        worker_peak_mib=peaks,
        error_kinds=sample.error_kinds or {},
    )


def _line(measurement: Measurement) -> str:
    """A progress line while the run goes on."""
    rate = measurement.requests / measurement.seconds if measurement.seconds else 0.0
    mib = measurement.bytes / 2**20 / measurement.seconds if measurement.seconds else 0.0
    return (
        f"  {measurement.workload:<16} {measurement.target:<15} {rate:10.1f} req/s "
        f"{mib:9.1f} MiB/s p99 {measurement.p99_ms or 0:8.2f} ms "
        f"errors {measurement.errors} {measurement.error_kinds or ''}"
    )
