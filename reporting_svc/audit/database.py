"""The PostgreSQL sink: one chain for the whole deployment, appended by every worker of
every host, and the reads that ``audit verify``, ``show`` and ``import`` make of it.

Writers serialise on a transaction-level advisory lock: a batch takes the lock, reads
the chain's last record, inserts its records chained on from there and a head naming
the last of them, and commits, which releases the lock. So the chain is one line in
commit order, whatever the hosts and processes, and a worker killed mid-batch leaves
nothing (its transaction is rolled back and its lock freed when PostgreSQL sees the
connection close). The primary key (chain, seq) and the unique (chain, prev) make a
duplicate or a fork impossible even for a writer that skipped the lock.

Readers take no lock: a REPEATABLE READ snapshot sees whole batches only (records and
their head commit together), so a verify of a live database checks the chain as it
stood when it began while downloads go on appending.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, NamedTuple

import sqlalchemy as sa

from ..catalog.bounds import DatabaseLimits
from ..catalog.engine import ProcessEngine, failure_of, missing_privileges
from ..catalog.schema import SchemaBehind, SchemaError
from .batches import GroupCommit
from .chain import GENESIS, Verdict, line_of, seal, verify_from
from .recorded import Recorded
from .tables import AUDIT, LIVE, heads, records

#: pg_advisory_xact_lock's key of the live chain's appenders.
APPEND_LOCK = 0x52505443  # "RPTC"
#: Rows read or inserted per round trip by verify, show and import.
ROWS = 1000
#: What the service's role needs to append a batch (docs/deploying.md: roles).
APPENDS = {
    records.name: ("SELECT", "INSERT"),
    heads.name: ("SELECT", "INSERT"),
    AUDIT.version_table: ("SELECT",),
}


class AuditDatabaseError(Exception):
    """The audit database could not be reached or refused a statement."""


class Row(NamedTuple):
    """One stored record: its chain, its number in it, and its line."""

    chain: str
    seq: int
    prev: str
    hash: str
    line: str


class DatabaseSink:
    """Appends sealed records to the live chain; any number of hosts and processes may share it.

    Group commit as in the file sink: records that threads of one process append while
    another thread is writing go out together in the next transaction. A batch that holds
    only records nobody waits for (``end``, anonymous refusals) commits with
    ``synchronous_commit`` off: it is visible at once and on disk within moments.
    """

    def __init__(self, url: str, *, limits: DatabaseLimits | None = None):
        self.engines = ProcessEngine(url, AUDIT.require, limits=limits)
        self._batches = GroupCommit(self._append_all, wait=limits.batch if limits else None)

    def upgrade(self) -> tuple[str | None, str]:
        """Create the audit tables or apply missing revisions (rows are kept): the deploy
        step, run as the tables' owner. Returns the revisions before and after."""
        with failures():
            return AUDIT.upgrade(self.engines.get(checked=False))

    def append(self, fields: dict[str, Any], *, durable: bool = True) -> dict[str, Any]:
        """Seal and write one record; RecordNotWrittenError if its transaction failed.

        A caller waiting for another's batch uses the database too: with a stuck server,
        refusals (anonymous ones included) must not take every thread either."""
        with failures(), self.engines.using():
            return self._batches.append(fields, durable=durable)

    def check(self) -> str | None:
        """Why a record could not be written now (for readiness), or None; names no URL.
        A role that may not append a batch is named with what it lacks."""
        try:
            with failures(), self.engines.reading() as connection:
                missing = missing_privileges(connection, APPENDS)
                if not missing:
                    connection.execute(sa.select(records.c.seq).limit(0))
        except AuditDatabaseError as error:
            return f"the audit database cannot be reached ({error})"
        except SchemaBehind as error:
            return str(error)
        if missing:
            return f"the audit database's role lacks {', '.join(missing)}"
        return None

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sa.Connection]:
        """A read-only transaction that sees the trail as it stood when it began."""
        with failures(), self.engines.reading() as connection:
            yield connection

    @contextlib.contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """A write transaction, committed when the block ends without an error."""
        with failures(), self.engines.writing() as connection:
            yield connection

    def _append_all(
        self, batch: list[dict[str, Any]], durable: bool, written: Callable[[], None]
    ) -> list[dict[str, Any]]:
        """One transaction: the batch is in order only once it commits, so ``written`` is
        never called and the next batch waits for this one."""
        with self.writing() as connection:
            return append_live(connection, batch, durable=durable)

    def append_once(self, fields: dict[str, Any], recorded: Recorded) -> dict[str, Any] | None:
        """Seal and write one record unless the live chain holds one of its event about its
        job already: None then. The check and the insert are one transaction under the
        chain's lock, so writers on every host sharing the database agree.

        Only the live chain's rows past ``recorded.position`` that can hold such a record
        are read (the rest were read before, by this run).
        """
        with self.writing() as connection:
            lock_live(connection)
            last: int = (
                connection.scalar(
                    sa.select(sa.func.max(records.c.seq)).where(records.c.chain == LIVE)
                )
                or 0
            )
            lines = connection.scalars(
                sa.select(records.c.line)
                .where(records.c.chain == LIVE)
                .where(records.c.seq > recorded.position, records.c.seq <= last)
                .where(records.c.line.contains(recorded.marker, autoescape=True))
                .execution_options(yield_per=ROWS)
            )
            recorded.read(lines)
            recorded.position = last
            if recorded.holds(fields):
                return None
            (record,) = seal_onto_live(connection, [fields])
        recorded.note(record)
        return record


def lock_live(connection: sa.Connection, *, durable: bool = True) -> None:
    """Take the live chain's lock for the transaction (``durable`` off: commit lazily),
    waiting at most the connection's ``lock_timeout`` (the engine sets it) before the
    batch fails (503)."""
    relaxed = "" if durable else "SET LOCAL synchronous_commit = off; "
    connection.exec_driver_sql(f"{relaxed}SELECT pg_advisory_xact_lock({APPEND_LOCK})")


def append_live(
    connection: sa.Connection, batch: list[dict[str, Any]], *, durable: bool = True
) -> list[dict[str, Any]]:
    """Seal the batch onto the live chain's end, under its lock, with a head naming it."""
    lock_live(connection, durable=durable)
    return seal_onto_live(connection, batch)


def seal_onto_live(connection: sa.Connection, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seal the batch onto the live chain's end and insert it; the caller holds the lock."""
    last = connection.execute(
        sa.select(records.c.seq, records.c.hash)
        .where(records.c.chain == LIVE)
        .order_by(records.c.seq.desc())
        .limit(1)
    ).first()
    seq, prev = (last.seq, last.hash) if last is not None else (0, GENESIS)
    sealed, rows = [], []
    for fields in batch:
        record = seal(fields, prev)
        seq, prev = seq + 1, record["hash"]
        sealed.append(record)
        rows.append(row_of(LIVE, seq, record))
    insert_chain(connection, LIVE, rows)
    return sealed


def row_of(chain: str, seq: int, record: dict[str, Any]) -> dict[str, Any]:
    """The row that stores a sealed record."""
    return {
        "chain": chain,
        "seq": seq,
        "prev": record["prev"],
        "hash": record["hash"],
        "line": line_of(record).decode("ascii"),
    }


def insert_chain(connection: sa.Connection, chain: str, rows: Iterable[dict[str, Any]]) -> int:
    """Insert rows that continue the chain, ``ROWS`` a statement, and one head naming the
    last of them; returns how many were inserted (none: no head either)."""
    rows, count, last = iter(rows), 0, None
    while batch := list(islice(rows, ROWS)):
        connection.execute(sa.insert(records), batch)
        count, last = count + len(batch), batch[-1]
    if last is not None:
        connection.execute(sa.insert(heads).values(chain=chain, seq=last["seq"], hash=last["hash"]))
    return count


def chains(connection: sa.Connection) -> list[str]:
    """Every chain the database names, by a record or by a head (a head of a chain that
    holds no record is then checked too): imported ones (by name) first, the live one last."""
    named = sa.union(sa.select(records.c.chain), sa.select(heads.c.chain))
    names = set(connection.scalars(named))
    return [*sorted(names - {LIVE}), LIVE]


def rows_of(connection: sa.Connection, chain: str) -> Iterator[Row]:
    """The chain's rows in order, read in pages so a trail of any size needs little memory."""
    query = (
        sa.select(records.c.chain, records.c.seq, records.c.prev, records.c.hash, records.c.line)
        .where(records.c.chain == chain)
        .order_by(records.c.seq)
    )
    for row in connection.execution_options(yield_per=ROWS).execute(query):
        yield Row(*row)


def verify_rows(rows: Iterator[Row]) -> tuple[Verdict, Row | None]:
    """Walk a chain's rows from the genesis: each line in its one form and chained to the
    one before, numbered without a gap, its columns repeating its line. The first row that
    breaks is returned with the verdict."""
    prev, count = GENESIS, 0
    for row in rows:
        number = count + 1
        verdict = verify_from([row.line.encode()], prev)
        if not verdict.ok:
            return Verdict(count, prev, number, verdict.reason), row
        if row.seq != number:
            return Verdict(count, prev, number, f"it is numbered {row.seq}"), row
        if (row.prev, row.hash) != (prev, verdict.last_hash):
            return Verdict(
                count, prev, number, "its prev or hash column differs from its line"
            ), row
        prev, count = verdict.last_hash, number
    return Verdict(count, prev), None


def head_problem(connection: sa.Connection, chain: str, verdict: Verdict) -> str | None:
    """Why the heads disagree with the chain: records cut from its end, or added past them."""
    joined = heads.outerjoin(
        records, sa.and_(records.c.chain == heads.c.chain, records.c.seq == heads.c.seq)
    )
    orphan = connection.execute(
        sa.select(heads.c.seq, heads.c.hash)
        .select_from(joined)
        .where(heads.c.chain == chain)
        .where(sa.or_(records.c.hash.is_(None), records.c.hash != heads.c.hash))
        .order_by(heads.c.seq)
        .limit(1)
    ).first()
    if orphan is not None:
        return (
            f"a head names record {orphan.seq} with hash {orphan.hash}, which the chain "
            f"({verdict.records} records) does not hold: records were cut or replaced"
        )
    newest = connection.scalar(sa.select(sa.func.max(heads.c.seq)).where(heads.c.chain == chain))
    if verdict.records and newest != verdict.records:
        return f"the chain holds {verdict.records} records but its newest head names {newest or 0}"
    return None


@contextlib.contextmanager
def failures() -> Iterator[None]:
    """Database failures become AuditDatabaseError, named by their first line (never a URL)."""
    try:
        yield
    except sa.exc.SQLAlchemyError as error:
        raise AuditDatabaseError(failure_of(error)) from error
    except SchemaError as error:
        raise AuditDatabaseError(str(error)) from error
