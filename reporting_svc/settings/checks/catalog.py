"""The catalog: its database's scheme, and how long reports and purge claims last."""

from __future__ import annotations

from ..errors import SettingsError
from ..model import PREFIX, Settings

CATALOG_SCHEMES = ("sqlite", "postgresql+psycopg")
MAX_RETENTION_DAYS = 100 * 366
MAX_PURGE_LEASE_SECONDS = 7 * 24 * 3600


def check_catalog(settings: Settings) -> None:
    """Retention and purge lease in range, and a catalog URL the service can open."""
    if not 0 <= settings.retention_days <= MAX_RETENTION_DAYS:
        raise SettingsError(
            f"{PREFIX}RETENTION_DAYS must be from 1 to {MAX_RETENTION_DAYS} days, "
            "or 0 (or unset): reports never expire"
        )
    if not 0 <= settings.purge_lease_seconds <= MAX_PURGE_LEASE_SECONDS:
        raise SettingsError(
            f"{PREFIX}PURGE_LEASE_SECONDS must be from 0 to {MAX_PURGE_LEASE_SECONDS}"
        )
    scheme = settings.catalog_url.partition("://")[0]
    if settings.catalog_url and scheme not in CATALOG_SCHEMES:
        raise SettingsError(
            f"{PREFIX}CATALOG_URL must start with sqlite:// or postgresql+psycopg://, "
            f"not {scheme!r}"
        )
