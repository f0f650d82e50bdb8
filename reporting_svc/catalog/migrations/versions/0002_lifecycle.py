"""Withdrawals and purges (docs/api.md §6): when each happened, and the purge's index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("withdrawn_us", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("purged_us", sa.BigInteger, nullable=True))
    op.create_index("ix_jobs_purge", "jobs", ["purged_us", "available_until_us"])


def downgrade() -> None:
    op.drop_index("ix_jobs_purge", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("purged_us")
        batch.drop_column("withdrawn_us")
