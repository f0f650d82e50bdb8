"""The audit trail's durability rule (docs/api.md §4 is the contract), in one place.

Two questions, asked by two layers, answered here:

- May an answer leave before its record is written (``answer_waits``, asked by the
  audit decorator)? Not when its record is what makes serving it allowed: a ``start``
  before the first byte, a ``redirect``, a ``head``, a ``list`` (each reveals a file, a
  URL to one, a file's description or a list of jobs), nor any other answer to a caller
  granted the job (its ETag in a 304, its size in a 416, a withdrawal's reason in a
  410) unless it is the service's own refusal (5xx), which tells nothing about the job.
  When such a record cannot be written the answer becomes a 503. Only refusals before
  the grant (400, 401, 404 of an unknown job, 405) answer with their own status then.
- Does writing a record wait for the disk, or the database's commit (``durable``, asked
  by the trail)? Every record but an ``end``, an anonymous refusal and a service
  refusal. Nothing waits for an ``end``: it reaches the disk with the next record that
  does, or with the kernel's writeback, so a power cut can lose the ``end`` of the last
  downloads, never their ``start``. A refusal of a caller without a valid token
  (subject null) waits for no fsync, since anyone can send one and each must cost
  little; nor does a refusal the service makes for its own state (a 5xx: every slot
  taken, the store or the audit database down), since a host that is busy or failing
  must answer at once rather than queue each 503 behind the disk. A refusal that judges
  the caller (401, 403, 404, 410, ...) still waits.
"""

from __future__ import annotations

from typing import Any

# Events whose answer leaves only once the record is written.
AWAITED_EVENTS = frozenset({"start", "redirect", "head", "list"})
# Events whose record never waits for the disk.
UNAWAITED_EVENTS = frozenset({"end"})
# The lowest status of a refusal the service makes for its own state.
SERVICE_REFUSALS = 500


def answer_waits(event: str, status: int, *, granted: bool) -> bool:
    """Whether an answer of ``status`` may leave only once its ``event`` record is written;
    ``granted``: the caller may see the job, so the answer tells it about the job."""
    if event in AWAITED_EVENTS:
        return True
    return granted and status < SERVICE_REFUSALS


def durable(record: dict[str, Any]) -> bool:
    """Whether writing ``record`` waits for it to be on disk (or committed)."""
    if record["event"] in UNAWAITED_EVENTS:
        return False
    if record["event"] != "refused":
        return True
    status = record["status"]
    service_refusal = isinstance(status, int) and status >= SERVICE_REFUSALS
    return record["subject"] is not None and not service_refusal
