"""Report stores: one interface, a local-disk and an S3 implementation, chosen by settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import JobExists, Store, StoreError
from .record import JobRecord
from .registry import STORES

if TYPE_CHECKING:
    from ..settings import Settings


def make_store(settings: Settings) -> Store:
    """Build the store the settings name; the S3 client is created here, once per process."""
    return STORES[settings.store].build(settings)


__all__ = ["JobExists", "JobRecord", "Store", "StoreError", "make_store"]
