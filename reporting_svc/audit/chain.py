"""The hash chain that makes the audit trail tamper-evident, and its verification.

Each record carries ``prev``, the hash of the record before it, and ``hash``, the
SHA-256 of its own canonical JSON (every field but ``hash``). Editing a byte, deleting
a record or swapping two breaks the chain at that record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
# Built once: json.dumps with options makes a new encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
_LINE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes hashed: sorted keys, no spaces, ASCII only, ``hash`` left out."""
    fields = {key: value for key, value in record.items() if key != "hash"}
    return _CANONICAL.encode(fields).encode()


def seal(fields: dict[str, Any], prev: str) -> dict[str, Any]:
    """The record with ``prev`` and its own ``hash`` added."""
    record = {**fields, "prev": prev}
    record["hash"] = hashlib.sha256(canonical(record)).hexdigest()
    return record


def line_of(record: dict[str, Any]) -> bytes:
    """One JSON Lines line, fields in the order they were given."""
    return _LINE.encode(record).encode() + b"\n"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a verification: how many records held and, if any, the first break."""

    records: int
    last_hash: str
    broken_at: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(lines: Iterable[bytes]) -> Verdict:
    """Walk the chain from the genesis; stop at the first record (1-based line) that breaks."""
    return verify_from(lines, GENESIS)


def verify_from(lines: Iterable[bytes], prev: str) -> Verdict:
    """Walk records that must chain on from ``prev``; line numbers count from 1."""
    count = 0
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            stored = record["hash"]
        except (ValueError, TypeError, KeyError):
            return Verdict(count, prev, number, "not a sealed JSON record")
        if record.get("prev") != prev:
            return Verdict(count, prev, number, "prev does not name the record before it")
        if hashlib.sha256(canonical(record)).hexdigest() != stored:
            return Verdict(count, prev, number, "hash does not match the record's content")
        prev, count = stored, number
    return Verdict(count, prev)
