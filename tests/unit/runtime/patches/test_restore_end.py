"""runtime/patches/restore_end.py: a restore's queue wait ends early only when the broker
says no committed record is left, and a record never goes missing on the way."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace

import pytest
from faust.types import TP

from driftline.runtime.patches import restore_end as fix

A, B = TP("t-changelog", 0), TP("t-changelog", 1)


def recovery(offsets: dict[TP, int | None], ends: dict[TP, int]) -> SimpleNamespace:
    return SimpleNamespace(
        in_recovery=True, active_offsets=Counter(offsets), active_highwaters=Counter(ends)
    )


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int, int]]:
    """The ranges asked of the broker; a range holds a record when it reaches offset 5."""
    ranges: list[tuple[str, int, int, int]] = []

    async def any_committed(topic: str, partition: int, start: int, end: int) -> bool:
        ranges.append((topic, partition, start, end))
        return start <= 5 < end

    monkeypatch.setattr(fix, "any_committed", any_committed)
    monkeypatch.setattr(fix, "QUIET_SECONDS", 0.05)
    return ranges


def wait(rec: SimpleNamespace, queue: asyncio.Queue[str], timeout: float = 0.5) -> str:
    async def run() -> str:
        fix._recoveries[:] = [rec]
        try:
            return await fix.wait_or_end_restore(queue.get(), timeout)
        finally:
            fix._recoveries.clear()

    return asyncio.run(run())


def test_a_restore_with_only_markers_left_ends_at_its_ends(asked: list) -> None:
    # A has applied up to 9 of 10 (10: a commit marker); B has received nothing, 0 to 2 left
    rec = recovery({A: 9, B: None}, {A: 10, B: 2})
    with pytest.raises(TimeoutError):
        wait(rec, asyncio.Queue())
    assert sorted(asked) == [("t-changelog", 0, 10, 11), ("t-changelog", 1, 0, 3)]
    assert rec.active_offsets == {A: 10, B: 2}


def test_a_restore_with_a_record_to_come_waits_and_marks_nothing(asked: list) -> None:
    rec = recovery({A: 3, B: 9}, {A: 8, B: 10})  # A's offset 5 is still to come
    with pytest.raises(TimeoutError):
        wait(rec, asyncio.Queue(), timeout=0.3)
    assert rec.active_offsets == {A: 3, B: 9}
    assert len(asked) > 1  # asked again at each quiet spell, not once


def test_a_record_that_arrives_is_returned_and_the_restore_goes_on(asked: list) -> None:
    rec = recovery({A: 3}, {A: 8})

    async def run() -> str:
        queue: asyncio.Queue[str] = asyncio.Queue()
        fix._recoveries[:] = [rec]
        asyncio.get_running_loop().call_later(0.12, queue.put_nowait, "record 5")
        try:
            return await fix.wait_or_end_restore(queue.get(), 5.0)
        finally:
            fix._recoveries.clear()

    assert asyncio.run(run()) == "record 5"
    assert rec.active_offsets == {A: 3}


def test_outside_a_restore_it_is_asyncio_wait_for(asked: list) -> None:
    rec = recovery({A: 9}, {A: 10})
    rec.in_recovery = False
    with pytest.raises(TimeoutError):
        wait(rec, asyncio.Queue(), timeout=0.2)
    assert asked == [] and rec.active_offsets == {A: 9}
