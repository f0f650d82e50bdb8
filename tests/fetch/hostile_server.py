"""A deliberately hostile HTTP server for the fetch client's tests: raw bytes on the wire.

werkzeug cleans what a WSGI app answers (a ``Location`` is quoted, a body is framed);
this one writes exactly what a test scripts, so a test can send a ``Location`` that two
URL parsers read differently, a body that never ends or a reason full of escape codes,
and see what the client sent (an ``Authorization`` header above all).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Seen:
    """One request as it arrived: its target and headers."""

    path: str
    headers: dict[str, str]


class Handler(BaseHTTPRequestHandler):
    """Hands each GET to the server's ``script``; keeps quiet about it on stderr."""

    server: Hostile
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.seen.append(Seen(self.path, dict(self.headers.items())))
        self.server.script(self)

    def log_message(self, format: str, *args: object) -> None:
        return None

    def answer(self, status: str, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        """A status line and headers exactly as given (no quoting), then ``body``."""
        lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers)]
        head = "\r\n".join([*lines, f"Content-Length: {len(body)}", "Connection: close"])
        self.wfile.write(head.encode() + b"\r\n\r\n" + body)
        self.close_connection = True

    def chunked(self, headers: list[tuple[str, str]], chunks: Iterator[bytes]) -> None:
        """A 200 whose chunked body is whatever ``chunks`` yields, until the client leaves."""
        lines = ["HTTP/1.1 200 OK", *(f"{name}: {value}" for name, value in headers)]
        head = "\r\n".join([*lines, "Transfer-Encoding: chunked", "Connection: close"])
        self.close_connection = True
        try:
            self.wfile.write(head.encode() + b"\r\n\r\n")
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client stopped reading, as it should
            return


Script = Callable[[Handler], None]


class Hostile(ThreadingHTTPServer):
    """A server on ``host`` (any 127.0.0.0/8 address) that answers every GET by ``script``."""

    daemon_threads = True

    def __init__(self, host: str, script: Script):
        super().__init__((host, 0), Handler)
        self.script = script
        self.seen: list[Seen] = []
        self.host = host
        self.port = self.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()

    def authorizations(self) -> list[str | None]:
        """The ``Authorization`` header of each request, None where there was none."""
        return [seen.headers.get("Authorization") for seen in self.seen]
