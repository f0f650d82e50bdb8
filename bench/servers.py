"""The processes a benchmark run starts (gunicorn, nginx, moto), on 127.0.0.1 only.

Every process is started in its own session and remembered, so ``Servers.stop_all`` can
end each group by its id, whatever happened in between (an error, Ctrl-C).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
GUNICORN_CONFIG = CONFIG / "gunicorn.conf.py"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
UNLIMITED_RATE = "1000000r/s"
# nginx counts excess per millisecond: whatever the rate, more than ``burst`` requests in
# one millisecond get 429, which 64 connections reach. The burst is lifted as well.
UNLIMITED_BURST = "burst=1000000"


@dataclass(frozen=True)
class Gunicorn:
    """A running gunicorn: where it listens and its master's pid (workers are its children)."""

    url: str
    pid: int


def free_port() -> int:
    """A port nobody listens on now; the tiny race with other programs is acceptable here."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """Wait until the port accepts connections; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def nginx_site(port: int, upstream: str, store_root: Path, log_dir: Path) -> str:
    """config/nginx.conf with its deployment values replaced, as the integration tests do.

    The per-client rate limit (rate and burst) is lifted: every request of wrk comes from
    one address and the benchmark measures the service, not the limit.
    """
    site = (CONFIG / "nginx.conf").read_text()
    for default, value in [
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("server 127.0.0.1:8000;", f"server {upstream.removeprefix('http://')};"),
        ("/srv/reporting-svc/reports/", f"{store_root.absolute()}/"),
        ("rate=10r/s", f"rate={UNLIMITED_RATE}"),
        ("burst=20", UNLIMITED_BURST),
        ("/var/log/nginx/", f"{log_dir.absolute()}/"),
    ]:
        if default not in site:
            raise RuntimeError(f"config/nginx.conf no longer contains {default!r}")
        site = site.replace(default, value)
    return site


def static_site(port: int, store_root: Path) -> str:
    """The static anchor: nginx serving the store's files with a plain ``alias``."""
    return f"""
server {{
    listen 127.0.0.1:{port};
    location /static/ {{
        alias {store_root.absolute()}/jobs/;
    }}
}}
"""


def nginx_main_config(folder: Path, http_block: str) -> Path:
    """A whole nginx.conf running in the foreground in ``folder``, as the current user."""
    temp = folder / "temp"
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / name).mkdir(parents=True, exist_ok=True)
    shutil.copy(CONFIG / "reporting-svc-file-headers.conf", folder)
    config = folder / "nginx.conf"
    config.write_text(
        f"""daemon off;
user {getpass.getuser()};
worker_processes auto;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 4096; }}
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


class Servers:
    """Starts the run's servers under ``folder`` and stops every one of them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.started: list[subprocess.Popen[Any]] = []

    def service(self, env: dict[str, str], name: str) -> Gunicorn:
        """``reporting-svc serve``: gunicorn with config/gunicorn.conf.py and the real app."""
        port = free_port()
        command = [str(BIN / "reporting-svc"), "serve", "--bind", f"127.0.0.1:{port}"]
        return self._gunicorn(command, env, name, port)

    def anchors(self, env: dict[str, str]) -> Gunicorn:
        """The bare Flask views of bench/anchors.py under the same gunicorn settings."""
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(GUNICORN_CONFIG),
            "--bind",
            f"127.0.0.1:{port}",
            "bench.anchors:create_app()",
        ]
        env = {**env, "PYTHONPATH": str(REPO)}
        return self._gunicorn(command, env, "anchors", port)

    def nginx(self, name: str, http_block: str, ports: list[int]) -> int:
        """Start nginx with ``http_block`` (which listens on ``ports``); returns its pid."""
        folder = self.folder / f"nginx-{name}"
        folder.mkdir()
        config = nginx_main_config(folder, http_block)
        process = self._start(
            [NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(folder / "stderr").open("w"),
        )
        for port in ports:
            wait_for_port(port, process)
        return process.pid

    def moto(self) -> str:
        """moto's S3 server as its own process; returns its endpoint URL."""
        port = free_port()
        process = self._start(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "moto.stderr").open("w"),
        )
        wait_for_port(port, process)
        return f"http://127.0.0.1:{port}"

    def stop_all(self) -> None:
        """SIGTERM each process group, then SIGKILL what is left after 15 s."""
        for process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.started):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def _gunicorn(self, command: list[str], env: dict[str, str], name: str, port: int) -> Gunicorn:
        log = self.folder / f"gunicorn-{name}.log"
        process = self._start(
            command, env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        wait_for_port(port, process)
        return Gunicorn(f"http://127.0.0.1:{port}", process.pid)

    def _start(self, command: list[str], **options: Any) -> subprocess.Popen[Any]:
        process = subprocess.Popen(command, start_new_session=True, **options)
        self.started.append(process)
        return process
