"""Purging the files of expired (and, when asked, withdrawn) jobs; their records stay.

Safe from cron on every host at once: each job's purge starts with a write-once claim in
the store (``purged.json``, a conditional create), and only the run that creates it
writes the job's ``purged`` record, so a job is recorded once however many runs race.
Deleting the file and marking the catalog are idempotent, so a run that finds a claim
it did not make finishes them (the claimant may have been killed), and a run killed
half-way, started again, completes. A claim whose record cannot be written is taken
back before the error stops the run: no purge goes unrecorded.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tqdm import tqdm

from ..audit import AuditTrail, AuditUnavailableError
from ..catalog import Catalog, Lapsed
from ..storage import JobRecord, Store
from ..storage.entries import Purge
from ..storage.record import format_instant
from .records import Operator


@dataclass
class PurgeSummary:
    """What one run did: the jobs it purged (or would, in a dry run), those another run
    had claimed and it finished, and those it left (withdrawn, not asked for, or too
    recently for every process to refuse them yet)."""

    purged: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
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
            f" another purge, {len(self.left)} left"
        )


@dataclass(frozen=True)
class Purger:
    """Purges jobs for one operator's run, at one instant."""

    store: Store
    catalog: Catalog
    audit: AuditTrail
    operator: Operator
    now: datetime
    host: str = field(default_factory=socket.gethostname)

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

        A progress bar is shown on a terminal (standard error), nothing otherwise.
        """
        before = self.now - older_than
        settled = min(before, self.now - timedelta(seconds=self.store.remembers_for))
        summary = PurgeSummary(dry_run=dry_run)
        for lapsed in self._progress(before):
            record = lapsed.record
            expired = record.expires is not None and record.expires <= before
            recalled = withdrawn and lapsed.withdrawn is not None and lapsed.withdrawn <= settled
            if not (expired or recalled):
                summary.left.append(record.id)
            elif dry_run or self.job(record):
                summary.purged.append(record.id)
            else:
                summary.finished.append(record.id)
        return summary

    def job(self, record: JobRecord) -> bool:
        """Claim, record, delete the file, mark the catalog; True when this call claimed
        the job, False when it finished another run's claim."""
        claim = Purge(purgedAt=format_instant(self.now), by=self.operator.name, host=self.host)
        claimed = self.store.create_entry(record.id, claim)
        if claimed:
            try:
                self.operator.record(self.audit, "purged", record)
            except AuditUnavailableError:
                self.store.delete_entry(record.id, Purge.name)
                raise
        else:
            claim = self.store.read_entry(record.id, Purge) or claim
        self.store.delete_content(record)
        self.catalog.mark_purged(record.id, claim.at)
        return claimed

    def _progress(self, before: datetime) -> Iterator[Lapsed]:
        total = self.catalog.count_lapsed(before)
        with tqdm(total=total, unit="job", desc="purging", disable=None) as progress:
            for lapsed in self.catalog.lapsed(before):
                yield lapsed
                progress.update()
