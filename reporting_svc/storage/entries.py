"""A job's later changes of state (docs/api.md §2, §6): write-once entries beside its record.

An entry is never rewritten: a withdrawal or a purge is a new key created only when it
is absent (a conditional create), so the first writer wins on every host at once and no
later publish, withdrawal or purge can undo it. The JSON holds the contract's words.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from .record import parse_instant

MAX_REASON = 500
REASON_RULE = f"the reason must be 1 to {MAX_REASON} printable characters on one line"
MAX_OPERATOR = 128
OPERATOR_RULE = f"the operator's name must be 1 to {MAX_OPERATOR} printable characters"

E = TypeVar("E", bound="Entry")


@dataclass(frozen=True)
class Entry:
    """Common JSON form of entries; ``name`` is the key's last part (see layout)."""

    name: ClassVar[str]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls: type[E], data: bytes) -> E:
        """Parse a stored entry; ValueError for anything else (a damaged or forged key)."""
        raw: Any = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError(f"a {cls.name} entry is a JSON object")
        names = cls.__dataclass_fields__
        try:
            return cls(**{key: value for key, value in raw.items() if key in names})
        except TypeError as error:
            raise ValueError(f"not a {cls.name} entry: {error}") from None


@dataclass(frozen=True)
class Withdrawal(Entry):
    """A report pulled back by an operator: when, by whom and why."""

    name: ClassVar[str] = "withdrawn.json"
    withdrawnAt: str  # noqa: N815 - the JSON's own field names
    by: str
    reason: str

    @property
    def at(self) -> datetime:
        return parse_instant(self.withdrawnAt)


@dataclass(frozen=True)
class Purge(Entry):
    """The claim of the purge that deletes a job's file: whoever creates it records it.

    ``purgedAt`` is the run's instant (the catalog's mark), ``claimedAt`` the moment of
    the claim itself, from which another run tells a claimant at work from a dead one; a
    claim written before it existed has none and counts as old.
    """

    name: ClassVar[str] = "purged.json"
    purgedAt: str  # noqa: N815
    by: str
    host: str
    claimedAt: str | None = None  # noqa: N815

    @property
    def at(self) -> datetime:
        return parse_instant(self.purgedAt)

    @property
    def claimed(self) -> datetime | None:
        return None if self.claimedAt is None else parse_instant(self.claimedAt)


@dataclass(frozen=True)
class PurgeRecorded(Entry):
    """Created once the job's ``purged`` record is on the trail: the claim is answered
    for. ``requestId`` names that record (the run that wrote it), ``host`` who found it
    on the trail."""

    name: ClassVar[str] = "purge-recorded.json"
    requestId: str  # noqa: N815
    host: str


def check_reason(reason: str) -> str:
    """The reason when an entry may carry it: shown in every 410, so one line of text."""
    if not 1 <= len(reason) <= MAX_REASON or not reason.isprintable():
        raise ValueError(REASON_RULE)
    return reason


def check_operator(operator: str) -> str:
    """The operator's name as audit records carry it (their ``subject``)."""
    if not 1 <= len(operator) <= MAX_OPERATOR or not operator.isprintable():
        raise ValueError(OPERATOR_RULE)
    return operator
