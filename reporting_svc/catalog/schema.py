"""Bringing a database to the current schema with Alembic, run programmatically.

Each chain of revisions ships in the package it belongs to: ``catalog/migrations/versions``
for the catalog's jobs, ``audit/migrations`` for the audit trail's tables; both run in
the one Alembic environment of ``catalog/migrations``. Each chain has its own version
table, so the two may share one database (the audit trail may live in the catalog's) and
each is upgraded on its own.

Upgrades run at deploy time only (``catalog upgrade``, ``audit upgrade``, ``serve``'s
step for an SQLite catalog; docs/deploying.md), never in a request: a process that uses
a database only checks that its chain is current (``require``) and refuses to use one
that is behind (``SchemaBehind``: 503 "not ready") or ahead (``SchemaError``). The
upgrade runs inside one write transaction that holds the database's lock (SQLite's
write lock, a PostgreSQL advisory lock), so two deploy steps at once upgrade it once and
an interrupted upgrade leaves nothing half done.

Each chain names its newest revision (``head``; a test holds it to the revision files),
so a process whose database is current reads one row and never imports Alembic, which
would add about 10 MiB to every gunicorn worker.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .engine import WRITES
from .tables import metadata as catalog_metadata

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

SCRIPTS = "reporting_svc.catalog:migrations"
#: pg_advisory_xact_lock's key for upgrades: any number no other tool of the database uses.
UPGRADE_LOCK = 0x52505453  # "RPTS"


class SchemaError(Exception):
    """The database holds a schema this version does not know (a newer one)."""


class SchemaBehind(Exception):
    """The database's schema is older than this version's (or not there): its deploy
    step has not run. Nothing upgrades it on the way; the command named does."""

    def __init__(self, name: str, revision: str | None, head: str, command: str):
        super().__init__(
            f"the {name}'s schema is at revision {revision or 'none (no tables)'}, behind this"
            f" version's {head}: run `reporting-svc {command}`"
        )


@dataclass(frozen=True)
class Migrations:
    """One chain of revisions: the tables it builds, its folder and its version table."""

    name: str
    metadata: sa.MetaData
    versions: str
    version_table: str
    lock: int
    newest: str
    #: The command that upgrades this chain (its deploy step).
    command: str

    def current_revision(self, connection: sa.Connection) -> str | None:
        """The database's revision of this chain (Alembic's version table, one row for a
        chain without branches), or None before its first upgrade."""
        if not sa.inspect(connection).has_table(self.version_table):
            return None
        table = sa.table(self.version_table, sa.column("version_num"))
        revision: str | None = connection.scalar(sa.select(table.c.version_num))
        return revision

    def head(self) -> str:
        """The newest revision of this chain that this version of the service ships."""
        return self.newest

    def shipped_head(self) -> str | None:
        """The newest revision among the chain's files, as Alembic finds it."""
        return _scripts(self).get_current_head()

    def is_current(self, engine: sa.Engine) -> bool:
        with engine.connect() as connection:
            return self.current_revision(connection) == self.head()

    def require(self, engine: sa.Engine) -> None:
        """Nothing when the database is at this version's revision (one row read);
        SchemaBehind when it is older or empty, SchemaError when it is newer. Writes nothing.
        """
        with engine.connect() as connection:
            revision = self.current_revision(connection)
        if revision == self.head():
            return
        if revision is not None and not self.knows(revision):
            raise SchemaError(
                f"the {self.name} is at revision {revision}, which this version does not "
                "know (a newer one?)"
            )
        raise SchemaBehind(self.name, revision, self.head(), self.command)

    def knows(self, revision: str) -> bool:
        """Whether ``revision`` is one of this chain's files (Alembic is imported: only
        a database that is not current asks)."""
        from alembic.util.exc import CommandError

        try:
            return _scripts(self).get_revision(revision) is not None
        except CommandError:
            return False

    def upgrade(self, engine: sa.Engine) -> tuple[str | None, str]:
        """Apply the missing revisions; the revisions before and after. Keeps every row."""
        connection = engine.connect().execution_options(**{WRITES: True})
        with connection, connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": self.lock}
                )
            before = self.current_revision(connection)
            if before == self.head():
                return before, before
            inspector = sa.inspect(connection)
            if before is None and not any(inspector.has_table(t) for t in self.metadata.tables):
                self._create(connection)
                return before, self.head()
            from alembic import command
            from alembic.util.exc import CommandError

            try:
                command.upgrade(self.config(connection), "head")
            except CommandError:
                raise SchemaError(
                    f"the {self.name} is at revision {before}, which this version does not "
                    "know (a newer one?)"
                ) from None
        return before, self.head()

    def config(self, connection: sa.Connection | None = None) -> Config:
        """Alembic's configuration of this chain, run on ``connection``."""
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", SCRIPTS)
        config.set_main_option("path_separator", "newline")
        config.set_main_option("version_locations", self.versions)
        config.attributes.update(
            connection=connection, metadata=self.metadata, version_table=self.version_table
        )
        return config

    def _create(self, connection: sa.Connection) -> None:
        """A new database gets the current schema at once and is stamped with its revision,
        as Alembic's cookbook builds one from scratch; a test checks that the revisions and
        the tables module describe the same schema."""
        from alembic.runtime.migration import MigrationContext

        self.metadata.create_all(connection)
        context = MigrationContext.configure(connection, opts={"version_table": self.version_table})
        context.stamp(_scripts(self), "head")


@functools.cache
def _scripts(migrations: Migrations) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(migrations.config())


CATALOG = Migrations(
    name="catalog",
    metadata=catalog_metadata,
    versions="reporting_svc.catalog:migrations/versions",
    version_table="alembic_version",
    lock=UPGRADE_LOCK,
    newest="0003",
    command="catalog upgrade",
)


def current_revision(connection: sa.Connection) -> str | None:
    """The catalog's revision, or None before the first upgrade."""
    return CATALOG.current_revision(connection)


def head() -> str:
    """The newest catalog revision this version of the service ships."""
    return CATALOG.head()


def is_current(engine: sa.Engine) -> bool:
    return CATALOG.is_current(engine)


def upgrade(engine: sa.Engine) -> tuple[str | None, str]:
    """Apply the missing catalog revisions; returns the revisions before and after."""
    return CATALOG.upgrade(engine)


def _config(connection: sa.Connection | None = None) -> Config:
    return CATALOG.config(connection)
