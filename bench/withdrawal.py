"""``python -m bench.withdrawal``: what the expiry and withdrawal check costs each download.

In process, with no HTTP server in between, so the check is not lost in the noise of a
network: ``jobs.availability.check_available`` alone, then a whole download of a 1 KiB report
through Flask's test client with the check and with it replaced by nothing (rounds in
turn, medians; the audit trail without fsync, whose wait would drown the rest), on local
disk and on moto's S3 server (remembering answers for 3 s, the default, and not at all:
a GET answered 404 on every download). Writes bench/results/withdrawal.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import boto3

from reporting_svc import create_app
from reporting_svc.api import paths
from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import mint_token
from reporting_svc.jobs.availability import check_available
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import load_settings

from .servers import Servers

RESULTS = Path(__file__).resolve().parent / "results"
STUDY = "CFD8129A430A473C8A02F4BA5DAAD865"
SECRET = "bench-secret-that-is-long-enough-for-hs256-0123456789"


ROUNDS = 7


def per_call(action: Callable[[], Any], repeats: int) -> float:
    """The mean microseconds per call over ``repeats`` calls."""
    started = time.perf_counter()
    for _ in range(repeats):
        action()
    return (time.perf_counter() - started) / repeats * 1e6


def interleaved(actions: list[Callable[[], Any]], repeats: int) -> list[float]:
    """Each action's median over rounds that run them in turn, so drift hits all alike."""
    runs: list[list[float]] = [[] for _ in actions]
    for _ in range(ROUNDS):
        for times, action in zip(runs, actions, strict=True):
            times.append(per_call(action, repeats))
    return [statistics.median(times) for times in runs]


def measure(name: str, overrides: dict[str, Any], folder: Path, repeats: int) -> list[str]:
    """One store's rows: the check alone, and a download with and without it."""
    settings = load_settings({}, {"var_dir": folder / "var", "jwt_secret": SECRET,
                                  "local_root": folder / "reports", "audit_fsync": False,
                                  **overrides})  # fmt: skip
    app = create_app(settings)
    services = app.extensions["reporting_svc"]
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / "report.csv"
    report.write_bytes(b"x" * 1024)
    record = publish_report(services.store, report, report_name="R", mode="test", study_id=STUDY)
    token = mint_token(settings, "bench", [parse_grant(f"{STUDY}:test:REPORTING_VIEW")], ttl=3600)
    client = app.test_client()

    def download() -> None:
        response = client.get(
            paths.DOWNLOAD, query_string={"id": record.id},
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert response.status_code == 200, response.status_code
        response.close()

    unchecked = dataclasses.replace(services, store=_Unchecked(services))

    def download_unchecked() -> None:
        app.extensions["reporting_svc"] = unchecked
        download()
        app.extensions["reporting_svc"] = services

    (check,) = interleaved(
        [lambda: check_available(services.store, record, services.clock())], repeats * 10
    )
    with_check, without = interleaved([download, download_unchecked], repeats)
    return [
        f"| {name} | {check:.1f} | {with_check:.0f} | {without:.0f} | {with_check - without:+.0f} |"
    ]


class _Unchecked:
    """The store, except that nothing is ever withdrawn: the download without the check."""

    def __init__(self, services: Any):
        self._store = services.store

    def withdrawal(self, job_id: str) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=400, help="downloads per run")
    args = parser.parse_args(argv)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")  # moto's server takes any
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        servers = Servers(folder)
        try:
            endpoint = servers.moto()
            rows = measure("local disk", {}, folder / "local", args.repeats)
            for seconds in (3, 0):
                s3 = {"store": "s3", "s3_bucket": f"bench-{seconds}", "s3_region": "us-east-1",
                      "s3_endpoint_url": endpoint, "s3_cache_seconds": seconds}  # fmt: skip
                _bucket(endpoint, s3["s3_bucket"])
                rows += measure(
                    f"S3, cache {seconds} s", s3, folder / f"s3-{seconds}", args.repeats
                )
        finally:
            servers.stop_all()
    table = "\n".join(
        [
            "| store | check alone, µs | download with it, µs | without it, µs | difference, µs |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    text = f"# The expiry and withdrawal check, per download (in process)\n\n{table}\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "withdrawal.md").write_text(text)
    print(text)
    return 0


def _bucket(endpoint: str, name: str) -> None:
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)


if __name__ == "__main__":
    raise SystemExit(main())
