"""The audit records of an operator's command (docs/api.md §4): ``withdrawn`` and ``purged``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from ..audit import AuditTrail
from ..storage import JobRecord
from ..storage.entries import check_operator


@dataclass(frozen=True)
class Operator:
    """Who runs a command, and what it is: every record of one run shares its requestId.

    ``agent`` stands where a download's User-Agent does: the command, and for a
    withdrawal its reason, so the trail alone says who withdrew a report and why.
    """

    name: str
    agent: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        check_operator(self.name)

    def record(self, audit: AuditTrail, event: str, job: JobRecord) -> dict[str, Any]:
        """Write the event about ``job``; AuditUnavailableError when it cannot be."""
        return audit.write(**self.fields(event, job))

    def fields(self, event: str, job: JobRecord) -> dict[str, Any]:
        return {
            "event": event,
            "requestId": self.run_id,
            "subject": self.name,
            "userAgent": self.agent,
            "jobId": job.id,
            "studyId": job.studyId,
            "mode": job.mode,
            "reportName": job.reportName,
            "sha256": job.sha256,
        }
