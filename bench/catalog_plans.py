"""The query plans of the download list's own statements, as each database shows them.

PostgreSQL runs them (``EXPLAIN ANALYZE``: the rows each step really read); SQLite
names the index each step searches (``EXPLAIN QUERY PLAN``; it counts no rows).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from reporting_svc.catalog import Catalog, Selection
from reporting_svc.catalog.queries import count_statement, micros, page_statement


def explain(catalog: Catalog, selection: Selection, limit: int, offset: int) -> dict[str, str]:
    """The plans of the count and of the page for one listing."""
    engine = catalog.engines.get()
    where = selection.where(micros(datetime.now(UTC)))
    statements = {
        "count": count_statement(where),
        "page": page_statement(where, limit, offset),
    }
    with engine.connect() as connection:
        return {name: _plan(connection, statement) for name, statement in statements.items()}


def _plan(connection: sa.Connection, statement: sa.Select) -> str:  # type: ignore[type-arg]
    sql = str(statement.compile(connection, compile_kwargs={"literal_binds": True}))
    if connection.dialect.name == "postgresql":
        lines = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")
        return "\n".join(row[0] for row in lines)
    rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
    return "\n".join(f"{row[0]:>3} {row[1]:>3} {row[3]}" for row in rows)
