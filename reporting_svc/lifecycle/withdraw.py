"""Withdrawing a report issued in error: a write-once entry in the store, then the catalog.

The store's entry is what every download reads (docs/api.md §6), so the withdrawal is in effect
on every host the moment it is created; the catalog is marked next, so listings drop the
job at once. The first withdrawal of a job stands: a second one finds it and changes
nothing, and publishing the id again is refused by the store's claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..audit import AuditTrail, AuditUnavailableError
from ..catalog import Catalog, CatalogError
from ..ids import normalise_guid
from ..storage import JobRecord, Store
from ..storage.entries import Withdrawal, check_reason
from ..storage.record import format_instant
from ..text import visible
from .records import Operator


class UnknownJob(ValueError):
    """No job with this id is in the store."""


@dataclass(frozen=True)
class Withdrawn:
    """The job and the withdrawal that stands; ``new`` False when it was made before."""

    record: JobRecord
    withdrawal: Withdrawal
    new: bool


def withdraw_job(
    store: Store,
    catalog: Catalog,
    audit: AuditTrail,
    job_id: str,
    *,
    reason: str,
    operator: Operator,
    now: datetime,
) -> Withdrawn:
    """Withdraw the job: store entry, ``withdrawn`` record, catalog mark, in that order.

    The entry comes first because it is what stops downloads; if the record then cannot
    be written, the error says the withdrawal stands (its entry names who and why).
    """
    record = _stored(store, job_id)
    entry = Withdrawal(
        withdrawnAt=format_instant(now),
        by=operator.name,
        reason=check_reason(reason),
    )
    created = store.create_entry(record.id, entry)
    if created:
        try:
            operator.record(audit, "withdrawn", record)
        except AuditUnavailableError as error:
            raise AuditUnavailableError(
                f"job {record.id} is withdrawn, but its audit record was not written: {error}"
            ) from error
    else:
        entry = store.read_entry(record.id, Withdrawal) or entry
    try:
        catalog.withdraw(record.id, entry.at)
    except CatalogError as error:
        raise CatalogError(
            f"job {record.id} is withdrawn, but listings show it until"
            f" `reporting-svc catalog rebuild` marks it: {error}"
        ) from error
    return Withdrawn(record, entry, created)


def _stored(store: Store, job_id: str) -> JobRecord:
    try:
        normalised = normalise_guid(job_id)
    except ValueError as error:
        raise UnknownJob(f"job id {visible(job_id)!r}: {error}") from None
    record = store.get_record(normalised)
    if record is None:
        raise UnknownJob(f"no job {normalised} in the store")
    return record
