"""Events: one JSON object per line for pipelines; bars only on a terminal."""

from __future__ import annotations

import io
import json

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
