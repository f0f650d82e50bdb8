"""Backoff with jitter, Retry-After honoured, a budget that restarts when bytes arrive."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from reporting_svc.fetch import retry
from reporting_svc.fetch.failures import JobFailed, Transient
from reporting_svc.fetch.retry import RetryPolicy, retry_after_seconds


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the policy would have slept, without sleeping."""
    slept: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", slept.append)
    return slept


@pytest.mark.parametrize(
    ("failures", "low", "high"), [(1, 0.5, 1), (2, 1, 2), (3, 2, 4), (9, 30, 60)]
)
def test_backoff_doubles_with_jitter_up_to_the_cap(failures: int, low: float, high: float) -> None:
    delays = {RetryPolicy(base=1, cap=60).delay(failures, None) for _ in range(50)}

    assert all(low <= delay <= high for delay in delays)
    assert len(delays) > 1


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(5, 5), (0, 0), (86400, retry.MAX_RETRY_AFTER)]
)
def test_retry_after_is_honoured_within_a_bound(retry_after: float, expected: float) -> None:
    assert RetryPolicy().delay(1, retry_after) == expected


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 12 ", 12.0),
        ("Tue, 01 Dec 2026 12:00:30 GMT", 30.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_dates(value: str | None, seconds: float | None) -> None:
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)

    assert retry_after_seconds(value, now) == seconds


def test_run_retries_transient_failures_until_it_succeeds(pauses: list[float]) -> None:
    outcomes = iter([Transient("503", retry_after=5), Transient("reset"), "done"])
    seen: list[str] = []

    def operation() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = RetryPolicy().run(operation, lambda error, pause: seen.append(str(error)))

    assert result == "done"
    assert seen == ["503", "reset"]
    assert pauses[0] == 5 and 1 <= pauses[1] <= 2


def test_run_gives_up_after_its_attempts(pauses: list[float]) -> None:
    calls = []

    def operation() -> None:
        calls.append(1)
        raise Transient("502")

    with pytest.raises(JobFailed, match="gave up after 3 tries: 502"):
        RetryPolicy(attempts=3).run(operation, lambda error, pause: None)

    assert len(calls) == 3


def test_a_failure_after_progress_starts_the_count_again(pauses: list[float]) -> None:
    outcomes = iter([Transient("cut", progressed=True)] * 5 + [None])

    def operation() -> None:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    RetryPolicy(attempts=2).run(operation, lambda error, pause: None)

    assert len(pauses) == 5


def test_run_gives_up_rather_than_pause_past_its_deadline(pauses: list[float]) -> None:
    def operation() -> None:
        raise Transient("503", retry_after=120)

    with pytest.raises(JobFailed, match="out of time before the next try: 503"):
        RetryPolicy().run(operation, lambda error, pause: None, time.monotonic() + 60)

    assert pauses == []
