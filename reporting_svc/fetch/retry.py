"""When to try again: exponential backoff with jitter, or the server's ``Retry-After``."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from werkzeug.http import parse_date

from .failures import JobFailed, Transient

T = TypeVar("T")
# A server may ask for any pause; a nightly pipeline should not sleep for a day on a typo.
MAX_RETRY_AFTER = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; pause ``base * 2**n`` seconds, at most ``cap``, half of it
    random, so clients cut off together do not come back together."""

    attempts: int = 6
    base: float = 1.0
    cap: float = 60.0

    def delay(self, failures: int, retry_after: float | None) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1 for the first)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        ceiling = min(self.cap, self.base * 2 ** (failures - 1))
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))  # noqa: S311 - jitter, not secrets

    def run(
        self,
        operation: Callable[[], T],
        on_retry: Callable[[Transient, float], None],
        deadline: float = math.inf,
    ) -> T:
        """``operation()`` until it returns, retrying on Transient; JobFailed when used up,
        or when the pause would end after ``deadline`` (a ``time.monotonic()``).

        A failure after some bytes were saved starts the count again: a long download
        over a link that drops now and then keeps going as long as it moves.
        """
        failures = 0
        while True:
            try:
                return operation()
            except Transient as error:
                failures = 1 if error.progressed else failures + 1
                if failures >= self.attempts:
                    raise JobFailed(f"gave up after {failures} tries: {error}") from None
                pause = self.delay(failures, error.retry_after)
                if time.monotonic() + pause > deadline:
                    raise JobFailed(f"out of time before the next try: {error}") from None
                on_retry(error, pause)
                time.sleep(pause)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent
    or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    when = parse_date(value)
    if when is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
