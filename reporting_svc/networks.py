"""Addresses and networks as settings name them: one parser for settings' checks and http/."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """Addresses and networks as settings give them; a host address is a /32 or /128."""
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)
