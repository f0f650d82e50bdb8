"""What nginx answers itself comes in the API's envelope; the service's answers pass through.

nginx answers on its own when gunicorn is down (502) and when the file behind an
X-Accel-Redirect is not the one the service checked: gone (404) or shorter (416). The
store nginx reads is pointed elsewhere for that, as a wrong ``alias`` or a store changed
between the service's check and nginx's open would do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from harness.processes import free_port
from tests.integration.processes import (
    Processes,
    publish_with_cli,
    service_env,
    token_with_cli,
)
from tests.support import DOWNLOAD, STUDY

pytestmark = pytest.mark.integration

SIZE = 10_000


@dataclass
class Accel:
    """A service in x-accel mode with one report, and how to put an nginx in front of it."""

    url: str
    store_root: Path
    record: dict[str, str]
    token: str
    front: Callable[[str, Path], str]

    def get(self, base: str, **headers: str) -> requests.Response:
        return requests.get(
            f"{base}{DOWNLOAD}",
            params={"id": self.record["id"]},
            headers={"Authorization": f"Bearer {self.token}", "X-Request-ID": "edge-1", **headers},
            timeout=30,
        )


@pytest.fixture(scope="module")
def accel(module_processes: Processes) -> Accel:
    folder = module_processes.folder
    env = {**service_env(folder), "REPORTING_SVC_LOCAL_DELIVERY": "x-accel"}
    path = folder / "extract.csv"
    path.write_bytes(os.urandom(SIZE))
    record = publish_with_cli(env, path)
    token = token_with_cli(env, f"{STUDY}:test:REPORTING_VIEW")
    url = module_processes.serve(env)
    return Accel(
        url, Path(env["REPORTING_SVC_LOCAL_ROOT"]), record, token, module_processes.behind_nginx
    )


def _store_with(folder: Path, record: dict[str, str], content: bytes | None) -> Path:
    """A store root for nginx holding ``content`` under the job's key (nothing if None)."""
    folder.mkdir()
    if content is not None:
        job = folder / "jobs" / record["id"]
        job.mkdir(parents=True)
        (job / "content").write_bytes(content)
    return folder


def _assert_envelope(response: requests.Response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["errorData"]["errorCode"] == f"REPT_{status}"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-ID"] == "edge-1"
    names = [name.lower() for name in response.raw.headers]
    assert sorted(names) == sorted(set(names))


def test_an_upstream_that_is_down_is_a_502_envelope_with_retry_after(accel: Accel) -> None:
    front = accel.front(f"http://127.0.0.1:{free_port()}", accel.store_root)

    response = accel.get(front)

    _assert_envelope(response, 502)
    assert response.headers["Retry-After"] == "5"


def test_a_file_missing_behind_an_x_accel_redirect_is_a_404_envelope(
    accel: Accel, tmp_path: Path
) -> None:
    front = accel.front(accel.url, _store_with(tmp_path / "empty", accel.record, None))

    _assert_envelope(accel.get(front), 404)


def test_a_range_nginx_cannot_satisfy_is_a_416_envelope_with_nginx_size(
    accel: Accel, tmp_path: Path
) -> None:
    front = accel.front(accel.url, _store_with(tmp_path / "short", accel.record, b"x" * 100))

    response = accel.get(front, Range="bytes=500-599")

    _assert_envelope(response, 416)
    assert response.headers["Content-Range"] == "bytes */100"


def test_a_path_nginx_does_not_serve_is_a_404_envelope(accel: Accel) -> None:
    front = accel.front(accel.url, accel.store_root)

    response = requests.get(f"{front}/elsewhere", headers={"X-Request-ID": "edge-1"}, timeout=30)

    _assert_envelope(response, 404)


@pytest.mark.parametrize(
    ("params", "headers", "status"),
    [
        ({"id": "6A7C29DD011241DFBE1B64399283C860"}, {}, 404),
        ({}, {"Range": f"bytes={SIZE}-"}, 416),
        ({}, {"If-Match": '"0123abcd"'}, 412),
    ],
    ids=["unknown-job", "unsatisfiable", "precondition"],
)
def test_the_services_own_errors_pass_through_nginx_unchanged(
    accel: Accel, params: dict[str, str], headers: dict[str, str], status: int
) -> None:
    front = accel.front(accel.url, accel.store_root)
    sent = {"Authorization": f"Bearer {accel.token}", "X-Request-ID": "edge-1", **headers}
    query = {"id": accel.record["id"], **params}

    direct = requests.get(f"{accel.url}{DOWNLOAD}", params=query, headers=sent, timeout=30)
    proxied = requests.get(f"{front}{DOWNLOAD}", params=query, headers=sent, timeout=30)

    assert proxied.status_code == direct.status_code == status
    assert proxied.content == direct.content
