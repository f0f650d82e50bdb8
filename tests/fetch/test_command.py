"""The whole fetch in study mode against a tiny server that speaks docs/api.md §1 and §5.

The live downloadList is not on main yet; these pin the client's side of the contract:
paging, skipping what is verified, a new run fetched alone, dry runs, exit statuses.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from reporting_svc.api.paths import DOWNLOAD, DOWNLOAD_LIST
from reporting_svc.fetch.command import run
from reporting_svc.fetch.options import FetchOptions
from reporting_svc.http.attachment import content_disposition
from tests.fetch.conftest import Recorder

Server = Callable[[Callable[[Request], Response]], Recorder]
STUDY = "CFD8129A430A473C8A02F4BA5DAAD865"
TOKEN = "study-token"


@dataclass
class Report:
    downloadId: str  # noqa: N815
    fileName: str  # noqa: N815
    content: bytes
    mode: str = "test"
    listed_sha256: str | None = None
    pause: float = 0.0
    delay: float = 0.0

    def listing(self) -> dict[str, Any]:
        return {
            "downloadId": self.downloadId,
            "studyId": STUDY,
            "mode": self.mode,
            "reportName": "Subject Data Extract",
            "fileName": self.fileName,
            "size": len(self.content),
            "sha256": self.listed_sha256 or hashlib.sha256(self.content).hexdigest(),
        }


@dataclass
class Spec:
    """docs/api.md §5's list, newest first, and §1's download with ranges, ETag and Repr-Digest."""

    reports: list[Report] = field(default_factory=list)
    list_status: int = 200
    refusal: str | None = None
    together: threading.Barrier | None = None

    def publish(self, number: int, name: str = "extract.csv", **options: Any) -> Report:
        report = Report(f"{number:032X}", name, f"run {number}\n".encode() * 1000, **options)
        self.reports.insert(0, report)
        return report

    def __call__(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return Response(
                status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        if request.path == DOWNLOAD_LIST:
            return self.listing(request)
        return self.download(request)

    def listing(self, request: Request) -> Response:
        if self.list_status != 200:
            return Response(status=self.list_status)
        mode = request.args.get("mode")
        runs = [r.listing() for r in self.reports if mode in (None, r.mode)]
        limit, offset = int(request.args["limit"]), int(request.args["offset"])
        page = runs[offset : offset + limit]
        result = {
            "hasMore": "true" if offset + len(page) < len(runs) else "false",
            "totalResults": len(runs),
            "count": len(page),
            "limit": limit,
            "offset": offset,
            "reportId": None,
            "reportRunStatus": page,
        }
        return Response(json.dumps({"status": "success", "errorData": None, "result": result}))

    def download(self, request: Request) -> Response:
        assert request.path == DOWNLOAD
        [report] = [r for r in self.reports if r.downloadId == request.args["id"]]
        if self.refusal is not None:
            error = {"errorCode": "403", "errorMessage": self.refusal, "details": self.refusal}
            body = {"status": "error", "errorData": error}
            return Response(json.dumps(body), 403, content_type="application/json")
        together = self.together
        if together is not None:  # the first downloads wait for each other, once
            together.wait(timeout=10)
            self.together = None
        time.sleep(report.delay)
        digest = hashlib.sha256(report.content).digest()
        response = Response(
            pausing(report.content, report.pause) if report.pause else io.BytesIO(report.content),
            headers={
                "Content-Disposition": content_disposition(report.fileName),
                "Repr-Digest": f"sha-256=:{base64.b64encode(digest).decode()}:",
            },
            direct_passthrough=True,
        )
        response.set_etag(digest.hex())
        if report.pause:
            response.content_length = len(report.content)
            return response
        return response.make_conditional(
            request, accept_ranges=True, complete_length=len(report.content)
        )


def pausing(content: bytes, pause: float) -> Iterator[bytes]:
    """The body in two halves, ``pause`` seconds apart: a download still under way."""
    half = len(content) // 2
    yield content[:half]
    time.sleep(pause)
    yield content[half:]


@pytest.fixture
def spec(server: Server) -> tuple[Spec, Recorder]:
    served = Spec()
    return served, server(served)


def fetch(url: str, dest: Path, **options: Any) -> tuple[int, list[dict[str, Any]]]:
    status, out = fetch_output(url, dest, **options)
    return status, [json.loads(line) for line in out.splitlines()]


def fetch_output(url: str, dest: Path, **options: Any) -> tuple[int, str]:
    """The exit status and standard output (JSON lines) of a fetch of the study."""
    out = io.StringIO()
    monkey_env = {"REPORTING_SVC_TOKEN": TOKEN}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in monkey_env.items():
            patch.setenv(name, value)
        status = run(
            FetchOptions(url=url, dest=dest, study=STUDY, json=True, **options), stdout=out
        )
    return status, out.getvalue()


def kinds(events: list[dict[str, Any]], kind: str) -> list[str]:
    return [e["downloadId"] for e in events if e["event"] == kind]


def test_a_study_is_fetched_page_by_page_then_nothing_then_only_the_new_run(
    spec: tuple[Spec, Recorder], tmp_path: Path
) -> None:
    served, server = spec
    for number in range(1, 31):
        served.publish(number, mode="test" if number % 2 else "active")
    dest = tmp_path / "study"

    first = fetch(server.url, dest, parallel=3)
    requests_before = len(server.requests)
    second = fetch(server.url, dest)
    downloads_in_second = [r for r in server.requests[requests_before:] if r.path == DOWNLOAD]
    new = served.publish(31)
    third = fetch(server.url, dest)

    assert first[0] == 0 and len(kinds(first[1], "verified")) == 30
    assert len(kinds(first[1], "listed")) == 30
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=dest).returncode == 0
    assert (
        second[0] == 0
        and kinds(second[1], "verified") == []
        and len(kinds(second[1], "skipped")) == 30
    )
    assert downloads_in_second == []
    assert third[0] == 0 and kinds(third[1], "verified") == [new.downloadId]
    names = sorted(p.name for p in dest.iterdir() if p.is_file())
    assert len(names) == 32 and "extract.csv" in names and f"extract-{new.downloadId}.csv" in names


def test_mode_filters_the_listing(spec: tuple[Spec, Recorder], tmp_path: Path) -> None:
    served, server = spec
    served.publish(1, mode="active")
    wanted = served.publish(2, mode="test")

    status, events = fetch(server.url, tmp_path, mode="test")

    assert status == 0 and kinds(events, "verified") == [wanted.downloadId]
    assert {r.args.get("mode") for r in server.requests if r.path == DOWNLOAD_LIST} == {"test"}


def test_a_dry_run_lists_and_plans_but_downloads_nothing(
    spec: tuple[Spec, Recorder], tmp_path: Path
) -> None:
    served, server = spec
    report = served.publish(1)

    status, events = fetch(server.url, tmp_path / "d", dry_run=True)

    assert status == 0
    assert [e["event"] for e in events] == ["listed", "planned"]
    assert events[0]["downloadId"] == report.downloadId
    assert not [r for r in server.requests if r.path == DOWNLOAD]
    assert not (tmp_path / "d").exists()


def tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and folder under ``folder``: its bytes (files) and modification time."""
    return {
        str(path.relative_to(folder)): (
            path.read_bytes() if path.is_file() else b"",
            path.stat().st_mtime_ns,
        )
        for path in folder.rglob("*")
    }


def test_a_dry_run_writes_nothing_into_a_folder_fetched_before(
    spec: tuple[Spec, Recorder], tmp_path: Path
) -> None:
    served, server = spec
    served.publish(1)
    assert fetch(server.url, tmp_path)[0] == 0
    os.utime(tmp_path / "extract.csv")  # changed stamps: a real run would note them
    new = served.publish(2, "visits.csv")
    before = tree(tmp_path)

    status, events = fetch(server.url, tmp_path, dry_run=True)

    assert status == 0
    assert kinds(events, "planned") == [new.downloadId]
    assert tree(tmp_path) == before


def test_a_run_whose_bytes_never_match_its_listing_fails_alone_with_exit_1(
    spec: tuple[Spec, Recorder], tmp_path: Path
) -> None:
    served, server = spec
    good = served.publish(1)
    bad = served.publish(2, listed_sha256="0" * 64)

    status, events = fetch(server.url, tmp_path)

    assert status == 1
    assert kinds(events, "verified") == [good.downloadId]
    assert kinds(events, "failed") == [bad.downloadId]
    assert not list(tmp_path.rglob("*.part"))


@pytest.mark.parametrize("list_status", [401, 403])
def test_a_refused_listing_exits_2(
    spec: tuple[Spec, Recorder], tmp_path: Path, list_status: int
) -> None:
    served, server = spec
    served.list_status = list_status

    status, events = fetch(server.url, tmp_path)

    assert status == 2
    assert events == []


HOSTILE_TEXT = "\x1b[2J\x1b]0;owned\x07 \u202ereversed\u2028next line\x9b"
RAW_CONTROLS = ("\x1b", "\x07", "\u202e", "\u2028", "\x9b")


def test_server_text_reaches_stderr_and_json_events_visible_and_ascii(
    spec: tuple[Spec, Recorder], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served, server = spec
    served.publish(1, name=f"x{HOSTILE_TEXT}.csv")
    served.refusal = HOSTILE_TEXT

    status, out = fetch_output(server.url, tmp_path)
    err = capsys.readouterr().err

    assert status == 1
    assert out.isascii()
    listed, failed = (json.loads(line) for line in out.split("\n") if line)
    assert (listed["event"], failed["event"]) == ("listed", "failed")
    for shown in (err, listed["fileName"], failed["reason"]):
        assert "\\x1b[2J" in shown and "\\x1b]0;owned\\x07" in shown and "\\u202e" in shown
        assert not any(char in shown for char in RAW_CONTROLS)


def test_a_run_named_like_another_runs_part_file_does_not_clobber_it(
    spec: tuple[Spec, Recorder], tmp_path: Path
) -> None:
    served, server = spec
    # Both downloads under way at once, extract.csv.part first; it ends while extract.csv
    # is still going.
    runs = [
        served.publish(1, "extract.csv", delay=0.1, pause=0.5),
        served.publish(2, "extract.csv.part", pause=0.2),
    ]
    served.together = threading.Barrier(2)

    status, events = fetch(server.url, tmp_path, parallel=2)

    assert status == 0, events
    files = {e["downloadId"]: e["file"] for e in events if e["event"] == "verified"}
    assert {(tmp_path / files[r.downloadId]).read_bytes() for r in runs} == {
        r.content for r in runs
    }
    assert (
        subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=tmp_path).returncode == 0
    )


RUN_ID = f"{1:032X}"
PLANTED = [
    ".SHA256SUMS.tmp",
    ".reporting-svc/.manifest.json.tmp",
    f".reporting-svc/partial/.{RUN_ID}.json.tmp",
    f".reporting-svc/partial/{RUN_ID}.part",
    f".reporting-svc/partial/{RUN_ID}.json",
    "extract.csv.part",
]


@pytest.mark.parametrize("planted", PLANTED)
def test_a_symlink_planted_where_the_client_writes_never_takes_a_write_outside(
    spec: tuple[Spec, Recorder], tmp_path: Path, planted: str
) -> None:
    served, server = spec
    report = served.publish(1)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("untouched")
    dest = tmp_path / "dest"
    (dest / planted).parent.mkdir(parents=True)
    (dest / planted).symlink_to(outside / "victim")

    status, events = fetch(server.url, dest)

    assert status == 0, events
    assert [p.name for p in outside.iterdir()] == ["victim"]
    assert (outside / "victim").read_text() == "untouched"
    assert (dest / "extract.csv").read_bytes() == report.content
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=dest).returncode == 0


@pytest.mark.parametrize("linked", [".reporting-svc", ".reporting-svc/partial"])
def test_a_symlinked_state_folder_is_refused_with_exit_2(
    spec: tuple[Spec, Recorder],
    tmp_path: Path,
    linked: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    served, server = spec
    served.publish(1)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    (dest / linked).parent.mkdir(parents=True, exist_ok=True)
    (dest / linked).symlink_to(outside, target_is_directory=True)

    status, events = fetch(server.url, dest)

    assert status == 2 and events == []
    assert "is a symlink or not a folder" in capsys.readouterr().err
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("restore_mtime", "rehash"),
    [(False, False), (True, False), (True, True)],
    ids=["mtime-changed", "mtime-restored", "mtime-restored-rehash"],
)
def test_a_file_changed_in_place_is_fetched_again_not_skipped_as_verified(
    spec: tuple[Spec, Recorder], tmp_path: Path, restore_mtime: bool, rehash: bool
) -> None:
    served, server = spec
    report = served.publish(1)
    assert fetch(server.url, tmp_path)[0] == 0
    saved = tmp_path / "extract.csv"
    before = saved.stat()
    with saved.open("r+b") as handle:  # one byte, same size
        handle.seek(100)
        handle.write(b"X")
    if restore_mtime:
        os.utime(saved, ns=(before.st_atime_ns, before.st_mtime_ns))

    status, events = fetch(server.url, tmp_path, rehash=rehash)

    assert status == 0
    assert kinds(events, "verified") == [report.downloadId] and kinds(events, "skipped") == []
    assert saved.read_bytes() == report.content
    assert (
        subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=tmp_path).returncode == 0
    )


def test_a_file_only_touched_is_hashed_again_and_skipped(
    spec: tuple[Spec, Recorder], tmp_path: Path
) -> None:
    served, server = spec
    report = served.publish(1)
    fetch(server.url, tmp_path)
    os.utime(tmp_path / "extract.csv", ns=(0, 0))

    status, events = fetch(server.url, tmp_path)
    again = fetch(server.url, tmp_path, rehash=True)

    assert status == 0 and kinds(events, "skipped") == [report.downloadId]
    assert again[0] == 0 and kinds(again[1], "skipped") == [report.downloadId]
    assert not [r for r in server.requests if r.path == DOWNLOAD][1:]


def test_a_reader_that_leaves_ends_the_fetch_quietly_with_141(
    server: Server, tmp_path: Path
) -> None:
    """``reporting-svc fetch --json | head -1``: no traceback, no error blaming the folder,
    and the status a shell gives a filter killed by SIGPIPE."""
    served, left = Spec(), threading.Event()
    for number in range(1, 4):
        served.publish(number)

    def respond(request: Request) -> Response:
        if request.path == DOWNLOAD:
            left.wait(timeout=30)  # the first download's events come after the reader left
        return served(request)

    recorder = server(respond)
    options = ["--url", recorder.url, "--study", STUDY, "--dest", str(tmp_path), "--json"]
    client = subprocess.Popen(
        [str(Path(sys.executable).parent / "reporting-svc"), "fetch", *options],
        env={**os.environ, "REPORTING_SVC_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert client.stdout is not None and client.stderr is not None
    first = json.loads(client.stdout.readline())
    client.stdout.close()
    left.set()

    assert first["event"] == "listed"
    assert client.wait(timeout=60) == 141
    assert client.stderr.read() == b""
