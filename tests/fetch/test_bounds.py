"""A server that never stops: endless listings, endless or trickling bodies, a body longer
than listed. Each fails the fetch with a clear message and exit 1, within its bounds."""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from reporting_svc.api.paths import DOWNLOAD_LIST
from reporting_svc.fetch.command import run
from reporting_svc.fetch.options import FetchOptions
from tests.fetch.hostile_server import Handler, Hostile

StartHostile = Callable[..., Hostile]
STUDY = "CFD8129A430A473C8A02F4BA5DAAD865"
JOB = "A" * 32
ids = itertools.count(1)


def listed(size: int = 16) -> dict[str, Any]:
    """A run never listed before, of ``size`` bytes."""
    return {
        "downloadId": f"{next(ids):032X}",
        "fileName": "x.csv",
        "size": size,
        "sha256": "0" * 64,
    }


def page(runs: list[dict[str, Any]], more: str) -> bytes:
    result = {"hasMore": more, "reportRunStatus": runs}
    return json.dumps({"status": "success", "errorData": None, "result": result}).encode()


def endless_pages(handler: Handler) -> None:
    """hasMore "true" forever, each page full of runs never seen before."""
    limit = int(parse_qs(urlsplit(handler.path).query)["limit"][0])
    handler.answer("200 OK", [], page([listed() for _ in range(limit)], "true"))


def endless_page(handler: Handler) -> None:
    """One page whose list of runs never ends."""
    runs = itertools.repeat(b"".join(json.dumps(listed()).encode() + b"," for _ in range(500)))
    head = b'{"status": "success", "result": {"hasMore": "false", "reportRunStatus": ['
    handler.chunked([], itertools.chain([head], runs))


def endless_body(handler: Handler) -> None:
    """Listed at 16 bytes, the download a chunked body that never ends."""
    if handler.path.startswith(DOWNLOAD_LIST):
        handler.answer("200 OK", [], page([listed(16)], "false"))
    else:
        handler.chunked([], itertools.repeat(b"x" * 65536))


def trickle(handler: Handler) -> None:
    """A body that never ends, one byte at a time, each well within the socket timeout."""

    def drops() -> Iterator[bytes]:
        while True:
            time.sleep(0.05)
            yield b"x"

    handler.chunked([], drops())


def fetch(url: str, dest: Path, **options: Any) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPORTING_SVC_TOKEN", "t")
        status = run(FetchOptions(url=url, dest=dest, json=True, **options), stdout=out)
    return status, [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("script", "options", "message"),
    [
        (endless_pages, {"max_runs": 1000}, "goes past 1000 runs (--max-runs)"),
        (endless_pages, {"listing_deadline": 1.0}, "not done in time (--listing-deadline)"),
        (endless_page, {}, "a listing page is over 16777216 bytes"),
    ],
    ids=["has-more-forever-runs", "has-more-forever-deadline", "endless-page"],
)
def test_a_listing_without_end_fails_with_exit_1(
    hostile: StartHostile,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    script: Callable[[Handler], None],
    options: dict[str, Any],
    message: str,
) -> None:
    server = hostile(script)

    status, events = fetch(server.url, tmp_path, study=STUDY, **options)

    assert status == 1
    assert message in capsys.readouterr().err
    assert [e for e in events if e["event"] != "listed"] == []


@pytest.mark.parametrize(
    ("script", "options", "reason"),
    [
        (endless_body, {"study": STUDY}, "the server sent more than the 16 bytes"),
        (endless_body, {"job_id": JOB, "max_file_bytes": 2**20}, "more than the 1048576 bytes"),
        (trickle, {"job_id": JOB, "file_deadline": 1.0}, "not done in time (--file-deadline 1 s)"),
    ],
    ids=["past-the-listed-size", "past-max-file-bytes", "trickle-past-the-deadline"],
)
def test_a_body_without_end_fails_the_job_with_exit_1_and_writes_no_more(
    hostile: StartHostile,
    tmp_path: Path,
    script: Callable[[Handler], None],
    options: dict[str, Any],
    reason: str,
) -> None:
    server = hostile(script)

    status, events = fetch(server.url, tmp_path, **options)

    assert status == 1
    [failed] = [e for e in events if e["event"] == "failed"]
    assert reason in failed["reason"]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".json"]
    assert all(p.stat().st_size <= 2**20 for p in written)
