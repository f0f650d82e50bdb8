"""Addresses the service trusts: its proxies, and who may read /metrics."""

from __future__ import annotations

from ...networks import parse_networks
from ..errors import SettingsError
from ..model import PREFIX, Settings


def check_networks(settings: Settings) -> None:
    """Every entry of a network list is an address or a network, named if it is not."""
    for name, networks in [
        ("TRUSTED_PROXIES", settings.trusted_proxies),
        ("METRICS_ALLOW", settings.metrics_allow),
    ]:
        for network in networks:
            try:
                parse_networks([network])
            except ValueError:
                raise SettingsError(
                    f"{PREFIX}{name} has {network!r}, which is no address or network"
                ) from None
