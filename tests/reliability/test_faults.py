"""Faults: the S3 server gone or killed, clients leaving, files lost, a full audit disk."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.processes import children, stop
from reporting_svc.storage.layout import content_key
from tests.integration.processes import Processes, run_cli, s3_client
from tests.reliability.clients import error_data, read_head, read_to_end, send_download
from tests.reliability.deployments import (
    Deployment,
    deploy,
    wait_for_records,
    wait_for_workers,
)
from tests.reliability.kills import downloading
from tests.reliability.s3_front import s3_front

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

SMALL = os.urandom(64 * 1024)
# Far more than every socket buffer between S3, the worker and the client can hold, so a
# fault half way through really lands half way through.
LARGE = os.urandom(64 * 1024 * 1024)
CHUNK = 64 * 1024


def get(deployment: Deployment, report: str, request_id: str, **options: Any) -> Any:
    headers = {"Authorization": f"Bearer {deployment.token}", "X-Request-ID": request_id}
    return requests.get(deployment.download_url(report), headers=headers, timeout=120, **options)


def error_lines(deployment: Deployment) -> list[str]:
    """The messages the server logged at level error (its stderr is JSON lines)."""
    messages = []
    for line in deployment.stderr.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if str(entry.get("level", "")).lower() == "error":
            messages.append(str(entry.get("message", "")))
    return messages


def assert_store_envelope(response: requests.Response, endpoint: str) -> None:
    """A 503 envelope with Retry-After that shows nothing of S3: no XML, address or header."""
    assert response.status_code == 503
    assert error_data(response)["errorCode"] == "REPT_503"
    assert int(response.headers["Retry-After"]) > 0
    for secret in ("<Error>", "AccessDenied", "expired", endpoint.removeprefix("http://")):
        assert secret not in response.text
    assert not [name for name in response.headers if name.lower().startswith("x-amz")]


@pytest.mark.parametrize("mode", ["proxy", "s3 x-accel"])
def test_s3_server_stopped_before_a_request_gives_503_envelope_with_retry_after(
    processes: Processes, mode: str
) -> None:
    """The service's own look at the job fails first, in either mode."""
    endpoint = processes.moto_server()
    s3 = processes.started[-1]
    deployment = deploy(processes, mode, {"r.bin": SMALL}, moto=endpoint, workers=1)
    stop(s3)

    response = get(deployment, "r.bin", "s3-down")

    assert_store_envelope(response, endpoint)
    records = wait_for_records(deployment.audit_file, {"s3-down": 1})["s3-down"]
    assert [(r["event"], r["status"]) for r in records] == [("refused", 503)]


def read_while_killing(deployment: Deployment, s3: Any) -> tuple[bytearray, Exception | None, int]:
    """Download slowly, kill the S3 server 2 MiB in, read on: (bytes, error, Content-Length)."""
    received = bytearray()
    failure: Exception | None = None

    with get(deployment, "large.bin", "s3-killed", stream=True) as response:
        assert response.status_code == 200
        length = int(response.headers["Content-Length"])
        chunks = response.iter_content(CHUNK)
        try:
            while len(received) < 2 * 1024 * 1024:  # a slow reader: the worker waits on us
                received += next(chunks)
                time.sleep(0.01)
            os.killpg(s3.pid, signal.SIGKILL)
            s3.wait()
            for chunk in chunks:
                received += chunk
        except (requests.RequestException, OSError) as error:
            failure = error
    return received, failure, length


def test_s3_server_killed_mid_stream_gives_a_short_body_and_an_incomplete_record(
    processes: Processes,
) -> None:
    endpoint = processes.moto_server()
    s3 = processes.started[-1]
    deployment = deploy(
        processes,
        "proxy",
        {"large.bin": LARGE},
        moto=endpoint,
        workers=1,
        REPORTING_SVC_S3_CHUNK_SIZE=str(CHUNK),
    )
    received, failure, length = read_while_killing(deployment, s3)

    assert failure is not None or len(received) < length, "a complete-looking body"
    assert len(received) < length
    assert received == LARGE[: len(received)]
    records = wait_for_records(deployment.audit_file, {"s3-killed": 2})["s3-killed"]
    assert [r["event"] for r in records] == ["start", "end"]
    assert records[1]["complete"] is False
    assert len(received) <= records[1]["bytesSent"] < length


def content_files_open(pid: int, deployment: Deployment) -> list[str]:
    """The report files among the process's open descriptors."""
    root = deployment.env["REPORTING_SVC_LOCAL_ROOT"]
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(root):
            targets.append(target)
    return targets


def test_client_leaving_mid_stream_frees_the_stream_and_keeps_the_worker(
    processes: Processes,
) -> None:
    """One worker, so "the same worker serves the next request" is what is checked."""
    deployment = deploy(processes, "stream", {"large.bin": LARGE}, workers=1)
    # The port answers once the master listens, which may be before its worker exists.
    [worker] = workers_before = wait_for_workers(deployment.master, 1)

    with send_download(deployment, "large.bin", "walked-away", receive_buffer=16384) as sock:
        status, _, body = read_head(sock)
        while len(body) < CHUNK:
            body += sock.recv(CHUNK)
        assert content_files_open(worker, deployment) != []  # the stream is live

    records = wait_for_records(deployment.audit_file, {"walked-away": 2})["walked-away"]
    assert status == 200
    assert [r["event"] for r in records] == ["start", "end"]
    assert records[1]["complete"] is False
    assert 0 < records[1]["bytesSent"] < len(LARGE)
    assert content_files_open(worker, deployment) == []
    assert children(deployment.master) == workers_before
    response = get(deployment, "large.bin", "after-walk")
    assert response.status_code == 200
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(LARGE).digest()
    assert children(deployment.master) == workers_before


def delete_file(deployment: Deployment, job_id: str) -> None:
    """Remove a job's file from the store behind the service's back; the record stays."""
    if deployment.mode == "stream":
        (Path(deployment.env["REPORTING_SVC_LOCAL_ROOT"]) / content_key(job_id)).unlink()
        return
    s3_client(deployment.env["REPORTING_SVC_S3_ENDPOINT_URL"]).delete_object(
        Bucket=deployment.env["REPORTING_SVC_S3_BUCKET"],
        Key=deployment.env["REPORTING_SVC_S3_PREFIX"] + content_key(job_id),
    )


@pytest.mark.parametrize("mode", ["stream", "proxy"])
def test_file_deleted_under_a_live_record_gives_500_envelope_and_logs_an_error(
    processes: Processes, moto_server: str, mode: str
) -> None:
    deployment = deploy(processes, mode, {"r.bin": SMALL}, moto=moto_server, workers=1)
    job_id = deployment.jobs["r.bin"]
    assert get(deployment, "r.bin", "before-delete").content == SMALL
    delete_file(deployment, job_id)

    response = get(deployment, "r.bin", "after-delete")

    assert response.status_code == 500
    assert error_data(response)["errorCode"] == "REPT_500"
    for secret in ("Traceback", "jobs/", "/content", deployment.env.get("REPORTING_SVC_S3_BUCKET")):
        assert secret is None or secret not in response.text
    assert deployment.env["REPORTING_SVC_LOCAL_ROOT"] not in response.text
    records = wait_for_records(deployment.audit_file, {"after-delete": 1})["after-delete"]
    assert [(r["event"], r["status"]) for r in records] == [("refused", 500)]
    assert any(job_id in message for message in error_lines(deployment)), error_lines(deployment)


def test_full_audit_disk_refuses_downloads_with_503_and_still_answers_401(
    processes: Processes,
) -> None:
    deployment = deploy(
        processes, "stream", {"r.bin": SMALL}, workers=1, REPORTING_SVC_AUDIT_FILE="/dev/full"
    )

    with send_download(deployment, "r.bin", "disk-full") as sock:
        status, headers, body = read_head(sock)
        body += read_to_end(sock)
    unauthenticated = requests.get(deployment.download_url("r.bin"), timeout=30)

    assert status == 503
    assert int(headers["retry-after"]) > 0
    assert headers["content-type"] == "application/json"
    assert len(body) == int(headers["content-length"])
    envelope = json.loads(body)
    assert envelope["errorData"]["errorCode"] == "REPT_503"
    assert SMALL[:32] not in body and SMALL[-32:] not in body
    assert unauthenticated.status_code == 401
    assert error_data(unauthenticated)["errorCode"] == "REPT_401"
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Bearer")
    assert any("disk-full" in message for message in error_lines(deployment))


def fill(volume: Path) -> Path:
    """Fill the volume with another file until no byte more fits; returns the file."""
    filler = volume / "filler"
    with filler.open("wb", buffering=0) as handle:
        for size in (64 * 1024, 4096, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError:
                continue
    return filler


def test_a_full_audit_disk_serves_again_as_soon_as_space_is_freed(
    small_volume: Path, processes: Processes
) -> None:
    """16-way downloads while another file fills the trail's volume: 503 (or a record that
    still fits), never a torn record left behind, and 200 again once the file is gone."""
    deployment = deploy(
        processes,
        "stream",
        {"r.bin": SMALL},
        workers=2,
        REPORTING_SVC_AUDIT_FILE=str(small_volume / "audit.jsonl"),
    )
    assert get(deployment, "r.bin", "before-full").status_code == 200
    filler = fill(small_volume)

    with downloading(deployment, 16) as attempts:
        time.sleep(2)
    filler.unlink()
    after = get(deployment, "r.bin", "space-again")

    assert {attempt.status for attempt in attempts} <= {200, 503}
    assert 503 in {attempt.status for attempt in attempts}
    assert after.status_code == 200
    verified = run_cli("audit", "verify", env=deployment.env, check=False)
    assert (verified.returncode, verified.stdout[:4]) == (0, "OK: "), verified.stdout


# --- S3 x-accel: nginx relays from S3, and S3's failures reach the client as envelopes --


def test_s3_stopped_after_the_service_remembered_the_job_is_a_503_envelope_from_nginx(
    processes: Processes,
) -> None:
    """Within the cache's seconds the service hands over without asking S3; nginx then
    cannot connect, and answers in the envelope, never with a hang or a bare 502."""
    endpoint = processes.moto_server()
    s3 = processes.started[-1]
    deployment = deploy(
        processes,
        "s3 x-accel",
        {"r.bin": SMALL},
        moto=endpoint,
        workers=1,
        REPORTING_SVC_S3_CACHE_SECONDS="9",
    )
    assert get(deployment, "r.bin", "s3-up").content == SMALL
    stop(s3)

    response = get(deployment, "r.bin", "s3-gone")

    assert_store_envelope(response, endpoint)


def test_an_object_deleted_while_the_service_remembers_it_is_a_500_envelope_from_nginx(
    processes: Processes, moto_server: str
) -> None:
    deployment = deploy(
        processes,
        "s3 x-accel",
        {"r.bin": SMALL},
        moto=moto_server,
        workers=1,
        REPORTING_SVC_S3_CACHE_SECONDS="9",
    )
    assert get(deployment, "r.bin", "before-delete").content == SMALL
    delete_file(deployment, deployment.jobs["r.bin"])

    response = get(deployment, "r.bin", "after-delete")

    # S3 answers a missing object 404 (nginx: 500) to a caller that may list the bucket,
    # else 403 (nginx: 503), as moto's server does for a presigned URL.
    assert response.status_code in (500, 503)
    assert error_data(response)["errorCode"] == f"REPT_{response.status_code}"
    for secret in ("NoSuchKey", "<Error>", "Signature"):
        assert secret not in response.text


@pytest.mark.parametrize(
    ("lifetime", "delay", "expired"),
    [(3, 0.0, False), (1, 2.5, True)],
    ids=["used-at-once", "used-too-late"],
)
def test_a_presigned_url_expired_before_nginx_used_it_is_an_envelope_never_s3s_xml(
    processes: Processes, moto_server: str, lifetime: int, delay: float, expired: bool
) -> None:
    """The URL lives ``lifetime`` seconds; the front holds nginx's fetch ``delay`` seconds,
    then checks it. ``X-Amz-Date`` drops the signing second's fraction, so a URL's life
    is up to a second shorter than its lifetime: one used at once is given 3 s, not 1 s,
    or a slow host would see it expire on the way."""
    with s3_front(moto_server, delay) as endpoint:
        deployment = deploy(
            processes,
            "s3 x-accel",
            {"r.bin": SMALL},
            moto=endpoint,
            workers=1,
            REPORTING_SVC_X_ACCEL_PRESIGN_EXPIRES=str(lifetime),
        )

        response = get(deployment, "r.bin", "late-url")

    if expired:
        assert_store_envelope(response, endpoint)
    else:
        assert response.status_code == 200
        assert response.content == SMALL


def test_s3_killed_mid_relay_gives_the_client_a_short_body(processes: Processes) -> None:
    endpoint = processes.moto_server()
    s3 = processes.started[-1]
    deployment = deploy(processes, "s3 x-accel", {"large.bin": LARGE}, moto=endpoint, workers=1)

    received, failure, length = read_while_killing(deployment, s3)

    assert failure is not None or len(received) < length, "a complete-looking body"
    assert len(received) < length
    assert received == LARGE[: len(received)]
    records = wait_for_records(deployment.audit_file, {"s3-killed": 2})["s3-killed"]
    assert [r["event"] for r in records] == ["start", "end"]
    logged = [
        json.loads(line)
        for line in deployment.nginx_access_log.read_text().splitlines()
        if '"s3-killed"' in line
    ]
    assert [entry["bytesSent"] < length for entry in logged] == [True]
