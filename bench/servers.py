"""The processes a benchmark run starts (gunicorn, nginx, moto), on 127.0.0.1 only.

Every process is started in its own session and remembered, so ``Servers.stop_all`` can
end each group by its id, whatever happened in between (an error, Ctrl-C).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import nginx
from harness.processes import free_port, stop, wait_for_port

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
GUNICORN_CONFIG = REPO / "config" / "gunicorn.conf.py"


@dataclass(frozen=True)
class Gunicorn:
    """A running gunicorn: where it listens and its master's pid (workers are its children)."""

    url: str
    pid: int


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

    def nginx(
        self, name: str, http_block: str, ports: list[int], *, connections: int = 4096
    ) -> int:
        """Start nginx with ``http_block`` (which listens on ``ports``); returns its pid."""
        folder = self.folder / f"nginx-{name}"
        folder.mkdir()
        config = nginx.main_config(folder, http_block, workers="auto", connections=connections)
        process = self._start(
            nginx.command(folder, config),
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

    def rclone_s3(self, credentials: dict[str, str]) -> str:
        """rclone's S3 server over a folder of its own; returns its endpoint URL.

        It streams each object from disk (``--vfs-cache-mode off``), where moto reads the
        whole object into memory under a lock per object: the concurrency scenario needs
        it to measure the S3 relay rather than the S3 server.
        """
        port = free_port()
        data = self.folder / "rclone-s3"
        data.mkdir()
        key = f"{credentials['AWS_ACCESS_KEY_ID']},{credentials['AWS_SECRET_ACCESS_KEY']}"
        process = self._start(
            [
                str(BIN / "rclone"),
                "serve",
                "s3",
                "--addr",
                f"127.0.0.1:{port}",
                "--auth-key",
                key,
                "--vfs-cache-mode",
                "off",
                # No MD5 ETag: computed on each first GET, it stalls a burst of GETs of a
                # 1 GiB object for seconds (the service sends its own ETag anyway).
                "--etag-hash",
                "",
                # No read-ahead per open object (16 MiB by default): at 1,000 slow readers
                # it held 10 GiB and the machine's CPU, paging it in.
                "--buffer-size",
                "0",
                "--config",
                os.devnull,
                str(data),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "rclone.stderr").open("w"),
        )
        wait_for_port(port, process)
        return f"http://127.0.0.1:{port}"

    def stop_all(self) -> None:
        """SIGTERM each process group, then SIGKILL what is left after 15 s."""
        for process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.started):
            stop(process)

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
