"""Withdrawal and purge against running servers, stores and catalogs (docs/api.md §6).

A withdrawal must reach every gunicorn worker of every host within 10 seconds, without
cutting a download already streaming; purges run from cron on several hosts at once, or
killed half-way, leave each job purged once and on record once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from reporting_svc.audit import make_audit_trail
from reporting_svc.audit.database import APPEND_LOCK, DatabaseSink, rows_of
from reporting_svc.audit.tables import LIVE
from reporting_svc.catalog import make_catalog
from reporting_svc.catalog.commands import upgrade_host_catalog
from reporting_svc.lifecycle import Operator
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import load_settings
from reporting_svc.storage import JobRecord, make_store
from reporting_svc.storage.entries import PurgeRecorded
from tests.integration import processes as p
from tests.support import DOWNLOAD, DOWNLOAD_LIST, STUDY

pytestmark = pytest.mark.integration

GRANT = f"{STUDY}:test:REPORTING_VIEW"
REASON = "unblinded columns in a blinded extract"
DEADLINE = 10.0  # docs/api.md §6: seconds within which every host refuses a withdrawn job
PAST = "2020-01-01T00:00:00.000Z"
# ``python -c GATED READY GATE ARGS``: ``reporting-svc ARGS`` once loaded, says so by
# creating READY, then waits for GATE, so runs started together really start together.
GATED = """
import pathlib, sys, time
from reporting_svc.cli import main
pathlib.Path(sys.argv[1]).touch()
while not pathlib.Path(sys.argv[2]).exists():
    time.sleep(0.001)
sys.exit(main(sys.argv[3:]))
"""


@dataclass(frozen=True)
class Answer:
    """One download attempt: when it was sent (seconds after the withdrawal began), its
    status, and for a 200 whether the body was the whole file."""

    sent: float
    status: int
    whole: bool


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 in this process reads moto's dummy credentials from the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def publish_expired(env: dict[str, str], folder: Path, count: int) -> list[JobRecord]:
    """``count`` jobs published in this process, each already expired; an SQLite catalog
    gets the deploy step the publish command takes first."""
    settings = load_settings(env)
    upgrade_host_catalog(settings)
    store, catalog = make_store(settings), make_catalog(settings)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for number in range(count):
        path = folder / f"extract-{number}.csv"
        path.write_text(f"job {number}\n")
        records.append(
            publish_report(
                store, path, report_name="Extract", mode="test", study_id=STUDY,
                expires_at=PAST, catalog=catalog,
            )
        )  # fmt: skip
    return records


def download_until(urls: list[str], token: str, digest: str, t0: float, end: float) -> list[Answer]:
    """Download from every URL, several at a time on new connections (so every worker
    gets some), until ``end``; each answer timed from ``t0``."""

    def fetch(url: str) -> Answer:
        sent = time.monotonic() - t0
        response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        whole = hashlib.sha256(response.content).hexdigest() == digest
        return Answer(sent, response.status_code, whole)

    answers: list[Answer] = []
    with ThreadPoolExecutor(8) as pool:
        while time.monotonic() < end:
            answers.extend(pool.map(fetch, [url for url in urls for _ in range(4)]))
    return answers


def listed(base: str, token: str) -> int:
    response = requests.get(
        base + DOWNLOAD_LIST,
        params={"studyId": STUDY, "limit": "10", "offset": "0"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    total: int = response.json()["result"]["totalResults"]
    return total


@pytest.fixture
def hosts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[dict[str, str]]]:
    """The environments of the hosts under test: one host on local disk with four
    workers, or two hosts on one S3 store (moto's server) and one PostgreSQL catalog."""
    # The test's 8 downloads at once share one token: give its caller room for them all.
    one_caller = {"REPORTING_SVC_MAX_DOWNLOADS_PER_SUBJECT": "8"}
    if request.param == "local":
        env = {**p.service_env(tmp_path / "host"), "WEB_CONCURRENCY": "4", **one_caller}
        yield [env]
        return
    moto, catalog = request.getfixturevalue("moto_server"), request.getfixturevalue("postgres_url")
    shared = {
        **p.s3_env(p.service_env(tmp_path), moto),
        "REPORTING_SVC_CATALOG_URL": catalog,
        **one_caller,
    }
    p.upgrade_databases(shared)  # the owner's deploy step, before the hosts start
    yield [
        {**shared, "REPORTING_SVC_VAR_DIR": str(tmp_path / name / "var")}
        for name in ("host-a", "host-b")
    ]


def as_served(hosts: list[dict[str, str]], request: pytest.FixtureRequest) -> list[dict[str, str]]:
    """The hosts' environments for ``serve``: a PostgreSQL catalog is reached as the
    the deployment guide's service role (the operator's commands keep the owner's URL)."""
    owner_url = hosts[0].get("REPORTING_SVC_CATALOG_URL")
    if owner_url is None:
        return hosts
    server = request.getfixturevalue("postgres_server")
    role = f"svc_{owner_url.rsplit('/', 1)[1]}"  # roles are the session server's
    served = server.create_service_role(owner_url, role)
    return [{**env, "REPORTING_SVC_CATALOG_URL": served} for env in hosts]


@pytest.mark.parametrize("hosts", ["local", "s3-two-hosts"], indirect=True)
def test_every_worker_of_every_host_refuses_a_withdrawn_job_within_ten_seconds(
    hosts: list[dict[str, str]],
    processes: p.Processes,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    content = os.urandom(8 * 1024 * 1024)
    (tmp_path / "extract.zip").write_bytes(content)
    record = p.publish_with_cli(hosts[0], tmp_path / "extract.zip")
    token = p.token_with_cli(hosts[0], GRANT)
    bases = [processes.serve(env) for env in as_served(hosts, request)]
    urls = [f"{base}{DOWNLOAD}?id={record['id']}" for base in bases]
    digest = record["sha256"]
    warm = download_until(urls, token, digest, time.monotonic(), time.monotonic() + 1)
    assert {(a.status, a.whole) for a in warm} == {(200, True)}
    streaming = requests.get(
        urls[-1], headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=30
    )
    first = streaming.raw.read(64 * 1024)

    t0 = time.monotonic()
    p.run_cli("withdraw", record["id"], "--reason", REASON, "--by", "ops-anna", env=hosts[0])
    totals = [listed(base, token) for base in bases]
    answers = download_until(urls, token, digest, t0, t0 + DEADLINE + 1.5)

    rest = streaming.raw.read()
    assert hashlib.sha256(first + rest).hexdigest() == digest, "a running download was cut"
    assert totals == [0] * len(bases)
    assert {(a.status, a.whole) for a in answers} <= {(200, True), (410, False)}
    late = [a.status for a in answers if a.sent >= DEADLINE]
    assert len(late) >= 8 and set(late) == {410}


@pytest.mark.parametrize("hosts", ["local", "s3-two-hosts"], indirect=True)
def test_purges_racing_on_one_store_purge_and_record_each_job_once(
    hosts: list[dict[str, str]], tmp_path: Path, aws_credentials: None
) -> None:
    jobs = publish_expired(hosts[0], tmp_path / "upstream", 150)
    runs = [hosts[n % len(hosts)] for n in range(2)]
    gate = tmp_path / "gate"
    ready = [tmp_path / f"ready-{n}" for n in range(len(runs))]

    gated = [str(p.BIN / "python"), "-c", GATED]
    started = [
        subprocess.Popen(
            [*gated, str(ready[n]), str(gate), "purge", "--by", f"cron-{n}"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n, env in enumerate(runs)
    ]  # fmt: skip
    deadline = time.monotonic() + 60
    while not all(path.exists() for path in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.touch()
    outputs = [process.communicate(timeout=120) for process in started]

    assert [process.returncode for process in started] == [0, 0], outputs
    purged = [int(out.splitlines()[-1].split()[1]) for out, _ in outputs]
    assert sum(purged) == len(jobs)
    assert min(purged) > 0, f"the purges did not share the jobs: {outputs}"
    assert_purged_once(hosts, jobs)


@pytest.mark.parametrize(
    ("sink", "killed"),
    [
        ("file", "before-its-record"),
        ("file", "after-its-record"),
        ("postgres", "before-its-record"),
    ],
)
def test_a_purge_killed_half_way_finishes_when_run_again(
    request: pytest.FixtureRequest, tmp_path: Path, sink: str, killed: str
) -> None:
    env = trail_env(request, tmp_path / "host", sink)
    jobs = publish_expired(env, tmp_path / "upstream", 200)
    claims = Path(env["REPORTING_SVC_LOCAL_ROOT"]) / "jobs"
    process = subprocess.Popen(
        [str(p.BIN / "reporting-svc"), "purge", "--by", "cron-a"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    wait_for(lambda: len(list(claims.glob("*/purged.json"))) >= 40)
    with hold_audit_lock(env):
        # The run's next record waits for the lock: kill it once it has claimed that job.
        wait_for(lambda: len(list(claims.glob("*/purged.json"))) == len(purged_records(env)) + 1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    left = [job for job in jobs if (claims / job.id / "content").exists()]
    (claimed,) = [job for job in left if (claims / job.id / "purged.json").exists()]
    if killed == "after-its-record":
        trail = make_audit_trail(load_settings(env))
        Operator("cron-a", "reporting-svc purge").record(trail, "purged", claimed)

    early = p.run_cli("purge", env=env)
    late = p.run_cli("purge", env={**env, "REPORTING_SVC_PURGE_LEASE_SECONDS": "0"})

    # Within the lease the claim is left to its claimant; after it, finished and on record.
    assert early.stdout.splitlines()[-1] == summary(purged=len(left) - 1, held=1)
    assert late.stdout.splitlines()[-1] == summary(finished=1)
    assert_purged_once([env], jobs)


def test_a_purge_leaves_a_fresh_claim_to_its_running_claimant(tmp_path: Path) -> None:
    env = p.service_env(tmp_path / "host")
    (job,) = publish_expired(env, tmp_path / "upstream", 1)
    claim = Path(env["REPORTING_SVC_LOCAL_ROOT"]) / "jobs" / job.id / "purged.json"
    with hold_audit_lock(env):
        claimant = subprocess.Popen(
            [str(p.BIN / "reporting-svc"), "purge", "--by", "cron-a"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for(claim.exists)
        other = p.run_cli("purge", "--by", "cron-b", env=env)
        untouched = (claim.parent / "content").exists()
    out, err = claimant.communicate(timeout=60)

    assert other.stdout.splitlines()[-1] == summary(held=1)
    assert untouched
    assert (claimant.returncode, out.splitlines()[-1]) == (0, summary(purged=1)), err
    assert_purged_once([env], [job])


def summary(*, purged: int = 0, finished: int = 0, held: int = 0) -> str:
    """The last line of a purge that left no job out."""
    return (
        f"OK: {purged} job(s) purged, {finished} finished after another purge,"
        f" {held} held by another purge's fresh claim, 0 left"
    )


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.005)


def trail_env(request: pytest.FixtureRequest, folder: Path, sink: str) -> dict[str, str]:
    """A host on local disk whose audit trail is its own file, or a PostgreSQL database."""
    env = p.service_env(folder)
    if sink == "postgres":
        url = request.getfixturevalue("postgres_url")
        env.update(REPORTING_SVC_AUDIT_SINK="postgres", REPORTING_SVC_AUDIT_URL=url)
        p.upgrade_databases(env)
    return env


@contextmanager
def hold_audit_lock(env: dict[str, str]) -> Iterator[None]:
    """Hold the lock every writer of the host's trail takes: its file's, or the database's."""
    settings = load_settings(env)
    if "postgres" in settings.audit_sink:
        # Without a pool the connection closes on leaving, and its session's lock goes too.
        engine = sa.create_engine(settings.audit_database_url, poolclass=sa.pool.NullPool)
        with engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({APPEND_LOCK})")
            yield
        return
    settings.audit_path.parent.mkdir(parents=True, exist_ok=True)
    with settings.audit_path.open("ab") as trail:
        fcntl.flock(trail, fcntl.LOCK_EX)
        yield


def purged_records(env: dict[str, str]) -> list[dict[str, Any]]:
    """The ``purged`` records of the host's trail, in its order."""
    settings = load_settings(env)
    if "postgres" in settings.audit_sink:
        sink = DatabaseSink(settings.audit_database_url)
        with sink.snapshot() as connection:
            lines = [row.line for row in rows_of(connection, LIVE)]
    elif settings.audit_path.exists():
        lines = settings.audit_path.read_text().splitlines()
    else:
        lines = []
    return [record for record in map(json.loads, lines) if record["event"] == "purged"]


def assert_purged_once(hosts: list[dict[str, str]], jobs: list[JobRecord]) -> None:
    """Every job's file gone and its record kept, exactly one ``purged`` record per job
    across the hosts' trails and its entry saying so, every trail verified, and the
    catalog agreeing with the store."""
    settings = load_settings(hosts[0])
    store = make_store(settings)
    assert all(store.size_of(job) is None for job in jobs)
    assert all(store.get_record(job.id) == job for job in jobs)
    recorded = []
    for env in hosts:
        assert p.run_cli("audit", "verify", env=env).returncode == 0
        recorded += [record["jobId"] for record in purged_records(env)]
    assert sorted(recorded) == sorted(job.id for job in jobs)
    assert all(store.read_entry(job.id, PurgeRecorded) is not None for job in jobs)
    assert p.run_cli("catalog", "check", env=hosts[0]).returncode == 0
    assert p.run_cli("purge", "--dry-run", env=hosts[0]).stdout.startswith("DRY RUN: 0 job(s)")
