"""``reporting-svc audit grant ROLE``: the only rights a service's role has on the audit trail.

Run with the audit URL of the role that owns the tables: it brings the schema up to date,
then lets ``ROLE`` insert and read records and heads and read the schema's revision, and
nothing more. The service, running as that role, can add to the trail but never rewrite
or remove a record, whoever controls it; only the owner can, and ``audit verify`` shows it.
The schema's row-level security (``tables``) keeps the role's inserts to the live chain.
"""

from __future__ import annotations

import argparse

import sqlalchemy as sa

from ..settings import Settings
from .database import DatabaseSink
from .tables import AUDIT, heads, records

#: What the service's role may do: {role} is the quoted role name.
GRANTS = (
    f"REVOKE ALL ON {records.name}, {heads.name}, {AUDIT.version_table} FROM {{role}}",
    f"GRANT SELECT, INSERT ON {records.name}, {heads.name} TO {{role}}",
    f"GRANT SELECT ON {AUDIT.version_table} TO {{role}}",
)


def add_grant_arguments(parser: argparse.ArgumentParser) -> None:
    """``audit grant ROLE``."""
    parser.add_argument("role", help="the PostgreSQL role the service connects as")
    parser.set_defaults(run=grant_command)


def grant_command(settings: Settings, args: argparse.Namespace) -> int:
    """Upgrade the audit schema, then grant ROLE insert and select only; print what ran."""
    if "postgres" not in settings.audit_sink:
        raise ValueError("audit grant is for the audit database: set the sink to postgres")
    sink = DatabaseSink(settings.audit_database_url)
    sink.upgrade()
    with sink.writing() as connection:
        role = connection.dialect.identifier_preparer.quote(args.role)
        for statement in GRANTS:
            sql = statement.format(role=role)
            connection.execute(sa.text(sql))
            print(f"{sql};")
    print(f"OK: {args.role} may insert and read audit records, never update or delete them")
    return 0
