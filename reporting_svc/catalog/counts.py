"""Exact listing totals at a cost that does not grow with the listing (docs/api.md §5).

Counting the rows of a listing reads one index entry per run: 100,000 of them for a big
study, on every first page. Instead ``job_counts`` keeps, per group of jobs that no
listing tells apart (scope, mode, required permission, ``rptId``, report name), how many
were still available at one instant, the horizon. A listing's total is the sum of its
groups, less the jobs whose availability ended between the horizon and now, read from
``ix_jobs_scope_until``. A listing only reads; the horizon follows the clock through the
writers (``publish``, ``withdraw``, ``catalog rebuild`` and ``purge`` move it when it is
more than a minute behind) and ``reporting-svc catalog fold``, so those jobs stay few.

Every change of a job's availability updates its group in the same transaction as the
job's row, so the counts and the rows agree in every snapshot a listing reads. Writers
share the horizon's row lock and ``fold`` takes it alone, so no job is added while the
horizon moves past its end; counter rows are always updated in the groups' order, so two
writers never wait on each other in a cycle.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .queries import Selection, available_at
from .tables import GROUP, count_horizon, job_counts, jobs

Group = tuple[str, ...]

#: How far the horizon may fall behind the clock before a writer moves it: the jobs
#: that ended in between are counted one by one by every listing.
FOLD_AFTER_US = 60 * 1_000_000

GROUP_COLUMNS = (
    jobs.c.scope,
    jobs.c.mode,
    jobs.c.required_permission,
    sa.func.coalesce(jobs.c.rpt_id, "").label("rpt_id"),
    jobs.c.report_name,
)


def group_of(row: Mapping[Any, Any]) -> Group:
    """The group of a job's row (``rpt_id`` None is ``""``)."""
    return tuple(row[name] or "" for name in GROUP)


def counted(until_us: int | None, horizon_us: int) -> bool:
    """Whether the counts hold a job: it was still available at the horizon."""
    return until_us is None or until_us > horizon_us


def horizon(connection: sa.Connection, *, lock: bool = False, alone: bool = False) -> int:
    """The horizon; ``lock`` holds it (shared, or ``alone``) until the transaction ends."""
    statement = sa.select(count_horizon.c.horizon_us).where(count_horizon.c.id == 1)
    if lock:
        statement = statement.with_for_update(read=not alone)
    return int(connection.scalar(statement) or 0)


def adjust(connection: sa.Connection, deltas: Mapping[Group, int]) -> None:
    """Add each delta to its group's count, in the groups' order."""
    rows = [
        dict(zip(GROUP, group, strict=True), n=delta) for group, delta in sorted(deltas.items())
    ]
    rows = [row for row in rows if row["n"]]
    if not rows:
        return
    insert = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(
        job_counts
    )
    statement = insert.on_conflict_do_update(
        index_elements=list(GROUP), set_={"n": job_counts.c.n + insert.excluded.n}
    )
    connection.execute(statement, rows)


def held_rows(where: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The group and end of the jobs ``where`` selects, locked until the transaction ends
    (a job about to change or go)."""
    return sa.select(*GROUP_COLUMNS, jobs.c.available_until_us).where(where).with_for_update()


def tally(rows: Iterable[Mapping[Any, Any]], horizon_us: int, sign: int = 1) -> Counter[Group]:
    """``sign`` once for each of the jobs' rows that the counts hold, by group."""
    deltas: Counter[Group] = Counter()
    for row in rows:
        if counted(row["available_until_us"], horizon_us):
            deltas[group_of(row)] += sign
    return deltas


def total(connection: sa.Connection, selection: Selection, now_us: int, horizon_us: int) -> int:
    """How many jobs of ``selection`` are available at ``now_us``, exactly; ``horizon_us``
    read in the same transaction."""
    held = int(connection.scalar(held_statement(selection)) or 0)
    between = int(connection.scalar(between_statement(selection, horizon_us, now_us)) or 0)
    # A host whose clock is behind the horizon still sees the jobs ending in between.
    return held + between if now_us < horizon_us else held - between


def held_statement(selection: Selection) -> sa.Select[Any]:
    """How many of the selection's jobs were available at the horizon."""
    return sa.select(sa.func.coalesce(sa.func.sum(job_counts.c.n), 0)).where(
        selection.matches(job_counts)
    )


def between_statement(selection: Selection, horizon_us: int, now_us: int) -> sa.Select[Any]:
    """How many of the selection's jobs end between the horizon and now (either order)."""
    low, high = sorted((horizon_us, now_us))
    return (
        sa.select(sa.func.count())
        .select_from(jobs)
        .where(
            selection.matches(jobs),
            jobs.c.available_until_us > low,
            jobs.c.available_until_us <= high,
        )
    )


def fold(connection: sa.Connection, now_us: int) -> None:
    """Move the horizon to ``now_us``, taking out of the counts the jobs that ended."""
    horizon_us = horizon(connection, lock=True, alone=True)
    if now_us <= horizon_us:
        return
    ended = connection.execute(
        sa.select(*GROUP_COLUMNS, sa.func.count().label("ended"))
        .where(jobs.c.available_until_us > horizon_us, jobs.c.available_until_us <= now_us)
        .group_by(*GROUP_COLUMNS)
    )
    adjust(connection, {group_of(row._mapping): -row.ended for row in ended})
    _set_horizon(connection, now_us)


def recount(connection: sa.Connection, now_us: int) -> None:
    """Count every group afresh at ``now_us``: after a bulk load, or to mend drift."""
    horizon(connection, lock=True, alone=True)
    connection.execute(sa.delete(job_counts))
    connection.execute(
        sa.insert(job_counts).from_select(
            [*GROUP, "n"],
            sa.select(*GROUP_COLUMNS, sa.func.count())
            .where(available_at(now_us))
            .group_by(*GROUP_COLUMNS),
        )
    )
    _set_horizon(connection, now_us)


def drift(connection: sa.Connection) -> list[tuple[Group, int, int]]:
    """Each group whose count differs from its jobs: the group, the count kept, the true."""
    horizon_us = horizon(connection)
    true = {
        group_of(row._mapping): row.n
        for row in connection.execute(
            sa.select(*GROUP_COLUMNS, sa.func.count().label("n"))
            .where(available_at(horizon_us))
            .group_by(*GROUP_COLUMNS)
        )
    }
    kept = {group_of(row._mapping): row.n for row in connection.execute(sa.select(job_counts))}
    return [
        (group, kept.get(group, 0), true.get(group, 0))
        for group in sorted(true.keys() | kept.keys())
        if kept.get(group, 0) != true.get(group, 0)
    ]


def _set_horizon(connection: sa.Connection, at_us: int) -> None:
    connection.execute(
        sa.update(count_horizon).where(count_horizon.c.id == 1).values(horizon_us=at_us)
    )
