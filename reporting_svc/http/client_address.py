"""The caller's address for the audit trail: X-Forwarded-For is believed only from a proxy
we trust, since anyone else can write whatever they like into it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from flask import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(proxies: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def client_address(request: Request, trusted: tuple[Network, ...]) -> str | None:
    """The peer's address, or, behind trusted proxies, the last one they did not add.

    Walks X-Forwarded-For from the right while each hop is a trusted proxy; the first
    address that is not is the client as far as our own proxies can vouch for.
    """
    peer = request.remote_addr
    if not peer or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _is_trusted(hop, trusted):
            return hop if _is_address(hop) else peer
    return peer


def _is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
