"""What can go wrong in a fetch, as types: the runner decides from the type what happens next."""

from __future__ import annotations


class FetchError(Exception):
    """Any failure of the fetch client."""


class Transient(FetchError):
    """Worth another try after a pause: a lost connection, a cut body, 429, 502, 503, 504.

    ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one;
    ``progressed`` says bytes were saved before the failure, so the budget starts again.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None, progressed: bool = False):
        super().__init__(reason)
        self.retry_after = retry_after
        self.progressed = progressed


class JobFailed(FetchError):
    """Final for one job (401 for its permission, 403, 404, 410, a digest that never matches,
    retries used up); the other jobs go on. ``status`` is the HTTP status, when one said so."""

    def __init__(self, reason: str, *, status: int | None = None):
        super().__init__(reason)
        self.status = status


class AuthenticationFailed(FetchError):
    """The server refused the token itself, or none was found: no job can succeed (exit 2)."""


class DigestMismatch(FetchError):
    """The bytes saved are not the file the server describes; the ``.part`` is discarded."""


class Cancelled(FetchError):
    """Ctrl-C: stop now and keep the ``.part`` for the next run to resume."""


class UnsafeFolder(FetchError):
    """A folder the client writes in is a symlink (or not a folder): writing through it
    could land anywhere, so nothing is written (exit 2)."""
