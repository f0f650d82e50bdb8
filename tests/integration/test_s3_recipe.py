"""``make run-s3``, the single-host S3 recipe of docs/stores.md, run as a user runs it:
its printed curl lines work, S3's checksum matches the file, and Ctrl-C stops it all."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from harness.processes import free_port
from reporting_svc.lifecycle.sample import SAMPLE_JOB_ID

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent
READY = "Ctrl-C stops"
DEADLINE = 90.0


def _lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))


def _until(lines: queue.Queue[str], marker: str, recipe: subprocess.Popen[str]) -> list[str]:
    """The recipe's output up to the line containing ``marker``, within the deadline."""
    seen: list[str] = []
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            assert recipe.poll() is None, f"the recipe exited early: {seen}"
            continue
        if marker in seen[-1]:
            return seen
    raise AssertionError(f"no {marker!r} within {DEADLINE}s: {seen}")


def _listens(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def _shell(line: str, cwd: Path) -> str:
    result = subprocess.run(
        ["bash", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, (line[:40], result.stderr)
    return result.stdout


def test_make_run_s3_prints_curl_lines_that_work_and_ctrl_c_stops_everything(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("REPORTING_SVC_")}
    env["WEB_CONCURRENCY"] = "1"
    bind = f"127.0.0.1:{free_port()}"
    options = [f"VENV={VENV}", f"BIND={bind}", "DELIVERY=redirect", f"RUN_S3_DIR={tmp_path}/s3"]
    recipe = subprocess.Popen(
        ["make", "-s", "run-s3", *options],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(recipe.stdout, lines), daemon=True).start()
    try:
        printed = _until(lines, READY, recipe)
        endpoint = re.search(r"\(moto\): (http://\S+),", "\n".join(printed))
        assert endpoint is not None, printed
        download, listing = [line for line in printed if line.startswith("curl ")]
        client = tmp_path / "client"
        client.mkdir()

        _shell(download, client)
        listed = json.loads(_shell(listing, client))
        headers = _shell(
            download.replace("curl ", "curl -D - -H 'x-amz-checksum-mode: ENABLED' ", 1), client
        )

        sample = (client / "subject-data-extract.csv").read_bytes()
        assert sample.startswith(b"subjectId,siteId,visit")
        assert [run["downloadId"] for run in listed["result"]["reportRunStatus"]] == [SAMPLE_JOB_ID]
        digest = base64.b64encode(hashlib.sha256(sample).digest()).decode()
        assert f"x-amz-checksum-sha256: {digest}" in headers
        assert _listens(endpoint[1]) and _listens(f"http://{bind}")
    finally:
        if recipe.poll() is None:
            os.killpg(recipe.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        recipe.wait(timeout=DEADLINE)
    assert "Stopped." in _until(lines, "Stopped.", recipe)
    assert not _listens(endpoint[1])
    assert not _listens(f"http://{bind}")
