"""The catalog: the index of completed jobs that the download list reads (docs/api.md §2, §5).

The store stays the truth; the catalog can always be rebuilt from it (``rebuild``).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice

import sqlalchemy as sa

from ..storage.record import JobRecord
from . import counts, queries
from .bounds import DatabaseLimits
from .engine import ProcessEngine, failure_of, missing_privileges
from .schema import CATALOG, SchemaBehind, SchemaError, upgrade
from .tables import count_horizon, job_counts, jobs

BATCH = 1000
#: What the service's role needs on the catalog: a listing only reads (docs/deploying.md: roles).
READS = {
    table: ("SELECT",)
    for table in (jobs.name, job_counts.name, count_horizon.name, CATALOG.version_table)
}


class CatalogError(Exception):
    """The catalog database could not be reached or refused a statement; worth retrying."""


@dataclass(frozen=True)
class Lapsed:
    """A job whose availability ended and whose file is not purged yet."""

    record: JobRecord
    withdrawn: datetime | None


@dataclass(frozen=True)
class Marks:
    """The ids of the jobs marked withdrawn, and purged, in the catalog."""

    withdrawn: set[str]
    purged: set[str]


@dataclass(frozen=True)
class Page:
    """One page of a listing and the exact number of runs in the whole listing."""

    total: int
    records: list[JobRecord]


class Catalog:
    """Jobs indexed in a database; one engine per process, shared by its threads.

    Nothing is opened until the first use, which checks that the schema is this
    version's (SchemaBehind until ``upgrade``, the deploy step, has run): a download never
    needs the catalog, so an unreachable or outdated one stops only listings (and
    readiness says so).
    """

    def __init__(self, url: str, *, limits: DatabaseLimits | None = None):
        self.engines = ProcessEngine(url, CATALOG.require, limits=limits)

    def upgrade(self) -> tuple[str | None, str]:
        """Create the schema or apply missing revisions (rows are kept): the deploy step.
        Returns the revisions before and after."""
        with _failures():
            return upgrade(self.engines.get(checked=False))

    def add(self, record: JobRecord) -> bool:
        """Index one job; False when it was indexed already."""
        added = bool(self._insert([queries.row_of(record)]))
        self.keep_horizon()
        return added

    def add_many(self, records: Iterable[JobRecord]) -> None:
        """Index jobs in batches, one transaction each; those indexed already are skipped."""
        records = iter(records)
        while batch := list(islice(records, BATCH)):
            self._insert([queries.row_of(record) for record in batch])
        self.keep_horizon()

    def remove(self, job_ids: Iterable[str]) -> None:
        ids = iter(job_ids)
        while batch := list(islice(ids, BATCH)):
            with _failures(), self.engines.writing() as connection:
                horizon_us = counts.horizon(connection, lock=True)
                rows = connection.execute(counts.held_rows(jobs.c.id.in_(batch))).mappings()
                gone = counts.tally(rows, horizon_us, sign=-1)
                connection.execute(sa.delete(jobs).where(jobs.c.id.in_(batch)))
                counts.adjust(connection, gone)
        self.keep_horizon()

    def has(self, job_id: str) -> bool:
        with _failures(), self.engines.reading() as connection:
            return connection.scalar(sa.select(jobs.c.id).where(jobs.c.id == job_id)) is not None

    def job_ids(self) -> set[str]:
        with _failures(), self.engines.reading() as connection:
            return set(connection.scalars(sa.select(jobs.c.id)))

    def page(self, selection: queries.Selection, limit: int, offset: int, now: datetime) -> Page:
        """The exact count and one page, read in one snapshot so the two always agree.

        Nothing is written: a listing needs only SELECT. The writers move the horizon
        (``keep_horizon``), so the jobs that ended since, counted one by one, stay few.
        """
        now_us = queries.micros(now)
        where = selection.where(now_us)
        with _failures(), self.engines.reading() as connection:
            horizon_us = counts.horizon(connection)
            total = counts.total(connection, selection, now_us, horizon_us)
            records = queries.page(connection, where, limit, offset) if offset < total else []
        return Page(total, records)

    def fold(self, now: datetime) -> None:
        """Move the counts' horizon to ``now`` (see ``counts``)."""
        with _failures(), self.engines.writing() as connection:
            counts.fold(connection, queries.micros(now))

    def keep_horizon(self, now: datetime | None = None) -> None:
        """Move the horizon to ``now`` (the clock by default) when it is more than a minute
        behind: every writer does, after its own transaction, since ``fold`` takes the
        horizon's lock alone and a writer holds it shared."""
        now = now or datetime.now(UTC)
        with _failures(), self.engines.reading() as connection:
            horizon_us = counts.horizon(connection)
        if queries.micros(now) - horizon_us > counts.FOLD_AFTER_US:
            self.fold(now)

    def recount(self, now: datetime) -> None:
        """Count every listing group afresh (after a bulk load, or to mend drift)."""
        with _failures(), self.engines.writing() as connection:
            counts.recount(connection, queries.micros(now))

    def count_drift(self) -> list[tuple[counts.Group, int, int]]:
        """Groups whose kept count differs from their jobs: none, unless rows were
        written around the catalog (``recount`` mends them)."""
        with _failures(), self.engines.reading() as connection:
            return counts.drift(connection)

    def filtered_page(
        self,
        selection: queries.Selection,
        keep: Callable[[JobRecord], bool],
        limit: int,
        offset: int,
        now: datetime,
    ) -> Page:
        """Like ``page``, but only the rows ``keep`` accepts count: every selected row is read."""
        where = selection.where(queries.micros(now))
        total, records = 0, []
        with _failures(), self.engines.reading() as connection:
            for record in queries.every(connection, where):
                if not keep(record):
                    continue
                if offset <= total < offset + limit:
                    records.append(record)
                total += 1
        return Page(total, records)

    def withdraw(self, job_id: str, at: datetime) -> None:
        """Mark the job withdrawn at ``at``: from then on no listing shows it."""
        at_us = queries.micros(at)
        with _failures(), self.engines.writing() as connection:
            horizon_us = counts.horizon(connection, lock=True)
            unwithdrawn = sa.and_(jobs.c.id == job_id, jobs.c.withdrawn_us.is_(None))
            before = connection.execute(counts.held_rows(unwithdrawn)).mappings().first()
            if before is None:
                return
            connection.execute(queries.withdraw_statement(job_id, at_us))
            until = before["available_until_us"]
            after = {**before, "available_until_us": at_us if until is None else min(until, at_us)}
            deltas = counts.tally([before], horizon_us, sign=-1)
            deltas.update(counts.tally([after], horizon_us))
            counts.adjust(connection, deltas)
        self.keep_horizon()

    def mark_purged(self, job_id: str, at: datetime) -> None:
        with _failures(), self.engines.writing() as connection:
            connection.execute(queries.purged_statement(job_id, queries.micros(at)))

    def marks(self) -> Marks:
        with _failures(), self.engines.reading() as connection:
            rows = connection.execute(
                sa.select(jobs.c.id, jobs.c.withdrawn_us, jobs.c.purged_us).where(
                    sa.or_(jobs.c.withdrawn_us.is_not(None), jobs.c.purged_us.is_not(None))
                )
            ).all()
        return Marks(
            {row.id for row in rows if row.withdrawn_us is not None},
            {row.id for row in rows if row.purged_us is not None},
        )

    def count_lapsed(self, before: datetime) -> int:
        """How many jobs ``lapsed`` would yield: for a progress bar."""
        where = queries.lapsed_where(queries.micros(before))
        with _failures(), self.engines.reading() as connection:
            return queries.count(connection, where)

    def lapsed(self, before: datetime) -> Iterator[Lapsed]:
        """Jobs not purged whose availability ended before ``before``, read a batch at a
        time after the last id seen, so a purge may mark them while it reads. Each batch
        comes in a random order: purges on several hosts at once share its jobs instead
        of one trailing the other through them."""
        where = queries.lapsed_where(queries.micros(before))
        after = ""
        while True:
            statement = (
                sa.select(jobs.c.id, jobs.c.record, jobs.c.withdrawn_us)
                .where(where, jobs.c.id > after)
                .order_by(jobs.c.id)
                .limit(BATCH)
            )
            with _failures(), self.engines.reading() as connection:
                rows = connection.execute(statement).all()
            if not rows:
                return
            after = rows[-1].id
            for row in random.sample(rows, len(rows)):
                yield Lapsed(JobRecord.from_json(row.record), queries.instant(row.withdrawn_us))
            if len(rows) < BATCH:
                return

    def check(self) -> str | None:
        """Why the catalog cannot answer now (for readiness), or None when it can; cheap.
        A role that may not read every table a listing reads is named with what it lacks."""
        try:
            with _failures(), self.engines.reading() as connection:
                missing = missing_privileges(connection, READS)
                if not missing:
                    connection.execute(sa.select(jobs.c.id).limit(0))
        except CatalogError as error:
            return f"the catalog cannot be read ({error})"
        except SchemaBehind as error:
            return str(error)
        if missing:
            return f"the catalog's database role lacks {', '.join(missing)}"
        return None

    def _insert(self, rows: list[dict[str, object]]) -> int:
        """Index the rows not indexed yet and count them in; how many were new."""
        insert = queries.insert_new(self.engines.dialect).returning(jobs.c.id)
        with _failures(), self.engines.writing() as connection:
            horizon_us = counts.horizon(connection, lock=True)
            new = set(connection.scalars(insert, rows))
            added = [row for row in rows if row["id"] in new]
            counts.adjust(connection, counts.tally(added, horizon_us))
        return len(added)


@contextlib.contextmanager
def _failures() -> Iterator[None]:
    """Database failures become CatalogError, named by their first line (never a URL)."""
    try:
        yield
    except sa.exc.SQLAlchemyError as error:
        raise CatalogError(failure_of(error)) from error
    except SchemaError as error:
        raise CatalogError(str(error)) from error
