"""The catalog's one table: a row per completed job, the columns the listing filters on.

The record itself is kept whole (``record``, its JSON as in the store), so a page is
answered from the catalog alone and a record that gains fields needs no migration. The
other columns exist to be filtered and ordered on:

- ``scope`` is the study id, or ``tenant``: what grants and the listing key on.
- ``kickoff_us`` is ``rptKickoffDatetime`` in microseconds since the epoch (UTC), so
  that "newest first" orders instants, whatever offset the record's text carries.
- ``available_until_us`` is when the job stops being listed: its ``expiresAt``, or its
  withdrawal's time when that is earlier (docs/api.md §6); null while neither is set.
- ``withdrawn_us`` and ``purged_us`` are when the job was withdrawn and when its file
  was purged (null: not yet), as the store's entries say; ``catalog rebuild`` restores
  them. The purge index finds the files to delete without reading the other rows.

Every listing index starts with what the query fixes (scope, and mode, ``rptId`` or
``reportName``), continues in the listing's order (kickoff newest first, then id) and
ends with what the visibility filter reads (mode, required permission, availability), so
the page's ids are read from the index alone; the ``rptId`` index also carries the
report name, for a listing filtered by both.

The exact count is not read from those indexes: a study of 100,000 runs would mean
100,000 entries per listing. ``job_counts`` holds how many jobs each group (scope, mode,
required permission, ``rptId`` or ``""``, report name) had still available at the
``count_horizon``; a listing adds up its groups and corrects for the jobs whose
availability ended between the horizon and now, found by ``ix_jobs_scope_until`` (see
``counts``).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("scope", sa.String(32), nullable=False),
    sa.Column("mode", sa.String(8), nullable=False),
    sa.Column("report_name", sa.String(255), nullable=False),
    sa.Column("rpt_id", sa.String(32), nullable=True),
    sa.Column("required_permission", sa.String(128), nullable=False),
    sa.Column("kickoff_us", sa.BigInteger, nullable=False),
    sa.Column("available_until_us", sa.BigInteger, nullable=True),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("withdrawn_us", sa.BigInteger, nullable=True),
    sa.Column("purged_us", sa.BigInteger, nullable=True),
)

_VISIBILITY = ("required_permission", "available_until_us")
_ORDER = (jobs.c.kickoff_us.desc(), jobs.c.id)

sa.Index("ix_jobs_scope_mode", jobs.c.scope, jobs.c.mode, *_ORDER, *_VISIBILITY)
sa.Index("ix_jobs_scope", jobs.c.scope, *_ORDER, "mode", *_VISIBILITY)
sa.Index(
    "ix_jobs_scope_rpt_id",
    jobs.c.scope,
    jobs.c.rpt_id,
    *_ORDER,
    "mode",
    *_VISIBILITY,
    "report_name",
)
sa.Index(
    "ix_jobs_scope_report_name", jobs.c.scope, jobs.c.report_name, *_ORDER, "mode", *_VISIBILITY
)
sa.Index("ix_jobs_purge", jobs.c.purged_us, jobs.c.available_until_us)
sa.Index(
    "ix_jobs_scope_until",
    jobs.c.scope,
    jobs.c.available_until_us,
    "mode",
    "required_permission",
    "rpt_id",
    "report_name",
)
sa.Index("ix_jobs_until", jobs.c.available_until_us)

#: The columns that make a group of ``job_counts``; ``rpt_id`` is ``""`` for none.
GROUP = ("scope", "mode", "required_permission", "rpt_id", "report_name")

job_counts = sa.Table(
    "job_counts",
    metadata,
    sa.Column("scope", sa.String(32), primary_key=True),
    sa.Column("mode", sa.String(8), primary_key=True),
    sa.Column("required_permission", sa.String(128), primary_key=True),
    sa.Column("rpt_id", sa.String(32), primary_key=True),
    sa.Column("report_name", sa.String(255), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

count_horizon = sa.Table(
    "count_horizon",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("horizon_us", sa.BigInteger, nullable=False),
)


@sa.event.listens_for(count_horizon, "after_create")
def _first_horizon(table: sa.Table, connection: sa.Connection, **_: object) -> None:
    """A new catalog's horizon is the epoch: no job has ended before it."""
    connection.execute(table.insert().values(id=1, horizon_us=0))
