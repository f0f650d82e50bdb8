"""Re-indexing a catalog from its store, and saying where the two disagree (docs/api.md §2).

The catalog's ids are read before the store's: a job published meanwhile is then at
worst "in the store only" (and indexed), never taken for a job the store lost. The
same holds for withdrawals and purges (docs/api.md §6): the store's entries are the truth, and
a rebuild marks in the catalog every one it lacks. The listing's kept counts are checked
against the catalog's own rows, and counted afresh when they differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Never

from tqdm import tqdm

from ..storage import JobRecord, Store
from ..storage.entries import Purge, PurgeRecorded, Withdrawal
from .catalog import Catalog
from .counts import Group

#: Records fetched at once: S3 answers each GET in milliseconds, so they overlap.
FETCHERS = 16
_CHUNK = 1000


@dataclass(frozen=True)
class Difference:
    """Job ids in one of the two only, stored jobs withdrawn or purged in the store but
    not marked so in the catalog, and the listing groups whose kept count is not their
    jobs' (see ``counts``); each sorted."""

    only_in_store: list[str]
    only_in_catalog: list[str]
    withdrawals_unmarked: list[str]
    purges_unmarked: list[str]
    miscounted: list[Group]

    def __bool__(self) -> bool:
        return any(
            (
                self.only_in_store,
                self.only_in_catalog,
                self.withdrawals_unmarked,
                self.purges_unmarked,
                self.miscounted,
            )
        )


def compare(store: Store, catalog: Catalog) -> Difference:
    """A job counts as purged once its purge is on record (``purge-recorded.json``): a
    bare claim may be a dead claimant's, whose job the next purge must still find
    unmarked, record and mark."""
    indexed, marks = catalog.job_ids(), catalog.marks()
    stored = set(store.job_ids())
    withdrawn = set(store.entry_ids(Withdrawal.name)) & stored
    purged = set(store.entry_ids(PurgeRecorded.name)) & stored
    return Difference(
        sorted(stored - indexed),
        sorted(indexed - stored),
        sorted(withdrawn - marks.withdrawn),
        sorted(purged - marks.purged),
        [group for group, _, _ in catalog.count_drift()],
    )


def rebuild(store: Store, catalog: Catalog) -> Difference:
    """Index what the store holds and the catalog lacks, drop what the store no longer
    holds; returns what differed. Idempotent: a second run finds nothing to do.

    A progress bar is shown on a terminal (standard error), nothing otherwise.
    """
    difference = compare(store, catalog)
    missing = difference.only_in_store
    with tqdm(total=len(missing), unit="job", desc="indexing", disable=None) as progress:
        catalog.add_many(_counted(_records(store, missing), progress))
    catalog.remove(difference.only_in_catalog)
    _mark(store, difference.withdrawals_unmarked, Withdrawal, catalog.withdraw)
    _mark(store, difference.purges_unmarked, Purge, catalog.mark_purged)
    if difference.miscounted:
        catalog.recount(datetime.now(UTC))
    return difference


def _mark(
    store: Store,
    job_ids: list[str],
    kind: type[Withdrawal | Purge],
    mark: Callable[[str, datetime], None],
) -> None:
    """Mark each job in the catalog at the time its entry in the store gives."""

    def read(job_id: str) -> Withdrawal | Purge | None:
        return store.read_entry(job_id, kind)

    with ThreadPoolExecutor(FETCHERS) as pool:
        for job_id, entry in zip(job_ids, pool.map(read, job_ids), strict=True):
            if entry is not None:
                mark(job_id, entry.at)


def _records(store: Store, job_ids: Iterable[str]) -> Iterator[JobRecord]:
    ids = iter(job_ids)
    with ThreadPoolExecutor(FETCHERS) as pool:
        while chunk := list(islice(ids, _CHUNK)):
            for record in pool.map(store.get_record, chunk):
                if record is not None and record.is_complete:
                    yield record


def _counted(records: Iterator[JobRecord], progress: tqdm[Never]) -> Iterator[JobRecord]:
    for record in records:
        yield record
        progress.update()
