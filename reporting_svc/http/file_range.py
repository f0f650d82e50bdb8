"""A read-only view of one byte span of an open file, for the WSGI file wrapper.

gunicorn's file wrapper cannot seek, and Werkzeug's range wrapper reads and discards
everything before the range when the wrapper cannot. This view seeks once, up front:
gunicorn's sendfile starts at the descriptor's current offset and sends Content-Length
bytes, and any other server reads it through ``read``, which stops at the span's end.
"""

from __future__ import annotations

from typing import BinaryIO


class FileRange:
    """Bytes ``[start, start + length)`` of ``handle``; closing it closes the file."""

    def __init__(self, handle: BinaryIO, start: int, length: int):
        handle.seek(start)
        self.handle = handle
        self.remaining = length

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        wanted = self.remaining if size < 0 else min(size, self.remaining)
        data = self.handle.read(wanted)
        self.remaining -= len(data)
        return data

    def fileno(self) -> int:
        return self.handle.fileno()

    def close(self) -> None:
        self.handle.close()
