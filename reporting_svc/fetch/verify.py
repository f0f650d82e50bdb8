"""What a downloaded file must hash to: ``Repr-Digest`` (RFC 9530) and the listed ``sha256``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import http_sf

from .failures import DigestMismatch

CHUNK = 1024 * 1024


def repr_digest_sha256(value: str | None) -> str | None:
    """The ``sha-256`` member of a ``Repr-Digest`` header as hex; None when absent or unreadable."""
    if not value:
        return None
    try:
        members = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except (http_sf.StructuredFieldError, UnicodeEncodeError):
        return None
    member = members.get("sha-256") if isinstance(members, dict) else None
    digest = member[0] if isinstance(member, tuple) else None
    return digest.hex() if isinstance(digest, bytes) and len(digest) == 32 else None


def hash_of(path: Path) -> hashlib._Hash:
    """A SHA-256 hasher fed with the file's bytes so far, read in chunks (flat memory)."""
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
    return hasher


def check(
    actual: str, size: int, expected: dict[str, str | None], expected_size: int | None
) -> None:
    """Raise DigestMismatch unless the bytes match every digest the server gave and its size.

    ``expected`` names where each digest came from (``Repr-Digest``, ``listing``), for
    the message; at least one must be known, or the file cannot be called verified.
    """
    known = {source: digest for source, digest in expected.items() if digest}
    if not known:
        raise DigestMismatch("the server gave no SHA-256 to verify against")
    if expected_size is not None and size != expected_size:
        raise DigestMismatch(f"{size} bytes saved, the server announced {expected_size}")
    for source, digest in known.items():
        if digest.lower() != actual:
            raise DigestMismatch(f"SHA-256 {actual} does not match the {source} {digest}")
