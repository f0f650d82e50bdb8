"""Clients the reliability tests need beyond requests: raw sockets and the error envelope."""

from __future__ import annotations

import socket
from typing import Any

import requests

from tests.reliability.deployments import Deployment


def send_download(
    deployment: Deployment,
    report: str,
    request_id: str,
    *,
    receive_buffer: int | None = None,
    token: bool = True,
) -> socket.socket:
    """Connect to the deployment and send a GET of ``report``; the caller reads and closes.

    A small ``receive_buffer`` (set before connecting, so the window is small from the
    start) keeps the server from pushing much of the body into this socket unread.
    """
    host, port = deployment.address()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(30)
    sock.connect((host, port))
    path = deployment.download_url(report).removeprefix(deployment.url)
    authorization = f"Authorization: Bearer {deployment.token}\r\n" if token else ""
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{authorization}"
            f"X-Request-ID: {request_id}\r\nConnection: close\r\n\r\n"
        ).encode()
    )
    return sock


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read a response's status line and headers: (status, headers, body bytes read so far)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"the connection closed before the headers ended: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, rest


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    parts = []
    while chunk := sock.recv(65536):
        parts.append(chunk)
    return b"".join(parts)


def error_data(response: requests.Response) -> dict[str, Any]:
    """The ``errorData`` of an error envelope, after checking the envelope's shape."""
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"status", "result", "errorData"}
    assert (body["status"], body["result"]) == ("error", None)
    data: dict[str, Any] = body["errorData"]
    assert set(data) == {"errorCode", "errorMessage", "details"}
    assert data["errorCode"] == f"REPT_{response.status_code}"
    return data
