"""The audit database goes away and comes back: downloads refused meanwhile, served after."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from harness import postgres
from tests.support import DOWNLOAD, STUDY

pytestmark = pytest.mark.integration


def poll(url: str, headers: dict[str, str], wanted: int, timeout: float = 60) -> requests.Response:
    """GET until the status is ``wanted`` or the timeout; returns the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(url, headers=headers, timeout=30)
        if answer.status_code == wanted or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_downloads_are_refused_while_the_audit_database_is_down_and_served_when_it_returns(
    tmp_path: Path,
    own_postgres: postgres.Postgres,
    service_env: dict[str, str],
    serve: Any,
    cli: Any,
    cli_publish: Any,
    cli_token: Any,
) -> None:
    owner_url = own_postgres.create_database()
    env = {
        **service_env,
        "REPORTING_SVC_AUDIT_SINK": "postgres",
        "REPORTING_SVC_AUDIT_URL": own_postgres.create_service_role(owner_url, "reporting_svc"),
    }
    (tmp_path / "r.csv").write_bytes(b"a,b\n1,2\n")
    job = cli_publish(env, tmp_path / "r.csv")["id"]
    bearer = {"Authorization": f"Bearer {cli_token(env, f'{STUDY}:test:REPORTING_VIEW')}"}
    base = serve(env)
    url = f"{base}{DOWNLOAD}?id={job}"

    before = requests.get(url, headers=bearer, timeout=30)
    own_postgres.halt()
    refused = requests.get(url, headers=bearer, timeout=30)
    unauthenticated = requests.get(url, timeout=30)
    not_ready = requests.get(f"{base}/readyz", timeout=30)
    own_postgres.resume()
    after = poll(url, bearer, 200)
    ready = requests.get(f"{base}/readyz", timeout=30)
    records = cli("audit", "show", "--json", env=env).stdout

    assert before.status_code == 200 and before.content == b"a,b\n1,2\n"
    assert refused.status_code == 503
    assert refused.json()["errorData"]["errorMessage"] == "Audit trail unavailable"
    assert unauthenticated.status_code == 401
    assert not_ready.status_code == 503
    assert "the audit database cannot be reached" in not_ready.json()["errorData"]["details"]
    assert after.status_code == 200 and after.content == b"a,b\n1,2\n"
    assert ready.status_code == 200
    assert after.headers["X-Request-ID"] in records
    assert cli("audit", "verify", env=env).stdout.startswith("OK: ")
