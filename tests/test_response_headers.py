"""The request id: one per request, kept with the request rather than on ``flask.g``."""

from __future__ import annotations

import pytest
from flask import Flask, g

from reporting_svc.http.response_headers import request_id


@pytest.mark.parametrize("sent", ["trace-42", "not sane!", None])
def test_the_request_id_is_fixed_for_the_request_and_not_kept_on_g(
    app: Flask, sent: str | None
) -> None:
    headers = {"X-Request-ID": sent} if sent else {}
    with app.test_request_context(headers=headers):
        first = request_id()

        assert request_id() == first
        assert (first == sent) == (sent == "trace-42")
        assert "request_id" not in g
    with app.test_request_context(headers=headers):
        assert (request_id() == first) == (sent == "trace-42")
