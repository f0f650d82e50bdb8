"""A test-only DNS server on 127.0.0.1, for nginx's ``resolver``.

nginx resolves a host name in a URL it was handed (the S3 relay's presigned URL) through
the DNS server its ``resolver`` names, never through /etc/hosts; this one answers A
queries for the names it is given and nothing else, as a site's DNS answers for S3.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from dnslib import QTYPE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer


class FixedNames(BaseResolver):  # type: ignore[misc]  # dnslib has no type hints
    """Answers an A query for a known name with its address; any other query empty."""

    def __init__(self, names: Mapping[str, str]):
        self.names = {name.rstrip(".").lower(): address for name, address in names.items()}

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        if request.q.qtype == QTYPE.A and name in self.names:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(self.names[name]), ttl=30))
        return reply


@contextmanager
def name_server(names: Mapping[str, str]) -> Iterator[str]:
    """Serve ``names`` (host name to IPv4 address) over UDP; yields ``127.0.0.1:port``."""
    server = DNSServer(
        FixedNames(names), address="127.0.0.1", port=0, logger=DNSLogger(logf=lambda line: None)
    )
    server.start_thread()
    try:
        yield f"127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.stop()
        server.server.server_close()
