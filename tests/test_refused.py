"""A refused request's text is withheld from every log line, whatever credential it holds."""

from __future__ import annotations

import pytest
from gunicorn.http import errors

from reporting_svc.server.refused import WITHHELD, withheld

API_KEY = "s3cr3t-api-key-0123456789"
BASIC = "YWxpY2U6czNjcjN0LXBhc3N3b3Jk"
BEARER = "opaque-bearer-token-9876543210"


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidHeader(f"X-Api-Key {API_KEY}"),
        errors.InvalidHeader(f"Authorization Basic {BASIC}"),
        errors.InvalidHeader(f"Authorization bearer\t{BEARER}"),
        errors.InvalidHeaderName(f"Authorization Basic {BASIC} "),
        errors.ObsoleteFolding(f" {API_KEY}"),
        errors.InvalidRequestLine(f"X-Api-Key {API_KEY}"),
        errors.InvalidRequestMethod(f"X-Api-Key:{API_KEY}"),
        errors.InvalidHTTPVersion(f"HTTP/1.1 {API_KEY}"),
        errors.UnsupportedTransferCoding(API_KEY),
        errors.ExpectationFailed(API_KEY),
        errors.NoMoreData(f"X-Api-Key: {API_KEY}".encode()),
        errors.InvalidChunkSize(API_KEY.encode()),
        errors.InvalidProxyLine(f"PROXY {API_KEY}"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_refusal_keeps_its_kind_and_quotes_none_of_the_request(
    error: BaseException,
) -> None:
    quiet = withheld(error)

    assert type(quiet) is type(error)
    assert WITHHELD in str(quiet)
    for secret in (API_KEY, BASIC, BEARER):
        assert secret not in str(quiet) + repr(quiet)
    assert str(error) != str(quiet)


@pytest.mark.parametrize(
    "error",
    [
        errors.LimitRequestHeaders("limit request headers fields size"),
        errors.LimitRequestLine(9000, 8190),
        errors.InvalidSchemeHeaders(),
        ValueError("not gunicorn's"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_refusal_in_gunicorn_s_own_words_or_another_error_reads_the_same(
    error: BaseException,
) -> None:
    quiet = withheld(error)

    assert (type(quiet), str(quiet)) == (type(error), str(error))


def test_the_original_error_is_left_as_it_was() -> None:
    error = errors.InvalidHeader(f"X-Api-Key {API_KEY}")

    withheld(error)

    assert API_KEY in str(error)
