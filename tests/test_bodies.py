"""ChunkStream: the S3 body read ahead by a thread, within a bounded number of chunks."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from reporting_svc.http.bodies import READ_AHEAD, ChunkStream

CHUNK = b"x" * 16


class FakeBody:
    """An S3 streaming body: ``chunks`` chunks (None: without end), then ``error`` if any."""

    def __init__(self, chunks: int | None, error: Exception | None = None):
        self.chunks = chunks
        self.error = error
        self.produced = 0
        self.closed = False
        self.sizes: list[int] = []

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        self.sizes.append(chunk_size)
        for _ in itertools.count() if self.chunks is None else range(self.chunks):
            self.produced += 1
            yield CHUNK
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True


def stream_of(body: FakeBody, chunks: int) -> tuple[ChunkStream, list[int]]:
    stream = ChunkStream(body, chunks * len(CHUNK), chunk_size=len(CHUNK))
    closed_with: list[int] = []
    stream.on_close = closed_with.append
    return stream, closed_with


def test_a_whole_body_is_sent_in_order_and_reported_complete() -> None:
    body = FakeBody(chunks=5)
    stream, closed_with = stream_of(body, 5)

    sent = b"".join(stream)
    stream.close()

    assert sent == CHUNK * 5
    assert body.sizes == [len(CHUNK)]
    assert closed_with == [len(CHUNK) * 5]
    assert body.closed


def test_a_client_gone_mid_way_stops_the_reader_within_the_read_ahead() -> None:
    body = FakeBody(chunks=None)
    stream, closed_with = stream_of(body, 1000)

    chunks = iter(stream)
    next(chunks)
    stream.close()

    assert stream._reader is not None and not stream._reader.is_alive()
    assert body.closed
    assert body.produced <= 1 + READ_AHEAD + 1
    assert closed_with == [len(CHUNK)]


def test_a_store_failure_mid_way_reaches_the_server_after_the_chunks_before_it() -> None:
    body = FakeBody(chunks=3, error=ConnectionResetError("S3 went away"))
    stream, closed_with = stream_of(body, 10)
    received = []

    with pytest.raises(ConnectionResetError, match="S3 went away"):
        for chunk in stream:
            received.append(chunk)
    stream.close()

    assert received == [CHUNK] * 3
    assert closed_with == [len(CHUNK) * 3]
    assert body.closed


def test_a_response_closed_before_its_first_chunk_closes_the_body() -> None:
    body = FakeBody(chunks=None)
    stream, closed_with = stream_of(body, 10)

    stream.close()

    assert body.closed
    assert body.produced == 0
    assert closed_with == [0]
