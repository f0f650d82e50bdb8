"""gunicorn's own refusals in the API's envelope, echoing nothing the caller sent."""

from __future__ import annotations

import json
import socket

import pytest

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
