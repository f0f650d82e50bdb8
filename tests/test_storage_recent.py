"""The per-process memory of what a store found: only what was found, bounded, soon forgotten."""

from __future__ import annotations

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
