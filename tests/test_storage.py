"""The Store interface that delivery relies on, run against every store: local disk and S3."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from reporting_svc.settings import Settings
from reporting_svc.storage import JobRecord, Store, layout
from reporting_svc.storage.base import FileMissing, Offer
from reporting_svc.storage.entries import Purge, Withdrawal
from tests.support import BUCKET

CONTENT = bytes(range(256)) * 40 + b"tail"
SIZE = len(CONTENT)
PREFIX = "reports/"

Overwrite = Callable[[JobRecord, bytes | None], None]


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each test runs once on local disk and once on moto's S3."""
    return str(request.param)


@pytest.fixture
def settings(
    backend: str, make_settings: Callable[..., Settings], request: pytest.FixtureRequest
) -> Settings:
    if backend == "local":
        return make_settings()
    request.getfixturevalue("s3_bucket")
    return make_settings(store="s3", s3_bucket=BUCKET, s3_region="us-east-1", s3_prefix=PREFIX)


@pytest.fixture
def overwrite(backend: str, settings: Settings, request: pytest.FixtureRequest) -> Overwrite:
    """Replace a job's stored file behind the store's back; None deletes it."""

    def on_disk(record: JobRecord, content: bytes | None) -> None:
        path = settings.local_root / layout.content_key(record.id)
        if content is None:
            path.unlink()
        else:
            path.write_bytes(content)

    def in_s3(record: JobRecord, content: bytes | None) -> None:
        client, key = request.getfixturevalue("s3_bucket"), PREFIX + layout.content_key(record.id)
        if content is None:
            client.delete_object(Bucket=BUCKET, Key=key)
        else:
            client.put_object(Bucket=BUCKET, Key=key, Body=content)

    return on_disk if backend == "local" else in_s3


@pytest.fixture
def job(publish: Callable[..., JobRecord]) -> JobRecord:
    return publish(CONTENT, "listing.bin")


def _read(store: Store, record: JobRecord, start: int, length: int) -> tuple[bytes, int]:
    """The range's bytes as a reader that stops at its length takes them, and the size."""
    stored = store.open_range(record, start, length)
    try:
        return stored.body.read(length), stored.size
    finally:
        stored.body.close()


@pytest.mark.parametrize(
    ("start", "length"),
    [
        pytest.param(0, SIZE, id="whole"),
        pytest.param(0, 1, id="first-byte"),
        pytest.param(1000, 2345, id="middle"),
        pytest.param(SIZE - 4, 4, id="last-bytes"),
        pytest.param(SIZE - 1, 1, id="last-byte"),
    ],
)
def test_open_range_reads_that_slice_and_the_whole_files_size(
    store: Store, job: JobRecord, start: int, length: int
) -> None:
    assert _read(store, job, start, length) == (CONTENT[start : start + length], SIZE)


def test_open_range_of_an_empty_file_reads_nothing(
    store: Store, publish: Callable[..., JobRecord]
) -> None:
    empty = publish(b"", "empty.csv")

    assert _read(store, empty, 0, 0) == (b"", 0)


def test_size_of_is_the_stored_files_size(store: Store, job: JobRecord) -> None:
    assert store.size_of(job) == SIZE


def test_a_missing_file_has_no_size_and_cannot_be_opened(
    store: Store, job: JobRecord, overwrite: Overwrite
) -> None:
    overwrite(job, None)

    assert store.size_of(job) is None
    with pytest.raises(FileMissing):
        store.open_range(job, 0, SIZE)


@pytest.mark.parametrize(("start", "length"), [(0, SIZE), (10, 20)], ids=["whole", "part"])
@pytest.mark.parametrize("stored", [CONTENT + b"grown", CONTENT[:-100]], ids=["grown", "shrunk"])
def test_a_file_whose_size_differs_from_its_record_reports_its_real_size(
    store: Store, job: JobRecord, overwrite: Overwrite, stored: bytes, start: int, length: int
) -> None:
    overwrite(job, stored)

    assert store.size_of(job) == len(stored)
    assert _read(store, job, start, length)[1] == len(stored)


def test_every_declared_offer_answers_and_no_other(store: Store, job: JobRecord) -> None:
    answers = {
        Offer.INTERNAL_PATH: lambda: store.internal_path(job),
        Offer.PRESIGNED_URL: lambda: store.presigned_url(job, 60, "attachment"),
    }

    for offer, answer in answers.items():
        if offer in store.offers:
            assert layout.content_key(job.id) in answer()
        else:
            with pytest.raises(NotImplementedError):
                answer()


@pytest.mark.parametrize("backend", ["local"])
def test_a_local_range_leaves_the_descriptor_at_its_start_for_sendfile(
    store: Store, job: JobRecord
) -> None:
    # gunicorn's sendfile starts at the descriptor's current offset, not Python's buffer.
    stored = store.open_range(job, 777, 10)

    assert os.lseek(stored.body.fileno(), 0, os.SEEK_CUR) == 777
    stored.body.close()


WITHDRAWAL = Withdrawal(withdrawnAt="2026-01-02T03:04:05.006Z", by="ops-anna", reason="in error")


def test_an_entry_is_created_once_and_the_first_one_stands(store: Store, job: JobRecord) -> None:
    second = Withdrawal(withdrawnAt="2026-02-02T00:00:00.000Z", by="ops-ben", reason="again")

    created = [store.create_entry(job.id, WITHDRAWAL), store.create_entry(job.id, second)]

    assert created == [True, False]
    assert store.withdrawal(job.id) == WITHDRAWAL


def test_of_entries_created_at_once_exactly_one_is_created(store: Store, job: JobRecord) -> None:
    claims = [Purge(purgedAt=WITHDRAWAL.withdrawnAt, by=f"host-{n}", host="h") for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda claim: store.create_entry(job.id, claim), claims))

    assert created.count(True) == 1
    assert store.read_entry(job.id, Purge) == claims[created.index(True)]


def test_entries_are_listed_by_name_and_absent_ones_read_as_none(
    store: Store, job: JobRecord, publish: Callable[..., JobRecord]
) -> None:
    other = publish(CONTENT, "other.bin")
    store.create_entry(job.id, WITHDRAWAL)

    assert list(store.entry_ids(Withdrawal.name)) == [job.id]
    assert list(store.entry_ids(Purge.name)) == []
    assert store.withdrawal(other.id) is None
    assert sorted(store.job_ids()) == sorted([job.id, other.id])


def test_deleting_content_keeps_record_and_entries_and_may_be_repeated(
    store: Store, job: JobRecord
) -> None:
    store.create_entry(job.id, WITHDRAWAL)

    store.delete_content(job)
    store.delete_content(job)

    assert store.size_of(job) is None
    assert store.get_record(job.id) == job
    assert store.withdrawal(job.id) == WITHDRAWAL


def test_a_deleted_entry_can_be_created_again(store: Store, job: JobRecord) -> None:
    claim = Purge(purgedAt=WITHDRAWAL.withdrawnAt, by="cron", host="h")
    store.create_entry(job.id, claim)

    store.delete_entry(job.id, Purge.name)

    assert store.read_entry(job.id, Purge) is None
    assert store.create_entry(job.id, claim)
