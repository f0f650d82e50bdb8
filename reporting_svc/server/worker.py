"""The gunicorn worker: gthread, with gunicorn's own refusals in the API's error envelope.

gunicorn answers a request it cannot parse (a request line or a header over its limits, a
malformed line) before the app sees it, with an HTML page. Behind nginx that page never
reaches a client, since nginx refuses such requests first; a deployment without nginx, a
health probe or a test talking to gunicorn directly would see it. gunicorn has no hook
for these answers, but every one of them goes through ``gunicorn.util.write_error``: the
worker replaces that function, in its own process, with one that writes the envelope.
setup.cfg admits only the gunicorn releases this is tested against, and
tests/test_worker.py fails if gthread's error path stops calling that function as here.

gunicorn's message quotes the request text it could not parse, which may be a header
line holding a credential (``Authorization Basic YWxp…`` or ``X-Api-Key s3cr3t`` without
its colon): the envelope describes each kind of refusal in fixed words instead and echoes
nothing the caller sent, and gunicorn's warning names the kind of refusal with the
caller's text withheld (reporting_svc.server.refused), whatever shape the credential had.
"""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from ..errors import envelope_body
from ..http.headers import REQUEST_ID
from ..http.response_headers import COMMON_HEADERS
from .refused import withheld

# gunicorn's refusals by status; the 400s (a malformed request line, method, version,
# header or chunk) are told apart only by messages that quote the request.
REFUSALS = {
    400: "The request could not be parsed as HTTP/1.1",
    403: "The request was refused by the server",
    414: "The request line is too long",
    417: "The Expect header cannot be met",
    431: "The request headers are too large or too many",
    501: "The request's transfer coding is not supported",
}


class EnvelopeThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker; its own error answers and their warnings differ."""

    def init_process(self) -> None:
        util.write_error = write_envelope
        super().init_process()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's answer and warning for ``exc``, quoting none of the request."""
        super().handle_error(req, client, addr, withheld(exc))


def write_envelope(sock: socket.socket, status: int, reason: str, message: str) -> None:
    """Send gunicorn's refusal as the API's JSON envelope, then let gunicorn close.

    The request id is a new one: the caller's header may be what could not be parsed.
    gunicorn's ``message`` is not sent: it quotes the request (see the module's note).
    """
    body = json.dumps(envelope_body(status, reason, REFUSALS.get(status))).encode()
    headers = {
        "Connection": "close",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        **COMMON_HEADERS,
        REQUEST_ID: uuid.uuid4().hex,
    }
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    util.write_nonblock(sock, (head + "\r\n").encode("latin-1") + body)
