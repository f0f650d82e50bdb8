"""X-Forwarded-For and -Proto are believed from our own proxies and from nobody else."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from reporting_svc import create_app
from reporting_svc.http.client_address import client_address
from reporting_svc.networks import parse_networks
from reporting_svc.settings import Settings
from tests.support import DOWNLOAD

CLIENT = "203.0.113.5"
SPOOFED = "198.51.100.1"
OUTSIDER = "192.0.2.10"
PROXY = "127.0.0.1"
SEVERAL = "127.0.0.1,10.0.0.0/8"

Whoami = Callable[..., dict[str, Any]]
Records = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def trusted() -> str:
    """The app's trusted proxies; tests parametrize it."""
    return PROXY


@pytest.fixture
def settings(make_settings: Callable[..., Settings], trusted: str) -> Settings:
    return make_settings(trusted_proxies=trusted)


@pytest.fixture
def whoami(app: Flask, client: FlaskClient) -> Whoami:
    """Ask a throwaway route what Flask believes: ``whoami(peer, **headers)``."""

    @app.get("/_whoami")
    def _whoami() -> dict[str, Any]:
        return {
            "scheme": request.scheme,
            "remoteAddr": request.remote_addr,
            "original": request.environ.get("werkzeug.proxy_fix.orig"),
        }

    def ask(peer: str, **headers: str) -> dict[str, Any]:
        response = client.get("/_whoami", headers=headers, environ_base={"REMOTE_ADDR": peer})
        assert response.status_code == 200
        answer: dict[str, Any] = response.get_json()
        return answer

    return ask


def _audited_address(client: FlaskClient, audit_records: Records, peer: str, xff: str) -> str:
    """Make one (refused) download attempt and return the address its record names."""
    response = client.get(
        DOWNLOAD,
        query_string={"id": "6A7C29DD011241DFBE1B64399283C860"},
        headers={"X-Forwarded-For": xff},
        environ_base={"REMOTE_ADDR": peer},
    )
    assert response.status_code == 401
    address: str = audit_records()[-1]["clientAddress"]
    return address


# --- through the app -------------------------------------------------------------------


def test_untrusted_peer_cannot_set_its_address_or_scheme(whoami: Whoami) -> None:
    answer = whoami(OUTSIDER, **{"X-Forwarded-For": CLIENT, "X-Forwarded-Proto": "https"})

    assert answer == {"scheme": "http", "remoteAddr": OUTSIDER, "original": None}


def test_untrusted_peer_is_audited_under_its_own_address(
    client: FlaskClient, audit_records: Records
) -> None:
    assert _audited_address(client, audit_records, OUTSIDER, CLIENT) == OUTSIDER


def test_without_trusted_proxies_forwarded_headers_are_ignored_even_from_loopback(
    make_settings: Callable[..., Settings], audit_records: Records
) -> None:
    client = create_app(make_settings()).test_client()

    assert _audited_address(client, audit_records, PROXY, CLIENT) == PROXY


def test_trusted_proxy_passes_on_the_client_address_to_the_audit(
    client: FlaskClient, audit_records: Records
) -> None:
    assert _audited_address(client, audit_records, PROXY, CLIENT) == CLIENT


def test_client_is_the_rightmost_hop_the_proxy_did_not_vouch_for(whoami: Whoami) -> None:
    answer = whoami(PROXY, **{"X-Forwarded-For": f"{SPOOFED}, {CLIENT}"})

    assert answer["remoteAddr"] == CLIENT
    assert answer["original"]["REMOTE_ADDR"] == PROXY


@pytest.mark.parametrize(
    ("trusted", "expected"), [(SEVERAL, CLIENT), (PROXY, "10.2.3.4")], ids=["trusted", "not"]
)
def test_only_trusted_hops_are_skipped(whoami: Whoami, expected: str) -> None:
    chain = f"{SPOOFED}, {CLIENT}, 10.0.0.7, 10.2.3.4"

    assert whoami(PROXY, **{"X-Forwarded-For": chain})["remoteAddr"] == expected


@pytest.mark.parametrize("trusted", [SEVERAL])
def test_several_trusted_hops_reach_the_audit(client: FlaskClient, audit_records: Records) -> None:
    chain = f"{SPOOFED}, {CLIENT}, 10.0.0.7"

    assert _audited_address(client, audit_records, "10.9.9.9", chain) == CLIENT


@pytest.mark.parametrize("garbage", ["not-an-ip", "unknown", f"{CLIENT}:4711", "[::1]"])
def test_a_garbage_hop_falls_back_to_the_peer(whoami: Whoami, garbage: str) -> None:
    answer = whoami(PROXY, **{"X-Forwarded-For": f"{CLIENT}, {garbage}"})

    assert answer["remoteAddr"] == PROXY


@pytest.mark.parametrize("trusted", [SEVERAL])
def test_an_all_trusted_chain_gives_its_leftmost_hop(whoami: Whoami) -> None:
    answer = whoami(PROXY, **{"X-Forwarded-For": "10.0.0.7, 10.2.3.4"})

    assert answer["remoteAddr"] == "10.0.0.7"


def test_trusted_proxy_without_forwarded_for_is_the_client(whoami: Whoami) -> None:
    assert whoami(PROXY)["remoteAddr"] == PROXY


@pytest.mark.parametrize(
    ("proto", "scheme"),
    [("https", "https"), ("HTTPS", "https"), ("http", "http"), ("http, https", "https")],
)
def test_trusted_proxy_sets_the_scheme(whoami: Whoami, proto: str, scheme: str) -> None:
    answer = whoami(PROXY, **{"X-Forwarded-Proto": proto})

    assert answer["scheme"] == scheme
    assert answer["original"] == {"REMOTE_ADDR": PROXY, "wsgi.url_scheme": "http"}


@pytest.mark.parametrize("proto", ["ftp", "https://evil", ""])
def test_an_unknown_scheme_from_a_trusted_proxy_is_ignored(whoami: Whoami, proto: str) -> None:
    assert whoami(PROXY, **{"X-Forwarded-Proto": proto})["scheme"] == "http"


def test_metrics_judge_the_forwarded_client_not_the_proxy(client: FlaskClient) -> None:
    through_proxy = {"REMOTE_ADDR": PROXY}

    outside = client.get(
        "/metrics", headers={"X-Forwarded-For": CLIENT}, environ_base=through_proxy
    )
    local = client.get("/metrics", environ_base=through_proxy)

    assert outside.status_code == 403
    assert local.status_code == 200


# --- client_address() ------------------------------------------------------------------

TRUSTED = parse_networks(["127.0.0.1", "10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        ("", "127.0.0.1"),
        (" , ,", "127.0.0.1"),
        (CLIENT, CLIENT),
        (f"{SPOOFED}, {CLIENT}", CLIENT),
        (f"{SPOOFED},{CLIENT},10.1.1.1,10.2.2.2", CLIENT),
        (f"  {CLIENT} ,, 10.1.1.1 ", CLIENT),
        (f"garbage, {CLIENT}, 10.1.1.1", CLIENT),
        (f"{CLIENT}, garbage, 10.1.1.1", "127.0.0.1"),
        ("10.1.1.1, 10.2.2.2, 127.0.0.1", "10.1.1.1"),
        ("2001:db8::1, ::1", "2001:db8::1"),
    ],
    ids=[
        "no-header",
        "empty-items",
        "one-client",
        "spoofed-left-of-client",
        "trusted-hops-skipped",
        "whitespace",
        "garbage-left-of-client",
        "garbage-is-the-client",
        "all-trusted",
        "ipv6",
    ],
)
def test_client_address_is_the_last_hop_our_proxies_did_not_add(
    forwarded_for: str, expected: str
) -> None:
    assert client_address("127.0.0.1", forwarded_for, TRUSTED) == expected


def test_client_address_trusts_nothing_without_trusted_networks() -> None:
    assert client_address("127.0.0.1", f"{SPOOFED}, 10.1.1.1", ()) == "10.1.1.1"


def test_parse_networks_accepts_hosts_and_networks_with_host_bits() -> None:
    networks = parse_networks(["127.0.0.1", "10.1.2.3/8", "::1"])

    assert networks == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
