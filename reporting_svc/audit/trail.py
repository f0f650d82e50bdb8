"""The audit trail: every download attempt, sealed into the chain and sent to each sink."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from ..catalog import database_limits
from ..settings import Settings
from ..storage.record import now_instant
from ..text import visible_fields
from .chain import FIELDS
from .database import DatabaseSink
from .policy import durable
from .recorded import Recorded
from .sinks import FileSink, StdoutSink

log = logging.getLogger(__name__)

# A refusal of a caller without a valid token (subject null) waits for no fsync
# (audit/policy.py), and its User-Agent is cut short (the requestId and jobId are
# already at most 128 and 64 characters): anyone can send those, so each must cost
# little. The limit counts the caller's characters: escaped, each unsafe one takes 4
# to 10.
ANONYMOUS_USER_AGENT_LIMIT = 128


class AuditUnavailableError(Exception):
    """A record could not be written; a download that needs it must not go ahead."""


class ChainedSink(Protocol):
    """A sink that seals records into a chain of its own: the file, or the database."""

    def append(self, fields: dict[str, Any], *, durable: bool = True) -> dict[str, Any]: ...

    def check(self) -> str | None: ...

    def append_once(self, fields: dict[str, Any], recorded: Recorded) -> dict[str, Any] | None: ...


class AuditTrail:
    """The chained sink (file or database, when configured) seals the chain; the stdout
    sink repeats its records, or seals its own."""

    def __init__(self, chained: ChainedSink | None, stdout: StdoutSink | None):
        if chained is None and stdout is None:
            raise ValueError("an audit trail needs at least one sink")
        self.chained = chained
        self.stdout = stdout

    def check(self) -> str | None:
        """Why a ``start`` record could not be written now (for readiness), or None."""
        problems = [sink.check() for sink in (self.chained, self.stdout) if sink is not None]
        return "; ".join(problem for problem in problems if problem) or None

    def write(self, **fields: Any) -> dict[str, Any]:
        """Seal and write one record with the contract's fields, in the contract's order.

        Whatever goes wrong in any sink, the record is not written: AuditUnavailableError.
        """
        ordered = self._ordered(fields)
        with _failing(ordered):
            return self._append(ordered, durable=durable(ordered))

    def write_once(self, recorded: Recorded, **fields: Any) -> dict[str, Any] | None:
        """Write the (durable) record unless the trail holds one of its event about its
        job already: None then. The chained sink checks and writes under its writer lock.

        For a purge finishing a claimant presumed dead, so reading the trail is fine:
        ``recorded`` keeps what was read, and the next call reads only what came after.
        Standard output alone cannot be read back: the record is written, as by ``write``.
        """
        ordered = self._ordered(fields)
        with _failing(ordered):
            if self.chained is None:
                return self._stdout().append(ordered)
            record = self.chained.append_once(ordered, recorded)
            if record is not None and self.stdout is not None:
                self.stdout.emit(record)
            return record

    @staticmethod
    def _ordered(fields: dict[str, Any]) -> dict[str, Any]:
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise TypeError(f"not audit fields: {', '.join(sorted(unknown))}")
        raw = {name: fields.get(name) for name in FIELDS}
        anonymous = raw["event"] == "refused" and raw["subject"] is None
        if anonymous and isinstance(raw["userAgent"], str):
            # Cut the caller's text, not its escaped form, so no escape is cut in half.
            raw["userAgent"] = raw["userAgent"][:ANONYMOUS_USER_AGENT_LIMIT]
        # Caller-supplied text is stored as data: a control character is written escaped.
        ordered = visible_fields(raw)
        ordered["time"] = ordered["time"] or now_instant()
        return ordered

    def _append(self, ordered: dict[str, Any], *, durable: bool) -> dict[str, Any]:
        if self.chained is None:
            return self._stdout().append(ordered)
        record = self.chained.append(ordered, durable=durable)
        if self.stdout is not None:
            self.stdout.emit(record)
        return record

    def _stdout(self) -> StdoutSink:
        if self.stdout is None:
            raise AuditUnavailableError("the audit trail has no sink")
        return self.stdout


@contextmanager
def _failing(ordered: dict[str, Any]) -> Iterator[None]:
    """Any failure of any sink fails the record: AuditUnavailableError."""
    try:
        yield
    except Exception as error:
        log.error(
            "audit record %s for request %s not written: %s",
            ordered["event"],
            ordered["requestId"],
            error,
        )
        raise AuditUnavailableError(str(error)) from error


def make_audit_trail(settings: Settings) -> AuditTrail:
    """The sinks ``REPORTING_SVC_AUDIT_SINK`` names."""
    chained: ChainedSink | None = None
    if "file" in settings.audit_sink:
        chained = FileSink(settings.audit_path, fsync=settings.audit_fsync)
    elif "postgres" in settings.audit_sink:
        chained = DatabaseSink(settings.audit_database_url, limits=database_limits(settings))
    stdout = StdoutSink() if "stdout" in settings.audit_sink else None
    return AuditTrail(chained, stdout)
