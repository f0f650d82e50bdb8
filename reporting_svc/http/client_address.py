"""The caller's real address and scheme behind our own proxies, and nobody else's word.

X-Forwarded-For and X-Forwarded-Proto are believed only when the peer is one of
``REPORTING_SVC_TRUSTED_PROXIES``: anyone else can write whatever they like into them.
Like Werkzeug's ProxyFix, the originals stay in the environ under ``werkzeug.proxy_fix.orig``.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from ..networks import Network

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


class TrustedProxies:
    """WSGI middleware: rewrite REMOTE_ADDR and the scheme for requests from our proxies."""

    def __init__(self, app: WSGIApplication, trusted: tuple[Network, ...]):
        self.app = app
        self.trusted = trusted

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        peer = environ.get("REMOTE_ADDR")
        if peer and _is_trusted(peer, self.trusted):
            environ["werkzeug.proxy_fix.orig"] = {
                "REMOTE_ADDR": peer,
                "wsgi.url_scheme": environ.get("wsgi.url_scheme"),
            }
            environ["REMOTE_ADDR"] = client_address(
                peer, environ.get("HTTP_X_FORWARDED_FOR", ""), self.trusted
            )
            scheme = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower()
            if scheme in ("http", "https"):
                environ["wsgi.url_scheme"] = scheme
        return self.app(environ, start_response)


def client_address(peer: str, forwarded_for: str, trusted: tuple[Network, ...]) -> str:
    """The last address in X-Forwarded-For that our proxies did not add.

    Walks the header from the right while each hop is a trusted proxy; the first address
    that is not is the client, as far as our own proxies can vouch for it.
    """
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop if _is_address(hop) else peer
    return hops[0] if hops else peer


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
