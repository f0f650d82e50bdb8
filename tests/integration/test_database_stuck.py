"""A database that is stuck (frozen) or slowed (locked) is a quick 503 where it is needed,
and nothing else waits for it: health and metrics answer throughout, and the service
recovers by itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from harness import postgres
from reporting_svc.catalog.bounds import DatabaseLimits
from reporting_svc.catalog.engine import ProcessEngine
from tests.support import DOWNLOAD, DOWNLOAD_LIST, STUDY

pytestmark = pytest.mark.integration

#: Threads of the server: 2 workers of 4, so the burst below outnumbers them three times.
THREADS = {"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4"}
BURST = 24
#: Every answer must come within this: the client gives up (and the test fails) past it.
DEADLINE = 15
#: The audit chain's advisory lock (reporting_svc.audit.database.APPEND_LOCK).
APPEND_LOCK = 0x52505443


@pytest.fixture
def stuck_service(
    tmp_path: Path,
    own_postgres: postgres.Postgres,
    service_env: dict[str, str],
    serve: Callable[..., str],
    cli_publish: Callable[..., dict[str, Any]],
    cli_token: Callable[..., str],
) -> Callable[..., dict[str, str]]:
    """``stuck_service(**settings)``: the service on PostgreSQL (catalog and audit trail),
    serving as the deployment guide's role, with one report the owner published; returns the URLs
    that need the database, the token and the owner's libpq URL."""

    def start(**settings: str) -> dict[str, str]:
        database = own_postgres.create_database()
        owner = {
            **service_env,
            **THREADS,
            **{f"REPORTING_SVC_{name.upper()}": value for name, value in settings.items()},
            "REPORTING_SVC_AUDIT_SINK": "postgres",
            "REPORTING_SVC_CATALOG_URL": database,
        }
        role = own_postgres.create_service_role(database, "reporting_svc")
        env = {**owner, "REPORTING_SVC_CATALOG_URL": role}
        (tmp_path / "r.csv").write_bytes(b"a,b\n1,2\n")
        job = cli_publish(owner, tmp_path / "r.csv")["id"]
        base = serve(env)
        return {
            "base": base,
            "download": f"{base}{DOWNLOAD}?id={job}",
            "list": f"{base}{DOWNLOAD_LIST}?studyId={STUDY}&limit=10&offset=0",
            "readyz": f"{base}/readyz",
            "token": cli_token(env, f"{STUDY}:test:REPORTING_VIEW"),
            "database": database.replace("+psycopg", ""),
        }

    return start


def get(url: str, token: str | None) -> requests.Response:
    """One GET that must be answered within DEADLINE (requests raises past it)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(url, headers=headers, timeout=DEADLINE)


def eventually(url: str, token: str, wanted: int = 200, within: float = 30) -> int:
    """GET until the status is ``wanted`` or ``within`` seconds passed; the last status."""
    deadline = time.monotonic() + within
    while (status := get(url, token).status_code) != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    return status


def assert_refused(answers: list[requests.Response]) -> None:
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json()["errorData"]["errorCode"] == "REPT_503"
        assert answer.headers["Retry-After"]


def test_a_frozen_database_is_a_quick_503_and_health_and_metrics_answer_throughout(
    own_postgres: postgres.Postgres, stuck_service: Callable[..., dict[str, str]]
) -> None:
    urls = stuck_service()
    token = urls["token"]
    needing = [urls["download"], urls["list"], urls["readyz"]] * (BURST // 4)
    anonymous = [urls["download"]] * (BURST // 4)
    assert [get(url, token).status_code for url in needing[:3]] == [200, 200, 200]

    own_postgres.freeze()
    try:
        with ThreadPoolExecutor(BURST + 2) as pool:
            burst = [pool.submit(get, url, token) for url in needing]
            unrecorded = [pool.submit(get, url, None) for url in anonymous]
            time.sleep(1)  # the burst holds every thread of the server now
            health = [get(f"{urls['base']}{path}", None) for path in ("/healthz", "/metrics")]
            answers = [future.result() for future in burst]
            refusals = [future.result().status_code for future in unrecorded]
        later = [get(url, token) for url in needing[:3]]
    finally:
        own_postgres.thaw()

    assert [answer.status_code for answer in health] == [200, 200]
    assert refusals == [401] * len(anonymous)
    assert_refused(answers + later)
    assert "cannot be reached" in later[2].json()["errorData"]["details"]
    assert [eventually(url, token) for url in needing[:3]] == [200, 200, 200]


def test_a_locked_table_or_chain_is_a_503_within_the_lock_timeout(
    stuck_service: Callable[..., dict[str, str]],
) -> None:
    urls = stuck_service(database_lock_timeout="1", database_statement_timeout="2")
    token = urls["token"]
    needing = [urls["download"], urls["list"], urls["readyz"]]
    assert [get(url, token).status_code for url in needing] == [200, 200, 200]

    locker = psycopg.connect(urls["database"])
    try:
        locker.execute(f"SELECT pg_advisory_xact_lock({APPEND_LOCK})")
        locker.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        slowed = [get(url, token) for url in needing]
    finally:
        locker.close()

    assert_refused(slowed)
    assert "lock timeout" in slowed[2].json()["errorData"]["details"]
    assert [eventually(url, token) for url in needing] == [200, 200, 200]


@pytest.mark.parametrize(
    ("limits", "statement_timeout", "lock_timeout"),
    [(DatabaseLimits(statement=7, lock=2), "7s", "2s"), (None, "0", "10s")],
)
def test_the_server_bounds_statements_and_locks_and_keeps_the_urls_own_options(
    postgres_url: str, limits: DatabaseLimits | None, statement_timeout: str, lock_timeout: str
) -> None:
    url = f"{postgres_url}?options=-c%20application_name%3Dmine"
    with ProcessEngine(url, limits=limits).reading() as connection:
        shown = [
            connection.exec_driver_sql(f"SHOW {name}").scalar()
            for name in ("statement_timeout", "lock_timeout", "application_name")
        ]
    assert shown == [statement_timeout, lock_timeout, "mine"]
