"""The bounds on database waits: libpq's parameters, and the breaker that refuses callers
at once for a while after the server failed to answer."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from reporting_svc.catalog import bounds
from reporting_svc.catalog.bounds import (
    Breaker,
    DatabaseLimits,
    Gate,
    answer_within,
    remaining,
)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(bounds, "time", fake)
    return fake


def in_thread(call: Callable[[], None]) -> BaseException | None:
    """What ``call`` raised in another thread, or None."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:
            raised.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return raised[0] if raised else None


def test_libpq_is_told_every_bound_and_the_server_its_statement_and_lock_timeouts():
    limits = DatabaseLimits(connect=4, statement=7, lock=2, pool=3, keepalive=6)
    assert limits.connect_args() == {
        "connect_timeout": 4,
        "keepalives": 1,
        "keepalives_idle": 6,
        "keepalives_interval": 6,
        "keepalives_count": bounds.KEEPALIVE_PROBES,
        "tcp_user_timeout": 8000,
    }
    assert limits.server_options() == "-c statement_timeout=7000 -c lock_timeout=2000"
    assert limits.answer == 8  # the server cancels first when it still runs
    assert limits.batch == 3 + 4 + 8


def test_a_tripped_breaker_refuses_everyone_then_lets_one_caller_try(clock):
    breaker = Breaker(pause=6)
    breaker.admit()
    breaker.trip()
    with pytest.raises(sa.exc.TimeoutError, match="did not answer within 6 s"):
        breaker.admit()
    clock.now += 6
    breaker.admit()  # this thread tries the server again
    breaker.admit()  # and may use it more than once while it tries
    assert isinstance(in_thread(breaker.admit), sa.exc.TimeoutError)
    breaker.release()
    assert in_thread(breaker.admit) is None


def test_a_failed_try_trips_the_breaker_again(clock):
    breaker = Breaker(pause=6)
    breaker.trip()
    clock.now += 6
    assert in_thread(breaker.admit) is None
    breaker.trip()
    with pytest.raises(sa.exc.TimeoutError):
        breaker.admit()


def test_a_caller_that_is_not_trying_releases_nothing(clock):
    breaker = Breaker(pause=6)
    breaker.trip()
    clock.now += 6
    breaker.admit()
    assert in_thread(breaker.release) is None
    assert isinstance(in_thread(breaker.admit), sa.exc.TimeoutError)


def test_answer_within_bounds_this_thread_only_and_nests(clock):
    assert remaining() == float("inf")
    with answer_within(2):
        clock.now += 0.5
        assert remaining() == 1.5
        elsewhere: list[float] = []
        assert in_thread(lambda: elsewhere.append(remaining())) is None
        assert elsewhere == [float("inf")]
        with answer_within(10):
            assert remaining() == 10
        assert remaining() == 1.5
        clock.now += 5
        assert remaining() == 0
    assert remaining() == float("inf")


def test_a_full_gate_refuses_other_threads_and_lets_one_inside_enter_again():
    gate = Gate(1)
    with gate.entered():
        with gate.entered():
            refused = in_thread(lambda: gate.entered().__enter__())
        assert isinstance(refused, sa.exc.TimeoutError)
        assert "all 1 threads" in str(refused)
    with gate.entered():
        pass


def test_engines_of_one_process_share_its_gate():
    assert bounds.gate(3) is bounds.gate(3)
    assert bounds.gate(3).size == 3
