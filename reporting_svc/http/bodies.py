"""The response body that sends one stored byte range and says, when it closes, how much.

The count feeds the audit trail's ``end`` record: a client that disconnects, or a store
that fails, half way leaves ``complete: false``. Closing also gives back the download
slot the body holds (http/admission.py), whatever the listeners do. Delivery gives the
body its release; whoever needs the count (the audit decorator) adds a listener.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO


class TrackedBody:
    """``length`` bytes of a store's range body, for the WSGI file wrapper.

    Werkzeug's range wrapper reads and discards everything before a range when it cannot
    seek, so the store has already seeked (or asked S3 for the range) and this body only
    stops at the range's end. A body over a local file keeps its descriptor: gunicorn's
    sendfile starts at the descriptor's offset and sends Content-Length bytes, and
    ``socket.sendfile`` leaves the position at ``start + bytes sent``, on success and on
    error alike, through ``seek``: that is how the count survives sendfile. Any other body
    (an S3 stream) is read in blocks, and a failure mid-way reaches the server, which cuts
    the connection short of Content-Length: never a complete-looking file.
    """

    def __init__(
        self, body: BinaryIO, start: int, length: int, *, release: Callable[[], None] | None = None
    ):
        self.body = body
        self.start = start
        self.length = length
        self.sent = 0
        self.release = release
        self._listeners: list[Callable[[int], None]] = []
        self._closed = False

    def read(self, size: int = -1) -> bytes:
        remaining = self.length - self.sent
        if remaining <= 0:
            return b""
        data = self.body.read(remaining if size < 0 else min(size, remaining))
        self.sent += len(data)
        return data

    def seek(self, position: int, whence: int = 0) -> int:
        offset = self.body.seek(position, whence)
        self.sent = max(self.sent, min(offset - self.start, self.length))
        return offset

    def fileno(self) -> int:
        """The file's descriptor, for sendfile; a body without one raises, so the server
        reads it instead."""
        return self.body.fileno()

    def when_closed(self, listener: Callable[[int], None]) -> None:
        """Call ``listener`` with the bytes sent when the body closes, before the slot goes."""
        self._listeners.append(listener)

    def close(self) -> None:
        """Close the store's body, report the count and give back the slot, exactly once;
        the slot even when closing the store's body or reporting the count fails."""
        if self._closed:
            self.body.close()
            return
        self._closed = True
        try:
            self.body.close()
            for listener in self._listeners:
                listener(self.sent)
        finally:
            if self.release is not None:
                self.release()
