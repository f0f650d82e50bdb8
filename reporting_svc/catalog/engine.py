"""The catalog's database engine: an SQLite file by default, PostgreSQL when configured.

SQLite runs in WAL mode, so every gunicorn worker on the host reads while one writes,
and waits (``busy_timeout``) rather than failing when another holds the write lock.
The driver's own transaction handling is off: each transaction starts with an explicit
``BEGIN``, so a listing's count and page read one snapshot, and ``BEGIN IMMEDIATE`` for a
writer, so two writers queue for the lock instead of deadlocking on an upgrade of it.

A PostgreSQL engine given ``DatabaseLimits`` (the service's) bounds every wait for its
server (``bounds``); without them (tests, and commands that may read a whole table) only
locks are waited for at most ``LOCK_TIMEOUT_MS``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..file_modes import make_dirs, open_new
from .bounds import Breaker, DatabaseLimits, connect, gate

BUSY_TIMEOUT_MS = 10_000
#: A PostgreSQL lock is waited for this long when no limits are given.
LOCK_TIMEOUT_MS = 10_000
#: Execution option of a connection that will write: its transaction takes the lock first.
WRITES = "reporting_svc_writes"


def make_engine(
    url: str, limits: DatabaseLimits | None = None, breaker: Breaker | None = None
) -> sa.Engine:
    """An engine for the URL; PostgreSQL connections are checked before use (pre-ping), at
    most the limits' pool size and overflow at once, and with ``limits`` every wait for the
    server is bounded, ``breaker`` tripped by one that was not answered."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    bounded = {} if limits is None else {"pool_timeout": limits.pool}
    sizes = limits or DatabaseLimits()
    engine = sa.create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=sizes.pool_size,
        max_overflow=sizes.pool_overflow,
        connect_args=limits.connect_args() if limits else {},
        **bounded,
    )
    server = limits.server_options() if limits else f"-c lock_timeout={LOCK_TIMEOUT_MS}"
    tripped = breaker or Breaker(limits.answer if limits else 0)

    @sa.event.listens_for(engine, "do_connect")
    def _bounded(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        # Added to the URL's own ``options``, if any, rather than in place of them.
        cparams["options"] = " ".join(filter(None, (cparams.get("options"), server)))
        return connect(limits, tripped, *cargs, **cparams) if limits else None

    return engine


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


def missing_privileges(
    connection: sa.Connection, needed: Mapping[str, tuple[str, ...]]
) -> list[str]:
    """Which of the privileges ``needed`` (table: privileges) the connection's role lacks,
    as ``"INSERT ON audit_heads"``, asked in one statement; none on SQLite, which has no roles.
    """
    if connection.dialect.name != "postgresql":
        return []
    wanted = [
        (table, privilege) for table, privileges in needed.items() for privilege in privileges
    ]
    held = connection.execute(
        sa.select(*(sa.func.has_table_privilege(table, privilege) for table, privilege in wanted))
    ).one()
    return [
        f"{privilege} ON {table}"
        for (table, privilege), ok in zip(wanted, held, strict=True)
        if not ok
    ]


class SharedEngine:
    """This process's engine for one URL and limits, made on first use, and the breaker of
    its server: a forked child (a gunicorn worker) builds its own.

    A pooled connection copied into a child would share its socket or file lock with the
    parent; the child lets go of the parent's pool without closing it.
    """

    def __init__(self, url: str, limits: DatabaseLimits | None):
        self.url = url
        self.limits = limits
        self.breaker = Breaker(limits.answer if limits else 0)
        self._engine: sa.Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def get(self) -> sa.Engine:
        with self._lock:
            if self._engine is None or self._pid != os.getpid():
                if self._engine is not None:
                    self._engine.dispose(close=False)
                self._engine = make_engine(self.url, self.limits, self.breaker)
                self._pid = os.getpid()
            return self._engine


_shared: weakref.WeakValueDictionary[tuple[str, DatabaseLimits | None], SharedEngine]
_shared = weakref.WeakValueDictionary()
_sharing = threading.Lock()


def shared_engine(url: str, limits: DatabaseLimits | None) -> SharedEngine:
    """The one engine of the process for ``url`` and ``limits``, as long as anything uses
    it: the catalog and the audit trail on one database share its pool, so a worker holds
    at most pool size + overflow connections to it (docs/deploying.md: Sizing)."""
    with _sharing:
        found = _shared.get((url, limits))
        if found is None:
            found = _shared[url, limits] = SharedEngine(url, limits)
        return found


class ProcessEngine:
    """The process's engine for one use of a database (the catalog, the audit trail),
    shared with any other use of the same database (``shared_engine``).

    ``require`` checks the use's schema before its first statement (``Migrations.require``:
    one row read, never a write); it raises while the database is not current, and once it
    passed it is not asked again. Upgrading is the deploy step's (``get(checked=False)``).
    """

    def __init__(
        self,
        url: str,
        require: Callable[[sa.Engine], object] | None = None,
        *,
        limits: DatabaseLimits | None = None,
    ):
        self.url = url
        self._require = require
        self._shared = shared_engine(url, limits)
        self._breaker = self._shared.breaker
        gated = limits is not None and limits.users and self.dialect == "postgresql"
        self._gate = gate(limits.users) if limits and gated else None
        self._lock = threading.Lock()

    def get(self, *, checked: bool = True) -> sa.Engine:
        """This process's engine; ``checked`` False skips ``require`` (the upgrade does).

        Threads that queued here behind a check the server did not answer are refused by
        the breaker instead of trying in turn."""
        with self._lock:
            engine = self._shared.get()
            if checked and self._require is not None:
                self._breaker.admit()
                self._require(engine)
                self._require = None
            return engine

    @contextlib.contextmanager
    def using(self) -> Iterator[None]:
        """The block is one of the process's threads that may use the databases at once,
        or sa.exc.TimeoutError: all of them are waiting for it (``bounds.Gate``)."""
        with self._gate.entered() if self._gate else contextlib.nullcontext():
            yield

    @contextlib.contextmanager
    def _admitted(self) -> Iterator[None]:
        """The block may ask the server unless it just failed to answer, or the threads
        that may use it are all waiting for it (sa.exc.TimeoutError either way)."""
        with self.using():
            self._breaker.admit()
            try:
                yield
            finally:
                self._breaker.release()

    @property
    def dialect(self) -> str:
        return sa.make_url(self.url).get_backend_name()

    @contextlib.contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A read transaction: one snapshot for every statement in it (REPEATABLE READ on
        PostgreSQL; SQLite's WAL gives each transaction one)."""
        with self._admitted():
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
        with self._admitted():
            connection = self.get().connect().execution_options(**{WRITES: True})
            with connection, connection.begin():
                yield connection
