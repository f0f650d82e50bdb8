"""Alembic's environment, which runs every chain (the audit trail's revisions live in
``audit/migrations``), and the catalog schema's revisions, shipped with the package."""
