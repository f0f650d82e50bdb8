"""Black-box: publish and mint with the command, serve with real gunicorn, download over HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from reporting_svc.lifecycle.sample import SAMPLE_JOB_ID
from tests.integration.processes import Processes, printed_lines
from tests.support import DOWNLOAD, DOWNLOAD_LIST, OTHER_STUDY, STUDY

pytestmark = pytest.mark.integration


@pytest.fixture
def reports(tmp_path: Path) -> dict[str, Path]:
    """A CSV, a binary file and a file with a non-ASCII name, as upstream would produce."""
    folder = tmp_path / "upstream"
    folder.mkdir()
    files = {
        "csv": folder / "subject-data-extract.csv",
        "binary": folder / "dump.zip",
        "unicode": folder / "Données patients été.xlsx",
    }
    files["csv"].write_text("subjectId,visit\nS-0001,Screening\nS-0002,Week 4\n")
    files["binary"].write_bytes(bytes(range(256)) * 4096 + b"\x00tail")
    files["unicode"].write_bytes(os.urandom(300_000))
    return files


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [
        ("csv", "text/csv"),
        ("binary", "application/zip"),
        ("unicode", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ],
)
def test_published_report_downloads_byte_for_byte_through_gunicorn(
    cli_publish: Any,
    cli_token: Any,
    serve: Any,
    service_env: dict[str, str],
    reports: dict[str, Path],
    kind: str,
    content_type: str,
) -> None:
    path = reports[kind]
    record = cli_publish(service_env, path)
    token = cli_token(service_env, f"{STUDY}:test:REPORTING_VIEW")
    base = serve(service_env)

    response = requests.get(
        base + DOWNLOAD,
        params={"id": record["id"]},
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "e2e-1"},
        timeout=30,
    )

    content = path.read_bytes()
    digest = hashlib.sha256(content).digest()
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["Content-Type"].startswith(content_type)
    assert response.headers["Content-Length"] == str(len(content))
    assert response.headers["ETag"] == f'"{digest.hex()}"'
    assert response.headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-ID"] == "e2e-1"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="')
    if kind == "unicode":
        assert "filename*=UTF-8''" + quote(path.name) in disposition
    else:
        assert f'filename="{path.name}"' in disposition


def test_token_for_another_study_is_refused_by_gunicorn(
    cli_publish: Any,
    cli_token: Any,
    serve: Any,
    service_env: dict[str, str],
    reports: dict[str, Path],
) -> None:
    record = cli_publish(service_env, reports["csv"])
    token = cli_token(service_env, "0123456789ABCDEF0123456789ABCDEF:test:REPORTING_VIEW")
    base = serve(service_env)

    response = requests.get(
        base + DOWNLOAD,
        params={"id": record["id"]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )

    assert response.status_code == 401
    assert response.json()["errorData"]["errorCode"] == "REPT_401"
    assert "REPORTING_VIEW" in response.json()["errorData"]["details"]


def test_tenant_report_downloads_with_a_tenant_grant(
    cli_publish: Any,
    cli_token: Any,
    serve: Any,
    service_env: dict[str, str],
    reports: dict[str, Path],
) -> None:
    record = cli_publish(service_env, reports["csv"], "--tenant")
    token = cli_token(service_env, "tenant:test:REPORTING_VIEW")
    base = serve(service_env)

    response = requests.get(
        base + DOWNLOAD,
        params={"id": record["id"], "studyId": "null"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )

    assert response.status_code == 200
    assert response.content == reports["csv"].read_bytes()


def test_huge_query_string_is_refused_by_gunicorn_as_too_long_in_the_envelope(
    serve: Any, service_env: dict[str, str]
) -> None:
    """A request line of 64 KiB is past gunicorn's request-line limit (8190 bytes) and
    carries no header: gunicorn refuses it with 414 before the app could answer 400 for
    the malformed id."""
    base = serve(service_env)

    response = requests.get(base + DOWNLOAD + "?id=" + "A" * 65536, timeout=30)

    assert response.status_code == 414
    assert response.json()["errorData"] == {
        "errorCode": "REPT_414",
        "errorMessage": "URI Too Long",
        "details": "The request line is too long",
    }


@dataclass(frozen=True)
class Embedded:
    """A service started with ``--init`` on the embedded default in a fresh folder, its
    deployment in the default home of a fresh user, and what it printed."""

    base: str
    workdir: Path
    home: Path
    env: dict[str, str]
    lines: list[str]
    stderr: str


@pytest.fixture(scope="module")
def embedded(module_processes: Processes) -> Embedded:
    """One for the module: its tests read the sample, or publish into another study."""
    folder = module_processes.folder
    workdir = folder / "fresh"
    workdir.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("REPORTING_SVC_")}
    env.pop("XDG_DATA_HOME", None)
    env.update(HOME=str(folder / "user"), WEB_CONCURRENCY="2")
    base = module_processes.serve(env, "--init", cwd=workdir)
    port = base.rsplit(":", 1)[1]
    lines = printed_lines(folder / f"serve-{port}.stdout", 2)
    home = folder / "user" / ".local" / "share" / "reporting-svc"
    stderr = (folder / f"serve-{port}.stderr").read_text()
    return Embedded(base, workdir, home, env, lines, stderr)


def test_embedded_default_prints_a_curl_line_that_downloads_the_sample(
    embedded: Embedded,
) -> None:
    curl = embedded.lines[0]

    subprocess.run(["bash", "-c", curl], cwd=embedded.workdir, check=True, timeout=30)

    sample = embedded.workdir / "subject-data-extract.csv"
    stored = (embedded.home / "var" / "reports" / "jobs" / SAMPLE_JOB_ID / "content").read_bytes()
    assert curl.startswith("curl ")
    assert sample.read_bytes() == stored
    assert sample.read_text().startswith("subjectId,")
    assert "Bearer" not in embedded.stderr
    assert (embedded.home / "var" / "dev-jwt-secret").is_file()
    assert list(embedded.workdir.iterdir()) == [sample]


def test_embedded_default_prints_a_curl_line_that_lists_the_sample(embedded: Embedded) -> None:
    curl = embedded.lines[1]

    listed = subprocess.run(
        ["bash", "-c", curl], cwd=embedded.workdir, check=True, timeout=30, capture_output=True
    )

    result = json.loads(listed.stdout)["result"]
    assert curl.startswith("curl ")
    assert result["totalResults"] == 1
    assert [run["downloadId"] for run in result["reportRunStatus"]] == [SAMPLE_JOB_ID]


def test_token_and_publish_from_another_directory_act_on_the_served_deployment(
    embedded: Embedded, cli: Any, reports: dict[str, Path], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    published = cli(
        "publish", str(reports["csv"]), "--report-name", "Extract", "--mode", "test",
        "--study-id", OTHER_STUDY, env=embedded.env, cwd=elsewhere,
    )  # fmt: skip
    record = json.loads(published.stdout)
    grant = f"{OTHER_STUDY}:test:REPORTING_VIEW"
    minted = cli("token", "--subject", "alice", "--grant", grant, env=embedded.env, cwd=elsewhere)
    auth = {"Authorization": f"Bearer {minted.stdout.strip()}"}

    download = requests.get(
        embedded.base + DOWNLOAD, params={"id": record["id"]}, headers=auth, timeout=30
    )
    listing = requests.get(
        embedded.base + DOWNLOAD_LIST,
        params={"studyId": OTHER_STUDY, "limit": 20, "offset": 0},
        headers=auth,
        timeout=30,
    )

    assert download.status_code == 200
    assert download.content == reports["csv"].read_bytes()
    runs = listing.json()["result"]["reportRunStatus"]
    assert [run["downloadId"] for run in runs] == [record["id"]]
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"REPORTING_SVC_STORE": "s3"}, "REPORTING_SVC_S3_BUCKET"),
        (
            {
                "REPORTING_SVC_STORE": "s3",
                "REPORTING_SVC_S3_BUCKET": "b",
                "REPORTING_SVC_JWT_SECRET": "",
            },
            "no signing key is configured: set REPORTING_SVC_JWT_JWKS_FILE",
        ),
    ],
    ids=["bucket", "key"],
)
def test_missing_setting_stops_start_up_with_one_line(
    cli: Any, service_env: dict[str, str], changes: dict[str, str], named: str
) -> None:
    env = {**service_env, **changes}

    result = cli("serve", env=env, check=False)

    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr


CONTROL_SOCKET_DECIDED = ("Control socket disabled", "Control socket listening at")


def _control_socket_lines(stderr: Path, timeout: float = 30.0) -> list[str]:
    """The master's log lines about its control socket, once it has logged one (at debug
    level it logs either way, after its first workers are up)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in stderr.read_text().splitlines() if "Control socket" in line]
        if any(marker in line for line in lines for marker in CONTROL_SOCKET_DECIDED):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"gunicorn logged nothing about its control socket: {lines}")
        time.sleep(0.1)


def test_two_instances_of_one_user_open_no_shared_control_socket(
    processes: Processes, service_env: dict[str, str], tmp_path: Path
) -> None:
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    home.mkdir()
    runtime.mkdir()
    env = {
        **service_env,
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "GUNICORN_CMD_ARGS": "--log-level debug",
        "WEB_CONCURRENCY": "1",
    }

    bases = [processes.serve(env), processes.serve(env)]

    for base in bases:
        port = base.rsplit(":", 1)[1]
        lines = _control_socket_lines(processes.folder / f"serve-{port}.stderr")
        assert not any("listening" in line for line in lines), lines
    assert list(home.rglob("*.ctl")) + list(runtime.rglob("*.ctl")) == []


# Header lines gunicorn refuses, each holding a credential in a shape no token pattern
# knows; the last is cut off mid-line, which gunicorn notes at debug level.
API_KEY, BASIC, BEARER = "s3cr3t-key-4f1c", "YWxpY2U6czNjcjN0LTdhOWU=", "tok-9d2e-bearer"
REFUSED_LINES = [
    f"X-Api-Key {API_KEY}",
    f"Authorization Basic {BASIC}",
    f"Authorization bearer\t{BEARER}",
    f"Authorization Basic {BASIC} : x",
    f"X-Folded: a\r\n {API_KEY}",
    f"X-Api-Key: {API_KEY}\x00",
    f"Transfer-Encoding: {API_KEY}",
    f"Expect: {BEARER}",
]


def _refused_answer(port: int, request: bytes) -> bytes:
    """Send ``request`` raw on its own connection and read until gunicorn closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: sock.recv(65536), b""))


def test_no_refused_header_line_reaches_the_log_whatever_credential_it_holds(
    serve: Any, service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**service_env, "GUNICORN_CMD_ARGS": "--log-level debug", "WEB_CONCURRENCY": "1"}
    port = int(serve(env).rsplit(":", 1)[1])
    requests_sent = [
        *(f"GET /healthz HTTP/1.1\r\nHost: a\r\n{line}\r\n\r\n" for line in REFUSED_LINES),
        f"X-Api-Key {API_KEY}\r\n\r\n",
        f"GET /healthz HTTP/1.1\r\nAuthorization: Basic {BASIC}",
    ]

    answers = [_refused_answer(port, text.encode("latin-1")) for text in requests_sent]

    assert [answer.split(b" ", 2)[1] for answer in answers[:-1]] == [
        b"400", b"400", b"400", b"400", b"400", b"400", b"501", b"417", b"400",
    ]  # fmt: skip
    stderr = tmp_path / f"serve-{port}.stderr"
    deadline = time.monotonic() + 10
    while "Ignored premature client disconnection" not in stderr.read_text():
        assert time.monotonic() < deadline, stderr.read_text()
        time.sleep(0.05)
    logged = stderr.read_text() + (tmp_path / f"serve-{port}.stdout").read_text()
    warnings = [line for line in logged.splitlines() if "Invalid request from ip=" in line]
    assert len(warnings) == len(requests_sent) - 1, logged
    for secret in (API_KEY, BASIC, BEARER, "czNjcjN0", "bearer\\t"):
        assert secret not in logged
    assert all("[withheld]" in line for line in warnings), warnings
