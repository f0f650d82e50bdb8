"""The audit trail's tables in PostgreSQL: records, and the heads that vouch for their end.

``audit_records`` holds each record's one line (``chain.line_of``) exactly as a file
would, so ``audit verify`` checks the same bytes the same way; ``seq`` numbers the
records of a chain from 1 with no gap, and ``prev`` and ``hash`` repeat the line's, so
that the database itself refuses a fork (one ``prev`` per chain) or a duplicate (one
``seq``). The live chain is ``live``; a trail loaded by ``audit import`` keeps its own
records and hashes as a chain of its own name.

``audit_heads`` plays the head file's part: every batch inserts, in its own transaction,
a row naming the chain's last record (its ``seq`` and ``hash``). No chain can show
records cut from its end; a head naming a record the chain no longer holds (or holds
with another hash), or a chain ending past its newest head, can. Both tables only ever
grow: the service's role may insert and read them, never update or delete.

Row-level security keeps every role but the tables' owner (and superusers, who bypass
it) to rows of the live chain when inserting: the service's role cannot add a chain that
``audit verify`` would take for an imported one, or a head to one. ``audit import`` runs
as the owner.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..catalog.schema import Migrations

metadata = sa.MetaData()
LIVE = "live"

records = sa.Table(
    "audit_records",
    metadata,
    sa.Column("chain", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("prev", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("line", sa.Text, nullable=False),
    sa.UniqueConstraint("chain", "prev", name="uq_audit_records_chain_prev"),
)

heads = sa.Table(
    "audit_heads",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("chain", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
sa.Index("ix_audit_heads_chain_seq", heads.c.chain, heads.c.seq)


def live_only(table: str) -> tuple[str, ...]:
    """The statements that let a role other than the owner insert only the live chain's
    rows into ``table``, and read all of them."""
    return (
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"CREATE POLICY {table}_read ON {table} FOR SELECT USING (true)",
        f"CREATE POLICY {table}_live ON {table} FOR INSERT WITH CHECK (chain = '{LIVE}')",
    )


@sa.event.listens_for(records, "after_create")
@sa.event.listens_for(heads, "after_create")
def _live_only(table: sa.Table, connection: sa.Connection, **_: object) -> None:
    """A new database gets the policies revision a0002 gives an existing one."""
    for statement in live_only(table.name):
        connection.exec_driver_sql(statement)


AUDIT = Migrations(
    name="audit trail",
    metadata=metadata,
    versions="reporting_svc.audit:migrations",
    version_table="audit_alembic_version",
    lock=0x52505441,  # "RPTA"
    newest="a0002",
    command="audit upgrade",
)
