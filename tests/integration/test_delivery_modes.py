"""Ranges, revalidation, HEAD and resumed downloads in all five delivery modes, black-box.

``stream`` and ``x-accel`` run gunicorn behind the project's nginx; ``proxy`` and
``redirect`` run gunicorn against moto's S3 server; ``s3 x-accel`` runs gunicorn behind
nginx, which relays from moto's S3 server. Clients are real: requests, curl, wget.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.processes import (
    Processes,
    publish_with_cli,
    s3_env,
    service_env,
    token_with_cli,
)
from tests.support import DOWNLOAD, STUDY

pytestmark = pytest.mark.integration

MODES = ["stream", "x-accel", "proxy", "redirect", "s3 x-accel"]
# The S3 modes: each mode's value of REPORTING_SVC_S3_DELIVERY.
S3_DELIVERY = {"proxy": "proxy", "redirect": "redirect", "s3 x-accel": "x-accel"}
GRANT = f"{STUDY}:test:REPORTING_VIEW"


@dataclass
class Deployment:
    """A running service in one delivery mode, one published report and a token for it."""

    mode: str
    url: str
    token: str
    content: bytes
    record: dict[str, Any]

    @property
    def etag(self) -> str:
        return f'"{self.record["sha256"]}"'

    def get(self, *, method: str = "GET", **headers: str) -> requests.Response:
        return requests.request(
            method,
            self.url,
            headers={"Authorization": f"Bearer {self.token}", **headers},
            allow_redirects=method != "HEAD",
            timeout=60,
        )


@pytest.fixture(scope="module", params=MODES)
def deployment(
    request: pytest.FixtureRequest, module_processes: Processes, moto_server: str
) -> Deployment:
    """One deployment per mode, shared by the module's tests: none of them changes it."""
    mode = request.param
    folder = module_processes.folder / mode.replace(" ", "-")
    folder.mkdir()
    env = service_env(folder)
    if mode in S3_DELIVERY:
        env = {**s3_env(env, moto_server), "REPORTING_SVC_S3_DELIVERY": S3_DELIVERY[mode]}
    else:
        env["REPORTING_SVC_LOCAL_DELIVERY"] = mode
    content = os.urandom(4 * 1024 * 1024 + 123)
    path = folder / "extract.zip"
    path.write_bytes(content)
    record = publish_with_cli(env, path)
    base = module_processes.serve(env)
    if mode in ("stream", "x-accel", "s3 x-accel"):
        base = module_processes.behind_nginx(base, Path(env["REPORTING_SVC_LOCAL_ROOT"]))
    url = f"{base}{DOWNLOAD}?id={record['id']}"
    return Deployment(mode, url, token_with_cli(env, GRANT), content, record)


def test_full_download_is_byte_for_byte_with_its_validators(deployment: Deployment) -> None:
    response = deployment.get()

    assert response.status_code == 200
    assert response.content == deployment.content
    if deployment.mode != "redirect":
        assert response.headers["ETag"] == deployment.etag
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["Repr-Digest"].startswith("sha-256=:")
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=1000-1999", 1000, 2000),
        ("bytes=4194000-", 4194000, None),
        ("bytes=-500", -500, None),
    ],
)
def test_single_range_gives_206_with_exactly_those_bytes(
    deployment: Deployment, header: str, start: int, stop: int | None
) -> None:
    response = deployment.get(Range=header)

    expected = deployment.content[start:stop]
    size = len(deployment.content)
    first = start if start >= 0 else size + start
    assert response.status_code == 206
    assert response.content == expected
    assert response.headers["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{size}"
    if deployment.mode != "redirect":
        assert response.headers["ETag"] == deployment.etag


def test_unsatisfiable_range_gives_416_envelope_with_the_size(deployment: Deployment) -> None:
    size = len(deployment.content)

    response = deployment.get(Range=f"bytes={size}-")

    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{size}"
    assert response.json()["errorData"]["errorCode"] == "REPT_416"


def test_multi_range_request_gets_the_whole_file(deployment: Deployment) -> None:
    response = deployment.get(Range="bytes=0-9,100-109")

    assert response.status_code == 200
    assert response.content == deployment.content


def test_if_range_with_the_current_etag_resumes(deployment: Deployment) -> None:
    response = deployment.get(Range="bytes=100-199", **{"If-Range": deployment.etag})

    assert response.status_code == 206
    assert response.content == deployment.content[100:200]


def test_if_range_with_a_stale_etag_gets_the_whole_file(deployment: Deployment) -> None:
    response = deployment.get(Range="bytes=100-199", **{"If-Range": '"' + "0" * 64 + '"'})

    assert response.status_code == 200
    assert response.content == deployment.content


@pytest.mark.parametrize("value", ["{etag}", 'W/"x", {etag}', "*"])
def test_if_none_match_gives_304_without_a_body(deployment: Deployment, value: str) -> None:
    response = deployment.get(**{"If-None-Match": value.format(etag=deployment.etag)})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == deployment.etag


def test_if_none_match_wins_over_if_modified_since(deployment: Deployment) -> None:
    response = deployment.get(
        **{"If-None-Match": '"other"', "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}
    )

    assert response.status_code == 200
    assert response.content == deployment.content


def test_head_gives_the_full_get_headers_and_ignores_range(deployment: Deployment) -> None:
    response = deployment.get(method="HEAD", Range="bytes=0-9")

    assert response.content == b""
    if deployment.mode == "redirect":
        assert response.status_code == 302
        return
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(deployment.content))
    assert "Content-Range" not in response.headers
    assert response.headers["ETag"] == deployment.etag


def test_thousand_random_ranges_are_exact(deployment: Deployment) -> None:
    pick = random.Random(20261129)
    size = len(deployment.content)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {deployment.token}"
    wrong = []
    for _ in range(1000):
        start = pick.randrange(size)
        stop = min(size, start + pick.randrange(1, 64 * 1024))
        response = session.get(
            deployment.url, headers={"Range": f"bytes={start}-{stop - 1}"}, timeout=60
        )
        if response.status_code != 206 or response.content != deployment.content[start:stop]:
            wrong.append((start, stop, response.status_code))
    assert wrong == []


def _interrupted(command: list[str], target: Path, size: int) -> None:
    """Run a download that writes to a pipe and cut it off a third of the way in.

    Closing the pipe kills the client mid-transfer, as a dropped connection would; what
    it delivered until then is the partial file to resume. No rate limit or timer is
    involved, so the cut always lands inside the file.
    """
    client = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert client.stdout is not None
    part = client.stdout.read(size // 3)
    client.stdout.close()
    client.kill()
    client.wait()
    target.write_bytes(part)
    assert len(part) == size // 3, f"the first download ended early at {len(part)} bytes"


def test_curl_resumes_an_interrupted_download_to_an_identical_file(
    deployment: Deployment, tmp_path: Path
) -> None:
    target = tmp_path / "curl.zip"
    auth = ["-H", f"Authorization: Bearer {deployment.token}"]
    _interrupted(["curl", "-sS", "-L", *auth, deployment.url], target, len(deployment.content))

    command = ["curl", "-sS", "-L", "-f", "-o", str(target), "-C", "-", "-w", "%{http_code}"]
    resumed = subprocess.run(
        [*command, *auth, deployment.url],
        timeout=60,
        check=True,
        capture_output=True,
        text=True,
    )

    assert resumed.stdout == "206"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == deployment.record["sha256"]


def test_wget_continues_an_interrupted_download_to_an_identical_file(
    deployment: Deployment, tmp_path: Path
) -> None:
    # wget -c resumes only the file it names itself (with -O it starts again from 0).
    target = tmp_path / deployment.url.rsplit("/", 1)[1]
    auth = f"--header=Authorization: Bearer {deployment.token}"
    _interrupted(["wget", "-q", "-O", "-", auth, deployment.url], target, len(deployment.content))

    resumed = subprocess.run(
        ["wget", "-S", "-c", auth, deployment.url],
        cwd=tmp_path,
        timeout=60,
        check=True,
        capture_output=True,
        text=True,
    )

    assert re.search(r"HTTP/1\.[01] 206 ", resumed.stderr), "wget did not resume with a range"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == deployment.record["sha256"]
