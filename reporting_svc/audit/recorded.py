"""Which jobs already have a record of one event on a trail, as far as a run has read it.

A purge that finishes the work of a claimant presumed dead must write the job's
``purged`` record only if the claimant did not get it out first. The sinks answer that
under their writer lock (``append_once``), reading only the part of the trail past where
this run stopped, so one run reads the trail once however many jobs it asks about.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Recorded:
    """The requestId of each job's first record of ``event`` seen so far, and where the
    reading stopped (a byte offset into a file, a ``seq`` in the database)."""

    event: str
    request_ids: dict[str, str] = field(default_factory=dict)
    position: int = 0

    @property
    def marker(self) -> str:
        """Text every line of such a record holds (``chain.line_of``: compact JSON), so
        other lines can be skipped unparsed; a value never holds it unescaped."""
        return f'"event":{json.dumps(self.event)}'

    def read(self, lines: Iterable[str | bytes]) -> None:
        """Note the records of ``event`` among ``lines`` (any others are skipped)."""
        for line in lines:
            self.note(json.loads(line))

    def note(self, record: dict[str, Any]) -> None:
        job_id = record.get("jobId")
        if record.get("event") == self.event and isinstance(job_id, str):
            self.request_ids.setdefault(job_id, record["requestId"])

    def holds(self, fields: dict[str, Any]) -> bool:
        """Whether the trail read so far has a record of ``fields``' event and job."""
        return fields.get("event") == self.event and fields.get("jobId") in self.request_ids
