"""The fetch client's HTTP: the token to the service's origin only, refusals typed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from werkzeug.wrappers import Request, Response

from reporting_svc.fetch.credentials import TokenSource
from reporting_svc.fetch.failures import AuthenticationFailed, JobFailed, Transient
from reporting_svc.fetch.transport import Client, connection_origin
from tests.fetch.conftest import Recorder
from tests.fetch.hostile_server import Handler, Hostile

Server = Callable[[Callable[[Request], Response]], Recorder]
StartHostile = Callable[..., Hostile]
# Shapes of a Location that one URL parser reads as the service (S) and another as a third
# host (T), or that browsers and servers read differently: whatever the client does with
# them, the third host must never see the token.
CONFUSING_LOCATIONS = [
    "http://{T}\\@{S}/x",
    "http://{T}\\\\@{S}/x",
    "http://{T}\\\t@{S}/x",
    "http://{T}:\\@{S}/x",
    "http://{T}/\\@{S}/x",
    "http:/\\{T}/x",
    "http:\\\\{T}/x",
    "http://{T}\t@{S}/x",
    "http://{T} @{S}/x",
    "http://{T}\x00@{S}/x",
    "http://{T}\r\n @{S}/x",
    "http://{T}\u3002@{S}/x",
    "http://{S}@{T}/x",
    "http://{S}:pw@{T}/x",
    "http://{T}#@{S}/x",
    "http://{T}?@{S}/x",
    "http://{T};@{S}/x",
    "http://{T}%5C@{S}/x",
    "http://{T}%40{S}/x",
    "HTTP://{T}/x",
    "//{T}/x",
    "http://{T}:0{T_PORT}/x",
]


def client_for(url: str, token: str = "sekret") -> Client:
    return Client(url, TokenSource(None, {"REPORTING_SVC_TOKEN": token}), timeout=10)


def redirect_to(target: str) -> Callable[[Request], Response]:
    return lambda request: Response(status=302, headers={"Location": target})


def test_a_redirect_to_another_port_goes_without_the_token(server: Server) -> None:
    storage = server(lambda request: Response(b"bytes"))
    service = server(redirect_to(f"{storage.url}/bucket/key?X-Amz-Signature=abc"))

    with client_for(service.url).get("/download") as response:
        assert response.content == b"bytes"

    assert service.requests[0].headers["Authorization"] == "Bearer sekret"
    assert "Authorization" not in storage.requests[0].headers
    assert storage.requests[0].args["X-Amz-Signature"] == "abc"


def test_a_redirect_on_the_same_origin_keeps_the_token(server: Server) -> None:
    def respond(request: Request) -> Response:
        if request.path == "/old":
            return Response(status=301, headers={"Location": "/new"})
        return Response(b"moved")

    service = server(respond)

    with client_for(service.url).get("/old") as response:
        assert response.content == b"moved"

    assert [r.headers.get("Authorization") for r in service.requests] == ["Bearer sekret"] * 2


def test_the_token_file_is_read_again_before_each_request(server: Server, tmp_path: Path) -> None:
    service = server(lambda request: Response(b"ok"))
    token_file = tmp_path / "token"
    client = Client(service.url, TokenSource(token_file), timeout=10)

    for token in ("first", "second"):
        token_file.write_text(token + "\n")
        client.get("/").close()

    assert [r.headers["Authorization"] for r in service.requests] == [
        "Bearer first",
        "Bearer second",
    ]


@pytest.mark.parametrize(
    ("status", "headers", "failure"),
    [
        (429, {"Retry-After": "7"}, Transient),
        (502, {}, Transient),
        (503, {"Retry-After": "5"}, Transient),
        (504, {}, Transient),
        (401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, AuthenticationFailed),
        (401, {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}, JobFailed),
        (403, {}, JobFailed),
        (404, {}, JobFailed),
        (410, {}, JobFailed),
        (500, {}, JobFailed),
    ],
)
def test_each_refusal_is_its_own_failure(
    server: Server, status: int, headers: dict[str, str], failure: type[Exception]
) -> None:
    body = b'{"status":"error","errorData":{"errorMessage":"Nope","details":"because"}}'
    service = server(
        lambda request: Response(body, status, headers, content_type="application/json")
    )

    with pytest.raises(failure) as raised:
        client_for(service.url).get("/download")

    assert str(raised.value).endswith(f"{status} Nope: because")
    if "Retry-After" in headers:
        assert isinstance(raised.value, Transient)
        assert raised.value.retry_after == float(headers["Retry-After"])


def test_a_refused_connection_is_transient() -> None:
    with pytest.raises(Transient):
        client_for("http://127.0.0.1:9").get("/")


def test_endless_redirects_fail_the_job(server: Server) -> None:
    service = server(lambda request: Response(status=302, headers={"Location": "/again"}))

    with pytest.raises(JobFailed, match="redirects"):
        client_for(service.url).get("/")


def test_a_redirect_to_another_scheme_fails_the_job(server: Server) -> None:
    service = server(redirect_to("file:///etc/passwd"))

    with pytest.raises(JobFailed, match="not http"):
        client_for(service.url).get("/")


@pytest.mark.parametrize("shape", CONFUSING_LOCATIONS)
def test_no_location_however_confusing_takes_the_token_to_another_host(
    hostile: StartHostile, shape: str
) -> None:
    third = hostile(lambda handler: handler.answer("200 OK", [], b"third"), "127.0.0.64")
    addresses = {"T": f"127.0.0.64:{third.port}", "T_PORT": str(third.port)}

    def service_script(handler: Handler) -> None:
        if handler.path.startswith("/download"):
            location = shape.format(S=f"127.0.0.62:{handler.server.port}", **addresses)
            handler.answer("302 Found", [("Location", location)])
        else:
            handler.answer("200 OK", [], b"service")

    service = hostile(service_script, "127.0.0.62")

    with contextlib.suppress(JobFailed, Transient):  # refusing the hop is fine
        client_for(service.url).get("/download").close()

    assert service.authorizations()[0] == "Bearer sekret"
    assert third.authorizations() == [None] * len(third.seen)


def test_the_origin_is_the_host_urllib3_connects_to_not_the_one_urlsplit_reads() -> None:
    assert connection_origin("http://127.0.0.64:81\\@127.0.0.62:82/x") == (
        "http",
        "127.0.0.64",
        81,
    )
    assert connection_origin("HTTP://Example.COM/x") == connection_origin("http://example.com:80")
