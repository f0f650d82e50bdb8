"""The embedded catalog: created on first use, versioned with Alembic, one row per job."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from reporting_svc.catalog import Catalog, CatalogError, make_catalog, schema
from reporting_svc.catalog.tables import metadata
from reporting_svc.storage import JobRecord
from tests.conftest import STUDY


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


def test_embedded_catalog_is_an_sqlite_file_in_the_var_dir_made_on_first_use(make_settings):
    settings = make_settings()
    catalog = make_catalog(settings)
    path = settings.var_dir / "catalog.sqlite3"
    assert not path.exists()

    catalog.add(record())

    assert path.is_file()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("SELECT id FROM jobs").fetchall() == [("A" * 32,)]


def test_indexing_a_job_twice_keeps_one_row(tmp_path):
    catalog = Catalog(sqlite_url(tmp_path / "c.sqlite3"))

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


def test_a_new_database_is_stamped_with_the_newest_revision(tmp_path):
    catalog = Catalog(sqlite_url(tmp_path / "c.sqlite3"))

    catalog.add(record())

    with catalog.engines.get().connect() as connection:
        assert schema.current_revision(connection) == schema.head()


def test_upgrade_keeps_the_rows_and_other_tables_of_an_existing_database(tmp_path):
    url = sqlite_url(tmp_path / "shared.sqlite3")
    with sqlite3.connect(tmp_path / "shared.sqlite3") as connection:
        connection.execute("CREATE TABLE other (value TEXT)")
        connection.execute("INSERT INTO other VALUES ('kept')")
    catalog = Catalog(url)
    catalog.add(record())

    before, after = Catalog(url).upgrade()

    assert before == after == schema.head()
    assert catalog.job_ids() == {"A" * 32}
    with sqlite3.connect(tmp_path / "shared.sqlite3") as connection:
        assert connection.execute("SELECT value FROM other").fetchall() == [("kept",)]


def test_a_catalog_newer_than_this_version_is_refused_by_name(tmp_path):
    path = tmp_path / "newer.sqlite3"
    Catalog(sqlite_url(path)).add(record())
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'ffff'")

    with pytest.raises(CatalogError, match="ffff"):
        Catalog(sqlite_url(path)).has("A" * 32)


def test_a_catalog_that_cannot_be_opened_is_named_by_the_readiness_check(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    problem = Catalog(sqlite_url(blocker / "catalog.sqlite3")).check()

    assert problem is not None
    assert problem.startswith("the catalog cannot be read")
    assert str(tmp_path) not in problem
