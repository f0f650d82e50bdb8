"""The audit trail in PostgreSQL: one chain for every process, tampering shown, imports, grants."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import threading
from collections import Counter
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from harness.postgres import Postgres
from reporting_svc.audit.chain import line_of, seal
from reporting_svc.audit.database import DatabaseSink, append_live, rows_of
from reporting_svc.audit.sinks import FileSink
from reporting_svc.audit.tables import AUDIT, LIVE, metadata
from reporting_svc.catalog import Catalog, schema

pytestmark = pytest.mark.integration

PROCESSES = 4
THREADS = 4
PER_THREAD = 25
APPENDS = PROCESSES * THREADS * PER_THREAD


def append_records(url: str, process: int) -> None:
    """One process of the hammer: THREADS threads, each appending PER_THREAD records."""
    sink = DatabaseSink(url)

    def run(thread: int) -> None:
        for number in range(PER_THREAD):
            sink.append({"event": "head", "requestId": f"p{process}-t{thread}-{number:03d}"})

    threads = [threading.Thread(target=run, args=(thread,)) for thread in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def append_and_wait_to_be_killed(url: str, inserted: Event) -> None:
    """A writer that inserts a batch under the chain's lock and is killed before it commits."""
    with DatabaseSink(url).writing() as connection:
        append_live(connection, [{"event": "start", "requestId": f"killed-{n}"} for n in range(3)])
        inserted.set()
        threading.Event().wait()


def database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


@pytest.fixture
def audit_env(service_env: dict[str, str], postgres_url: str) -> dict[str, str]:
    """The service's environment with the audit trail in a fresh database."""
    return {
        **service_env,
        "REPORTING_SVC_AUDIT_SINK": "postgres",
        "REPORTING_SVC_AUDIT_URL": postgres_url,
    }


@pytest.fixture
def filled(postgres_url: str) -> DatabaseSink:
    """A database holding ten records, appended one batch each."""
    sink = DatabaseSink(postgres_url)
    for number in range(10):
        sink.append({"event": "head", "requestId": f"r{number}", "studyId": f"S{number}"})
    return sink


def test_the_audit_revisions_build_the_tables_module_beside_the_catalog(postgres_url: str) -> None:
    with sa.create_engine(postgres_url).begin() as connection:
        alembic_command.upgrade(AUDIT.config(connection), "head")
        context = MigrationContext.configure(
            connection, opts={"version_table": "audit_alembic_version"}
        )
        differences = compare_metadata(context, metadata)
    Catalog(postgres_url).upgrade()

    with sa.create_engine(postgres_url).connect() as connection:
        assert AUDIT.current_revision(connection) == AUDIT.head()
        assert schema.current_revision(connection) == schema.head()
    assert differences == []


def test_processes_and_threads_appending_at_once_leave_one_chain_in_the_database(
    postgres_url: str, postgres_server: Postgres, cli: Any, audit_env: dict[str, str]
) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=append_records, args=(postgres_url, process))
        for process in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)

    result = cli("audit", "verify", env=audit_env)

    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    assert result.stdout.startswith(f"OK: {APPENDS} records, last hash ")
    with DatabaseSink(postgres_url).snapshot() as connection:
        rows = list(rows_of(connection, LIVE))
    ids = Counter(json.loads(row.line)["requestId"] for row in rows)
    assert len(ids) == APPENDS and set(ids.values()) == {1}
    assert [row.seq for row in rows] == list(range(1, APPENDS + 1))
    batches = int(
        postgres_server.psql("SELECT count(*) FROM audit_heads", database_of(postgres_url))
    )
    assert batches < APPENDS  # group commit: some transactions carried several records


def test_a_writer_killed_mid_batch_leaves_the_chain_whole_and_the_lock_free(
    filled: DatabaseSink, postgres_url: str, postgres_server: Postgres, cli: Any, audit_env: Any
) -> None:
    """Records and their head are one transaction: a SIGKILL before its commit rolls the
    batch back, PostgreSQL frees the lock when the connection drops, and the next writer
    goes on with no repair (the file sink needs its intent for this; the database not)."""
    context = multiprocessing.get_context("spawn")
    inserted = context.Event()
    writer = context.Process(target=append_and_wait_to_be_killed, args=(postgres_url, inserted))
    writer.start()
    assert inserted.wait(timeout=60)
    locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    assert postgres_server.psql(locks, database_of(postgres_url)).strip() == "1"  # mid-batch

    assert writer.pid is not None
    os.kill(writer.pid, signal.SIGKILL)
    writer.join(timeout=30)
    filled.append({"event": "head", "requestId": "after the kill"})

    assert writer.exitcode == -signal.SIGKILL
    result = cli("audit", "verify", env=audit_env)
    assert result.stdout.startswith("OK: 11 records, last hash ")
    with filled.snapshot() as connection:
        ids = [json.loads(row.line)["requestId"] for row in rows_of(connection, LIVE)]
    assert ids == [f"r{number}" for number in range(10)] + ["after the kill"]


TAMPERING = {
    "edit a record": "UPDATE audit_records SET line = replace(line, 'S4', 'S5') WHERE seq = 5",
    "edit a hash column": "UPDATE audit_records SET hash = repeat('a', 64) WHERE seq = 5",
    "delete a record": "DELETE FROM audit_records WHERE seq = 4",
    "delete the newest records": "DELETE FROM audit_records WHERE seq > 8",
    "reorder two records": "UPDATE audit_records SET seq = -3 WHERE seq = 3;"
    "UPDATE audit_records SET seq = 3 WHERE seq = 8;"
    "UPDATE audit_records SET seq = 8 WHERE seq = -3",
    "renumber the records": "UPDATE audit_records SET seq = seq + 1000",
}


@pytest.mark.parametrize("sql", TAMPERING.values(), ids=TAMPERING.keys())
def test_tampering_with_rows_is_reported_by_verify(
    filled: DatabaseSink,
    postgres_url: str,
    postgres_server: Postgres,
    cli: Any,
    audit_env: Any,
    sql: str,
) -> None:
    postgres_server.psql(sql, database_of(postgres_url))

    result = cli("audit", "verify", env=audit_env, check=False)

    assert result.returncode == 1
    assert result.stdout.startswith("BROKEN")


def test_a_record_inserted_past_the_newest_head_is_reported_by_verify(
    filled: DatabaseSink, postgres_url: str, postgres_server: Postgres, cli: Any, audit_env: Any
) -> None:
    with filled.snapshot() as connection:
        last = list(rows_of(connection, LIVE))[-1]
    forged = seal({"event": "start", "requestId": "forged"}, last.hash)
    postgres_server.psql(
        f"INSERT INTO audit_records VALUES ('live', 11, '{last.hash}', "
        f"'{forged['hash']}', E'{line_of(forged).decode().strip()}\\n')",
        database_of(postgres_url),
    )

    result = cli("audit", "verify", env=audit_env, check=False)

    assert result.returncode == 1
    assert result.stdout.startswith(
        "BROKEN: the chain holds 11 records but its newest head names 10"
    )


def test_records_cut_from_the_end_stay_reported_after_new_appends(
    filled: DatabaseSink, postgres_url: str, postgres_server: Postgres, cli: Any, audit_env: Any
) -> None:
    postgres_server.psql("DELETE FROM audit_records WHERE seq > 8", database_of(postgres_url))
    filled.append({"event": "head", "requestId": "after the cut"})

    result = cli("audit", "verify", env=audit_env, check=False)

    assert result.returncode == 1
    assert result.stdout.startswith("BROKEN: a head names record 9 ")


def test_a_verify_snapshot_held_open_does_not_hold_up_writers(
    filled: DatabaseSink, postgres_url: str
) -> None:
    appended = threading.Event()
    writer = DatabaseSink(postgres_url)

    with filled.snapshot() as connection:
        first = next(rows_of(connection, LIVE))
        thread = threading.Thread(
            target=lambda: (writer.append({"event": "start"}), appended.set())
        )
        thread.start()
        thread.join(timeout=60)
        seen = len(list(rows_of(connection, LIVE)))

    assert first.seq == 1
    assert appended.is_set()
    assert seen == 10  # the snapshot sees the trail as it stood when it began


def write_file_trail(path: Path, count: int) -> list[bytes]:
    sink = FileSink(path, fsync=False)
    for number in range(count):
        sink.append({"event": "head", "requestId": f"old-{number}", "subject": f"s{number % 2}"})
    return path.read_bytes().splitlines(keepends=True)


def test_an_imported_trail_keeps_its_lines_as_a_chain_and_the_import_is_on_record(
    tmp_path: Path, filled: DatabaseSink, cli: Any, audit_env: dict[str, str]
) -> None:
    lines = write_file_trail(tmp_path / "host1.jsonl", 5)

    imported = cli("audit", "import", str(tmp_path / "host1.jsonl"), "--by", "ops", env=audit_env)
    again = cli(
        "audit", "import", str(tmp_path / "host1.jsonl"), "--by", "ops", env=audit_env, check=False
    )
    verified = cli("audit", "verify", env=audit_env)
    shown = cli("audit", "show", "--json", env=audit_env).stdout.splitlines(keepends=True)

    last_hash = json.loads(lines[-1])["hash"]
    assert imported.stdout.startswith(
        f"OK: audit import: 5 record(s) of host1.jsonl as chain import-{last_hash[:12]}"
    )
    assert again.returncode == 2 and "holds a chain" in again.stderr
    assert verified.stdout.splitlines() == [
        verified.stdout.splitlines()[0],
        f"imported chain import-{last_hash[:12]}: 5 records, last hash {last_hash}",
    ]
    assert verified.stdout.startswith("OK: 11 records, last hash ")
    assert [line.encode() for line in shown[:5]] == lines
    anchor = json.loads(shown[-1])
    assert (anchor["event"], anchor["subject"]) == ("import", "ops")
    assert last_hash in anchor["reportName"]


def test_show_reads_the_database_with_the_same_filters_and_output_as_the_file(
    tmp_path: Path, postgres_url: str, cli: Any, audit_env: dict[str, str]
) -> None:
    write_file_trail(tmp_path / "host1.jsonl", 6)
    cli("audit", "import", str(tmp_path / "host1.jsonl"), "--by", "ops", env=audit_env)

    for filters in (["--subject", "s1"], ["--subject", "s0", "--json"]):
        from_file = cli(
            "audit", "show", *filters, "--file", str(tmp_path / "host1.jsonl"), env=audit_env
        )
        from_database = cli("audit", "show", *filters, env=audit_env)
        assert from_database.stdout == from_file.stdout
        assert len(from_database.stdout.splitlines()) >= 3


def test_a_trail_that_does_not_verify_is_not_imported(
    tmp_path: Path, postgres_url: str, cli: Any, audit_env: dict[str, str]
) -> None:
    path = tmp_path / "host1.jsonl"
    lines = write_file_trail(path, 4)
    path.write_bytes(b"".join(lines[:1] + lines[2:]))

    result = cli("audit", "import", str(path), "--by", "ops", env=audit_env, check=False)
    verified = cli("audit", "verify", env=audit_env)

    assert result.returncode == 1
    assert result.stdout.startswith("BROKEN at record 2")
    assert verified.stdout.startswith("OK: 0 records")


def test_the_service_role_may_insert_and_read_audit_rows_but_never_update_or_delete(
    filled: DatabaseSink, postgres_url: str, postgres_server: Postgres, cli: Any, audit_env: Any
) -> None:
    database = database_of(postgres_url)
    postgres_server.psql("CREATE ROLE reporting_svc LOGIN", database)

    granted = cli("audit", "grant", "reporting_svc", env=audit_env)
    as_service = {
        **audit_env,
        "REPORTING_SVC_AUDIT_URL": postgres_url.replace("reporting@", "reporting_svc@"),
    }
    DatabaseSink(as_service["REPORTING_SVC_AUDIT_URL"]).append({"event": "start"})
    verified = cli("audit", "verify", env=as_service)

    assert "GRANT SELECT, INSERT ON audit_records, audit_heads TO reporting_svc;" in granted.stdout
    assert verified.stdout.startswith("OK: 11 records")
    for sql in (
        "UPDATE audit_records SET line = 'x'",
        "DELETE FROM audit_records",
        "UPDATE audit_heads SET seq = 1",
        "DELETE FROM audit_heads",
        "TRUNCATE audit_records",
    ):
        with pytest.raises(subprocess.CalledProcessError) as refused:
            postgres_server.psql(sql, database, user="reporting_svc")
        assert "permission denied" in refused.value.stderr
