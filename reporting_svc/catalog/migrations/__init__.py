"""Alembic's environment and revisions of the catalog schema, shipped with the package."""
