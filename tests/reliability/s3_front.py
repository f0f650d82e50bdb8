"""A test-only front for moto's S3 server that holds presigned URLs to their expiry, as AWS does.

moto serves a presigned URL whatever its age; AWS answers 403 with an XML ``AccessDenied``
("Request has expired") once ``X-Amz-Date`` plus ``X-Amz-Expires`` has passed. The front
passes every request on to moto, but a presigned one is first held ``delay`` seconds (the
time nginx could take to use a URL on a busy host) and then checked for expiry.
"""

from __future__ import annotations

import datetime
import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from harness.processes import free_port

EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message><RequestId>FRONT</RequestId></Error>"
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding"}


def has_expired(query: dict[str, list[str]]) -> bool:
    """Whether a presigned URL's lifetime is over now."""
    signed = datetime.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
    lifetime = datetime.timedelta(seconds=int(query["X-Amz-Expires"][0]))
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None) > signed + lifetime


def handler_for(moto: str, delay: float) -> type[BaseHTTPRequestHandler]:
    """A request handler passing requests on to ``moto`` after the expiry check."""
    target = urlsplit(moto)

    class Front(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the tests read answers, not a log."""

        def answer(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            if "X-Amz-Expires" in query:
                time.sleep(delay)
                if has_expired(query):
                    self.reply(403, [("Content-Type", "application/xml")], EXPIRED)
                    return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                upstream.request(self.command, self.path, body, dict(self.headers.items()))
                response = upstream.getresponse()
                headers = [
                    (name, value)
                    for name, value in response.getheaders()
                    if name.lower() not in HOP_BY_HOP
                ]
                self.reply(response.status, headers, response.read())
            finally:
                upstream.close()

        def reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            """Send the answer; a HEAD keeps the length of the body it describes."""
            self.send_response_only(status)
            for name, value in headers:
                if self.command == "HEAD" or name.lower() != "content-length":
                    self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = answer  # noqa: N815 (http.server names)

    return Front


@contextmanager
def s3_front(moto: str, delay: float) -> Iterator[str]:
    """Run the front on 127.0.0.1 for the block; yields its endpoint URL."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler_for(moto, delay))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
