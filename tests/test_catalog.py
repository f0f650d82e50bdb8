"""The embedded catalog: created by its deploy step, versioned with Alembic, one row per job."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from reporting_svc.audit.tables import AUDIT
from reporting_svc.catalog import (
    Catalog,
    CatalogError,
    SchemaBehind,
    Selection,
    counts,
    make_catalog,
    queries,
    schema,
)
from reporting_svc.catalog.tables import jobs as jobs_table
from reporting_svc.catalog.tables import metadata
from reporting_svc.storage import JobRecord
from reporting_svc.storage.record import MODES
from tests.support import STUDY


def record(job_id: str = "A" * 32, **fields: object) -> JobRecord:
    values: dict[str, object] = {
        "id": job_id,
        "studyId": STUDY,
        "mode": "test",
        "reportName": "Subject Data Extract",
        "rptKickoffDatetime": "2025-06-04T11:27:52.014Z",
        "rptFormat": "CSV",
        "status": "COMPLETED",
        "fileName": "report.csv",
        "contentType": "text/csv",
        "size": 1,
        "sha256": "0" * 64,
        "completedAt": "2025-06-04T11:29:03.337Z",
    }
    values.update(fields)
    return JobRecord(**values)  # type: ignore[arg-type]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def upgraded(path: Path) -> Catalog:
    """A catalog in a new SQLite file, after its deploy step (``catalog upgrade``)."""
    catalog = Catalog(sqlite_url(path))
    catalog.upgrade()
    return catalog


def test_embedded_catalog_is_an_sqlite_file_in_the_var_dir_made_by_its_upgrade(make_settings):
    settings = make_settings(upgraded=False)
    catalog = make_catalog(settings)
    path = settings.var_dir / "catalog.sqlite3"
    assert not path.exists()

    catalog.upgrade()
    catalog.add(record())

    assert path.is_file()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("SELECT id FROM jobs").fetchall() == [("A" * 32,)]


def test_indexing_a_job_twice_keeps_one_row(tmp_path):
    catalog = upgraded(tmp_path / "c.sqlite3")

    first, second = catalog.add(record()), catalog.add(record())
    catalog.add_many([record(), record("B" * 32)])

    assert (first, second) == (True, False)
    assert catalog.job_ids() == {"A" * 32, "B" * 32}
    assert catalog.has("A" * 32)
    assert not catalog.has("C" * 32)


def test_the_revisions_build_the_schema_the_tables_module_describes(tmp_path):
    engine = sa.create_engine(sqlite_url(tmp_path / "migrated.sqlite3"))
    with engine.begin() as connection:
        alembic_command.upgrade(schema._config(connection), "head")
        differences = compare_metadata(MigrationContext.configure(connection), metadata)

    assert differences == []


@pytest.mark.parametrize("chain", [schema.CATALOG, AUDIT], ids=["catalog", "audit"])
def test_each_chain_names_the_newest_revision_it_ships(chain):
    assert chain.head() == chain.shipped_head()


def test_a_process_whose_catalog_is_current_lists_without_importing_alembic(tmp_path):
    url = sqlite_url(tmp_path / "c.sqlite3")
    Catalog(url).upgrade()
    program = (
        "import sys; from datetime import datetime, UTC;"
        "from reporting_svc.catalog import Catalog, Selection;"
        f"page = Catalog({url!r}).page(Selection('tenant', {{'test': None}}), 10, 0,"
        " datetime.now(UTC));"
        "print(page.total, any(name.startswith('alembic') for name in sys.modules))"
    )

    ran = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )

    assert ran.stdout == "0 False\n"


def test_a_new_database_is_stamped_with_the_newest_revision(tmp_path):
    catalog = Catalog(sqlite_url(tmp_path / "c.sqlite3"))

    assert catalog.upgrade() == (None, schema.head())

    with catalog.engines.get().connect() as connection:
        assert schema.current_revision(connection) == schema.head()


def test_upgrade_keeps_the_rows_and_other_tables_of_an_existing_database(tmp_path):
    url = sqlite_url(tmp_path / "shared.sqlite3")
    with sqlite3.connect(tmp_path / "shared.sqlite3") as connection:
        connection.execute("CREATE TABLE other (value TEXT)")
        connection.execute("INSERT INTO other VALUES ('kept')")
    catalog = Catalog(url)
    first = catalog.upgrade()
    catalog.add(record())

    before, after = Catalog(url).upgrade()

    assert first == (None, schema.head())
    assert before == after == schema.head()
    assert catalog.job_ids() == {"A" * 32}
    with sqlite3.connect(tmp_path / "shared.sqlite3") as connection:
        assert connection.execute("SELECT value FROM other").fetchall() == [("kept",)]


def test_a_catalog_newer_than_this_version_is_refused_by_name(tmp_path):
    path = tmp_path / "newer.sqlite3"
    upgraded(path).add(record())
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'ffff'")

    with pytest.raises(CatalogError, match="ffff"):
        Catalog(sqlite_url(path)).has("A" * 32)


def at_revision(path: Path, revision: str) -> str:
    """An SQLite catalog that an older version left at ``revision``, holding one job."""
    url = sqlite_url(path)
    with sa.create_engine(url).begin() as connection:
        alembic_command.upgrade(schema._config(connection), revision)
        connection.execute(
            sa.text(
                "INSERT INTO jobs (id, scope, mode, report_name, required_permission,"
                " kickoff_us, record) VALUES (:id, :scope, 'test', 'R', 'REPORTING_VIEW', 0, :r)"
            ),
            {"id": "A" * 32, "scope": STUDY, "r": record().to_json().decode()},
        )
    return url


def tables_and_revision(path: Path) -> tuple[list[str], str | None]:
    with sqlite3.connect(path) as connection:
        names = connection.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return [name for (name,) in names], revision[0] if revision else None


def test_a_catalog_behind_this_version_is_refused_not_upgraded_until_its_upgrade(tmp_path):
    path = tmp_path / "old.sqlite3"
    catalog = Catalog(at_revision(path, "0001"))
    found = tables_and_revision(path)

    with pytest.raises(SchemaBehind, match=r"revision 0001, behind .* `reporting-svc catalog upg"):
        catalog.has("A" * 32)
    problem = catalog.check()

    assert problem is not None and "run `reporting-svc catalog upgrade`" in problem
    assert tables_and_revision(path) == found
    assert catalog.upgrade() == ("0001", schema.head())
    assert catalog.has("A" * 32)
    assert catalog.check() is None


def test_an_empty_database_is_behind_and_gets_no_tables_from_its_users(tmp_path):
    catalog = Catalog(sqlite_url(tmp_path / "new.sqlite3"))

    with pytest.raises(SchemaBehind, match=r"revision none \(no tables\)"):
        catalog.page(Selection(STUDY, dict.fromkeys(MODES)), 10, 0, datetime.now(UTC))

    with sqlite3.connect(tmp_path / "new.sqlite3") as connection:
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_a_catalog_that_cannot_be_opened_is_named_by_the_readiness_check(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    problem = Catalog(sqlite_url(blocker / "catalog.sqlite3")).check()

    assert problem is not None
    assert problem.startswith("the catalog cannot be read")
    assert str(tmp_path) not in problem


def test_a_catalog_at_the_first_revision_keeps_its_rows_and_learns_withdrawals(tmp_path):
    catalog = Catalog(at_revision(tmp_path / "old.sqlite3", "0001"))

    before, after = catalog.upgrade()
    catalog.withdraw("A" * 32, datetime(2026, 1, 1, tzinfo=UTC))

    assert (before, after) == ("0001", schema.head())
    assert catalog.job_ids() == {"A" * 32}
    assert catalog.marks().withdrawn == {"A" * 32}
    assert [lapsed.record.id for lapsed in catalog.lapsed(datetime(2026, 1, 2, tzinfo=UTC))] == [
        "A" * 32
    ]


def test_a_catalog_upgraded_from_before_the_counts_counts_its_rows(tmp_path):
    url = sqlite_url(tmp_path / "old.sqlite3")
    now = datetime.now(UTC)
    jobs = [
        record(f"{n:032X}", mode=mode, expiresAt=expires)
        for n, (mode, expires) in enumerate(
            [("test", None), ("test", "2001-01-01T00:00:00Z"), ("active", "2999-01-01T00:00:00Z")]
            * 3
        )
    ]
    with sa.create_engine(url).begin() as connection:
        alembic_command.upgrade(schema._config(connection), "0002")
        connection.execute(sa.insert(jobs_table), [queries.row_of(job) for job in jobs])
    catalog = Catalog(url)

    before, _ = catalog.upgrade()
    listed = catalog.page(Selection(STUDY, dict.fromkeys(MODES)), 100, 0, now)

    assert before == "0002"
    assert catalog.count_drift() == []
    assert listed.total == len(listed.records) == 6


def test_a_withdrawal_ends_availability_then_unless_the_job_expired_earlier(tmp_path):
    catalog = upgraded(tmp_path / "c.sqlite3")
    catalog.add(record("A" * 32, expiresAt="2026-06-01T00:00:00Z"))
    catalog.add(record("B" * 32, expiresAt="2026-01-01T00:00:00Z"))

    for job_id in ("A" * 32, "B" * 32):
        catalog.withdraw(job_id, datetime(2026, 3, 1, tzinfo=UTC))
    catalog.withdraw("A" * 32, datetime(2026, 4, 1, tzinfo=UTC))

    lapsed = {
        item.record.id: item.withdrawn for item in catalog.lapsed(datetime(2026, 3, 1, tzinfo=UTC))
    }
    assert lapsed == dict.fromkeys(("A" * 32, "B" * 32), datetime(2026, 3, 1, tzinfo=UTC))
    assert [item.record.id for item in catalog.lapsed(datetime(2026, 2, 1, tzinfo=UTC))] == [
        "B" * 32
    ]


WRITE_STATEMENTS = ("INSERT", "UPDATE", "DELETE", "REPLACE")


@pytest.fixture
def stale(tmp_path: Path) -> Catalog:
    """A catalog of live and ended jobs whose horizon is a day behind the clock."""
    catalog = upgraded(tmp_path / "c.sqlite3")
    now = datetime.now(UTC)
    catalog.add_many(
        record(f"{n:032X}", expiresAt=(now + timedelta(hours=hours)).isoformat())
        for n, hours in enumerate([-30, -2, 2, 30])
    )
    catalog.recount(now - timedelta(days=1))
    return catalog


def horizon_of(catalog: Catalog) -> int:
    with catalog.engines.reading() as connection:
        return counts.horizon(connection)


def test_a_listing_writes_nothing_even_when_the_horizon_is_old(stale: Catalog) -> None:
    """A service role with SELECT only must list: the horizon is the writers' upkeep."""
    before = horizon_of(stale)
    written: list[str] = []

    @sa.event.listens_for(stale.engines.get(), "before_cursor_execute")
    def _note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(WRITE_STATEMENTS):
            written.append(statement)

    pages = [stale.page(Selection(STUDY, dict.fromkeys(MODES)), 10, 0, datetime.now(UTC))]
    pages.append(stale.page(Selection(STUDY, dict.fromkeys(MODES)), 1, 1, datetime.now(UTC)))

    assert written == []
    assert [page.total for page in pages] == [2, 2]
    assert horizon_of(stale) == before


@pytest.mark.parametrize(
    "write",
    [
        lambda catalog: catalog.add(record("B" * 32)),
        lambda catalog: catalog.add_many([record("B" * 32), record("C" * 32)]),
        lambda catalog: catalog.withdraw(f"{3:032X}", datetime.now(UTC)),
        lambda catalog: catalog.remove([f"{2:032X}"]),
    ],
    ids=["add", "add_many", "withdraw", "remove"],
)
def test_every_writer_moves_an_old_horizon_to_the_clock_and_the_counts_stay_exact(
    stale: Catalog, write: Any
) -> None:
    started = datetime.now(UTC)

    write(stale)

    assert horizon_of(stale) >= queries.micros(started)
    assert stale.count_drift() == []
