"""Report stores: one interface, a local-disk and an S3 implementation, chosen by settings."""

from ..settings import Settings
from .base import JobExists, Store, StoreError
from .record import JobRecord


def make_store(settings: Settings) -> Store:
    """Build the store the settings name; the S3 client is created here, once per process."""
    if settings.store == "s3":
        from .s3 import S3Store

        return S3Store.from_settings(settings)
    from .local import LocalStore

    return LocalStore(settings.local_root)


__all__ = ["JobExists", "JobRecord", "Store", "StoreError", "make_store"]
