"""The query plans of the download list's own statements, as each database shows them.

PostgreSQL runs them (``EXPLAIN ANALYZE``: the rows each step really read); SQLite
names the index each step searches (``EXPLAIN QUERY PLAN``; it counts no rows).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from reporting_svc.catalog import Catalog, Selection, counts
from reporting_svc.catalog.queries import micros, page_statement


def explain(catalog: Catalog, selection: Selection, limit: int, offset: int) -> dict[str, str]:
    """The plans of the exact count (the kept counts, and the jobs ended since their
    horizon) and of the page, for one listing."""
    engine = catalog.engines.get()
    now_us = micros(datetime.now(UTC))
    with engine.connect() as connection:
        statements = {
            "count: kept counts": counts.held_statement(selection),
            "count: ended since the horizon": counts.between_statement(
                selection, counts.horizon(connection), now_us
            ),
            "page": page_statement(selection.where(now_us), limit, offset),
        }
        return {name: _plan(connection, statement) for name, statement in statements.items()}


def _plan(connection: sa.Connection, statement: sa.Select) -> str:  # type: ignore[type-arg]
    sql = str(statement.compile(connection, compile_kwargs={"literal_binds": True}))
    if connection.dialect.name == "postgresql":
        lines = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")
        return "\n".join(row[0] for row in lines)
    rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
    return "\n".join(f"{row[0]:>3} {row[1]:>3} {row[3]}" for row in rows)
