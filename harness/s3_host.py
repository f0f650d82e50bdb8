"""One host on S3, the way a user runs it (``make run-s3``, docs/stores.md).

It starts moto's S3 server on 127.0.0.1, creates the bucket, publishes the sample report
into it, starts ``reporting-svc serve`` on that store with a signing key of its own (kept
in the folder, so tokens survive a restart), prints working curl lines once the service
listens, and stops everything on Ctrl-C or SIGTERM. moto keeps the bucket in memory: each
run starts from an empty bucket and a new catalog.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import boto3

from harness.processes import free_port, stop, wait_for_port
from reporting_svc.catalog import make_catalog
from reporting_svc.catalog.commands import upgrade_host_catalog
from reporting_svc.lifecycle.sample import ensure_sample
from reporting_svc.settings import PREFIX, load_settings
from reporting_svc.startup import curl_lines
from reporting_svc.storage import make_store

BIN = Path(sys.executable).parent
BUCKET = "reports"
REGION = "us-east-1"
# The modes that need no nginx in front (x-accel does: docs/deploying.md).
DELIVERIES = ("proxy", "redirect")
# moto accepts any key; a real deployment takes these from its environment or role.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "recipe", "AWS_SECRET_ACCESS_KEY": "recipe"}


class Stopped(Exception):
    """Ctrl-C or SIGTERM: time to stop what was started."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the recipe until interrupted; 0 when it stopped cleanly."""
    args = _parser().parse_args(argv)
    folder = Path(args.folder).absolute()
    shutil.rmtree(folder / "var", ignore_errors=True)  # its catalog lists the last bucket's
    folder.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[Any]] = []
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT may come ignored (a &-job)
        signal.signal(signum, _interrupt)
    try:
        endpoint = _moto(started, folder)
        env = deployment(folder, endpoint, args.delivery)
        settings = load_settings(env)
        os.environ.update(CREDENTIALS)  # boto3 reads them here too, to publish the sample
        upgrade_host_catalog(settings)  # the deploy step serve would take, before publishing
        record = ensure_sample(make_store(settings), make_catalog(settings))
        base = _serve(started, folder, env, args.bind)
        print(f"S3 server (moto): {endpoint}, bucket {BUCKET}; service: {base}")
        print(curl_lines(settings, record, base))
        print("Ctrl-C stops the service and the S3 server.", flush=True)
        _wait(started)
        print("reporting-svc: error: a process of the recipe exited; stopping", file=sys.stderr)
        return 1
    except (Stopped, KeyboardInterrupt):
        return 0
    finally:
        for process in reversed(started):
            stop(process)
        print("Stopped.", flush=True)


def deployment(folder: Path, endpoint: str, delivery: str) -> dict[str, str]:
    """The service's environment: the caller's, without its REPORTING_SVC_ variables, on
    the bucket at ``endpoint``, with the folder's signing key and var dir."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(PREFIX)}
    env.update(CREDENTIALS)
    env.update(
        {
            f"{PREFIX}STORE": "s3",
            f"{PREFIX}S3_BUCKET": BUCKET,
            f"{PREFIX}S3_REGION": REGION,
            f"{PREFIX}S3_ENDPOINT_URL": endpoint,
            f"{PREFIX}S3_DELIVERY": delivery,
            f"{PREFIX}VAR_DIR": str(folder / "var"),
            f"{PREFIX}JWT_SECRET": _signing_key(folder / "signing-key"),
        }
    )
    return env


def _signing_key(path: Path) -> str:
    """The folder's HS256 key, made on the first run, readable by its owner alone."""
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _moto(started: list[subprocess.Popen[Any]], folder: Path) -> str:
    """moto's S3 server on a free loopback port, with the empty bucket; its endpoint URL."""
    port = free_port()
    with (folder / "moto.log").open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started.append(process)
    wait_for_port(port, process)
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **_lowercase())
    client.create_bucket(Bucket=BUCKET)
    return endpoint


def _lowercase() -> dict[str, str]:
    return {name.lower(): value for name, value in CREDENTIALS.items()}


def _serve(
    started: list[subprocess.Popen[Any]], folder: Path, env: dict[str, str], bind: str
) -> str:
    """``reporting-svc serve`` on ``bind``, its output in the folder; its base URL once it
    accepts connections."""
    host, _, port = bind.rpartition(":")
    with (folder / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "reporting-svc"), "serve", "--bind", bind],
            env=env,
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started.append(process)
    wait_for_port(int(port), process, timeout=60)
    return f"http://{host}:{port}"


def _wait(started: list[subprocess.Popen[Any]]) -> None:
    """Until a process exits (or a signal interrupts)."""
    while all(process.poll() is None for process in started):
        try:
            started[-1].wait(timeout=1)
        except subprocess.TimeoutExpired:
            continue


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Stopped


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make run-s3", description=__doc__)
    parser.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT (%(default)s)")
    parser.add_argument("--folder", default="var/run-s3", help="logs, key, var dir (%(default)s)")
    parser.add_argument("--delivery", default="proxy", choices=DELIVERIES)
    return parser


if __name__ == "__main__":
    sys.exit(main())
