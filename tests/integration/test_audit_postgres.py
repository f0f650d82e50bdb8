"""The audit trail in PostgreSQL: one chain for every process, tampering shown, imports, grants."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from harness.postgres import Postgres
from reporting_svc.audit.batches import RecordNotWrittenError
from reporting_svc.audit.chain import GENESIS, Verdict, line_of, seal
from reporting_svc.audit.database import (
    AuditDatabaseError,
    DatabaseSink,
    append_live,
    insert_chain,
    row_of,
    rows_of,
)
from reporting_svc.audit.imported import import_record, statement
from reporting_svc.audit.sinks import FileSink
from reporting_svc.audit.tables import AUDIT, LIVE, heads, metadata
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
def audit_tables(postgres_url: str) -> None:
    """The test's database after the audit trail's deploy step (``audit upgrade``)."""
    DatabaseSink(postgres_url).upgrade()


@pytest.fixture
def filled(postgres_url: str, audit_tables: None) -> DatabaseSink:
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


def test_a_database_behind_is_not_ready_and_gets_no_tables_until_audit_upgrade(
    postgres_url: str, postgres_server: Postgres, cli: Any, audit_env: dict[str, str]
) -> None:
    sink = DatabaseSink(postgres_url)
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"

    problem = sink.check()
    with pytest.raises(RecordNotWrittenError, match="run `reporting-svc audit upgrade`"):
        sink.append({"event": "head", "requestId": "refused"})
    created = postgres_server.psql(tables, database_of(postgres_url))
    upgraded = cli("audit", "upgrade", env=audit_env)

    assert problem is not None and "revision none (no tables), behind" in problem
    assert created.strip() == "0"
    assert upgraded.stdout == f"OK: the audit database is at revision {AUDIT.head()} (was empty)\n"
    assert sink.check() is None


@pytest.mark.usefixtures("audit_tables")
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
    assert (anchor["event"], anchor["subject"], anchor["complete"]) == ("import", "ops", True)
    assert last_hash in anchor["reportName"]


@pytest.mark.usefixtures("audit_tables")
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


@pytest.mark.usefixtures("audit_tables")
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


class Roles(NamedTuple):
    """The guide's two roles on one database: the tables' owner and the service's role."""

    owner: str
    service: str
    owner_env: dict[str, str]
    service_env: dict[str, str]


@pytest.fixture
def roles(postgres_server: Postgres, postgres_url: str, audit_env: dict[str, str]) -> Roles:
    """An owner role that owns the test's database (no superuser) and a service role with
    no rights yet; named apart from other tests' roles, since roles are the server's."""
    suffix = uuid.uuid4().hex[:8]
    owner, service = f"audit_owner_{suffix}", f"reporting_svc_{suffix}"
    postgres_server.psql(f"CREATE ROLE {owner} LOGIN; CREATE ROLE {service} LOGIN")
    postgres_server.psql(f"ALTER DATABASE {database_of(postgres_url)} OWNER TO {owner}")

    def env(role: str) -> dict[str, str]:
        return {
            **audit_env,
            "REPORTING_SVC_AUDIT_URL": postgres_url.replace("reporting@", f"{role}@"),
        }

    return Roles(owner, service, env(owner), env(service))


def chain_rows(chain: str, count: int) -> list[dict[str, Any]]:
    """A well-formed chain of ``count`` back-dated records, as a forger would make it."""
    rows, prev = [], GENESIS
    for seq in range(1, count + 1):
        fields = {
            "time": "2024-01-02T03:04:05.000Z",
            "event": "start",
            "requestId": f"forged-{seq}",
            "subject": "bob",
            "jobId": "0B" * 16,
        }
        record = seal(fields, prev)
        rows.append(row_of(chain, seq, record))
        prev = record["hash"]
    return rows


FORGED = "import-0badc0ffee00"


@pytest.mark.parametrize("upgraded", [False, True], ids=["new schema", "upgraded from a0001"])
def test_the_service_role_writes_only_the_live_chain_and_the_owner_still_imports(
    tmp_path: Path, postgres_url: str, roles: Roles, cli: Any, upgraded: bool
) -> None:
    if upgraded:
        owner_url = roles.owner_env["REPORTING_SVC_AUDIT_URL"]
        with sa.create_engine(owner_url).begin() as connection:
            alembic_command.upgrade(AUDIT.config(connection), "a0001")
    cli("audit", "grant", roles.service, env=roles.owner_env)
    service = DatabaseSink(roles.service_env["REPORTING_SVC_AUDIT_URL"])
    service.append({"event": "start", "requestId": "served"})
    forged = chain_rows(FORGED, 3)
    refusals = []
    for forge in (
        lambda connection: insert_chain(connection, FORGED, forged),
        lambda connection: connection.execute(
            sa.insert(heads).values(chain=FORGED, seq=1, hash="a" * 64)
        ),
    ):
        with pytest.raises(AuditDatabaseError) as refused, service.writing() as connection:
            forge(connection)
        refusals.append(str(refused.value))
    write_file_trail(tmp_path / "host1.jsonl", 3)

    imported = cli(
        "audit", "import", str(tmp_path / "host1.jsonl"), "--by", "ops", env=roles.owner_env
    )
    verified = cli("audit", "verify", env=roles.service_env)

    assert all("violates row-level security policy" in refusal for refusal in refusals)
    assert imported.stdout.startswith("OK: audit import: 3 record(s) of host1.jsonl")
    assert verified.stdout.startswith("OK: 2 records, last hash ")
    assert "imported chain import-" in verified.stdout


def forge_a_chain(url: str, psql: Callable[[str], str]) -> None:
    with DatabaseSink(url).writing() as connection:
        insert_chain(connection, FORGED, chain_rows(FORGED, 3))


def cut_the_imported_chain(url: str, psql: Callable[[str], str]) -> None:
    psql(
        "DELETE FROM audit_records WHERE chain <> 'live' AND seq > 3;"
        "DELETE FROM audit_heads WHERE chain <> 'live';"
        "INSERT INTO audit_heads (chain, seq, hash) SELECT chain, seq, hash FROM audit_records"
        " WHERE chain <> 'live' AND seq = 3"
    )


def announce_it_again(url: str, psql: Callable[[str], str]) -> None:
    with DatabaseSink(url).snapshot() as connection:
        [chain] = connection.scalars(
            sa.select(heads.c.chain).where(heads.c.chain != LIVE).distinct()
        )
        last = list(rows_of(connection, chain))[-1]
    summary = statement("host1.jsonl", chain, Verdict(5, last.hash), vouched=True)
    DatabaseSink(url).append(import_record("mallory", summary, vouched=True))


def delete_the_imported_chain(url: str, psql: Callable[[str], str]) -> None:
    psql(
        "DELETE FROM audit_records WHERE chain <> 'live';"
        "DELETE FROM audit_heads WHERE chain <> 'live'"
    )


def head_a_chain_of_no_records(url: str, psql: Callable[[str], str]) -> None:
    psql(f"INSERT INTO audit_heads (chain, seq, hash) VALUES ('{FORGED}', 1, repeat('a', 64))")


def head_a_record_the_chain_lacks(url: str, psql: Callable[[str], str]) -> None:
    psql("INSERT INTO audit_heads (chain, seq, hash) VALUES ('live', 3, repeat('b', 64))")


#: How the database is changed behind the import records' back, and verify's first line.
UNACCOUNTED = {
    "a chain no import record names": (
        forge_a_chain,
        f"BROKEN: chain {FORGED} (3 records, last hash ",
        "is named by no import record on the live chain",
    ),
    "an imported chain cut at its end, head and all": (
        cut_the_imported_chain,
        "BROKEN: chain import-",
        "holds 3 records, last hash ",
    ),
    "a second import record naming a chain": (
        announce_it_again,
        "BROKEN: chain import-",
        "is named by 2 import records, not one",
    ),
    "an imported chain deleted": (
        delete_the_imported_chain,
        "BROKEN: the import record ",
        "which is not an imported chain the database holds",
    ),
    "a head of a chain holding no records": (
        head_a_chain_of_no_records,
        f"BROKEN of chain {FORGED}: a head names record 1 ",
        "which the chain (0 records) does not hold",
    ),
    "a head naming a record the chain does not hold": (
        head_a_record_the_chain_lacks,
        "BROKEN: a head names record 3 ",
        "which the chain (11 records) does not hold",
    ),
}


@pytest.mark.parametrize("name", UNACCOUNTED)
def test_verify_reports_a_chain_or_head_its_import_records_do_not_account_for(
    tmp_path: Path,
    filled: DatabaseSink,
    postgres_url: str,
    postgres_server: Postgres,
    cli: Any,
    audit_env: dict[str, str],
    name: str,
) -> None:
    tamper, start, saying = UNACCOUNTED[name]
    write_file_trail(tmp_path / "host1.jsonl", 5)
    cli("audit", "import", str(tmp_path / "host1.jsonl"), "--by", "ops", env=audit_env)
    tamper(postgres_url, lambda sql: postgres_server.psql(sql, database_of(postgres_url)))

    result = cli("audit", "verify", env=audit_env, check=False)

    assert result.returncode == 1
    assert result.stdout.startswith(start)
    assert saying in result.stdout


@pytest.mark.usefixtures("audit_tables")
def test_a_trail_without_its_head_is_imported_only_when_the_operator_accepts_it(
    tmp_path: Path, postgres_url: str, cli: Any, audit_env: dict[str, str]
) -> None:
    path = tmp_path / "host1.jsonl"
    lines = write_file_trail(path, 12)
    path.write_bytes(b"".join(lines[:5]))
    path.with_name("host1.jsonl.head").unlink()

    refused = cli("audit", "import", str(path), "--by", "ops", env=audit_env, check=False)
    empty = cli("audit", "verify", env=audit_env)
    accepted = cli("audit", "import", str(path), "--by", "ops", "--accept-unvouched", env=audit_env)
    verified = cli("audit", "verify", env=audit_env)
    shown = cli("audit", "show", "--json", env=audit_env).stdout.splitlines()

    last_hash = json.loads(lines[4])["hash"]
    assert refused.returncode == 1
    assert refused.stdout.startswith(f"BROKEN: no head file {path}.head")
    assert "--accept-unvouched" in refused.stdout.splitlines()[-1]
    assert empty.stdout.startswith("OK: 0 records")
    assert accepted.stdout.startswith(
        f"OK: audit import without its head: 5 record(s) of host1.jsonl as chain "
        f"import-{last_hash[:12]}, last hash {last_hash}"
    )
    assert "WARNING: no head file" in accepted.stderr
    assert verified.stdout.startswith("OK: 1 records, last hash ")
    anchor = json.loads(shown[-1])
    assert (anchor["event"], anchor["complete"]) == ("import", False)
