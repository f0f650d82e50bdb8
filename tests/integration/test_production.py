"""Production behaviour with the real programs: gunicorn workers, nginx in front."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from reporting_svc.server.refused import WITHHELD
from tests.integration.processes import Processes
from tests.support import DOWNLOAD, SECRET, STUDY

pytestmark = pytest.mark.integration
GRANT = f"{STUDY}:test:REPORTING_VIEW"


def _publish(cli_publish: Any, env: dict[str, str], folder: Path, size: int) -> dict[str, Any]:
    path = folder / f"extract-{size}.bin"
    path.write_bytes(os.urandom(size))
    record: dict[str, Any] = cli_publish(env, path)
    return record


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The values of one metric in Prometheus text format, keyed by their labels."""
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(name + r"(?:\{(.*)\})? (\S+)", line)
        if match:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(1) or "")))
            found[labels] = float(match.group(2))
    return found


def test_nginx_answers_a_burst_over_the_rate_limit_with_429_envelopes(
    processes: Processes, service_env: dict[str, str], cli_publish: Any, cli_token: Any
) -> None:
    record = _publish(cli_publish, service_env, processes.folder, 1024)
    token = cli_token(service_env, GRANT)
    base = processes.serve(service_env)
    front = processes.behind_nginx(
        base, Path(service_env["REPORTING_SVC_LOCAL_ROOT"]), rate="10r/s"
    )

    session = requests.Session()
    answers = [
        session.get(
            f"{front}{DOWNLOAD}",
            params={"id": record["id"]},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": f"burst-{n}"},
            timeout=30,
        )
        for n in range(60)
    ]

    statuses = Counter(answer.status_code for answer in answers)
    limited = [answer for answer in answers if answer.status_code == 429]
    assert statuses[200] >= 20
    assert statuses[429] >= 10
    assert set(statuses) == {200, 429}
    for answer in limited:
        assert answer.json() == {
            "status": "error",
            "result": None,
            "errorData": {
                "errorCode": "REPT_429",
                "errorMessage": "Too many requests",
                "details": "Too many requests from this client; retry after a second",
            },
        }
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.headers["Retry-After"] == "1"
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["X-Request-ID"].startswith("burst-")


def test_sigterm_lets_a_running_download_finish(
    processes: Processes, service_env: dict[str, str], cli_publish: Any, cli_token: Any
) -> None:
    record = _publish(cli_publish, service_env, processes.folder, 24 * 1024 * 1024)
    token = cli_token(service_env, GRANT)
    base = processes.serve({**service_env, "GUNICORN_GRACEFUL_TIMEOUT": "60"})
    master = processes.started[-1]
    host, port = base.removeprefix("http://").split(":")

    with socket.create_connection((host, int(port))) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.sendall(
            f"GET {DOWNLOAD}?id={record['id']} HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode()
        )
        received = client.recv(64 * 1024)
        master.send_signal(signal.SIGTERM)
        while chunk := client.recv(256 * 1024):
            received += chunk
            time.sleep(0.002)

    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert hashlib.sha256(body).hexdigest() == record["sha256"]
    assert master.wait(timeout=60) == 0


def test_metrics_sum_every_workers_requests(
    processes: Processes, service_env: dict[str, str], cli_publish: Any, cli_token: Any
) -> None:
    record = _publish(cli_publish, service_env, processes.folder, 100_000)
    token = cli_token(service_env, GRANT)
    base = processes.serve({**service_env, "WEB_CONCURRENCY": "4"})
    url = f"{base}{DOWNLOAD}"
    good = {"Authorization": f"Bearer {token}"}

    for _ in range(30):
        assert requests.get(url, params={"id": record["id"]}, headers=good, timeout=30).ok
    for _ in range(12):
        requests.get(url, params={"id": record["id"]}, timeout=30)
    for _ in range(7):
        requests.get(url, params={"id": "nope"}, headers=good, timeout=30)
    for _ in range(5):
        requests.get(f"{base}/healthz", timeout=30)
    text = requests.get(f"{base}/metrics", timeout=30).text

    requests_total = _samples(text, "reporting_http_requests_total")
    assert requests_total[(("method", "GET"), ("route", "download"), ("status", "200"))] == 30
    assert requests_total[(("method", "GET"), ("route", "download"), ("status", "401"))] == 12
    assert requests_total[(("method", "GET"), ("route", "download"), ("status", "400"))] == 7
    assert requests_total[(("method", "GET"), ("route", "healthz"), ("status", "200"))] == 5
    assert _samples(text, "reporting_auth_failures_total") == {(("reason", "missing_token"),): 12}
    assert _samples(text, "reporting_download_bytes_total") == {
        (("delivery", "stream"),): 30 * 100_000
    }
    assert _samples(text, "reporting_download_duration_seconds_count") == {(): 30}
    assert _samples(text, "reporting_downloads_in_flight") == {(): 0}


def test_health_endpoints_answer_without_a_token_and_stay_out_of_the_audit_trail(
    processes: Processes, service_env: dict[str, str]
) -> None:
    base = processes.serve(service_env)

    health = requests.get(f"{base}/healthz", timeout=30)
    ready = requests.get(f"{base}/readyz", timeout=30)

    assert health.status_code == 200
    assert ready.status_code == 200
    audit = Path(service_env["REPORTING_SVC_VAR_DIR"]) / "audit.jsonl"
    assert not audit.exists() or audit.read_text() == ""


def test_readyz_names_a_store_that_went_away(
    processes: Processes, service_env: dict[str, str], tmp_path: Path
) -> None:
    # One worker: each worker creates a missing store root when it boots, so a worker that
    # booted after the removal would (rightly) put it back. The first 200 shows it booted.
    env = {**service_env, "REPORTING_SVC_LOCAL_ROOT": str(tmp_path / "store")}
    base = processes.serve({**env, "WEB_CONCURRENCY": "1"})
    assert requests.get(f"{base}/readyz", timeout=30).status_code == 200
    (tmp_path / "store").rmdir()

    ready = requests.get(f"{base}/readyz", timeout=30)

    assert ready.status_code == 503
    assert ready.headers["Retry-After"]
    assert "store" in ready.json()["errorData"]["details"]


def test_logs_are_json_lines_without_secrets_or_tokens(
    processes: Processes,
    service_env: dict[str, str],
    cli_publish: Any,
    cli_token: Any,
) -> None:
    record = _publish(cli_publish, service_env, processes.folder, 5000)
    token = cli_token(service_env, GRANT)
    other = cli_token(service_env, "tenant:active:REPORTING_VIEW")
    base = processes.serve(service_env)
    front = processes.behind_nginx(base, Path(service_env["REPORTING_SVC_LOCAL_ROOT"]))
    for bearer in (token, other, token + "x", "not-a-jwt"):
        for params in ({"id": record["id"]}, {"id": "bad"}, {"id": record["id"], "mode": "zz"}):
            requests.get(
                f"{front}{DOWNLOAD}",
                params=params,
                headers={"Authorization": f"Bearer {bearer}", "X-Request-ID": "log-check"},
                timeout=30,
            )

    # gunicorn writes a request's access line after its last byte has gone, possibly after
    # the client has read the answer: stopping the servers is what makes every line land.
    processes.stop_all()
    port = base.rsplit(":", 1)[1]
    stderr = (processes.folder / f"serve-{port}.stderr").read_text()
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    requests_logged = [line for line in lines if line.get("route") == "download"]
    assert len(requests_logged) == 12  # one access line per request, none of the app's own
    assert {line["message"] for line in requests_logged} == {"access"}
    assert {line["requestId"] for line in requests_logged} == {"log-check"}
    assert {line.get("subject") for line in requests_logged} == {"alice", None}
    assert {"time", "level", "path", "status", "duration"} <= set(requests_logged[0])
    everything = stderr + "".join(path.read_text() for path in processes.folder.rglob("*.log"))
    for secret in (SECRET, token, other):
        assert secret not in everything


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        (f"{DOWNLOAD}?id=" + "A" * 65536, {}, 414),
        (f"{DOWNLOAD}?id=1", {"X-Padding": "x" * 16384}, 431),
    ],
)
def test_nginx_refuses_oversized_requests_in_the_envelope(
    processes: Processes, service_env: dict[str, str], path: str, headers: dict, status: int
) -> None:
    base = processes.serve(service_env)
    front = processes.behind_nginx(base, Path(service_env["REPORTING_SVC_LOCAL_ROOT"]))

    answer = requests.get(f"{front}{path}", headers=headers, timeout=30)

    assert answer.status_code == status
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["errorData"]["errorCode"] == f"REPT_{status}"
    assert answer.headers["X-Request-ID"]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (f"GET {DOWNLOAD}?id={'A' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"x" * 9000 + b"\r\n\r\n", 431),
        (b"NOT A REQUEST LINE\r\n\r\n", 400),
    ],
)
def test_gunicorn_refuses_unparsable_requests_in_the_envelope_without_nginx(
    processes: Processes, service_env: dict[str, str], request_bytes: bytes, status: int
) -> None:
    base = processes.serve(service_env)
    host, port = base.removeprefix("http://").split(":")

    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(request_bytes)
        answer = _read_until_closed(conn)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Content-Type: application/json" in head
    assert int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) == len(body)
    assert json.loads(body)["errorData"]["errorCode"] == f"REPT_{status}"


def test_a_token_in_a_header_line_gunicorn_refuses_reaches_neither_answer_nor_log(
    processes: Processes, service_env: dict[str, str], cli_token: Any
) -> None:
    token = cli_token(service_env, GRANT)
    base = processes.serve(service_env)
    host, port = base.removeprefix("http://").split(":")
    request = (
        f"GET {DOWNLOAD}?id={'A' * 32} HTTP/1.1\r\nHost: x\r\nAuthorization Bearer {token}\r\n\r\n"
    )

    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(request.encode())
        answer = _read_until_closed(conn)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert json.loads(body)["errorData"]["errorCode"] == "REPT_400"
    log = (processes.folder / f"serve-{port}.stderr").read_text()
    warnings = [json.loads(line) for line in log.splitlines() if "Invalid request" in line]
    assert [entry["message"].endswith(f"'{WITHHELD}'") for entry in warnings] == [True]
    assert token.encode() not in answer
    assert token not in log


def test_a_path_with_unicode_line_breaks_is_logged_on_one_line(
    processes: Processes, service_env: dict[str, str]
) -> None:
    base = processes.serve(service_env)
    host, port = base.removeprefix("http://").split(":")
    request = f"GET {DOWNLOAD}/x%C2%85y%E2%80%A8z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(request.encode())
        answer = _read_until_closed(conn)  # gunicorn closes after writing the access line

    assert answer.startswith(b"HTTP/1.1 404 ")
    log = (processes.folder / f"serve-{port}.stderr").read_text()
    entries = [json.loads(line) for line in log.splitlines()]
    paths = [entry["path"] for entry in entries if "path" in entry]
    assert paths == [f"{DOWNLOAD}/x\u0085y\u2028z".encode().decode("latin-1")]


def _read_until_closed(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_readyz_follows_the_s3_bucket_on_a_real_s3_server(
    processes: Processes, s3_env: dict[str, str]
) -> None:
    base = processes.serve(s3_env)
    assert requests.get(f"{base}/readyz", timeout=30).status_code == 200
    boto3.client(
        "s3",
        endpoint_url=s3_env["REPORTING_SVC_S3_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).delete_bucket(Bucket=s3_env["REPORTING_SVC_S3_BUCKET"])

    ready = requests.get(f"{base}/readyz", timeout=30)

    assert ready.status_code == 503
    assert "S3 bucket" in ready.json()["errorData"]["details"]
