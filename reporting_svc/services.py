"""The per-process objects a request uses, built once by the app factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .audit import AuditTrail, make_audit_trail
from .auth import Authenticator, Authoriser, make_authenticator, make_authoriser
from .catalog import Catalog, make_catalog
from .errors import JobNotFound, ReportFileUnavailable, ReportGone
from .http.delivery import Delivery, make_delivery
from .ids import normalise_guid
from .settings import Settings
from .storage import JobRecord, Store, make_store


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Services:
    """Store, catalog, auth hooks and delivery for one app; shared by all its threads.

    ``clock`` is what "now" means for expiry and listing; tests hold it still.
    """

    settings: Settings
    store: Store
    catalog: Catalog
    authenticate: Authenticator
    authorise: Authoriser
    delivery: Delivery
    audit: AuditTrail
    clock: Callable[[], datetime] = utc_now

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        store = make_store(settings)
        return cls(
            settings=settings,
            store=store,
            catalog=make_catalog(settings),
            authenticate=make_authenticator(settings),
            authorise=make_authoriser(settings),
            delivery=make_delivery(settings, store),
            audit=make_audit_trail(settings),
        )

    def find_job(self, job_id: str) -> JobRecord:
        """The job's record when it exists and is complete; 404 otherwise.

        Every lookup of a job passes here, so this is where a record is held to the key it
        was found under: one that cannot be read, or that names another job (a copied or
        forged ``record.json``), is a fault of the store and never leads to any file.
        """
        job_id = normalise_guid(job_id)
        try:
            record = self.store.get_record(job_id)
        except ValueError:
            raise ReportFileUnavailable(
                f"the record stored for job {job_id} is unreadable"
            ) from None
        if record is not None and record.id != job_id:
            raise ReportFileUnavailable(f"the record stored for job {job_id} names another job")
        if record is None or not record.is_complete:
            raise JobNotFound()
        return record

    def check_available(self, record: JobRecord) -> None:
        """410 when the job was withdrawn or has expired (docs/api.md §6).

        Asked after every other check of a download, so only a caller who may see the
        job learns it is gone. The withdrawal is read from the store, the shared truth of
        every host, on each download (a remote store may remember it for a few seconds).
        """
        try:
            withdrawal = self.store.withdrawal(record.id)
        except ValueError:
            raise ReportFileUnavailable(
                f"the withdrawal stored for job {record.id} is unreadable"
            ) from None
        if withdrawal is not None:
            raise ReportGone(f"withdrawn: {withdrawal.reason}")
        expires = record.expires
        if expires is not None and expires <= self.clock():
            raise ReportGone(f"expired at {record.expiresAt}")
