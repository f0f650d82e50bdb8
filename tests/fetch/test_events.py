"""Events: one JSON object per line for pipelines; bars only on a terminal."""

from __future__ import annotations

import fcntl
import io
import json
import os
import struct
import sys
import termios

import pytest

from reporting_svc.fetch.events import JsonLines, ProgressBars, events_for


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_are_one_parseable_object_per_event_and_nothing_else() -> None:
    out = io.StringIO()
    events = JsonLines(out)

    events.emit("started", downloadId="A" * 32, file="two\nlines.csv", size=3)
    events.advance("A" * 32, 3)
    events.emit("verified", downloadId="A" * 32, file="x", size=3, sha256="0" * 64)

    lines = out.getvalue().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["started", "verified"]
    assert json.loads(lines[0])["file"] == "two\\x0alines.csv"


HOSTILE = "\x1b[2J\x1b]0;owned\x07\u202e\u2028"


def test_json_lines_are_ascii_and_show_server_text_rather_than_obey_it() -> None:
    out = io.StringIO()

    JsonLines(out).emit("failed", downloadId="A" * 32, reason=HOSTILE, fileName=HOSTILE)

    assert out.getvalue().isascii() and out.getvalue().count("\n") == 1
    event = json.loads(out.getvalue())
    assert event["reason"] == event["fileName"] == "\\x1b[2J\\x1b]0;owned\\x07\\u202e\\u2028"


def test_progress_bars_show_server_text_rather_than_obey_it() -> None:
    screen = io.StringIO()
    bars = ProgressBars(screen)

    bars.emit("started", downloadId="A" * 32, file=HOSTILE, size=10)
    bars.emit("retrying", downloadId="A" * 32, reason=HOSTILE, delay=1)
    bars.emit("failed", downloadId="A" * 32, reason=HOSTILE)
    bars.close()

    shown = screen.getvalue()
    assert shown.count("\\x1b[2J\\x1b]0;owned\\x07\\u202e\\u2028") >= 2
    assert not any(char in shown for char in ("\x07", "\u202e", "\u2028", "\x1b[2J", "\x1b]"))


def test_json_without_a_terminal_or_when_asked_bars_on_a_terminal() -> None:
    assert isinstance(events_for(json_lines=False, stdout=io.StringIO()), JsonLines)
    assert isinstance(events_for(json_lines=True, stdout=Terminal()), JsonLines)
    bars = events_for(json_lines=False, stdout=Terminal())
    assert isinstance(bars, ProgressBars)
    bars.close()


def read_all(screen: int) -> bytes:
    """What a pseudo-terminal's other end wrote, up to its close (then reads fail)."""
    shown = b""
    try:
        while chunk := os.read(screen, 65536):
            shown += chunk
    except OSError:
        pass
    os.close(screen)
    return shown


def test_progress_shows_on_a_terminal_that_says_it_has_no_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pseudo-terminal nobody sized says 0 rows and 0 columns; tqdm alone, drawing on
    standard error, then hides every bar below row 0 and the fetch prints nothing."""
    screen, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
    with os.fdopen(terminal, "w") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        bars = ProgressBars()
        bars.expect(1)
        bars.emit("started", downloadId="A" * 32, file="visits.csv", size=10)
        bars.advance("A" * 32, 10)
        bars.emit("verified", downloadId="A" * 32)
        bars.close()
        monkeypatch.undo()
    shown = read_all(screen).decode()

    assert "reports: 100%" in shown and "1/1" in shown
