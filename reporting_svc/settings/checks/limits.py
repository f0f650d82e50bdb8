"""Limits and waits: downloads a worker, a host and a caller send at once, and every bounded
wait for the database."""

from __future__ import annotations

from ..errors import SettingsError
from ..model import PREFIX, Settings

# Waits for PostgreSQL (docs/deploying.md: A stuck database) and readiness, in seconds; libpq takes
# no connect timeout under 2 s.
MAX_WAIT_SECONDS = 3600
MIN_CONNECT_SECONDS = 2
# PostgreSQL connections one engine may hold, kept and overflow alike: far past any server's.
MAX_POOL = 1000
# Each bounded setting of the database and readiness: the least and most it may be, in what.
BOUNDS = (
    ("database_connect_timeout", MIN_CONNECT_SECONDS, MAX_WAIT_SECONDS, "seconds"),
    ("database_statement_timeout", 1, MAX_WAIT_SECONDS, "seconds"),
    ("database_lock_timeout", 1, MAX_WAIT_SECONDS, "seconds"),
    ("database_pool_timeout", 1, MAX_WAIT_SECONDS, "seconds"),
    ("database_keepalive", 1, MAX_WAIT_SECONDS, "seconds"),
    ("readiness_timeout", 1, MAX_WAIT_SECONDS, "seconds"),
    ("database_pool_size", 1, MAX_POOL, "connections"),
    ("database_pool_overflow", 0, MAX_POOL, "connections"),
)


def check_download_limits(settings: Settings) -> None:
    """Downloads past the limit are refused at once only if a thread is free to refuse them."""
    limit = settings.max_downloads_per_worker
    if limit < 0:
        raise SettingsError(f"{PREFIX}MAX_DOWNLOADS_PER_WORKER must not be negative (0: derived)")
    if limit >= settings.worker_threads:
        raise SettingsError(
            f"{PREFIX}MAX_DOWNLOADS_PER_WORKER must be below the threads of a worker"
            f" (GUNICORN_THREADS, {settings.worker_threads}), so some are left for health"
            " checks and refusals"
        )
    if settings.max_downloads_per_host < 0 or settings.max_downloads_per_subject < 0:
        raise SettingsError(
            f"{PREFIX}MAX_DOWNLOADS_PER_HOST and _PER_SUBJECT must not be negative (0: derived)"
        )
    _check_shares(settings)


def _check_shares(settings: Settings) -> None:
    """A host holds no more than one worker may send, a caller no more than the host."""
    if settings.host_download_limit > settings.download_limit:
        raise SettingsError(
            f"{PREFIX}MAX_DOWNLOADS_PER_HOST ({settings.host_download_limit}) must be at most"
            f" what one worker may send ({settings.download_limit}): a worker may be handed"
            " most of a host's connections; raise GUNICORN_THREADS"
        )
    if settings.subject_download_limit > settings.host_download_limit:
        raise SettingsError(
            f"{PREFIX}MAX_DOWNLOADS_PER_SUBJECT must be at most the host's"
            f" ({settings.host_download_limit})"
        )


def check_waits(settings: Settings) -> None:
    """Every wait for the database is bounded: no setting may lift a bound."""
    for name, least, most, unit in BOUNDS:
        if not least <= getattr(settings, name) <= most:
            raise SettingsError(f"{PREFIX}{name.upper()} must be from {least} to {most} {unit}")
    if settings.database_lock_timeout > settings.database_statement_timeout:
        raise SettingsError(
            f"{PREFIX}DATABASE_LOCK_TIMEOUT must not exceed {PREFIX}DATABASE_STATEMENT_TIMEOUT,"
            " which cuts any lock wait short"
        )
