"""``python -m bench.concurrency``: N slow clients per delivery mode (bench/slow.py).

Each run names a mode and its client counts (``stream:100 x-accel:100,1000``); the
default is the issue's list. ``stream`` and ``x-accel`` serve the local store, ``proxy``
and ``s3-x-accel`` an S3 server: rclone's by default, which streams objects from disk,
or moto's (``--s3-server moto``), whose threaded server reads each 1 GiB object into
memory under a lock per object and so, not the service, bounds the S3 relay. One service
per mode runs with config/gunicorn.conf.py as deployed (the ``x-accel`` modes behind
config/nginx.conf); every process is stopped at the end, on error and on Ctrl-C too. The
table goes to standard output and to bench/results/concurrency.md, the raw figures
beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import nginx
from harness.processes import free_port

from .reports import (
    GIB,
    KIB,
    S3_CREDENTIALS,
    Report,
    bench_token,
    local_env,
    publish_all,
    s3_env,
    size_label,
    write_sparse,
)
from .servers import Servers
from .slow import Outcome, Scenario, run_scenario
from .targets import DOWNLOAD

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_RUNS = ("stream:100", "proxy:100", "x-accel:100,1000,10000", "s3-x-accel:100,1000")
MODES = ("stream", "proxy", "x-accel", "s3-x-accel")
S3_MODES = ("proxy", "s3-x-accel")
S3_SERVER_NAMES = {
    "rclone": "rclone's S3 server (`rclone serve s3`, streaming from disk)",
    "moto": "moto's S3 server",
}
S3_SERVERS = tuple(S3_SERVER_NAMES)
# nginx's connections per worker for the largest run: one per client, plus upstreams.
NGINX_CONNECTIONS = 16384


@dataclass(frozen=True)
class Front:
    """One mode's running service: where clients and probes go, and what to measure."""

    download: str
    health: str
    gunicorn_pid: int
    nginx_pid: int | None


def _runs(texts: Sequence[str]) -> list[tuple[str, list[int]]]:
    runs = []
    for text in texts:
        mode, _, counts = text.partition(":")
        if mode not in MODES or not counts:
            raise SystemExit(f"not a run: {text!r} (MODE:N[,N...], MODE one of {', '.join(MODES)})")
        runs.append((mode, [int(count) for count in counts.split(",")]))
    return runs


def _start(servers: Servers, folder: Path, mode: str, env: dict[str, str]) -> Front:
    setting = "REPORTING_SVC_S3_DELIVERY" if mode in S3_MODES else "REPORTING_SVC_LOCAL_DELIVERY"
    service = servers.service({**env, setting: mode.removeprefix("s3-")}, mode)
    if not mode.endswith("x-accel"):
        return Front(service.url, service.url, service.pid, None)
    port = free_port()
    store_root = Path(env["REPORTING_SVC_LOCAL_ROOT"])
    site = nginx.site(port, service.url, store_root, folder)
    nginx_pid = servers.nginx(mode, site, [port], connections=NGINX_CONNECTIONS)
    return Front(f"http://127.0.0.1:{port}", service.url, service.pid, nginx_pid)


def measure(
    runs: list[tuple[str, list[int]]], size: int, seconds: float, rate: int, s3_server: str
) -> list[Outcome]:
    """Start each mode's servers in turn and run its client counts against them."""
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="reporting-svc-concurrency-") as temp:
        folder = Path(temp)
        servers = Servers(folder)
        try:
            local = local_env(dict(os.environ), folder)
            envs = {"local": local}
            if any(mode in S3_MODES for mode, _ in runs):
                endpoint = (
                    servers.moto() if s3_server == "moto" else servers.rclone_s3(S3_CREDENTIALS)
                )
                envs["s3"] = s3_env(local, endpoint)
            small, large = publish_all(
                [KIB, size], folder / "files", list(envs.values()), write=write_sparse
            )
            token = bench_token(local)
            for mode, counts in runs:
                front = _start(servers, folder, mode, envs["s3" if mode in S3_MODES else "local"])
                for clients in counts:
                    print(f"{mode}: {clients} clients for {seconds:g} s", flush=True)
                    scenario = _scenario(front, mode, clients, small, large, token, seconds, rate)
                    outcomes.append(run_scenario(scenario))
                    print(f"  {outcomes[-1]}", flush=True)
        finally:
            servers.stop_all()
    return outcomes


def _scenario(
    front: Front,
    mode: str,
    clients: int,
    small: Report,
    large: Report,
    token: str,
    seconds: float,
    rate: int,
) -> Scenario:
    return Scenario(
        name=mode,
        download=f"{front.download}{DOWNLOAD}{large.job_id}",
        small=f"{front.download}{DOWNLOAD}{small.job_id}",
        health=f"{front.health}/healthz",
        token=token,
        clients=clients,
        rate=rate,
        seconds=seconds,
        gunicorn_pid=front.gunicorn_pid,
        nginx_pid=front.nginx_pid,
    )


def _cell(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def markdown(outcomes: list[Outcome], size: int, seconds: float, rate: int, s3_server: str) -> str:
    """One row per mode and client count."""
    lines = [
        f"# Concurrency: slow clients reading a {size_label(size)} report at "
        f"{rate // KIB} KiB/s for {seconds:g} s",
        "",
        f"S3 modes read from {S3_SERVER_NAMES[s3_server]} on 127.0.0.1.",
        "",
        "| mode | clients | admitted | progressed | refused (503) | 503 max ms | other "
        "| /healthz p99 idle ms | /healthz p99 busy ms | steady | health failures "
        "| small p50 idle ms "
        "| small p50 busy ms | steady | small statuses busy | worker peak MiB | nginx peak MiB |",
        "|" + "---|" * 17,
    ]
    for o in outcomes:
        lines.append(
            f"| {o.name} | {o.clients:,} | {o.admitted:,} | {o.progressed:,} | {o.refused:,} "
            f"| {_cell(o.refused_max_ms)} | {o.failed:,} {o.errors or ''} "
            f"| {_cell(o.health_p99_idle_ms)} | {_cell(o.health_p99_busy_ms)} "
            f"| {_cell(o.health_p99_steady_ms)} "
            f"| {o.health_failures} | {_cell(o.small_p50_idle_ms)} "
            f"| {_cell(o.small_p50_busy_ms)} | {_cell(o.small_p50_steady_ms)} "
            f"| {o.small_statuses_busy} "
            f"| {_cell(o.worker_peak_mib)} | {_cell(o.nginx_peak_mib)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__)
    parser.add_argument("runs", nargs="*", default=list(DEFAULT_RUNS), metavar="MODE:N[,N...]")
    parser.add_argument("--size", type=int, default=GIB, help="report bytes (default 1 GiB)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per run (default 20)")
    parser.add_argument("--rate", type=int, default=16 * KIB, help="bytes/s per client")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--s3-server", choices=S3_SERVERS, default="rclone", help="for proxy and s3-x-accel"
    )
    args = parser.parse_args(argv)
    try:
        outcomes = measure(_runs(args.runs), args.size, args.seconds, args.rate, args.s3_server)
    except KeyboardInterrupt:
        print("interrupted; every server was stopped", file=sys.stderr)
        return 130
    text = markdown(outcomes, args.size, args.seconds, args.rate, args.s3_server)
    print(text)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "concurrency.md").write_text(text)
    raw = [outcome.as_json() for outcome in outcomes]
    (args.output / "concurrency.json").write_text(json.dumps(raw, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
