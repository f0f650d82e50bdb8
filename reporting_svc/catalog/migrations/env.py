"""Alembic's environment: always run on the connection the catalog hands it, never a URL.

The service upgrades its catalog programmatically (``catalog.schema``), so no
``alembic.ini`` names a database; an offline (SQL script) run is not supported.
"""

from alembic import context

from reporting_svc.catalog.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
