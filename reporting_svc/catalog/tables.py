"""The catalog's one table: a row per completed job, the columns the listing filters on.

The record itself is kept whole (``record``, its JSON as in the store), so a page is
answered from the catalog alone and a record that gains fields needs no migration. The
other columns exist to be filtered and ordered on:

- ``scope`` is the study id, or ``tenant``: what grants and the listing key on.
- ``kickoff_us`` is ``rptKickoffDatetime`` in microseconds since the epoch (UTC), so
  that "newest first" orders instants, whatever offset the record's text carries.
- ``available_until_us`` is when the job stops being listed: its ``expiresAt`` now;
  null while it never expires. A withdrawal (SPEC §6) moves it to the withdrawal time.

Every listing index starts with what the query fixes (scope, and mode, ``rptId`` or
``reportName``), continues in the listing's order (kickoff newest first, then id) and
ends with what the visibility filter reads (mode, required permission, availability), so
the page's ids and the exact count are read from the index alone; the ``rptId`` index
also carries the report name, for a listing filtered by both.
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
