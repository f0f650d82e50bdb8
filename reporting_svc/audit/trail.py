"""The audit trail: every download attempt, sealed into the chain and sent to each sink."""

from __future__ import annotations

import logging
from typing import Any

from ..settings import Settings
from ..storage.record import now_instant
from ..text import visible_fields
from .sinks import FileSink, StdoutSink

log = logging.getLogger(__name__)

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


# Records that wait for the disk before the request goes on: all but ``end``. A ``start``
# or ``redirect`` must be on disk before any byte is served (SPEC §4), and a refusal, 304
# or HEAD leaves no other record. Nothing waits for an ``end``: it reaches the disk with
# the next record that does, or with the kernel's writeback, so a power cut can lose the
# ``end`` of the last downloads, never their ``start``.
UNAWAITED_EVENTS = frozenset({"end"})


class AuditUnavailableError(Exception):
    """A record could not be written; a download that needs it must not go ahead."""


class AuditTrail:
    """The file sink (when configured) seals the chain; the stdout sink repeats or seals."""

    def __init__(self, file: FileSink | None, stdout: StdoutSink | None):
        if file is None and stdout is None:
            raise ValueError("an audit trail needs at least one sink")
        self.file = file
        self.stdout = stdout

    def check(self) -> str | None:
        """Why records could not be written now (for readiness), or None."""
        return self.file.check() if self.file is not None else None

    def write(self, **fields: Any) -> dict[str, Any]:
        """Seal and write one record with the contract's fields, in the contract's order."""
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise TypeError(f"not audit fields: {', '.join(sorted(unknown))}")
        # Caller-supplied text is stored as data: a control character is written escaped.
        ordered = visible_fields({name: fields.get(name) for name in FIELDS})
        ordered["time"] = ordered["time"] or now_instant()
        try:
            if self.file is not None:
                durable = ordered["event"] not in UNAWAITED_EVENTS
                record = self.file.append(ordered, durable=durable)
                if self.stdout is not None:
                    self.stdout.emit(record)
                return record
            assert self.stdout is not None
            return self.stdout.append(ordered)
        except (OSError, ValueError) as error:
            log.error(
                "audit record %s for request %s not written: %s",
                ordered["event"],
                ordered["requestId"],
                error,
            )
            raise AuditUnavailableError(str(error)) from error


def make_audit_trail(settings: Settings) -> AuditTrail:
    """The sinks ``REPORTING_SVC_AUDIT_SINK`` names."""
    file = (
        FileSink(settings.audit_path, fsync=settings.audit_fsync)
        if "file" in settings.audit_sink
        else None
    )
    stdout = StdoutSink() if "stdout" in settings.audit_sink else None
    return AuditTrail(file, stdout)
