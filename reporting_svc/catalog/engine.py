"""The catalog's database engine: an SQLite file by default, PostgreSQL when configured.

SQLite runs in WAL mode, so every gunicorn worker on the host reads while one writes,
and waits (``busy_timeout``) rather than failing when another holds the write lock.
The driver's own transaction handling is off: each transaction starts with an explicit
``BEGIN``, so a listing's count and page read one snapshot, and ``BEGIN IMMEDIATE`` for a
writer, so two writers queue for the lock instead of deadlocking on an upgrade of it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..file_modes import make_dirs, open_new

BUSY_TIMEOUT_MS = 10_000
#: Execution option of a connection that will write: its transaction takes the lock first.
WRITES = "reporting_svc_writes"


def make_engine(url: str) -> sa.Engine:
    """An engine for the URL; PostgreSQL connections are checked before use (pre-ping)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=8, max_overflow=16)


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    if url.database and url.database != ":memory:":
        # When the folder or file cannot be made, SQLite's own "unable to open" says so on
        # use. SQLite gives its -wal and -shm files the database file's mode.
        with contextlib.suppress(OSError):
            make_dirs(Path(url.database).parent)
            os.close(open_new(Path(url.database), exclusive=True))
    engine = sa.create_engine(
        url, connect_args={"isolation_level": None, "timeout": BUSY_TIMEOUT_MS / 1000}
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        writes = connection.get_execution_options().get(WRITES, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def failure_of(error: sa.exc.SQLAlchemyError) -> str:
    """A database failure named by its driver's type and first line: never a URL."""
    cause = error.orig if isinstance(error, sa.exc.DBAPIError) else error
    message = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {message}".rstrip(": ")


class ProcessEngine:
    """One engine per process, made on first use: a forked child (a gunicorn worker)
    builds its own.

    A pooled connection copied into a child would share its socket or file lock with
    the parent; the child lets go of the parent's pool without closing it. ``prepare``
    runs once on the first engine (the schema's upgrade); if it fails, the next use
    tries again.
    """

    def __init__(self, url: str, prepare: Callable[[sa.Engine], object] | None = None):
        self.url = url
        self._prepare = prepare
        self._engine: sa.Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def get(self, *, prepared: bool = True) -> sa.Engine:
        """This process's engine; ``prepared`` False skips ``prepare`` (it is what runs)."""
        with self._lock:
            if self._engine is None or self._pid != os.getpid():
                if self._engine is not None:
                    self._engine.dispose(close=False)
                self._engine = make_engine(self.url)
                self._pid = os.getpid()
            if prepared and self._prepare is not None:
                self._prepare(self._engine)
                self._prepare = None
            return self._engine

    @property
    def dialect(self) -> str:
        return sa.make_url(self.url).get_backend_name()

    @contextlib.contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A read transaction: one snapshot for every statement in it (REPEATABLE READ on
        PostgreSQL; SQLite's WAL gives each transaction one)."""
        engine = self.get()
        if engine.dialect.name == "postgresql":
            options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        else:
            options = {}
        with engine.connect().execution_options(**options) as connection, connection.begin():
            yield connection

    @contextlib.contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """A write transaction, committed when the block ends without an error."""
        connection = self.get().connect().execution_options(**{WRITES: True})
        with connection, connection.begin():
            yield connection
