"""gunicorn's own refusals in the API's envelope, echoing nothing the caller sent."""

from __future__ import annotations

import dis
import inspect
import json
import socket
from itertools import pairwise

import pytest
from gunicorn import util
from gunicorn.workers import base
from gunicorn.workers.gthread import ThreadWorker

from reporting_svc.server.worker import write_envelope


def _refusal(status: int, reason: str, message: str) -> tuple[bytes, bytes]:
    """(head, body) of what ``write_envelope`` sends for gunicorn's refusal."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        write_envelope(ours, status, reason, message)
        ours.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: theirs.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize(
    ("status", "reason", "quoted"),
    [
        (400, "Bad Request", "Invalid HTTP Header: 'Authorization Bearer {token}'"),
        (400, "Bad Request", "Invalid HTTP request line: 'GET /?access_token={token} HTTP/9'"),
        (431, "Request Header Fields Too Large", "Error parsing headers: 'X-Token {token}'"),
    ],
)
def test_a_refusal_is_described_in_fixed_words_without_the_request_text(
    bearer: str, status: int, reason: str, quoted: str
) -> None:
    head, body = _refusal(status, reason, quoted.format(token=bearer))

    assert head.startswith(f"HTTP/1.1 {status} {reason}\r\n".encode())
    assert bearer.encode() not in head + body
    data = json.loads(body)["errorData"]
    assert data["errorCode"] == f"REPT_{status}"
    assert data["details"] and "'" not in data["details"]


def test_a_refusal_carries_the_headers_every_answer_carries() -> None:
    head, body = _refusal(414, "URI Too Long", "Request Line is too large")

    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert status == "HTTP/1.1 414 URI Too Long"
    assert headers.pop("X-Request-ID").isalnum()
    assert headers == {
        "Connection": "close",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }


def test_gunicorn_answers_its_refusals_through_the_function_the_worker_replaces() -> None:
    """The worker's patch holds only while gthread's error path ends in
    ``gunicorn.util.write_error(sock, status, reason, message)``; a gunicorn that changes it
    fails here, not in a deployment that sends HTML again (setup.cfg pins the range)."""
    handle_error = ThreadWorker.handle_error

    assert handle_error is base.Worker.handle_error
    assert base.util is util
    looked_up = [
        (first.argval, second.argval)
        for first, second in pairwise(dis.get_instructions(handle_error))
        if first.opname == "LOAD_GLOBAL"
    ]
    assert ("util", "write_error") in looked_up
    assert list(inspect.signature(util.write_error).parameters) == [
        "sock",
        "status_int",
        "reason",
        "mesg",
    ]
    assert len(inspect.signature(write_envelope).parameters) == 4
