"""What an ``import`` record on the live chain says of the chain it loaded.

``audit import`` writes one in the transaction that loads a chain; ``audit verify`` reads
them back and holds every chain but the live one to exactly one of them, with its name,
record count and last hash. A chain no import record names (or names with another count
or last hash) was not loaded by ``audit import`` as it stands: it is reported, whoever
wrote it. The record's fields are docs/api.md §4's: ``reportName`` states the chain in the one
form below, and ``complete`` says whether the copy's head vouched for its end.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa

from ..storage.record import now_instant
from ..text import visible
from .chain import Verdict
from .tables import LIVE, records

EVENT = "import"
USER_AGENT = "reporting-svc audit import"
WITHOUT_HEAD = " without its head"
# The file's name may hold anything; the chain, count and hash are read from the end.
_STATEMENT = re.compile(
    rf"audit import(?:{WITHOUT_HEAD})?: (?P<records>[0-9]+) record\(s\) of .*"
    r" as chain (?P<chain>[A-Za-z0-9._:-]{1,64}), last hash (?P<hash>[0-9a-f]{64})",
    re.DOTALL,
)


class Announcement(NamedTuple):
    """A chain as its import record names it, and that record's ``requestId``."""

    chain: str
    records: int
    last_hash: str
    request_id: str


def statement(file_name: str, chain: str, verdict: Verdict, *, vouched: bool) -> str:
    """The import record's ``reportName``: what was loaded, as ``verify`` reads it back."""
    return (
        f"audit import{'' if vouched else WITHOUT_HEAD}: {verdict.records} record(s) of "
        f"{file_name} as chain {chain}, last hash {verdict.last_hash}"
    )


def import_record(operator: str, summary: str, *, vouched: bool) -> dict[str, Any]:
    """The live chain's record of an import; ``complete`` false: no head vouched for it."""
    return {
        "time": now_instant(),
        "event": EVENT,
        "requestId": uuid.uuid4().hex,
        "subject": operator,
        "userAgent": USER_AGENT,
        "reportName": summary,
        "complete": vouched,
    }


def import_records(connection: sa.Connection) -> Iterator[dict[str, Any]]:
    """The live chain's import records in order (the caller has verified the chain)."""
    lines = connection.scalars(
        sa.select(records.c.line)
        .where(records.c.chain == LIVE)
        .where(records.c.line.contains(f'"event":"{EVENT}"', autoescape=True))
        .order_by(records.c.seq)
    )
    for line in lines:
        record = json.loads(line)
        if record["event"] == EVENT:
            yield record


def unaccounted(announced: Iterable[dict[str, Any]], imported: Mapping[str, Verdict]) -> str | None:
    """Why the import records and the chains but the live one disagree, or None: each
    chain named by exactly one record, with its count and last hash, and each record
    naming a chain the database holds."""
    named: dict[str, list[Announcement]] = {}
    for record in announced:
        request_id = visible(str(record["requestId"]))
        found = _STATEMENT.fullmatch(str(record["reportName"]))
        if found is None:
            return f"the import record {request_id} does not name a chain as audit import does"
        announcement = Announcement(
            found["chain"], int(found["records"]), found["hash"], request_id
        )
        named.setdefault(announcement.chain, []).append(announcement)
    for chain, verdict in imported.items():
        shown = visible(chain)
        match named.pop(chain, []):
            case []:
                return (
                    f"chain {shown} ({verdict.records} records, last hash {verdict.last_hash}) "
                    "is named by no import record on the live chain"
                )
            case [one]:
                if (one.records, one.last_hash) != (verdict.records, verdict.last_hash):
                    return (
                        f"chain {shown} holds {verdict.records} records, last hash "
                        f"{verdict.last_hash}, but its import record {one.request_id} names "
                        f"{one.records}, last hash {one.last_hash}"
                    )
            case several:
                return f"chain {shown} is named by {len(several)} import records, not one"
    if named:
        chain, [first, *_] = next(iter(named.items()))
        return (
            f"the import record {first.request_id} names chain {chain}, "
            "which is not an imported chain the database holds"
        )
    return None
