"""The catalog of completed jobs that the download list reads: SQLite or PostgreSQL."""

from ..settings import Settings
from .bounds import DatabaseLimits
from .catalog import Catalog, CatalogError, Lapsed, Marks, Page
from .queries import Selection
from .schema import SchemaBehind


def make_catalog(settings: Settings) -> Catalog:
    """The configured catalog; its schema is the deploy step's (``Catalog.upgrade``)."""
    return Catalog(settings.catalog_database_url, limits=database_limits(settings))


def database_limits(settings: Settings) -> DatabaseLimits:
    """How long the service waits for PostgreSQL, and how many connections it holds, as
    the settings say."""
    return DatabaseLimits(
        connect=settings.database_connect_timeout,
        statement=settings.database_statement_timeout,
        lock=settings.database_lock_timeout,
        pool=settings.database_pool_timeout,
        keepalive=settings.database_keepalive,
        users=settings.database_users,
        pool_size=settings.database_pool_size,
        pool_overflow=settings.database_pool_overflow,
    )


__all__ = [
    "Catalog",
    "CatalogError",
    "DatabaseLimits",
    "Lapsed",
    "Marks",
    "Page",
    "SchemaBehind",
    "Selection",
    "database_limits",
    "make_catalog",
]
