"""Re-indexing a catalog from its store, and saying where the two disagree (SPEC §2).

The catalog's ids are read before the store's: a job published meanwhile is then at
worst "in the store only" (and indexed), never taken for a job the store lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Never

from tqdm import tqdm

from ..storage import JobRecord, Store
from .catalog import Catalog

#: Records fetched at once: S3 answers each GET in milliseconds, so they overlap.
FETCHERS = 16
_CHUNK = 1000


@dataclass(frozen=True)
class Difference:
    """Job ids in one of the two only, sorted."""

    only_in_store: list[str]
    only_in_catalog: list[str]

    def __bool__(self) -> bool:
        return bool(self.only_in_store or self.only_in_catalog)


def compare(store: Store, catalog: Catalog) -> Difference:
    indexed = catalog.job_ids()
    stored = set(store.job_ids())
    return Difference(sorted(stored - indexed), sorted(indexed - stored))


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
    return difference


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
