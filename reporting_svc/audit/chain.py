"""The hash chain that makes the audit trail tamper-evident, its one line form, and its check.

Each record carries ``prev``, the hash of the record before it, and ``hash``, the
SHA-256 of its own canonical JSON (every field but ``hash``). Editing a byte, deleting
a record or swapping two breaks the chain at that record.

A record has one way to be written down: the contract's fields in the contract's order,
then ``prev`` and ``hash``, compact, ASCII only, ending in ``\\n``. The writer writes
that line and the verifier accepts only that line, so two lines never carry one record
(a duplicate key, an escaped letter or a CR would otherwise pass the chain while a
``grep`` for the value misses it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
# docs/api.md §4: a record's fields, in the order every line holds them.
FIELDS = (
    "time",
    "event",
    "requestId",
    "subject",
    "clientAddress",
    "userAgent",
    "jobId",
    "studyId",
    "mode",
    "reportName",
    "status",
    "delivery",
    "bytesSent",
    "complete",
    "sha256",
)
LINE_FIELDS = (*FIELDS, "prev", "hash")
# Built once: json.dumps with options makes a new encoder on every call.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)
_LINE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)


class NotCanonicalError(ValueError):
    """A line that is not the one way its record is written."""


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes hashed: sorted keys, no spaces, ASCII only, ``hash`` left out."""
    fields = {key: value for key, value in record.items() if key != "hash"}
    return _CANONICAL.encode(fields).encode()


def seal(fields: dict[str, Any], prev: str) -> dict[str, Any]:
    """The record with every contract field (absent ones null), ``prev`` and its ``hash``."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"not audit fields: {', '.join(sorted(unknown))}")
    record = {name: fields.get(name) for name in FIELDS}
    record["prev"] = prev
    record["hash"] = hashlib.sha256(canonical(record)).hexdigest()
    return record


def line_of(record: dict[str, Any]) -> bytes:
    """The record's one line: the writer's output and the verifier's yardstick."""
    return _LINE.encode(record).encode() + b"\n"


def parse_line(line: bytes) -> dict[str, Any]:
    """The record a line holds, if the line is exactly ``line_of`` that record.

    Comparing bytes catches every other spelling at once: a key given twice (the record
    keeps one), reordered keys, spaces, a CR, an escaped letter, ``1.0`` for ``1``.
    """
    try:
        record = json.loads(line)
    except ValueError as error:
        raise NotCanonicalError("not a sealed JSON record") from error
    if not isinstance(record, dict) or tuple(record) != LINE_FIELDS:
        raise NotCanonicalError("not a sealed JSON record")
    try:
        written = line_of(record)
    except ValueError as error:  # NaN or Infinity, which JSON has not
        raise NotCanonicalError("not in the one form the service writes") from error
    if written != line:
        raise NotCanonicalError("not in the one form the service writes")
    return record


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
            record = parse_line(line)
        except NotCanonicalError as error:
            return Verdict(count, prev, number, str(error))
        if record["prev"] != prev:
            return Verdict(count, prev, number, "prev does not name the record before it")
        if hashlib.sha256(canonical(record)).hexdigest() != record["hash"]:
            return Verdict(count, prev, number, "hash does not match the record's content")
        prev, count = record["hash"], number
    return Verdict(count, prev)
