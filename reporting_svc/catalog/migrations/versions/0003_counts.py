"""Exact listing totals kept per group, and the index of when jobs stop being listed.

The counts of an existing catalog are made from its rows, at the instant of the upgrade.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_GROUP = ["scope", "mode", "required_permission", "rpt_id", "report_name"]


def upgrade() -> None:
    counts = op.create_table(
        "job_counts",
        sa.Column("scope", sa.String(32), primary_key=True),
        sa.Column("mode", sa.String(8), primary_key=True),
        sa.Column("required_permission", sa.String(128), primary_key=True),
        sa.Column("rpt_id", sa.String(32), primary_key=True),
        sa.Column("report_name", sa.String(255), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    horizon = op.create_table(
        "count_horizon",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("horizon_us", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_jobs_scope_until",
        "jobs",
        ["scope", "available_until_us", "mode", "required_permission", "rpt_id", "report_name"],
    )
    op.create_index("ix_jobs_until", "jobs", ["available_until_us"])
    now_us = time.time_ns() // 1000
    op.execute(horizon.insert().values(id=1, horizon_us=now_us))
    jobs = sa.table("jobs", *(sa.column(name) for name in [*_GROUP, "available_until_us"]))
    group = [
        jobs.c.scope,
        jobs.c.mode,
        jobs.c.required_permission,
        sa.func.coalesce(jobs.c.rpt_id, ""),
        jobs.c.report_name,
    ]
    until = jobs.c.available_until_us
    op.execute(
        counts.insert().from_select(
            [*_GROUP, "n"],
            sa.select(*group, sa.func.count())
            .where(sa.or_(until.is_(None), until > now_us))
            .group_by(*group),
        )
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_until", "jobs")
    op.drop_index("ix_jobs_scope_until", "jobs")
    op.drop_table("count_horizon")
    op.drop_table("job_counts")
