"""Only the live chain's rows may be inserted by a role other than the tables' owner.

Row-level security on both tables: every role reads every row, and inserts rows whose
chain is ``live``; the owner (and a superuser) bypasses it, so ``audit import`` still
loads a chain of its own. The service's role can no longer write a chain that would pass
for an imported one.

Revision ID: a0002
Revises: a0001
Create Date: 2026-12-07
"""

from alembic import op

revision = "a0002"
down_revision = "a0001"
branch_labels = None
depends_on = None

TABLES = ("audit_records", "audit_heads")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_read ON {table} FOR SELECT USING (true)")
        op.execute(f"CREATE POLICY {table}_live ON {table} FOR INSERT WITH CHECK (chain = 'live')")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP POLICY {table}_live ON {table}")
        op.execute(f"DROP POLICY {table}_read ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
