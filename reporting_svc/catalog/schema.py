"""Bringing a catalog database to the current schema with Alembic, run programmatically.

The revisions ship inside the package (``catalog/migrations``). Every process that opens
the catalog makes sure it is current; the upgrade runs inside one write transaction that
holds the database's lock (SQLite's write lock, a PostgreSQL advisory lock), so workers
starting together upgrade it once and an interrupted upgrade leaves nothing half done.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from .engine import WRITES
from .tables import jobs

SCRIPTS = "reporting_svc.catalog:migrations"
#: pg_advisory_xact_lock's key for upgrades: any number no other tool of the database uses.
UPGRADE_LOCK = 0x52505453  # "RPTS"


class SchemaError(Exception):
    """The database holds a schema this version does not know (a newer one)."""


def current_revision(connection: sa.Connection) -> str | None:
    """The database's revision, or None before the first upgrade."""
    return MigrationContext.configure(connection).get_current_revision()


@functools.cache
def head() -> str:
    """The newest revision this version of the service ships."""
    revision = _scripts().get_current_head()
    assert revision is not None, "the package ships at least one revision"
    return revision


def is_current(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        return current_revision(connection) == head()


def upgrade(engine: sa.Engine) -> tuple[str | None, str]:
    """Apply the missing revisions; returns the revisions before and after. Keeps every row."""
    with engine.connect().execution_options(**{WRITES: True}) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK})
        before = current_revision(connection)
        if before == head():
            return before, before
        if before is None and not sa.inspect(connection).has_table(jobs.name):
            _create(connection)
            return before, head()
        try:
            command.upgrade(_config(connection), "head")
        except CommandError:
            raise SchemaError(
                f"the catalog is at revision {before}, which this version does not know "
                "(a newer one?)"
            ) from None
    return before, head()


def _create(connection: sa.Connection) -> None:
    """A new database gets the current schema at once and is stamped with its revision,
    as Alembic's cookbook builds one from scratch; a test checks that the revisions and
    ``tables`` describe the same schema."""
    jobs.metadata.create_all(connection)
    MigrationContext.configure(connection).stamp(_scripts(), "head")


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPTS)
    config.attributes["connection"] = connection
    return config
