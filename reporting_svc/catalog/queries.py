"""The catalog's statements: a job's row, the listing's selection, its count and its page."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..storage.record import MODES, JobRecord
from .tables import jobs

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
NEWEST_FIRST = (jobs.c.kickoff_us.desc(), jobs.c.id)


def micros(instant: datetime) -> int:
    """Microseconds since the epoch, exactly (no float on the way)."""
    return (instant - _EPOCH) // _MICROSECOND


def instant(us: int | None) -> datetime | None:
    """The instant ``micros`` gave, or None."""
    return None if us is None else _EPOCH + us * _MICROSECOND


def row_of(record: JobRecord) -> dict[str, Any]:
    """The catalog row of a job: its record whole, and the columns the listing reads."""
    expires = record.expires
    return {
        "id": record.id,
        "scope": record.scope,
        "mode": record.mode,
        "report_name": record.reportName,
        "rpt_id": record.rptId,
        "required_permission": record.requiredPermission,
        "kickoff_us": micros(record.kickoff),
        "available_until_us": None if expires is None else micros(expires),
        "record": json.dumps(asdict(record), ensure_ascii=False, separators=(",", ":")),
    }


def insert_new(dialect: str) -> Any:
    """INSERT that skips a job already indexed, so indexing twice is harmless."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(jobs).on_conflict_do_nothing(index_elements=[jobs.c.id])


@dataclass(frozen=True)
class Selection:
    """The rows a listing may show.

    One scope (a study id or ``tenant``) and, per mode, the permissions that open a job
    there; None for a mode means any permission (an authoriser that decides record by
    record filters those rows itself).
    """

    scope: str
    modes: Mapping[str, frozenset[str] | None]
    rpt_id: str | None = None
    report_name: str | None = None

    def where(self, now_us: int) -> sa.ColumnElement[bool]:
        """The jobs listed at ``now_us``: those that match and are still available."""
        return sa.and_(self.matches(jobs), available_at(now_us))

    def matches(self, table: sa.Table) -> sa.ColumnElement[bool]:
        """Scope, filters and what may be seen, on ``jobs`` or on its counts."""
        clauses = [table.c.scope == self.scope, self._visible(table)]
        if self.rpt_id is not None:
            clauses.append(table.c.rpt_id == self.rpt_id)
        if self.report_name is not None:
            clauses.append(table.c.report_name == self.report_name)
        return sa.and_(*clauses)

    def _visible(self, table: sa.Table) -> sa.ColumnElement[bool]:
        """Modes that share their permissions are one term, so the usual case (the same
        permissions in every mode) needs no mode condition at all."""
        by_permissions: dict[frozenset[str] | None, list[str]] = defaultdict(list)
        for mode, permissions in self.modes.items():
            by_permissions[permissions].append(mode)
        terms = []
        for permissions, modes in by_permissions.items():
            term: list[sa.ColumnElement[bool]] = []
            if set(modes) != set(MODES):
                term.append(table.c.mode.in_(sorted(modes)))
            if permissions is not None:
                term.append(table.c.required_permission.in_(sorted(permissions)))
            terms.append(sa.and_(sa.true(), *term))
        return sa.or_(sa.false(), *terms)


def available_at(now_us: int) -> sa.ColumnElement[bool]:
    """Jobs whose availability has not ended at ``now_us`` (or never ends)."""
    until = jobs.c.available_until_us
    return sa.or_(until.is_(None), until > now_us)


def count_statement(where: sa.ColumnElement[bool]) -> sa.Select[int]:
    """The exact number of rows selected; the listing indexes hold every column it reads."""
    return sa.select(sa.func.count()).select_from(jobs).where(where)


def page_statement(where: sa.ColumnElement[bool], limit: int, offset: int) -> sa.Select[Any]:
    """One page, newest first: the ids are found in the index, then only they are read.

    Skipping ``offset`` rows then reads index entries alone, never the rows skipped.
    """
    ids = (
        sa.select(jobs.c.id, jobs.c.kickoff_us)
        .where(where)
        .order_by(*NEWEST_FIRST)
        .limit(limit)
        .offset(offset)
        .subquery()
    )
    return (
        sa.select(jobs.c.record)
        .join(ids, ids.c.id == jobs.c.id)
        .order_by(ids.c.kickoff_us.desc(), ids.c.id)
    )


def count(connection: sa.Connection, where: sa.ColumnElement[bool]) -> int:
    return int(connection.scalar(count_statement(where)) or 0)


def page(
    connection: sa.Connection, where: sa.ColumnElement[bool], limit: int, offset: int
) -> list[JobRecord]:
    statement = page_statement(where, limit, offset)
    return [JobRecord.from_json(text) for text in connection.scalars(statement)]


def every(connection: sa.Connection, where: sa.ColumnElement[bool]) -> Iterator[JobRecord]:
    """Every row selected, newest first, streamed."""
    statement = sa.select(jobs.c.record).where(where).order_by(*NEWEST_FIRST)
    for text in connection.execution_options(yield_per=500).scalars(statement):
        yield JobRecord.from_json(text)


def withdraw_statement(job_id: str, at_us: int) -> sa.Update:
    """Mark a job withdrawn at ``at_us`` (a second withdrawal keeps the first time) and
    end its availability then, unless it ended earlier."""
    until = jobs.c.available_until_us
    return (
        sa.update(jobs)
        .where(jobs.c.id == job_id, jobs.c.withdrawn_us.is_(None))
        .values(
            withdrawn_us=at_us,
            available_until_us=sa.case(
                (until.is_(None), at_us), (until > at_us, at_us), else_=until
            ),
        )
    )


def purged_statement(job_id: str, at_us: int) -> sa.Update:
    return (
        sa.update(jobs)
        .where(jobs.c.id == job_id, jobs.c.purged_us.is_(None))
        .values(purged_us=at_us)
    )


def lapsed_where(before_us: int) -> sa.ColumnElement[bool]:
    """Jobs not purged yet whose availability ended before ``before_us`` (purge index)."""
    return sa.and_(jobs.c.purged_us.is_(None), jobs.c.available_until_us <= before_us)
