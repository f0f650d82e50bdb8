"""REDbot, the HTTP linter, on live downloads through config/nginx.conf: no BAD note allowed.

REDbot cannot send a token, so a test-only nginx in front adds the headers each case
needs: REDbot -> test-only nginx -> the project's nginx -> gunicorn.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.processes import s3_env
from tests.support import DOWNLOAD, STUDY

REDBOT = Path(__file__).resolve().parents[2] / ".venv-redbot/bin/redbot"
pytestmark = pytest.mark.integration

# Test-only locations: each proxies to the download under test with its own headers.
CASES = {
    "full": {"Authorization": "Bearer {token}"},
    "partial": {"Authorization": "Bearer {token}", "Range": "bytes=1000-2999"},
    "revalidated": {"Authorization": "Bearer {token}", "If-None-Match": '"{sha256}"'},
    "anonymous": {"Authorization": ""},
}


def header_adding_site(port: int, upstream: str, query: str, values: dict[str, str]) -> str:
    """A server{} that proxies /<case> to the download with that case's headers set."""
    locations = []
    for case, headers in CASES.items():
        lines = "".join(
            f"        proxy_set_header {name} '{value.format(**values)}';\n"
            for name, value in headers.items()
        )
        locations.append(
            f"""    location = /{case} {{
        rewrite ^ {DOWNLOAD}?{query} break;
        proxy_pass {upstream};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
{lines}    }}
"""
        )
    return f"server {{\n    listen 127.0.0.1:{port};\n{''.join(locations)}}}\n"


@pytest.fixture
def report(tmp_path: Path) -> Path:
    """A CSV extract of a few KiB."""
    path = tmp_path / "upstream" / "subject-data-extract.csv"
    path.parent.mkdir()
    rows = "".join(f"S-{n:04d},Week {n % 52},{n * 7 % 1000}\n" for n in range(400))
    path.write_text("subjectId,visit,value\n" + rows)
    return path


@pytest.fixture(params=["stream", "x-accel", "s3 x-accel"])
def linted(
    request: pytest.FixtureRequest,
    service_env: dict[str, str],
    moto_server: str,
    cli_publish: Any,
    cli_token: Any,
    serve: Any,
    behind_nginx: Any,
    nginx: Any,
    report: Path,
) -> Iterator[Callable[[str], str]]:
    """The whole chain in one nginx delivery mode; returns ``url(case)`` for a CASES key."""
    if request.param == "s3 x-accel":
        env = {**s3_env(service_env, moto_server), "REPORTING_SVC_S3_DELIVERY": "x-accel"}
    else:
        env = {**service_env, "REPORTING_SVC_LOCAL_DELIVERY": request.param}
    record = cli_publish(env, report)
    token = cli_token(env, f"{STUDY}:test:REPORTING_VIEW")
    front = behind_nginx(serve(env), Path(env["REPORTING_SVC_LOCAL_ROOT"]))
    values = {"token": token, "sha256": record["sha256"]}
    base = nginx(lambda port: header_adding_site(port, front, f"id={record['id']}", values))
    yield lambda case: f"{base}/{case}"


def redbot_notes(url: str) -> tuple[int, list[dict[str, Any]]]:
    """Run REDbot on url; the status it saw and every note, subnotes flattened."""
    if not REDBOT.exists():
        pytest.fail(f"{REDBOT} is missing: `make test` installs REDbot in its own venv")
    result = subprocess.run(
        [str(REDBOT), "-o", "har", url], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"redbot failed: {result.stderr}"
    log = json.loads(result.stdout)["log"]
    assert "_red_error" not in log, f"redbot could not check {url}: {log['_red_error']}"
    assert log["entries"], f"redbot recorded no response for {url}"
    notes: list[dict[str, Any]] = []
    pending = [note for entry in log["entries"] for note in entry["_red_messages"]]
    while pending:
        note = pending.pop(0)
        notes.append(note)
        pending.extend(note.get("subnotes", []))
    return log["entries"][0]["response"]["status"], notes


def assert_no_bad_note(url: str, expected_status: int) -> None:
    """REDbot saw the expected status and no BAD note; on failure, list every note."""
    status, notes = redbot_notes(url)
    listing = "\n".join(f"{n['level']} {n['note_id']}: {n['summary']}" for n in notes)
    assert status == expected_status, f"redbot saw {status}:\n{listing}"
    bad = [note for note in notes if note["level"] == "BAD"]
    assert not bad, f"REDbot found BAD notes on {url}:\n{listing}"


def test_full_download_has_no_bad_redbot_note(linted: Callable[[str], str]) -> None:
    assert_no_bad_note(linted("full"), 200)


def test_partial_download_has_no_bad_redbot_note(linted: Callable[[str], str]) -> None:
    assert_no_bad_note(linted("partial"), 206)


def test_revalidation_has_no_bad_redbot_note(linted: Callable[[str], str]) -> None:
    assert_no_bad_note(linted("revalidated"), 304)


def test_missing_token_error_has_no_bad_redbot_note(linted: Callable[[str], str]) -> None:
    assert_no_bad_note(linted("anonymous"), 401)
