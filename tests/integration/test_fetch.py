"""``reporting-svc fetch --id`` against gunicorn behind the project's nginx: no mocks.

Resume after SIGKILL, a corrupted ``.part``, a report replaced on the server, 429 from
nginx's rate limit, 503 from the service, an expired token, hostile file names.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reporting_svc.fetch.naming import MAX_NAME_BYTES
from tests.integration.fetching import (
    Fetched,
    Service,
    client_env,
    deploy,
    fetch,
    fetch_command,
    fetch_measured,
    sha256sum_check,
)
from tests.integration.processes import Processes
from tests.support import DOWNLOAD

pytestmark = pytest.mark.integration

LARGE = 24 * 1024 * 1024
HUGE = 256 * 1024 * 1024
# The interpreter with requests, werkzeug and tqdm loaded is about 40 MiB; a client that
# held the file would need HUGE more.
MAX_CLIENT_MEMORY = 100 * 1024 * 1024
CUT_AFTER = 2 * 1024 * 1024


@pytest.fixture
def service(processes: Processes) -> Service:
    return deploy(processes)


@pytest.fixture
def slow_service(processes: Processes) -> Service:
    """Behind a slow link (nginx ``limit_rate``), so a client can be stopped mid-file."""
    return deploy(processes, link_rate="8m")


def killed_mid_file(
    service: Service, job_id: str, dest: Path, token: str, sig: int = signal.SIGKILL
) -> Path:
    """Start a fetch, send ``sig`` once part of the file is on disk; returns the ``.part``.

    SIGKILL leaves whatever was written; SIGINT (Ctrl-C) must exit 130 and keep it.
    """
    client = subprocess.Popen(
        fetch_command(service.url, dest, "--id", job_id, "--json"),
        env=client_env(token),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert client.stdout is not None
        started = json.loads(client.stdout.readline())
        assert started["event"] == "started", started
        part = dest / ".reporting-svc" / "partial" / f"{started['downloadId']}.part"
        while not part.exists() or part.stat().st_size < CUT_AFTER:
            assert client.poll() is None, "the fetch ended before it could be killed"
            time.sleep(0.01)
    finally:
        client.send_signal(sig)
        client.wait(timeout=60)
    assert 0 < part.stat().st_size < LARGE
    assert client.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    return part


def job_statuses(service: Service, job_id: str, event: str = "start") -> list[int]:
    return [
        r["status"] for r in service.audit_records() if r["event"] == event and r["jobId"] == job_id
    ]


def assert_saved(dest: Path, fetched: Fetched, content: bytes) -> None:
    """Exit 0, the file in place and verified, and ``sha256sum -c`` agreeing."""
    assert fetched.returncode == 0, fetched.stderr
    [verified] = fetched.of("verified")
    assert (dest / verified["file"]).read_bytes() == content
    assert sha256sum_check(dest).returncode == 0
    assert not list(dest.rglob("*.part"))


def test_fetch_saves_verifies_and_then_skips_a_job_through_nginx(
    service: Service, tmp_path: Path
) -> None:
    content = os.urandom(3 * 1024 * 1024 + 7)
    record = service.publish(content, "Subject Data Extract.csv")
    token = service.token()
    dest = tmp_path / "pulled"

    first = fetch(service.url, dest, "--id", record["id"], token=token)
    second = fetch(service.url, dest, "--id", record["id"], token=token)

    assert_saved(dest, first, content)
    assert [e["event"] for e in first.events] == ["started", "verified"]
    assert first.of("verified")[0]["sha256"] == record["sha256"]
    manifest = json.loads((dest / ".reporting-svc" / "manifest.json").read_text())
    entry = manifest["downloads"][record["id"]]
    assert (entry["file"], entry["size"], entry["sha256"]) == (
        "Subject Data Extract.csv",
        len(content),
        record["sha256"],
    )
    assert second.returncode == 0
    assert [e["event"] for e in second.events] == ["skipped"]
    assert job_statuses(service, record["id"], "not-modified") == [304]
    for path, text in service.log_texts():
        assert token not in text, path
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert token not in output


def test_on_a_terminal_progress_bars_go_to_stderr_and_no_json_is_printed(
    service: Service, tmp_path: Path
) -> None:
    content = os.urandom(2 * 1024 * 1024)
    record = service.publish(content, "extract.zip")
    controller, terminal = pty.openpty()
    with os.fdopen(controller, "rb", buffering=0) as screen:
        result = subprocess.run(
            fetch_command(service.url, tmp_path / "pulled", "--id", record["id"]),
            env=client_env(service.token()),
            stdout=terminal,
            stderr=subprocess.PIPE,
            timeout=120,
        )
        os.close(terminal)
        try:
            shown = screen.read(65536)
        except OSError:  # Linux: nothing was written and the terminal side is closed
            shown = b""

    assert result.returncode == 0
    assert shown == b""
    assert b"extract.zip" in result.stderr and b"100%" in result.stderr
    assert (tmp_path / "pulled" / "extract.zip").read_bytes() == content


def test_memory_stays_flat_for_a_file_far_larger_than_it(
    service: Service, tmp_path: Path, record_property: Any
) -> None:
    content = os.urandom(HUGE)
    record = service.publish(content, "huge.zip")
    dest = tmp_path / "pulled"

    fetched, peak_kib, seconds = fetch_measured(
        service.url, dest, "--id", record["id"], token=service.token()
    )

    assert_saved(dest, fetched, content)
    record_property("fetch_peak_rss_kib", peak_kib)
    record_property("fetch_seconds", round(seconds, 2))
    assert peak_kib * 1024 < MAX_CLIENT_MEMORY


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_a_fetch_stopped_mid_file_resumes_with_a_206_on_record(
    slow_service: Service, tmp_path: Path, sig: int
) -> None:
    content = os.urandom(LARGE)
    record = slow_service.publish(content, "large.zip")
    token = slow_service.token()
    dest = tmp_path / "pulled"
    part = killed_mid_file(slow_service, record["id"], dest, token, sig)
    saved = part.stat().st_size

    resumed = fetch(slow_service.url, dest, "--id", record["id"], token=token)

    assert_saved(dest, resumed, content)
    assert [e["event"] for e in resumed.events] == ["resumed", "verified"]
    assert resumed.of("resumed")[0]["offset"] == saved
    assert job_statuses(slow_service, record["id"]) == [200, 206]


def test_a_corrupted_part_is_caught_by_the_digest_and_fetched_again(
    slow_service: Service, tmp_path: Path
) -> None:
    content = os.urandom(LARGE)
    record = slow_service.publish(content, "large.zip")
    token = slow_service.token()
    dest = tmp_path / "pulled"
    part = killed_mid_file(slow_service, record["id"], dest, token)
    with part.open("r+b") as handle:
        handle.seek(1000)
        handle.write(bytes(b ^ 0xFF for b in handle.read(16)))

    fetched = fetch(slow_service.url, dest, "--id", record["id"], token=token)

    assert_saved(dest, fetched, content)
    events = [e["event"] for e in fetched.events]
    assert events == ["resumed", "retrying", "started", "verified"]
    assert "does not match" in fetched.of("retrying")[0]["reason"]
    assert job_statuses(slow_service, record["id"]) == [200, 206, 200]


def test_a_report_replaced_on_the_server_makes_the_resume_start_over(
    slow_service: Service, tmp_path: Path
) -> None:
    record = slow_service.publish(os.urandom(LARGE), "large.zip")
    token = slow_service.token()
    dest = tmp_path / "pulled"
    killed_mid_file(slow_service, record["id"], dest, token)
    replacement = os.urandom(LARGE)
    slow_service.replace_file(record["id"], replacement)

    fetched = fetch(slow_service.url, dest, "--id", record["id"], token=token)

    assert_saved(dest, fetched, replacement)
    assert [e["event"] for e in fetched.events] == ["started", "verified"]
    assert job_statuses(slow_service, record["id"]) == [200, 200]


@pytest.fixture
def rate_limited(processes: Processes) -> Service:
    """The shipped request rate (10 r/s, burst 20) kept, as in production."""
    return deploy(processes, rate="10r/s")


@pytest.fixture
def hammer(rate_limited: Service) -> Iterator[threading.Event]:
    """Requests from 127.0.0.1 until the event is set, keeping nginx's limit exceeded."""
    stop = threading.Event()
    url = f"{rate_limited.url}{DOWNLOAD}"

    def flood() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                session.get(url, timeout=10)

    thread = threading.Thread(target=flood)
    thread.start()
    yield stop
    stop.set()
    thread.join()


def fetch_until_retrying(
    service: Service, dest: Path, job_id: str, token: str
) -> subprocess.Popen[str]:
    """Start a fetch and return once it reports its first ``retrying`` event."""
    client = subprocess.Popen(
        fetch_command(service.url, dest, "--id", job_id, "--json"),
        env=client_env(token),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert client.stdout is not None
    first = json.loads(client.stdout.readline())
    if first["event"] != "retrying":
        client.kill()
        client.wait()
        raise AssertionError(f"expected a retry first, got {first}")
    client.first_event = first  # type: ignore[attr-defined]
    return client


def finish(client: subprocess.Popen[str]) -> Fetched:
    stdout, stderr = client.communicate(timeout=120)
    first: dict[str, Any] = client.first_event  # type: ignore[attr-defined]
    events = [first, *(json.loads(line) for line in stdout.splitlines())]
    return Fetched(client.returncode, events, stdout, stderr)


def test_nginx_429_is_retried_after_its_retry_after_and_the_fetch_completes(
    rate_limited: Service, hammer: threading.Event, tmp_path: Path
) -> None:
    content = os.urandom(256 * 1024)
    record = rate_limited.publish(content, "extract.csv")
    dest = tmp_path / "pulled"

    client = fetch_until_retrying(rate_limited, dest, record["id"], rate_limited.token())
    hammer.set()
    fetched = finish(client)

    assert fetched.of("retrying")[0]["reason"].startswith("429 Too many requests")
    assert_saved(dest, fetched, content)


def test_a_503_from_the_service_is_retried_and_the_fetch_completes(
    service: Service, tmp_path: Path
) -> None:
    content = os.urandom(256 * 1024)
    record = service.publish(content, "extract.csv")
    token = service.token()
    trail = Path(service.env["REPORTING_SVC_VAR_DIR"]) / "audit.jsonl"
    # No request yet, so no trail: a directory in its place cannot be appended to, the
    # start record cannot be written and the service answers 503 until it is gone.
    trail.mkdir(parents=True)
    try:
        client = fetch_until_retrying(service, tmp_path / "pulled", record["id"], token)
    finally:
        trail.rmdir()
    fetched = finish(client)

    assert fetched.of("retrying")[0]["reason"].startswith("503 Audit")
    assert fetched.of("retrying")[0]["delay"] == 5
    assert_saved(tmp_path / "pulled", fetched, content)


def test_an_expired_token_exits_2_with_a_clear_message_and_saves_nothing(
    service: Service, tmp_path: Path
) -> None:
    record = service.publish(b"a,b\n1,2\n", "extract.csv")
    token = service.token(ttl=-60)

    fetched = fetch(service.url, tmp_path / "pulled", "--id", record["id"], token=token)

    assert fetched.returncode == 2
    assert fetched.events == []
    assert "the server refused the token: 401" in fetched.stderr
    assert "token has expired" in fetched.stderr
    assert token not in fetched.stderr
    assert not [p for p in (tmp_path / "pulled").iterdir() if p.name != ".reporting-svc"]


def test_no_token_at_all_exits_2_before_any_request(service: Service, tmp_path: Path) -> None:
    fetched = fetch(service.url, tmp_path / "pulled", "--id", "0" * 32, token=None)

    assert fetched.returncode == 2
    assert "set REPORTING_SVC_TOKEN or pass --token-file" in fetched.stderr


def test_a_job_the_caller_may_not_download_fails_with_exit_1_naming_it(
    service: Service, tmp_path: Path
) -> None:
    record = service.publish(b"secret\n", "unblinded.csv", mode="active")
    token = service.token(f"{record['studyId']}:test:REPORTING_VIEW")

    fetched = fetch(service.url, tmp_path / "pulled", "--id", record["id"], token=token)

    assert fetched.returncode == 1
    [failed] = fetched.of("failed")
    assert failed["downloadId"] == record["id"]
    assert failed["reason"].startswith("401")
    assert record["id"] in fetched.stderr


HOSTILE_NAMES = [
    "../../etc/passwd",
    "CON.csv",
    "two\nlines.csv",
    "x" * 296 + ".csv",
    "extract.csv",
    "EXTRACT.CSV",
]


def test_hostile_and_colliding_names_land_safely_inside_the_folder(
    service: Service, tmp_path: Path
) -> None:
    token = service.token()
    dest = tmp_path / "deep" / "pulled"
    contents = {}
    for name in HOSTILE_NAMES:
        content = os.urandom(1000)
        record = service.publish(content)
        service.rename(record["id"], name)
        fetched = fetch(service.url, dest, "--id", record["id"], token=token)
        assert fetched.returncode == 0, fetched.stderr
        contents[fetched.of("verified")[0]["file"]] = content

    saved = {path.name: path.read_bytes() for path in dest.iterdir() if path.is_file()}
    assert saved == {**contents, "SHA256SUMS": (dest / "SHA256SUMS").read_bytes()}
    names = list(contents)
    assert names[:3] == ["passwd", "CON_.csv", "twolines.csv"]
    assert len(names[3].encode()) <= MAX_NAME_BYTES and names[3].endswith(".csv")
    assert names[4] == "extract.csv" and names[5].endswith(".CSV") and names[5] != "EXTRACT.CSV"
    assert not (tmp_path / "etc").exists() and not (tmp_path / "deep" / "etc").exists()
    assert sha256sum_check(dest).returncode == 0
