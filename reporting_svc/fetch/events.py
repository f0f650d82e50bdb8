"""What the fetch tells its caller: JSON lines for pipelines, progress bars for people.

Without a terminal on standard output, or with ``--json``, every event is one JSON
object on one line of standard output and nothing else goes there; on a terminal, tqdm
draws a bar per file and one for the whole fetch on standard error. Every text field
(much of it the server's: names, reasons, error messages) is shown with ``visible``, so
no escape sequence or bidi override reaches a terminal, and a JSON line is ASCII, so no
U+2028 splits it for a reader that splits on Unicode line breaks.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any, Protocol, TextIO

from tqdm import tqdm

from ..text import visible, visible_fields
from .manifest import now

#: The size assumed when a terminal says it has no columns or rows (a pseudo-terminal
#: nobody sized): tqdm would draw bars zero wide and hide every one below row zero.
FALLBACK_SIZE = os.terminal_size((80, 24))


class Events(Protocol):
    """Where a fetch reports; implementations are safe to call from several threads."""

    def emit(self, event: str, **fields: Any) -> None:
        """One event about one job (``downloadId`` among the fields)."""

    def expect(self, jobs: int) -> None:
        """How many jobs the whole fetch has, once known."""

    def advance(self, download_id: str, size: int) -> None:
        """``size`` more bytes of this job are on disk."""

    def close(self) -> None:
        """The fetch is over."""


class JsonLines:
    """One JSON object per event on ``stream``; byte progress is not an event."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "time": now(), **visible_fields(fields)})
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def expect(self, jobs: int) -> None:
        return None

    def advance(self, download_id: str, size: int) -> None:
        return None

    def close(self) -> None:
        return None


class ProgressBars:
    """A tqdm bar per file being fetched and one counting the jobs; failures as lines."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._columns, self._rows = _screen(self.stream)
        self._overall = tqdm(
            desc="reports",
            unit="file",
            file=self.stream,
            position=0,
            ncols=self._columns,
            nrows=self._rows,
        )
        self._bars: dict[str, tqdm[Any]] = {}

    def emit(self, event: str, **fields: Any) -> None:
        fields = visible_fields(fields)
        download_id = str(fields.get("downloadId", ""))
        with self._lock:
            if event in ("started", "resumed"):
                self._open(download_id, fields)
            elif event in ("verified", "skipped", "failed"):
                self._finish(download_id)
            if event in ("failed", "retrying"):
                tqdm.write(f"{event}: {download_id} {fields.get('reason', '')}", file=self.stream)

    def expect(self, jobs: int) -> None:
        with self._lock:
            self._overall.reset(total=jobs)

    def advance(self, download_id: str, size: int) -> None:
        with self._lock:
            bar = self._bars.get(download_id)
            if bar is not None:
                bar.update(size)

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._overall.close()

    def _open(self, download_id: str, fields: dict[str, Any]) -> None:
        old = self._bars.pop(download_id, None)
        if old is not None:
            old.close()
        self._bars[download_id] = tqdm(
            desc=visible(str(fields.get("file", download_id)))[:40],
            total=fields.get("size"),
            initial=int(fields.get("offset", 0)),
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=self.stream,
            leave=False,
            ncols=self._columns,
            nrows=self._rows,
        )

    def _finish(self, download_id: str) -> None:
        bar = self._bars.pop(download_id, None)
        if bar is not None:
            bar.close()
        self._overall.update(1)


def _screen(stream: TextIO) -> tuple[int | None, int | None]:
    """tqdm's ``ncols`` and ``nrows``: the terminal's own, or the fallback for either
    that is zero; None (tqdm's own guess) for a stream that is no terminal."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError):
        return None, None
    return size.columns or FALLBACK_SIZE.columns, size.lines or FALLBACK_SIZE.lines


def events_for(*, json_lines: bool, stdout: TextIO | None = None) -> Events:
    """JSON lines when asked or when standard output is not a terminal, else bars."""
    stream = stdout or sys.stdout
    if json_lines or not stream.isatty():
        return JsonLines(stream)
    return ProgressBars()
