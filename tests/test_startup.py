"""What serve says at start-up (startup.py): the URL its curl lines name for an address."""

from __future__ import annotations

import pytest

from reporting_svc.startup import base_url


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9000"),
        ("0.0.0.0", "http://127.0.0.1:9000"),
        ("::", "http://127.0.0.1:9000"),
        ("::1", "http://[::1]:9000"),
        ("10.1.2.3", "http://10.1.2.3:9000"),
    ],
)
def test_curl_lines_reach_the_address_bound_from_this_host(host: str, url: str) -> None:
    assert base_url(host, 9000) == url
