"""Repr-Digest read as a structured field; a file verified against every digest given."""

from __future__ import annotations

import base64
import hashlib

import pytest

from reporting_svc.fetch.failures import DigestMismatch
from reporting_svc.fetch.verify import check, repr_digest_sha256

CONTENT = b"subjectId,visit\n"
HEX = hashlib.sha256(CONTENT).hexdigest()
B64 = base64.b64encode(hashlib.sha256(CONTENT).digest()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"sha-256=:{B64}:", HEX),
        (f"sha-512=:{base64.b64encode(bytes(64)).decode()}:, sha-256=:{B64}:", HEX),
        ("sha-512=:YQ==:", None),
        ("sha-256=:YQ==:", None),
        ("sha-256=abc", None),
        ("sha-256=:not base64(:", None),
        ("", None),
        (None, None),
    ],
)
def test_repr_digest_gives_the_sha256_member_only_when_well_formed(
    header: str | None, expected: str | None
) -> None:
    assert repr_digest_sha256(header) == expected


def test_check_accepts_bytes_matching_every_known_digest() -> None:
    check(HEX, len(CONTENT), {"Repr-Digest": HEX, "listed sha256": HEX.upper()}, len(CONTENT))


@pytest.mark.parametrize(
    ("expected", "size", "message"),
    [
        ({"Repr-Digest": HEX, "listed sha256": "0" * 64}, len(CONTENT), "listed sha256"),
        ({"Repr-Digest": "0" * 64, "listed sha256": None}, len(CONTENT), "Repr-Digest"),
        ({"Repr-Digest": HEX}, len(CONTENT) + 1, "announced"),
        ({"Repr-Digest": None, "listed sha256": None}, len(CONTENT), "no SHA-256"),
    ],
)
def test_check_refuses_a_mismatch_a_wrong_size_or_nothing_to_check(
    expected: dict[str, str | None], size: int, message: str
) -> None:
    with pytest.raises(DigestMismatch, match=message):
        check(HEX, len(CONTENT), expected, size)
