"""The start-up checks, one module per concern: a setting that cannot work stops the command.

Each check raises SettingsError with one line naming the variable to correct; they run in
this order, so a deployment with several mistakes is told about the first.
"""

from __future__ import annotations

from ..model import Settings
from . import audit, catalog, keys, limits, network, observability, store

CHECKS = (
    store.check_store,
    limits.check_download_limits,
    keys.check_keys,
    audit.check_audit,
    network.check_networks,
    observability.check_observability,
    catalog.check_catalog,
    limits.check_waits,
)


def check(settings: Settings) -> None:
    """Refuse settings that cannot work together, with the first problem found."""
    for one in CHECKS:
        one(settings)
