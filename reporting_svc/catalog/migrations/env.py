"""Alembic's environment: always run on the connection the schema code hands it, never a URL.

The service upgrades its databases programmatically (``catalog.schema``), so no
``alembic.ini`` names a database; an offline (SQL script) run is not supported. The
chain being run (the catalog's or the audit trail's) names its tables and version table.
"""

from alembic import context

attributes = context.config.attributes
context.configure(
    connection=attributes["connection"],
    target_metadata=attributes["metadata"],
    version_table=attributes["version_table"],
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
