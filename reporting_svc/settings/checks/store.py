"""The store and its delivery: a registered store, what it requires, a mode it serves."""

from __future__ import annotations

from ...storage.registry import STORES
from ..errors import SettingsError
from ..model import PREFIX, Settings

MAX_PRESIGN_SECONDS = 7 * 24 * 3600
# A withdrawal must take effect on every host within 10 seconds (docs/api.md §6), so nothing read
# from a store may be remembered that long.
MAX_CACHE_SECONDS = 9
MIN_CHUNK_SIZE = 64 * 1024


def check_store(settings: Settings) -> None:
    """The chosen store is registered and has what it requires; every store's delivery
    setting names a mode it serves; presigned URLs and remembered reads are bounded."""
    kind = STORES.get(settings.store)
    if kind is None:
        raise SettingsError(
            f"{PREFIX}STORE must be one of {', '.join(STORES)}, not {settings.store!r}"
        )
    _check_deliveries(settings)
    _check_required(settings, settings.store, kind.required)
    _check_bounds(settings)


def _check_deliveries(settings: Settings) -> None:
    for kind in STORES.values():
        if getattr(settings, kind.delivery_setting) not in kind.deliveries:
            raise SettingsError(
                f"{PREFIX}{kind.delivery_setting.upper()} must be one of"
                f" {', '.join(kind.deliveries)}"
            )
    prefix = settings.x_accel_prefix
    if not prefix.startswith("/") or not prefix.strip("/") or ".." in prefix:
        raise SettingsError(
            f"{PREFIX}X_ACCEL_PREFIX must be an absolute nginx location like /_files/"
        )


def _check_required(settings: Settings, name: str, required: tuple[str, ...]) -> None:
    for setting in required:
        if not getattr(settings, setting):
            raise SettingsError(f"{PREFIX}STORE is {name} but {PREFIX}{setting.upper()} is not set")


def _check_bounds(settings: Settings) -> None:
    for setting, value in [
        ("PRESIGN_EXPIRES", settings.presign_expires),
        ("X_ACCEL_PRESIGN_EXPIRES", settings.x_accel_presign_expires),
    ]:
        if not 1 <= value <= MAX_PRESIGN_SECONDS:
            raise SettingsError(
                f"{PREFIX}{setting} must be between 1 and {MAX_PRESIGN_SECONDS} seconds"
            )
    if not 0 <= settings.s3_cache_seconds <= MAX_CACHE_SECONDS:
        raise SettingsError(
            f"{PREFIX}S3_CACHE_SECONDS must be between 0 and {MAX_CACHE_SECONDS} seconds"
        )
    if settings.s3_chunk_size < MIN_CHUNK_SIZE:
        raise SettingsError(f"{PREFIX}S3_CHUNK_SIZE must be at least {MIN_CHUNK_SIZE} bytes")
