"""Purging the files of expired (and, when asked, withdrawn) jobs; their records stay.

Safe from cron on every host at once: each job's purge starts with a write-once claim in
the store (``purged.json``, a conditional create), and only the run that creates it
writes the job's ``purged`` record, then says so with a second write-once entry
(``purge-recorded.json``), so a job is recorded once however many runs race. Deleting
the file and marking the catalog are idempotent, so a run that finds another's claim on
record finishes them, and a run killed half-way, started again, completes. A claim
whose record cannot be written is taken back before the error stops the run.

A claim not on record is its claimant's for a lease (``REPORTING_SVC_PURGE_LEASE_SECONDS``,
see settings for what bounds a claimant's time between claim and record): a run finding
it younger leaves the job to a later run. Older, the claimant is presumed dead (killed
between claim and record, or between record and entry): the run writes the ``purged``
record unless the trail holds one for the job already, checked and written under the
trail's writer lock, then creates the entry and finishes the job. Exactly once holds
where every run sees one trail: one file on one host, or the PostgreSQL sink. A claimant
paused longer than the lease and then resuming writes a second record (it warns).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from tqdm import tqdm

from ..audit import AuditTrail, AuditUnavailableError
from ..audit.recorded import Recorded
from ..catalog import Catalog, Lapsed
from ..storage import JobRecord, Store
from ..storage.entries import Purge, PurgeRecorded
from ..storage.record import format_instant
from .records import Operator

log = logging.getLogger(__name__)


class Outcome(Enum):
    """What became of one job: this run claimed and purged it, finished another run's
    claim, or left a claim younger than the lease to its claimant."""

    PURGED = "purged"
    FINISHED = "finished"
    HELD = "held"


@dataclass
class PurgeSummary:
    """What one run did: the jobs it purged (or would, in a dry run), those another run
    had claimed and it finished, those another run claimed within the lease (a later run
    finishes them), and those it left (withdrawn, not asked for, or too recently for
    every process to refuse them yet)."""

    purged: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    dry_run: bool = False

    def line(self) -> str:
        if self.dry_run:
            return (
                f"DRY RUN: {len(self.purged)} job(s) would be purged, {len(self.left)} left;"
                " nothing changed"
            )
        return (
            f"OK: {len(self.purged)} job(s) purged, {len(self.finished)} finished after"
            f" another purge, {len(self.held)} held by another purge's fresh claim,"
            f" {len(self.left)} left"
        )


@dataclass(frozen=True)
class Purger:
    """Purges jobs for one operator's run, started at ``now``: what expired is judged at
    that instant, and its clock (claims, the lease) runs on from there."""

    store: Store
    catalog: Catalog
    audit: AuditTrail
    operator: Operator
    now: datetime
    lease: timedelta
    host: str = field(default_factory=socket.gethostname)
    started: float = field(default_factory=time.monotonic, init=False)
    recorded: Recorded = field(default_factory=lambda: Recorded("purged"), init=False)

    def run(
        self,
        *,
        older_than: timedelta = timedelta(0),
        withdrawn: bool = False,
        dry_run: bool = False,
    ) -> PurgeSummary:
        """Purge every job that expired before ``now - older_than`` and, with
        ``withdrawn``, every job withdrawn before then and long enough ago that every
        process refuses it (so no download starting meanwhile finds its file gone).

        A progress bar is shown on a terminal (standard error), nothing otherwise. A run
        that is not dry also moves the listing counts' horizon (``Catalog.keep_horizon``).
        """
        if not dry_run:
            self.catalog.keep_horizon()
        before = self.now - older_than
        settled = min(before, self.now - timedelta(seconds=self.store.remembers_for))
        summary = PurgeSummary(dry_run=dry_run)
        lists = {
            Outcome.PURGED: summary.purged,
            Outcome.FINISHED: summary.finished,
            Outcome.HELD: summary.held,
        }
        for lapsed in self._progress(before):
            record = lapsed.record
            expired = record.expires is not None and record.expires <= before
            recalled = withdrawn and lapsed.withdrawn is not None and lapsed.withdrawn <= settled
            if not (expired or recalled):
                summary.left.append(record.id)
            elif dry_run:
                summary.purged.append(record.id)
            else:
                lists[self.job(record)].append(record.id)
        return summary

    def job(self, record: JobRecord) -> Outcome:
        """Claim, record, say so, delete the file, mark the catalog; or finish another
        run's claim once it is on record, or its claimant is presumed dead."""
        claim = Purge(
            purgedAt=format_instant(self.now),
            by=self.operator.name,
            host=self.host,
            claimedAt=format_instant(self.clock()),
        )
        if self.store.create_entry(record.id, claim):
            self._record_claimed(record)
            outcome = Outcome.PURGED
        else:
            claim = self.store.read_entry(record.id, Purge) or claim
            if self.store.read_entry(record.id, PurgeRecorded) is None:
                if claim.claimed is not None and self.clock() - claim.claimed < self.lease:
                    return Outcome.HELD
                self._record_for_the_dead(record, claim)
            outcome = Outcome.FINISHED
        self.store.delete_content(record)
        self.catalog.mark_purged(record.id, claim.at)
        return outcome

    def clock(self) -> datetime:
        """The run's instant now: ``now`` and the time since the run began."""
        return self.now + timedelta(seconds=time.monotonic() - self.started)

    def _record_claimed(self, record: JobRecord) -> None:
        try:
            written = self.operator.record(self.audit, "purged", record)
        except AuditUnavailableError:
            self.store.delete_entry(record.id, Purge.name)
            raise
        if not self._on_record(record, written["requestId"]):
            log.warning(
                "job %s: another purge presumed this one dead and saw to its record: this"
                " run took longer than REPORTING_SVC_PURGE_LEASE_SECONDS between its claim"
                " and its record, and the trail may hold two purged records for the job",
                record.id,
            )

    def _record_for_the_dead(self, record: JobRecord, claim: Purge) -> None:
        """The record of a claimant presumed dead, unless it got it out before it died."""
        agent = (
            f"{self.operator.agent}; on record for the claim of {claim.by} on {claim.host}"
            f" at {claim.claimedAt or claim.purgedAt}"
        )
        fields = {**self.operator.fields("purged", record), "userAgent": agent}
        written = self.audit.write_once(self.recorded, **fields)
        on_trail = self.recorded.request_ids[record.id] if written is None else written["requestId"]
        self._on_record(record, on_trail)

    def _on_record(self, record: JobRecord, request_id: str) -> bool:
        """Say the job's purge is on record; False when another run said so first."""
        return self.store.create_entry(
            record.id, PurgeRecorded(requestId=request_id, host=self.host)
        )

    def _progress(self, before: datetime) -> Iterator[Lapsed]:
        total = self.catalog.count_lapsed(before)
        with tqdm(total=total, unit="job", desc="purging", disable=None) as progress:
            for lapsed in self.catalog.lapsed(before):
                yield lapsed
                progress.update()
