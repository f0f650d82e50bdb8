"""Response bodies that send one byte span and say, when they close, how much they sent.

The count feeds the audit trail's ``end`` record: a client that disconnects, or a store
that fails, half way leaves ``complete: false``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, BinaryIO


class TrackedBody:
    """Counts the bytes handed to the server and calls ``on_close(sent)`` exactly once."""

    def __init__(self, length: int):
        self.length = length
        self.sent = 0
        self.on_close: Callable[[int], None] | None = None
        self._closed = False

    def _finish(self) -> None:
        if not self._closed:
            self._closed = True
            if self.on_close is not None:
                self.on_close(self.sent)


class FileRange(TrackedBody):
    """Bytes ``[start, start + length)`` of ``handle``, for the WSGI file wrapper.

    gunicorn's file wrapper cannot seek, and Werkzeug's range wrapper reads and discards
    everything before the range when the wrapper cannot. This view seeks once, up front:
    gunicorn's sendfile starts at the descriptor's current offset and sends Content-Length
    bytes, and any other server reads it through ``read``, which stops at the span's end.
    ``socket.sendfile`` leaves the position at ``start + bytes sent``, on success and on
    error alike, through ``seek``: that is how the count survives sendfile.
    """

    def __init__(self, handle: BinaryIO, start: int, length: int):
        super().__init__(length)
        handle.seek(start)
        self.handle = handle
        self.start = start

    def read(self, size: int = -1) -> bytes:
        remaining = self.length - self.sent
        if remaining <= 0:
            return b""
        data = self.handle.read(remaining if size < 0 else min(size, remaining))
        self.sent += len(data)
        return data

    def seek(self, position: int, whence: int = 0) -> int:
        offset = self.handle.seek(position, whence)
        self.sent = max(self.sent, min(offset - self.start, self.length))
        return offset

    def fileno(self) -> int:
        return self.handle.fileno()

    def close(self) -> None:
        self.handle.close()
        self._finish()


class ChunkStream(TrackedBody):
    """An S3 object body streamed in fixed-size chunks.

    A failure mid-way propagates to the server, which cuts the connection short of
    Content-Length: the client sees a short read, never a complete-looking file.
    """

    def __init__(self, body: Any, length: int, chunk_size: int):
        super().__init__(length)
        self.body = body
        self.chunk_size = chunk_size

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body.iter_chunks(self.chunk_size):
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        self.body.close()
        self._finish()
