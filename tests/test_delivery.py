"""Choosing a delivery: by the configured mode and what the store offers, never its class."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import pytest
from flask import Flask

from reporting_svc import create_app
from reporting_svc.http.delivery import make_delivery
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.settings import Settings, SettingsError
from reporting_svc.storage import JobRecord, Store, layout
from reporting_svc.storage.base import FileMissing, StoredRange
from reporting_svc.storage.entries import Entry
from tests.support import BUCKET, DOWNLOAD, STUDY

CONTENT = b"subjectId,visit\n" + b"S-0001,Screening\n" * 100
S3 = {"store": "s3", "s3_bucket": BUCKET, "s3_region": "us-east-1"}


class MemoryStore(Store):
    """A third store, in a dict: it reads byte ranges and offers nothing more."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def get_record(self, job_id: str) -> JobRecord | None:
        data = self.objects.get(layout.record_key(job_id))
        return None if data is None else JobRecord.from_json(data)

    def put(self, record: JobRecord, source: BinaryIO) -> None:
        self.objects[layout.content_key(record.id)] = source.read()
        self.objects[layout.record_key(record.id)] = record.to_json()

    def check(self) -> str | None:
        return None

    def job_ids(self) -> Iterator[str]:
        return self.entry_ids(layout.RECORD_NAME)

    def size_of(self, record: JobRecord) -> int | None:
        data = self.objects.get(layout.content_key(record.id))
        return None if data is None else len(data)

    def open_range(self, record: JobRecord, start: int, length: int) -> StoredRange:
        data = self.objects.get(layout.content_key(record.id))
        if data is None:
            raise FileMissing(record.id)
        body = io.BytesIO(data)
        body.seek(start)
        return StoredRange(body, len(data))

    def create_entry(self, job_id: str, entry: Entry) -> bool:
        key = layout.entry_key(job_id, entry.name)
        if key in self.objects:
            return False
        self.objects[key] = entry.to_json()
        return True

    def read_entry_data(self, job_id: str, name: str) -> bytes | None:
        return self.objects.get(layout.entry_key(job_id, name))

    def delete_entry(self, job_id: str, name: str) -> None:
        self.objects.pop(layout.entry_key(job_id, name), None)

    def entry_ids(self, name: str) -> Iterator[str]:
        return iter(key.split("/")[1] for key in self.objects if key.endswith(f"/{name}"))

    def delete_content(self, record: JobRecord) -> None:
        self.objects.pop(layout.content_key(record.id), None)


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        pytest.param({}, "stream", id="local-stream"),
        pytest.param({"local_delivery": "x-accel"}, "x-accel", id="local-x-accel"),
        pytest.param(S3, "proxy", id="s3-proxy"),
        pytest.param({**S3, "s3_delivery": "redirect"}, "redirect", id="s3-redirect"),
        pytest.param({**S3, "s3_delivery": "x-accel"}, "x-accel", id="s3-x-accel"),
    ],
)
def test_each_stores_setting_chooses_the_mode_the_audit_trail_names(
    make_settings: Callable[..., Settings], s3_bucket: Any, overrides: dict[str, str], name: str
) -> None:
    app = create_app(make_settings(**overrides))

    assert app.extensions["reporting_svc"].delivery.name == name


@pytest.mark.parametrize(
    ("overrides", "lacking"),
    [
        pytest.param({"local_delivery": "x-accel"}, "nginx", id="x-accel"),
        pytest.param({**S3, "s3_delivery": "x-accel"}, "nginx", id="s3-x-accel"),
        pytest.param({**S3, "s3_delivery": "redirect"}, "presigned URLs", id="redirect"),
    ],
)
def test_a_mode_the_store_cannot_serve_is_refused_at_start_up(
    make_settings: Callable[..., Settings], overrides: dict[str, str], lacking: str
) -> None:
    with pytest.raises(SettingsError, match=lacking):
        make_delivery(make_settings(**overrides), MemoryStore())


@pytest.fixture
def memory_app(app: Flask, settings: Settings) -> Flask:
    """The test app serving from a MemoryStore: a store that no delivery class names."""
    store = MemoryStore()
    services = app.extensions["reporting_svc"]
    app.extensions["reporting_svc"] = dataclasses.replace(
        services, store=store, delivery=make_delivery(settings, store)
    )
    return app


@pytest.fixture
def memory_job(memory_app: Flask, tmp_path: Any) -> JobRecord:
    path = tmp_path / "extract.csv"
    path.write_bytes(CONTENT)
    return publish_report(
        memory_app.extensions["reporting_svc"].store,
        path,
        report_name="Subject Data Extract",
        mode="test",
        study_id=STUDY,
    )


@pytest.mark.parametrize(
    ("headers", "status", "start", "stop"),
    [
        pytest.param({}, 200, 0, len(CONTENT), id="whole"),
        pytest.param({"Range": "bytes=100-199"}, 206, 100, 200, id="range"),
    ],
)
def test_a_third_store_serves_and_audits_downloads_with_no_delivery_written_for_it(
    memory_app: Flask,
    memory_job: JobRecord,
    bearer: str,
    audit_records: Callable[..., list[dict[str, Any]]],
    headers: dict[str, str],
    status: int,
    start: int,
    stop: int,
) -> None:
    response = memory_app.test_client().get(
        DOWNLOAD,
        query_string={"id": memory_job.id},
        headers={"Authorization": f"Bearer {bearer}", **headers},
        buffered=True,
    )

    assert response.status_code == status
    assert response.data == CONTENT[start:stop]
    end = audit_records()[-1]
    assert (end["event"], end["delivery"], end["bytesSent"]) == ("end", "stream", stop - start)
