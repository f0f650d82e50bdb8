"""Constant-time seek, shown by counting the bytes each delivery reads from its store."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from flask import Flask
from flask.testing import FlaskClient

from reporting_svc import create_app
from reporting_svc.http.bodies import TrackedBody
from reporting_svc.lifecycle.publish import publish_report
from reporting_svc.storage import JobRecord, Store
from reporting_svc.storage.local import LocalStore
from reporting_svc.storage.s3 import S3Store
from tests.support import BUCKET, DOWNLOAD, STUDY

BIG = os.urandom(3 * 1024 * 1024 + 17)
OFFSET = 2_500_000
GRANT = f"{STUDY}:test:REPORTING_VIEW"


class CountingFile:
    """A real open file that records the bytes read from it and every seek."""

    def __init__(self, handle: BinaryIO):
        self.handle = handle
        self.bytes_read = 0
        self.seeks: list[int] = []

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        count = self.handle.readinto(buffer)
        self.bytes_read += count
        return count

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        assert whence == os.SEEK_SET, "a relative seek would hide a read-and-discard"
        self.seeks.append(offset)
        return self.handle.seek(offset, whence)

    def fileno(self) -> int:
        return self.handle.fileno()

    def close(self) -> None:
        self.handle.close()

    @property
    def closed(self) -> bool:
        return self.handle.closed


class CountingBody:
    """An S3 streaming body that counts the bytes the delivery takes from it."""

    def __init__(self, body: Any):
        self.body = body
        self.bytes_read = 0

    def read(self, amt: int | None = None) -> bytes:
        data: bytes = self.body.read(amt)
        self.bytes_read += len(data)
        return data

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        while chunk := self.read(chunk_size):
            yield chunk

    def close(self) -> None:
        self.body.close()


def _get(client: FlaskClient, record: JobRecord, bearer: str, **headers: str) -> Any:
    return client.get(
        DOWNLOAD,
        query_string={"id": record.id},
        headers={"Authorization": f"Bearer {bearer}", **headers},
        buffered=True,
    )


# --- local store, stream delivery ------------------------------------------------------


@pytest.fixture
def opened(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[CountingFile]:
    """Every file the local store opens from now on, wrapped to count what is read."""
    assert isinstance(store, LocalStore)
    files: list[CountingFile] = []
    real_open = store.open

    def counting_open(record: JobRecord) -> BinaryIO:
        files.append(CountingFile(real_open(record)))
        return files[-1]  # type: ignore[return-value]

    monkeypatch.setattr(store, "open", counting_open)
    return files


def test_a_local_range_reads_only_its_bytes_after_one_seek(
    publish: Callable[..., JobRecord],
    token: Callable[..., str],
    client: FlaskClient,
    opened: list[CountingFile],
) -> None:
    record = publish(BIG, "big.bin")

    response = _get(client, record, token(GRANT), Range=f"bytes={OFFSET}-{OFFSET + 99}")

    assert response.status_code == 206
    assert response.data == BIG[OFFSET : OFFSET + 100]
    [handle] = opened
    assert handle.seeks == [OFFSET]
    assert handle.bytes_read == 100
    assert handle.closed


def test_a_local_full_download_reads_the_file_exactly_once(
    publish: Callable[..., JobRecord],
    token: Callable[..., str],
    client: FlaskClient,
    opened: list[CountingFile],
) -> None:
    record = publish(BIG, "big.bin")

    response = _get(client, record, token(GRANT))

    assert response.status_code == 200
    assert response.data == BIG
    [handle] = opened
    assert handle.bytes_read == len(BIG)
    assert handle.closed


def test_a_local_head_opens_no_file(
    publish: Callable[..., JobRecord],
    token: Callable[..., str],
    client: FlaskClient,
    opened: list[CountingFile],
) -> None:
    record = publish(BIG, "big.bin")

    response = client.head(
        DOWNLOAD,
        query_string={"id": record.id},
        headers={"Authorization": f"Bearer {token(GRANT)}"},
    )

    assert response.status_code == 200
    assert opened == []


# --- S3 store, proxy delivery ----------------------------------------------------------


@pytest.fixture
def s3_app(make_settings: Callable[..., Any], s3_bucket: Any) -> Flask:
    return create_app(
        make_settings(store="s3", s3_bucket=BUCKET, s3_region="us-east-1", s3_chunk_size=64 * 1024)
    )


@pytest.fixture
def s3_record(s3_app: Flask, tmp_path: Path) -> JobRecord:
    path = tmp_path / "big.bin"
    path.write_bytes(BIG)
    store = s3_app.extensions["reporting_svc"].store
    return publish_report(
        store, path, report_name="Subject Data Extract", mode="test", study_id=STUDY
    )


@pytest.fixture
def content_gets(
    s3_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[dict[str, Any], CountingBody]]:
    """Every get_object of a report file from now on: its arguments and its counted body."""
    store = s3_app.extensions["reporting_svc"].store
    assert isinstance(store, S3Store)
    calls: list[tuple[dict[str, Any], CountingBody]] = []
    real_get_object = store.client.get_object

    def recording_get_object(**kwargs: Any) -> Any:
        response = real_get_object(**kwargs)
        if kwargs["Key"].endswith("/content"):
            response["Body"] = CountingBody(response["Body"])
            calls.append((kwargs, response["Body"]))
        return response

    monkeypatch.setattr(store.client, "get_object", recording_get_object)
    return calls


@pytest.mark.parametrize(
    ("spec", "start", "stop"),
    [
        pytest.param(f"bytes={OFFSET}-{OFFSET + 99}", OFFSET, OFFSET + 100, id="a-b"),
        pytest.param("bytes=3000000-", 3_000_000, len(BIG), id="a-"),
        pytest.param("bytes=-100", len(BIG) - 100, len(BIG), id="-n"),
    ],
)
def test_an_s3_range_is_forwarded_to_s3_and_only_its_bytes_are_read(
    s3_app: Flask,
    s3_record: JobRecord,
    content_gets: list[tuple[dict[str, Any], CountingBody]],
    token: Callable[..., str],
    spec: str,
    start: int,
    stop: int,
) -> None:
    response = _get(s3_app.test_client(), s3_record, token(GRANT), Range=spec)

    assert response.status_code == 206
    assert response.data == BIG[start:stop]
    [(kwargs, body)] = content_gets
    assert kwargs["Range"] == f"bytes={start}-{stop - 1}"
    assert body.bytes_read == stop - start


def test_an_s3_full_download_sends_no_range_and_reads_the_object_once(
    s3_app: Flask,
    s3_record: JobRecord,
    content_gets: list[tuple[dict[str, Any], CountingBody]],
    token: Callable[..., str],
) -> None:
    response = _get(s3_app.test_client(), s3_record, token(GRANT))

    assert response.status_code == 200
    assert response.data == BIG
    [(kwargs, body)] = content_gets
    assert "Range" not in kwargs
    assert body.bytes_read == len(BIG)


# --- TrackedBody -----------------------------------------------------------------------


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 4)
    return path


def _positioned(path: Path, start: int) -> BinaryIO:
    """The file opened and seeked to ``start``, as a store's open_range hands it over."""
    handle = path.open("rb")
    handle.seek(start)
    return handle


@pytest.mark.parametrize("size", [-1, 1, 7, 20, 21, 4096])
def test_a_tracked_body_read_stops_at_the_end_of_its_span(data_file: Path, size: int) -> None:
    with _positioned(data_file, 10) as handle:
        span = TrackedBody(handle, 10, 20)
        chunks = list(iter(lambda: span.read(size), b""))

        assert b"".join(chunks) == data_file.read_bytes()[10:30]
        assert all(len(chunk) <= (20 if size < 0 else size) for chunk in chunks)
        assert span.read(size) == b""
        assert handle.tell() == 30
        assert span.sent == 20


def test_a_tracked_body_of_zero_length_reads_nothing(data_file: Path) -> None:
    with _positioned(data_file, 100) as handle:
        span = TrackedBody(handle, 100, 0)

        assert span.read() == b""
        assert handle.tell() == 100


def test_a_tracked_body_fileno_is_the_files_descriptor(data_file: Path) -> None:
    with data_file.open("rb") as handle:
        assert TrackedBody(handle, 0, 1).fileno() == handle.fileno()


def test_a_tracked_body_without_a_descriptor_says_so_for_the_server() -> None:
    with pytest.raises(io.UnsupportedOperation):
        TrackedBody(io.BytesIO(b"0123456789"), 0, 4).fileno()


def test_a_tracked_body_counts_what_sendfile_sent_from_the_final_seek(data_file: Path) -> None:
    with _positioned(data_file, 100) as handle:
        span = TrackedBody(handle, 100, 50)
        span.seek(130)  # socket.sendfile's last step after sending 30 bytes

        assert span.sent == 30


def test_closing_a_tracked_body_closes_the_file_and_reports_once(data_file: Path) -> None:
    handle = data_file.open("rb")
    span = TrackedBody(handle, 0, 5)
    reports: list[int] = []
    span.when_closed(reports.append)
    span.read(3)

    span.close()
    span.close()

    assert handle.closed
    assert reports == [3]
