"""``python -m bench.audit_sinks``: the audit trail's file sink against its PostgreSQL sink.

Records per second appended by 1, 8 and 64 writers, each with a sink (so a connection) of
its own, to one trail: a file on the local disk (fsync on) and a PostgreSQL database
(durable: fsync and synchronous commit on), in the same run. Then the 1 KiB download
rate through gunicorn (wrk, 8 and 64 connections) with each sink. Prints a table; the
lead commits results, so nothing is written under bench/results.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import postgres
from harness.processes import free_port, stop, wait_for_port
from reporting_svc.audit.database import DatabaseSink
from reporting_svc.audit.sinks import FileSink
from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import mint_token
from reporting_svc.catalog import make_catalog
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import load_settings
from reporting_svc.storage import make_store
from tests.support import DOWNLOAD, SECRET, STUDY

from .load import run_wrk, write_wrk_script
from .reports import KIB

WRITERS = (1, 8, 64)


def records_per_second(make_sink: Callable[[], Any], writers: int, seconds: float) -> float:
    """``writers`` threads, each with its own sink, appending durable records for ``seconds``."""
    sinks = [make_sink() for _ in range(writers)]
    for sink in sinks:
        sink.append({"event": "head", "requestId": "warm-up"})
    counts = [0] * writers
    stop_at = time.monotonic() + seconds

    def run(number: int) -> None:
        while time.monotonic() < stop_at:
            sinks[number].append({"event": "start", "requestId": f"w{number}-{counts[number]}"})
            counts[number] += 1

    threads = [threading.Thread(target=run, args=(n,)) for n in range(writers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def download_rate(env: dict[str, str], folder: Path, connections: int, seconds: float) -> float:
    """1 KiB downloads per second through gunicorn with the sink ``env`` names."""
    settings = load_settings(env)
    make_catalog(settings).upgrade()  # the deploy steps: the service only checks revisions
    if "postgres" in settings.audit_sink:
        DatabaseSink(settings.audit_database_url).upgrade()
    (folder / "1k.bin").write_bytes(b"x" * KIB)
    record = publish_report(
        make_store(settings),
        folder / "1k.bin",
        catalog=make_catalog(settings),
        report_name="Bench",
        mode="test",
        study_id=STUDY,
    )
    token = mint_token(settings, "bench", [parse_grant(f"{STUDY}:test:REPORTING_VIEW")], ttl=3600)
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "reporting-svc"),
            "serve",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, server)
        url = f"http://127.0.0.1:{port}{DOWNLOAD}?id={record.id}"
        sample = run_wrk(
            url,
            connections=connections,
            seconds=seconds,
            script=write_wrk_script(folder),
            token=token,
        )
        return sample.requests_per_second if not sample.errors else float("nan")
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_sinks", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    args = parser.parse_args()
    database = postgres.start(durable=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-audit-") as temp:
            folder = Path(temp)
            url = database.create_database()
            DatabaseSink(url).upgrade()
            print("| writers | file records/s | postgres records/s |\n|---|---|---|")
            for writers in WRITERS:
                trail = folder / f"audit-{writers}.jsonl"
                on_file = records_per_second(
                    functools.partial(FileSink, trail), writers, args.seconds
                )
                on_database = records_per_second(
                    functools.partial(DatabaseSink, url), writers, args.seconds
                )
                print(f"| {writers} | {on_file:,.0f} | {on_database:,.0f} |")
            print("\n| 1 KiB downloads | file req/s | postgres req/s |\n|---|---|---|")
            for connections in (8, 64):
                rates = []
                for sink in ("file", "postgres"):
                    env = _env(folder / f"{sink}-{connections}", sink, database.create_database())
                    rates.append(
                        download_rate(
                            env, folder / f"{sink}-{connections}", connections, args.seconds
                        )
                    )
                print(f"| c{connections} | {rates[0]:,.1f} | {rates[1]:,.1f} |")
    finally:
        database.stop()


def _env(folder: Path, sink: str, url: str) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPORTING_SVC_")}
    env.update(
        REPORTING_SVC_LOCAL_ROOT=str(folder / "reports"),
        REPORTING_SVC_VAR_DIR=str(folder / "var"),
        REPORTING_SVC_JWT_SECRET=SECRET,
        REPORTING_SVC_AUDIT_SINK=sink,
        REPORTING_SVC_AUDIT_URL=url,
    )
    return env


if __name__ == "__main__":
    main()
