"""The catalog of completed jobs that the download list reads: SQLite or PostgreSQL."""

from ..settings import Settings
from .catalog import Catalog, CatalogError, Page
from .queries import Selection


def make_catalog(settings: Settings) -> Catalog:
    """The configured catalog; its schema is created or upgraded on first use."""
    return Catalog(settings.catalog_database_url)


__all__ = ["Catalog", "CatalogError", "Page", "Selection", "make_catalog"]
