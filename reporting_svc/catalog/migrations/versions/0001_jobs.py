"""The jobs table and the indexes of the download list.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_VISIBILITY: list[str | sa.TextClause] = ["required_permission", "available_until_us"]
_ORDER: list[str | sa.TextClause] = [sa.text("kickoff_us DESC"), "id"]


def upgrade() -> None:
    op.create_table(
        "jobs",
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
    op.create_index("ix_jobs_scope_mode", "jobs", ["scope", "mode", *_ORDER, *_VISIBILITY])
    op.create_index("ix_jobs_scope", "jobs", ["scope", *_ORDER, "mode", *_VISIBILITY])
    op.create_index(
        "ix_jobs_scope_rpt_id",
        "jobs",
        ["scope", "rpt_id", *_ORDER, "mode", *_VISIBILITY, "report_name"],
    )
    op.create_index(
        "ix_jobs_scope_report_name", "jobs", ["scope", "report_name", *_ORDER, "mode", *_VISIBILITY]
    )


def downgrade() -> None:
    op.drop_table("jobs")
