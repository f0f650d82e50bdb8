"""The audit trail's schema revisions, oldest first: a chain of their own (version table
``audit_alembic_version``), run with the catalog's Alembic environment (``catalog.schema``)."""
