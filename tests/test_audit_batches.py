"""Group commit's bound: a caller waits for its batch only so long, however it is stuck."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from reporting_svc.audit.batches import GroupCommit, RecordNotWrittenError


class StuckWriter:
    """Writes batches only once ``free`` is set, as a stuck database would never."""

    def __init__(self) -> None:
        self.free = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[dict[str, Any]]] = []

    def __call__(self, batch: list[dict[str, Any]], durable: bool, written: Any) -> Any:
        self.started.set()
        self.free.wait()
        self.batches.append(batch)
        return [{**fields, "hash": "h"} for fields in batch]


def test_a_caller_behind_a_stuck_batch_gives_up_after_the_bound_and_its_record_is_dropped():
    writer = StuckWriter()
    commit = GroupCommit(writer, wait=0.2)
    leader = threading.Thread(target=commit.append, args=({"n": 1},), kwargs={"durable": True})
    leader.start()
    writer.started.wait(timeout=10)

    with pytest.raises(RecordNotWrittenError, match=r"within 0\.2 s"):
        commit.append({"n": 2}, durable=True)
    writer.free.set()
    leader.join(timeout=10)

    assert commit.append({"n": 3}, durable=True) == {"n": 3, "hash": "h"}
    assert writer.batches == [[{"n": 1}], [{"n": 3}]]


def test_without_a_bound_a_caller_waits_for_the_batch_before_it():
    writer = StuckWriter()
    commit = GroupCommit(writer)
    leader = threading.Thread(target=commit.append, args=({"n": 1},), kwargs={"durable": True})
    leader.start()
    writer.started.wait(timeout=10)
    threading.Timer(0.2, writer.free.set).start()

    assert commit.append({"n": 2}, durable=True) == {"n": 2, "hash": "h"}
    leader.join(timeout=10)
