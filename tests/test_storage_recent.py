"""The per-process memory of what a store found: only what was found, bounded, soon forgotten."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from reporting_svc.storage import StoreError
from reporting_svc.storage import recent as recent_module
from reporting_svc.storage.recent import Recent


class Clock:
    """A timer the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """A load function that counts its calls and returns what it is told to."""

    def __init__(self, value: str | None):
        self.value = value
        self.calls = 0

    def __call__(self) -> str | None:
        self.calls += 1
        return self.value


def test_a_value_found_is_not_loaded_again_within_its_seconds() -> None:
    clock, load = Clock(), Loader("record")
    recent: Recent[str] = Recent(3, timer=clock)

    first = recent.get("job", load)
    clock.now = 2.9
    second = recent.get("job", load)

    assert (first, second, load.calls) == ("record", "record", 1)


def test_a_value_is_loaded_again_once_its_seconds_have_passed() -> None:
    clock, load = Clock(), Loader("record")
    recent: Recent[str] = Recent(3, timer=clock)
    recent.get("job", load)

    clock.now = 3.0
    load.value = "changed"

    assert recent.get("job", load) == "changed"
    assert load.calls == 2


def test_nothing_found_is_not_remembered() -> None:
    load = Loader(None)
    recent: Recent[str] = Recent(3, timer=Clock())

    assert recent.get("job", load) is None
    load.value = "published since"

    assert recent.get("job", load) == "published since"


def test_zero_seconds_remembers_nothing() -> None:
    load = Loader("record")
    recent: Recent[str] = Recent(0)

    recent.get("job", load)
    recent.get("job", load)

    assert load.calls == 2


def test_at_most_size_values_are_held() -> None:
    recent: Recent[str] = Recent(3, size=2, timer=Clock())
    loads = {key: Loader(key) for key in ("a", "b", "c")}
    for key, load in loads.items():
        recent.get(key, load)

    for key, load in loads.items():
        recent.get(key, load)

    assert recent.cache is not None and len(recent.cache) == 2
    assert sum(load.calls for load in loads.values()) > 3


class GatedLoader(Loader):
    """A load that holds every caller until the test opens the gate; the first may fail."""

    def __init__(self, value: str | None, *, first_fails: bool = False):
        super().__init__(value)
        self.gate = threading.Event()
        self.first_fails = first_fails

    def __call__(self) -> str | None:
        self.gate.wait(timeout=10)
        value = super().__call__()
        if self.first_fails and self.calls == 1:
            raise StoreError("S3 timed out")
        return value


class CountedWaits(threading.Event):
    """An event that counts the threads that began to wait on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = 0
        self.lock = threading.Lock()

    def wait(self, timeout: float | None = None) -> bool:
        with self.lock:
            self.waiting += 1
        return super().wait(timeout)


class WatchedLoad(recent_module._Load[Any]):
    """A shared load whose waiters the test can count."""

    def __init__(self) -> None:
        super().__init__()
        self.done = CountedWaits()


def missing_at_once(
    recent: Recent[str], load: GatedLoader, monkeypatch: pytest.MonkeyPatch, threads: int = 8
) -> list[Any]:
    """``threads`` callers miss the key together; the first load is held until every other
    caller waits on it. What each got."""
    monkeypatch.setattr(recent_module, "_Load", WatchedLoad)

    def call() -> Any:
        try:
            return recent.get("job", load)
        except StoreError as error:
            return error

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(call) for _ in range(threads)]
        deadline = time.monotonic() + 10
        while waiters(recent) < threads - 1:
            assert time.monotonic() < deadline, "the callers never all met at one load"
            time.sleep(0.01)
        load.gate.set()
        return [future.result() for future in futures]


def waiters(recent: Recent[str]) -> int:
    """How many callers wait on the load of ``"job"`` in progress."""
    shared = recent.loading.get("job")
    return shared.done.waiting if isinstance(shared, WatchedLoad) else 0


def test_callers_missing_the_same_key_at_once_share_one_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load = GatedLoader("record")
    recent: Recent[str] = Recent(3, timer=Clock())

    got = missing_at_once(recent, load, monkeypatch)

    assert got == ["record"] * 8
    assert load.calls == 1


def test_callers_sharing_a_load_that_found_nothing_get_nothing_and_nothing_is_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load = GatedLoader(None)
    recent: Recent[str] = Recent(3, timer=Clock())

    got = missing_at_once(recent, load, monkeypatch)
    load.value = "published since"

    assert got == [None] * 8
    assert load.calls == 1
    assert recent.get("job", load) == "published since"


def test_when_a_shared_load_fails_its_caller_sees_the_error_and_the_others_load_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load = GatedLoader("record", first_fails=True)
    recent: Recent[str] = Recent(3, timer=Clock())

    got = missing_at_once(recent, load, monkeypatch)

    errors = [each for each in got if isinstance(each, StoreError)]
    assert len(errors) == 1
    assert got.count("record") == 7
    assert not recent.loading
