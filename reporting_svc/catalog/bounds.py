"""Bounds on every wait for a PostgreSQL server, so a stuck one is a quick 503, not a hang.

A server that is down refuses connections at once; a stuck one (SIGSTOP, a frozen VM, a
lost network) accepts them and answers nothing. Its kernel may go on acknowledging every
byte (a stopped process's does), so TCP keepalives and ``tcp_user_timeout`` notice only a
host or a network that is gone, and ``statement_timeout`` and ``lock_timeout`` only a
server that still runs. So the client bounds its own waits too: a connection whose server
has not answered within the statement timeout and a second is closed, and for as long
again the engine fails at once instead of sending more threads to wait; then one caller
at a time tries whether the server answers again. And only so many threads of a process
use its databases at once (``Gate``): the others answer health checks and metrics, even
in the seconds before the first wait runs out.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from psycopg.abc import PQGen

#: How much longer than the server's statement timeout the client waits for an answer, so
#: a server that still runs cancels the statement itself (the connection stays usable).
ANSWER_GRACE = 1
#: Unanswered keepalives after which the kernel drops a connection whose peer is gone.
KEEPALIVE_PROBES = 3
#: Checked every this many seconds while waiting (psycopg's own interval).
WAKE_INTERVAL = 0.1
#: How long a caller waits for a place at a full gate: a busy server frees one in
#: milliseconds, a stuck one not at all, and the caller is refused at once.
GATE_WAIT = 0.1

RV = TypeVar("RV")
_deadline = threading.local()


@dataclass(frozen=True)
class DatabaseLimits:
    """How long a PostgreSQL connection, statement, lock or pooled connection is waited
    for, in seconds, how soon the kernel probes an idle connection (keepalive), and how
    many connections an engine holds."""

    connect: int = 3
    statement: int = 5
    lock: int = 3
    pool: int = 3
    keepalive: int = 5
    #: Threads of a process that may use its databases at once (0: any number).
    users: int = 0
    #: Connections an engine keeps open, and how many more it may open for a while.
    pool_size: int = 4
    pool_overflow: int = 2

    @property
    def answer(self) -> int:
        """The longest the client waits for any answer of the server."""
        return self.statement + ANSWER_GRACE

    @property
    def batch(self) -> int:
        """The longest a record waits for the batch that writes it: a pooled connection,
        a new one, and the statements' answers."""
        return self.pool + self.connect + self.answer

    def connect_args(self) -> dict[str, Any]:
        """libpq's parameters that bound the connection and drop one whose peer is gone."""
        return {
            "connect_timeout": self.connect,
            "keepalives": 1,
            "keepalives_idle": self.keepalive,
            "keepalives_interval": self.keepalive,
            "keepalives_count": KEEPALIVE_PROBES,
            "tcp_user_timeout": self.answer * 1000,
        }

    def server_options(self) -> str:
        """The server's own bounds on each statement and lock wait (libpq ``options``)."""
        return f"-c statement_timeout={self.statement * 1000} -c lock_timeout={self.lock * 1000}"


class NoAnswerError(psycopg.OperationalError):
    """The server did not answer in time; the connection is closed, since what it would
    have answered can no longer be told apart from the next statement's answer."""


class Breaker:
    """After the server failed to answer, callers are refused at once for ``pause``
    seconds; then one caller at a time tries it again, the rest still refused."""

    def __init__(self, pause: float):
        self.pause = pause
        self._lock = threading.Lock()
        self._until = 0.0
        self._trying: int | None = None

    def admit(self) -> None:
        """Return if the server may be asked now; sa.exc.TimeoutError if not."""
        me = threading.get_ident()
        with self._lock:
            if not self._until or self._trying == me:
                return
            now = time.monotonic()
            if now < self._until:
                raise sa.exc.TimeoutError(
                    f"the database server did not answer within {self.pause:g} s moments"
                    " ago; it is asked again shortly"
                )
            self._until, self._trying = now + self.pause, me

    def trip(self) -> None:
        """The server did not answer: refuse everyone (this thread too) for a while."""
        with self._lock:
            self._until, self._trying = time.monotonic() + self.pause, None

    def release(self) -> None:
        """This thread's use ended without a trip: if it was the one trying, let all in."""
        with self._lock:
            if self._trying == threading.get_ident():
                self._until, self._trying = 0.0, None


class Gate:
    """At most ``size`` threads use the databases at once; a caller that finds no place
    within GATE_WAIT is refused (sa.exc.TimeoutError). A thread inside may enter again."""

    def __init__(self, size: int):
        self.size = size
        self._places = threading.BoundedSemaphore(size)
        self._inside = threading.local()

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        depth: int = getattr(self._inside, "depth", 0)
        if not depth and not self._places.acquire(timeout=GATE_WAIT):
            raise sa.exc.TimeoutError(
                f"all {self.size} threads that may use the database are waiting for it"
            )
        self._inside.depth = depth + 1
        try:
            yield
        finally:
            self._inside.depth = depth
            if not depth:
                self._places.release()


@functools.cache
def gate(size: int) -> Gate:
    """The process's gate of ``size`` places, shared by every engine (catalog, audit)."""
    return Gate(size)


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits for its server at most ``limit`` seconds (less
    under ``answer_within``): past that it is closed and NoAnswerError raised. A wait
    cut at the full limit trips the engine's breaker; a shorter caller's own does not."""

    limit: float = 0
    breaker: Breaker | None = None

    def wait(
        self, gen: PQGen[RV], interval: float = WAKE_INTERVAL, timeout: float | None = None
    ) -> RV:
        if timeout is not None or not self.limit:
            return super().wait(gen, interval, timeout)
        bound = min(self.limit, remaining())
        try:
            return super().wait(gen, interval, bound)
        except psycopg.errors._WaitTimeout as error:  # internal to psycopg: converted here
            self.close()
            if bound == self.limit and self.breaker is not None:
                self.breaker.trip()
            raise NoAnswerError(f"the database server did not answer within {bound:g} s") from error


def remaining() -> float:
    """Seconds left of this thread's ``answer_within``, or infinity outside one."""
    deadline: float | None = getattr(_deadline, "at", None)
    return float("inf") if deadline is None else max(0.0, deadline - time.monotonic())


@contextlib.contextmanager
def answer_within(seconds: float) -> Iterator[None]:
    """Every database wait of this thread in the block ends within ``seconds`` of its
    start (connections take at least 2 s: libpq's least ``connect_timeout``)."""
    previous = getattr(_deadline, "at", None)
    _deadline.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline.at = previous


def connect(limits: DatabaseLimits, breaker: Breaker, *args: Any, **params: Any) -> Any:
    """A BoundedConnection, unless the breaker refuses; a connection cut short by the
    caller's own ``answer_within`` leaves the breaker as it was."""
    breaker.admit()
    left = remaining()
    if left < limits.connect:
        params["connect_timeout"] = max(1, int(left))
    try:
        connection = BoundedConnection.connect(*args, **params)
    except psycopg.errors.ConnectionTimeout:
        if left >= limits.connect:
            breaker.trip()
        raise
    connection.limit, connection.breaker = limits.answer, breaker
    return connection
