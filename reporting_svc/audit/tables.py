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

AUDIT = Migrations(
    name="audit trail",
    metadata=metadata,
    versions="reporting_svc.catalog:migrations/audit_versions",
    version_table="audit_alembic_version",
    lock=0x52505441,  # "RPTA"
    newest="a0001",
)
