"""What an answer sends, as a value: every view under ``@audited`` returns one.

The audit record, the download metrics and the access line read the status the client
gets and the bytes the worker sends from it, never from the response's class; a download
list answers one too, with no body of the worker's.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Response

from .bodies import TrackedBody


@dataclass(frozen=True)
class Delivered:
    """An answer and what it sends: ``status`` is the status the client gets (nginx's for an
    x-accel answer: a 206 goes to nginx as a 200), ``body`` the file bytes the worker sends
    itself and counts, or None when it sends none (a 304, a HEAD, nginx's or S3's bytes)."""

    response: Response
    status: int
    body: TrackedBody | None = None

    @classmethod
    def answer(cls, response: Response) -> Delivered:
        """A response that sends what it says, and no file bytes of the worker's."""
        return cls(response, response.status_code)
