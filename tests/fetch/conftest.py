"""Fixtures for the fetch client's unit tests: tiny WSGI servers on 127.0.0.1 that record
what they were sent, and hostile raw-HTTP servers anywhere in 127.0.0.0/8."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.fetch.hostile_server import Hostile, Script

WsgiApp = Callable[[Request], Response]


class Recorder:
    """A WSGI server around ``respond(request)``; ``requests`` holds what came in."""

    def __init__(self, respond: WsgiApp):
        self.respond = respond
        self.requests: list[Request] = []
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append(request)
        return self.respond(request)(environ, start_response)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()


@pytest.fixture
def server() -> Iterator[Callable[[WsgiApp], Recorder]]:
    """``server(respond)``: start a recording WSGI server; all are stopped after the test."""
    started: list[Recorder] = []

    def start(respond: WsgiApp) -> Recorder:
        started.append(Recorder(respond))
        return started[-1]

    yield start
    for recorder in started:
        recorder.stop()


@pytest.fixture
def hostile() -> Iterator[Callable[..., Hostile]]:
    """``hostile(script, host="127.0.0.1")``: start a hostile server; all stopped after."""
    started: list[Hostile] = []

    def start(script: Script, host: str = "127.0.0.1") -> Hostile:
        started.append(Hostile(host, script))
        return started[-1]

    yield start
    for server in started:
        server.stop()
