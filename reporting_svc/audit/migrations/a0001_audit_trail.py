"""The audit trail's records and heads (its own chain of revisions, apart from the catalog's).

Revision ID: a0001
Revises:
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "a0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("chain", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("prev", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("line", sa.Text, nullable=False),
        sa.UniqueConstraint("chain", "prev", name="uq_audit_records_chain_prev"),
    )
    op.create_table(
        "audit_heads",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_heads_chain_seq", "audit_heads", ["chain", "seq"])


def downgrade() -> None:
    op.drop_table("audit_heads")
    op.drop_table("audit_records")
