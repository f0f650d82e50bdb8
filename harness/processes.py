"""Ports, process groups and the children of a process, as the harness needs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def free_port() -> int:
    """A port nobody listens on now; the tiny race with other programs is acceptable here."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[Any], timeout: float = 30.0, *, host: str = "127.0.0.1"
) -> None:
    """Wait until something accepts connections on the port; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited early with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout}s")


def stop(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """Stop a process started in its own session, and its group: SIGTERM, then SIGKILL."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def children(parent: int) -> set[int]:
    """The live (not yet reaped) children of ``parent``: gunicorn's or nginx's workers."""
    found = set()
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields follow the last ')'.
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == parent and state not in ("Z", "X"):
            found.add(int(entry.name))
    return found
