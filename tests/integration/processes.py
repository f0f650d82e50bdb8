"""Starting and stopping the real processes of the integration tests, on 127.0.0.1 only."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from tests.conftest import SECRET, STUDY

BIN = Path(sys.executable).parent
CONFIG = Path(__file__).resolve().parents[2] / "config"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """Wait until something accepts connections on the port, or fail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def stop(process: subprocess.Popen[Any]) -> None:
    """Stop a process group, politely first."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def service_env(folder: Path) -> dict[str, str]:
    """Environment for the service's commands: a local store and var dir under ``folder``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REPORTING_SVC_")}
    env.update(
        REPORTING_SVC_LOCAL_ROOT=str(folder / "reports"),
        REPORTING_SVC_VAR_DIR=str(folder / "var"),
        REPORTING_SVC_JWT_SECRET=SECRET,
        WEB_CONCURRENCY="2",
    )
    return env


def s3_env(base: dict[str, str], endpoint: str) -> dict[str, str]:
    """``base`` switched to an S3 store in a fresh bucket on the S3 server at ``endpoint``."""
    bucket = f"reports-{uuid.uuid4().hex[:12]}"
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    return {
        **base,
        **credentials,
        "REPORTING_SVC_STORE": "s3",
        "REPORTING_SVC_S3_BUCKET": bucket,
        "REPORTING_SVC_S3_PREFIX": "clinical/",
        "REPORTING_SVC_S3_REGION": "us-east-1",
        "REPORTING_SVC_S3_ENDPOINT_URL": endpoint,
    }


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``reporting-svc ARGS``; with ``check``, a failure fails the test with its stderr."""
    result = subprocess.run(
        [str(BIN / "reporting-svc"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"reporting-svc {args[0]} failed: {result.stderr}")
    return result


def publish_with_cli(env: dict[str, str], path: Path, *options: str) -> dict[str, Any]:
    """``reporting-svc publish`` of a file as a test-mode report; returns the printed record.

    Scope options default to ``--study-id STUDY``; pass ``"--tenant"`` for a tenant report.
    """
    result = run_cli(
        "publish",
        str(path),
        "--report-name",
        "Subject Data Extract",
        "--mode",
        "test",
        *(options or ("--study-id", STUDY)),
        env=env,
    )
    record: dict[str, Any] = json.loads(result.stdout)
    return record


def token_with_cli(env: dict[str, str], *grants: str) -> str:
    """``reporting-svc token`` for subject alice with the given grants."""
    args = [arg for grant in grants for arg in ("--grant", grant)]
    return run_cli("token", "--subject", "alice", *args, env=env).stdout.strip()


UNLIMITED = "100000r/s"
# nginx refuses requests over the burst that arrive in the same millisecond, whatever the
# rate, so a test that lifts the rate lifts the burst too.
UNLIMITED_BURST = "100000"


def nginx_site(port: int, upstream: str, store_root: Path, rate: str = UNLIMITED) -> str:
    """config/nginx.conf with its deployment values replaced (see its header).

    The request rate is raised by default, so tests that send many requests measure the
    service rather than the limit; the rate-limit test passes the config's own.
    """
    site = (CONFIG / "nginx.conf").read_text()
    for default, value in [
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("server 127.0.0.1:8000;", f"server {upstream.removeprefix('http://')};"),
        ("/srv/reporting-svc/reports/", f"{store_root.absolute()}/"),
        ("rate=10r/s", f"rate={rate}"),
        ("burst=20 ", f"burst={UNLIMITED_BURST if rate == UNLIMITED else 20} "),
        ("/var/log/nginx/", f"{store_root.absolute().parent}/"),
    ]:
        assert default in site, f"config/nginx.conf no longer contains {default!r}"
        site = site.replace(default, value)
    return site


def write_nginx_config(folder: Path, http_block: str) -> Path:
    """A whole nginx.conf that runs in ``folder``, in the foreground.

    Workers run as the test's own user (``user`` is ignored when that is not root), so
    they can read the store under pytest's private temporary directory.
    """
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / "temp" / name).mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIG / "reporting-svc-file-headers.conf", folder)
    temp = folder / "temp"
    config = folder / "nginx.conf"
    config.write_text(
        f"""daemon off;
user {getpass.getuser()};
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {folder}/access.log;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{http_block}
}}
"""
    )
    return config


class Processes:
    """The servers one test (or one module) starts under ``folder``; ``stop_all`` ends them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.started: list[subprocess.Popen[Any]] = []

    def serve(self, env: dict[str, str], *extra: str, cwd: Path | None = None) -> str:
        """Start ``reporting-svc serve`` (gunicorn) on a free port; returns its base URL.

        Its standard output and error go to ``serve-<port>.stdout`` / ``.stderr``.
        """
        port = free_port()
        with (
            (self.folder / f"serve-{port}.stdout").open("w") as out,
            (self.folder / f"serve-{port}.stderr").open("w") as err,
        ):
            process = self._start(
                [str(BIN / "reporting-svc"), "serve", "--bind", f"127.0.0.1:{port}", *extra],
                env=env,
                cwd=cwd or self.folder,
                stdout=out,
                stderr=err,
            )
        wait_for_port(port, process)
        return f"http://127.0.0.1:{port}"

    def nginx(self, http_block_for_port: Callable[[int], str]) -> str:
        """Start real nginx on a free port with what ``http_block_for_port(port)`` returns."""
        port = free_port()
        folder = self.folder / f"nginx-{port}"
        folder.mkdir()
        config = write_nginx_config(folder, http_block_for_port(port))
        process = self._start(
            [NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(port, process)
        return f"http://127.0.0.1:{port}"

    def behind_nginx(self, upstream: str, store_root: Path, rate: str = UNLIMITED) -> str:
        """Put config/nginx.conf in front of a running service; returns nginx's URL."""
        return self.nginx(lambda port: nginx_site(port, upstream, store_root, rate))

    def moto_server(self) -> str:
        """moto's own S3 server as a separate process; returns its endpoint URL."""
        port = free_port()
        process = self._start(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(port, process)
        return f"http://127.0.0.1:{port}"

    def stop_all(self) -> None:
        for process in self.started:
            stop(process)

    def _start(self, command: list[str], **options: Any) -> subprocess.Popen[Any]:
        process = subprocess.Popen(command, start_new_session=True, **options)
        self.started.append(process)
        return process
