"""The gunicorn worker: gthread, with gunicorn's own refusals in the API's error envelope.

gunicorn answers a request it cannot parse (a request line or a header over its limits, a
malformed line) before the app sees it, with an HTML page. Behind nginx that page never
reaches a client, since nginx refuses such requests first; a deployment without nginx, a
health probe or a test talking to gunicorn directly would see it. gunicorn has no hook
for these answers, but every one of them goes through ``gunicorn.util.write_error``: the
worker replaces that function, in its own process, with one that writes the envelope.
"""

from __future__ import annotations

import json
import socket
import uuid

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from .errors import envelope_body

MAX_DETAILS = 256


class EnvelopeThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker; only the body of its own error answers differs."""

    def init_process(self) -> None:
        util.write_error = write_envelope
        super().init_process()


def write_envelope(sock: socket.socket, status: int, reason: str, message: str) -> None:
    """Send gunicorn's refusal as the API's JSON envelope, then let gunicorn close.

    The request id is a new one: the caller's header may be what could not be parsed.
    """
    body = json.dumps(envelope_body(status, reason, message[:MAX_DETAILS] or None)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"X-Request-ID: {uuid.uuid4().hex}\r\n"
        "\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)
