"""S3 x-accel over https: nginx resolves S3's name, checks its certificate and relays.

moto's S3 server speaks https with a certificate from a private CA (trustme) for
``localhost``; the service trusts that CA through REPORTING_SVC_S3_CA_BUNDLE, nginx through
the site's ``proxy_ssl_trusted_certificate``, and nginx finds ``localhost`` through its
``resolver``, a DNS server on 127.0.0.1. A certificate nginx must refuse ends in the
service's envelope, never in S3's body or a complete-looking download.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import trustme

from harness.nginx import S3Tls
from tests.integration.name_server import name_server
from tests.integration.processes import (
    Processes,
    publish_with_cli,
    s3_env,
    service_env,
    token_with_cli,
)
from tests.reliability.clients import error_data
from tests.support import DOWNLOAD, STUDY

pytestmark = pytest.mark.integration

SIZE = 1_500_000
SERVICE_HEADERS = ("ETag", "Repr-Digest", "Content-Disposition", "Content-Type", "Last-Modified")


@dataclass(frozen=True)
class PrivateTls:
    """The files of a private CA and a server certificate it signed, and a stranger CA."""

    ca: Path
    certificate: Path
    key: Path
    other_ca: Path


@dataclass(frozen=True)
class Site:
    """A report served in S3 x-accel behind nginx, and what a client needs to ask for it."""

    url: str
    data: bytes
    job: str
    token: str
    nginx_error_log: Path


@pytest.fixture(scope="module")
def private_tls(tmp_path_factory: pytest.TempPathFactory) -> PrivateTls:
    folder = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    issued = ca.issue_cert("localhost", "127.0.0.1")
    files = PrivateTls(
        folder / "ca.pem", folder / "s3.pem", folder / "s3.key", folder / "other-ca.pem"
    )
    ca.cert_pem.write_to_path(str(files.ca))
    issued.cert_chain_pems[0].write_to_path(str(files.certificate))
    issued.private_key_pem.write_to_path(str(files.key))
    other.cert_pem.write_to_path(str(files.other_ca))
    return files


@pytest.fixture(scope="module")
def s3_https(module_processes: Processes, private_tls: PrivateTls) -> str:
    """moto's S3 server over https for the module; its endpoint names ``localhost``."""
    return module_processes.moto_server(tls=(private_tls.certificate, private_tls.key))


@pytest.fixture(scope="module")
def resolver() -> Iterator[str]:
    """The DNS server nginx's ``resolver`` asks: ``localhost`` is 127.0.0.1."""
    with name_server({"localhost": "127.0.0.1"}) as address:
        yield address


def relay_site(
    processes: Processes, endpoint: str, ca_bundle: Path, s3_tls: S3Tls, name: str
) -> Site:
    """Publish a report to the S3 server at ``endpoint`` and serve it in x-accel behind nginx."""
    folder = processes.folder / name
    folder.mkdir()
    env = {
        **s3_env(service_env(folder), endpoint, ca_bundle=ca_bundle),
        "REPORTING_SVC_S3_DELIVERY": "x-accel",
        "WEB_CONCURRENCY": "1",
    }
    data = os.urandom(SIZE)
    (folder / "extract.csv").write_bytes(data)
    record = publish_with_cli(env, folder / "extract.csv")
    service = processes.serve(env)
    url = processes.behind_nginx(service, Path(env["REPORTING_SVC_LOCAL_ROOT"]), s3_tls=s3_tls)
    error_log = processes.folder / f"nginx-{urlsplit(url).port}" / "error.log"
    token = token_with_cli(env, f"{STUDY}:test:REPORTING_VIEW")
    return Site(url, data, record["id"], token, error_log)


@pytest.fixture(scope="module")
def trusted(
    module_processes: Processes, s3_https: str, private_tls: PrivateTls, resolver: str
) -> Site:
    """nginx trusts the CA that signed S3's certificate and resolves S3's name."""
    return relay_site(
        module_processes, s3_https, private_tls.ca, S3Tls(resolver, private_tls.ca), "trusted"
    )


def ask(site: Site, method: str, request_id: str, **headers: str) -> requests.Response:
    return requests.request(
        method,
        f"{site.url}{DOWNLOAD}",
        params={"id": site.job},
        headers={"Authorization": f"Bearer {site.token}", "X-Request-ID": request_id, **headers},
        timeout=30,
    )


def assert_only_the_services_headers(response: requests.Response, site: Site) -> None:
    """The service's representation headers, as its own HEAD gives them, and none of S3's."""
    described = ask(site, "HEAD", "described")
    assert described.status_code == 200
    for name in SERVICE_HEADERS:
        assert response.headers.get(name) == described.headers[name], name
    digest = base64.b64encode(hashlib.sha256(site.data).digest()).decode()
    assert response.headers["Repr-Digest"] == f"sha-256=:{digest}:"
    names = [name.lower() for name in response.headers]
    assert not [name for name in names if name.startswith(("x-amz", "x-reporting-svc"))]
    assert sorted(names) == sorted(set(names))


@pytest.mark.parametrize(
    ("headers", "status", "span"),
    [({}, 200, slice(None)), ({"Range": "bytes=1000-1999"}, 206, slice(1000, 2000))],
    ids=["whole", "range"],
)
def test_nginx_relays_from_s3_over_https_byte_for_byte_with_the_services_headers(
    trusted: Site, headers: dict[str, str], status: int, span: slice
) -> None:
    response = ask(trusted, "GET", f"https-{status}", **headers)

    assert response.status_code == status
    assert response.content == trusted.data[span]
    assert int(response.headers["Content-Length"]) == len(trusted.data[span])
    if status == 206:
        assert response.headers["Content-Range"] == f"bytes 1000-1999/{SIZE}"
    assert response.headers["X-Request-ID"] == f"https-{status}"
    assert_only_the_services_headers(response, trusted)


@pytest.mark.parametrize(
    ("by_address", "nginx_trusts_other_ca", "refusal"),
    [
        (False, True, "upstream SSL certificate verify error"),
        (True, False, 'upstream SSL certificate does not match "127.0.0.1"'),
    ],
    ids=["signed-by-a-ca-nginx-does-not-trust", "endpoint-by-address-not-name"],
)
def test_a_certificate_nginx_refuses_is_the_services_503_envelope(
    processes: Processes,
    s3_https: str,
    private_tls: PrivateTls,
    resolver: str,
    by_address: bool,
    nginx_trusts_other_ca: bool,
    refusal: str,
) -> None:
    """The service trusts S3 (it finds the job) and hands over; nginx refuses S3.

    By address, the certificate names 127.0.0.1 too, which Python accepts; nginx checks a
    certificate's names only, so an endpoint must be named as its certificate names it.
    """
    endpoint = s3_https.replace("localhost", "127.0.0.1") if by_address else s3_https
    trusted_ca = private_tls.other_ca if nginx_trusts_other_ca else private_tls.ca
    site = relay_site(processes, endpoint, private_tls.ca, S3Tls(resolver, trusted_ca), "refused")

    response = ask(site, "GET", "refused")

    assert response.status_code == 503
    assert error_data(response)["errorCode"] == "REPT_503"
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["X-Request-ID"] == "refused"
    assert site.data[:64] not in response.content
    assert b"<Error>" not in response.content
    assert not [name for name in response.headers if name.lower().startswith("x-amz")]
    assert refusal in site.nginx_error_log.read_text()
