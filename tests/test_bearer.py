"""The one parser of bearer tokens, shared by the authenticator and the metrics token."""

from __future__ import annotations

import pytest
from flask import Request

from reporting_svc.auth.bearer import bearer_token


@pytest.mark.parametrize(
    ("authorization", "token"),
    [
        pytest.param("Bearer abc.def", "abc.def", id="bearer"),
        pytest.param("bearer abc.def", "abc.def", id="lower-case-scheme"),
        pytest.param("BEARER abc.def", "abc.def", id="upper-case-scheme"),
        pytest.param("Bearer   abc.def  ", "abc.def", id="extra-spaces"),
        pytest.param("Bearer abc==", "abc==", id="trailing-padding"),
        pytest.param("Bearer", "", id="scheme-alone"),
        pytest.param("Bearer ", "", id="nothing-after-the-scheme"),
        pytest.param("Bearer a=b", "", id="parameters-not-a-token"),
        pytest.param("", None, id="empty-header"),
        pytest.param("abc.def", None, id="token-without-scheme"),
        pytest.param("Token abc.def", None, id="other-scheme"),
        pytest.param("Basic dXNlcjpwYXNz", None, id="basic"),
    ],
)
def test_bearer_token_reads_the_scheme_in_any_case(authorization: str, token: str | None) -> None:
    request = Request.from_values(headers={"Authorization": authorization})

    assert bearer_token(request) == token


def test_no_authorization_header_is_no_token() -> None:
    assert bearer_token(Request.from_values()) is None
