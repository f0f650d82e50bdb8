"""PostgreSQL with a synchronous standby under the service (docs/deploying.md,
"PostgreSQL failover").

The catalog and the audit trail share one database on a primary whose commits wait for
a streaming standby's flush; the service reaches the pair through libpq's multi-host URL
(``target_session_attrs=read-write``) as the deployment guide's service role.

A lost standby stops every commit on the primary: on the several-hosts recipe (three
hosts behind nginx), downloads are refused with a quick 503 and served again once it
returns. A primary lost under 64-way load (SIGKILL of all its processes) and the standby
promoted: downloads are served again without a restart, and each download answered 200
has its ``start`` record on the promoted server. That test leaves a single server, so it
runs on a pair and a host of its own rather than on the session's recipe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from harness import postgres, several_hosts
from harness.processes import children
from reporting_svc.auth.grants import parse_grant
from reporting_svc.auth.tokens import mint_token
from reporting_svc.catalog import make_catalog
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import load_settings
from tests.integration.processes import Processes, run_cli, service_env
from tests.reliability.deployments import make_test_store
from tests.support import DOWNLOAD, STUDY

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

CLIENTS = 64
REPORT = os.urandom(64 * 1024)
#: Every answer must come within this: the client gives up (and the test fails) past it.
DEADLINE = 20
#: How long the clients download before the primary is lost, and after the first 200
#: that followed it.
STEADY = 3


@dataclass(frozen=True)
class Service:
    """The service on the replicated pair: its download URL, token and database's name."""

    base: str
    download: str
    token: str
    database: str
    env: dict[str, str]


@dataclass(frozen=True)
class Outcome:
    """One download: its request id, when it was sent and answered, its status and whether
    its body was the report's (None: no answer at all)."""

    request_id: str
    sent: float
    done: float
    status: int | None
    whole: bool
    code: str | None


@pytest.fixture
def on_recipe(recipe: several_hosts.State, tmp_path: Path) -> Service:
    """REPORT published by the recipe's owner into a study of its own, downloaded through
    the recipe's nginx."""
    settings, store, catalog = several_hosts.as_owner(recipe)
    study = uuid.uuid4().hex.upper()
    (tmp_path / "report.bin").write_bytes(REPORT)
    record = publish_report(
        store,
        tmp_path / "report.bin",
        catalog=catalog,
        report_name="Extract",
        mode="test",
        study_id=study,
    )
    return Service(
        base=recipe.balancer,
        download=f"{recipe.balancer}{DOWNLOAD}?id={record.id}",
        token=mint_token(settings, "alice", [parse_grant(f"{study}:test:REPORTING_VIEW")], 3600),
        database=several_hosts.DATABASE,
        env=recipe.auditor_env(),
    )


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[postgres.Postgres, postgres.Postgres]]:
    """A primary and its synchronous standby, stopped when the module ends."""
    primary = postgres.start(replicated=True)
    try:
        standby = postgres.start_standby(primary)
    except Exception:
        primary.stop()
        raise
    yield primary, standby
    standby.stop()
    primary.stop()


@pytest.fixture(scope="module")
def service(
    pair: tuple[postgres.Postgres, postgres.Postgres], module_processes: Processes
) -> Service:
    """One report published by the owner, served by 2 workers that reach the pair as
    the documented service role through the multi-host URL."""
    primary, _ = pair
    database = primary.create_database().rsplit("/", 1)[1]
    owner = {
        **service_env(module_processes.folder),
        "REPORTING_SVC_CATALOG_URL": postgres.failover_url(pair, database),
        "REPORTING_SVC_AUDIT_SINK": "postgres",
        # Admission is not what this test checks: each worker has a thread and a slot for
        # every client and its next request (sent as the last one's slot is given back).
        "GUNICORN_THREADS": str(2 * CLIENTS + 2),
        "REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT": str(2 * CLIENTS),
    }
    # The guide's roles block runs the migrations as the owner, before anything uses them.
    primary.create_service_role(primary.url(database), "reporting_svc")
    settings = load_settings(owner)
    upstream = module_processes.folder / "report.bin"
    upstream.write_bytes(REPORT)
    record = publish_report(
        make_test_store(settings),
        upstream,
        catalog=make_catalog(settings),
        report_name="Extract",
        mode="test",
        study_id=STUDY,
    )
    served = {
        **owner,
        "REPORTING_SVC_CATALOG_URL": postgres.failover_url(pair, database, user="reporting_svc"),
    }
    base = module_processes.serve(served)
    return Service(
        base=base,
        download=f"{base}{DOWNLOAD}?id={record.id}",
        token=mint_token(settings, "alice", [parse_grant(f"{STUDY}:test:REPORTING_VIEW")], 3600),
        database=database,
        env=served,
    )


def download(service: Service, session: requests.Session | None = None) -> Outcome:
    """One download, answered within DEADLINE or recorded as not answered."""
    request_id = uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {service.token}", "X-Request-ID": request_id}
    sent = time.monotonic()
    try:
        answer = (session or requests).get(service.download, headers=headers, timeout=DEADLINE)
    except requests.RequestException:
        return Outcome(request_id, sent, time.monotonic(), None, False, None)
    code = None if answer.ok else error_code(answer)
    whole = hashlib.sha256(answer.content).digest() == hashlib.sha256(REPORT).digest()
    return Outcome(request_id, sent, time.monotonic(), answer.status_code, whole, code)


def error_code(answer: requests.Response) -> str:
    """The error envelope's code, or what was answered instead of an envelope."""
    try:
        return str(answer.json()["errorData"]["errorCode"])
    except (ValueError, KeyError, TypeError):
        return f"no envelope: {answer.headers.get('Content-Type')} {answer.text[:200]!r}"


def served_again(service: Service, within: float = 30) -> bool:
    """Download until one is answered 200, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while download(service).status != 200:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_the_recipes_standby_lost_is_a_quick_503_and_downloads_come_back_with_it(
    recipe: several_hosts.State, on_recipe: Service, record_property: Any
) -> None:
    standby = recipe.pids["postgres standby"]
    assert download(on_recipe).status == 200

    signal_server(standby, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(16) as pool:
            burst = list(pool.map(lambda _: download(on_recipe), range(16)))
        later = [download(on_recipe) for _ in range(3)]
        health = [
            requests.get(f"{url}/healthz", timeout=DEADLINE).status_code
            for url in recipe.hosts.values()
        ]
        with psycopg.connect(
            recipe.database["owner"].replace("+psycopg", ""), user=postgres.SUPERUSER
        ) as primary:
            (stuck,) = primary.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
            ).fetchone() or (0,)
    finally:
        signal_server(standby, signal.SIGCONT)

    record_property("commits_waiting_for_the_standby", stuck)
    assert stuck >= 1  # the primary waited for the standby, it refused nothing
    assert [(o.status, o.code) for o in burst + later] == [(503, "REPT_503")] * 19
    assert health == [200] * len(recipe.hosts)
    assert served_again(on_recipe)


def signal_server(postmaster: int, number: signal.Signals) -> None:
    """Send ``number`` to a PostgreSQL server's postmaster and every process it started
    (SIGSTOP: a standby lost, whose kernel still holds its connections open)."""
    for pid in [postmaster, *children(postmaster)]:
        with contextlib.suppress(ProcessLookupError):  # a backend that just ended
            os.kill(pid, number)


def test_the_primary_lost_under_load_the_promoted_standby_holds_every_200s_start(
    pair: tuple[postgres.Postgres, postgres.Postgres],
    service: Service,
    record_property: Any,
) -> None:
    primary, standby = pair
    outcomes, lost_at = load_through_failover(service, primary, standby)

    after = [o for o in outcomes if o.sent > lost_at and o.status == 200]
    assert after, "no download was answered 200 after the primary was lost"
    record_property("kill_to_first_200_s", round(min(o.done for o in after) - lost_at, 2))
    record_property("downloads", len(outcomes))
    record_property("refused_503", sum(o.status == 503 for o in outcomes))
    assert [o for o in outcomes if o.status is None] == []  # every download was answered
    assert {(o.status, o.code) for o in outcomes} <= {(200, None), (503, "REPT_503")}
    assert all(o.whole for o in outcomes if o.status == 200)

    rows = standby.psql("SELECT line FROM audit_records WHERE chain = 'live'", service.database)
    started = {
        record["requestId"]
        for record in map(json.loads, filter(None, rows.splitlines()))  # lines end in \n
        if record["event"] == "start"
    }
    assert [o.request_id for o in outcomes if o.status == 200 and o.request_id not in started] == []
    assert run_cli("audit", "verify", env=service.env).stdout.startswith("OK: ")


def load_through_failover(
    service: Service, primary: postgres.Postgres, standby: postgres.Postgres
) -> tuple[list[Outcome], float]:
    """CLIENTS clients download; after STEADY seconds the primary is lost and the standby
    promoted at once; they go on until STEADY seconds past the first 200 after the loss
    (or DEADLINE). Returns every outcome and when the primary was lost."""
    stop_at = threading.Event()

    def client() -> list[Outcome]:
        done = []
        with requests.Session() as session:
            while not stop_at.is_set():
                done.append(download(service, session))
        return done

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        running = [pool.submit(client) for _ in range(CLIENTS)]
        try:
            time.sleep(STEADY)
            lost_at = time.monotonic()
            primary.crash()
            standby.promote()
            served_again(service, within=DEADLINE)
            time.sleep(STEADY)
        finally:
            stop_at.set()
        outcomes = [outcome for future in running for outcome in future.result()]
    return outcomes, lost_at
