"""A restore's end asked of the broker.

Breaks: under exactly_once a changelog partition ends with a transaction marker, never
delivered as a record, so Faust's restore ended only after two 5 s waits on an empty queue:
every rebalance paused the worker, and the consumer's position alone is not proof of the end.
Fix: whenever the restore's queue is empty for a quarter of a second, a read_committed read of
each unfinished partition's remaining offsets (``configure``) says whether a record is still
to come; when none is, the restore ends at once. Test: unit/runtime/patches/test_restore_end.py.
Upstream: Faust ending a read_committed restore at the end offsets the broker reports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faust.tables import recovery as recovery_module
from faust.tables.recovery import Recovery
from faust.types import TP

from driftline.runtime.patches.guard import require

log = logging.getLogger(__name__)

VERIFIED_FAUST = ("0.15.",)
QUIET_SECONDS = 0.25  # an empty restore queue this long: ask the broker what is left
_recovery_init = Recovery.__init__
_recoveries: list[Recovery] = []  # the app's (one per process)
# (topic, partition, start, end) -> whether a committed record lies in [start, end), True when
# it cannot tell (set by ``configure``)
any_committed: Callable[[str, int, int, int], Awaitable[bool]] | None = None


def configure(committed: Callable[[str, int, int, int], Awaitable[bool]]) -> None:
    global any_committed
    any_committed = committed


def remember_recovery(self: Recovery, *args: Any, **kwargs: Any) -> None:
    _recovery_init(self, *args, **kwargs)
    _recoveries[:] = [self]


async def restore_ends(recovery: Recovery) -> dict[TP, int] | None:
    """Each unfinished active changelog partition's end, if no committed record is left
    before any of them (else None): where Faust's two waits would have marked them read."""
    if any_committed is None:
        return None
    ends: dict[TP, int] = {}
    for tp, end in recovery.active_highwaters.items():
        done = recovery.active_offsets.get(tp)
        done = -1 if done is None else done  # no record received yet: from offset 0
        if end is not None and done < end:
            if await any_committed(tp.topic, tp.partition, done + 1, end + 1):
                return None
            ends[tp] = end
    return ends or None  # none unfinished: Faust's own check ends the restore


async def wait_or_end_restore(aw: Awaitable[Any], timeout: float) -> Any:
    """``asyncio.wait_for`` for the restore's queue: times out early when the broker says the
    restore has nothing left to receive."""
    recovery = _recoveries[0] if _recoveries else None
    if recovery is None or not recovery.in_recovery or any_committed is None:
        return await asyncio.wait_for(aw, timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    task = asyncio.ensure_future(aw)
    try:
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            done, _ = await asyncio.wait({task}, timeout=min(QUIET_SECONDS, left))
            if done:
                return task.result()
            ends = await restore_ends(recovery)
            if task.done():  # a record came while the broker was asked
                return task.result()
            if ends is not None:
                for tp, end in ends.items():  # set, not Counter.update (which adds)
                    recovery.active_offsets[tp] = end
                log.info(
                    "restore: no record left before the end of %d changelog partitions", len(ends)
                )
                raise TimeoutError  # Faust then sees nothing left and ends the restore
    finally:
        if not task.done():
            task.cancel()  # asyncio.Queue.get leaves its item in the queue when cancelled


class RecoveryAsyncio:
    """The ``asyncio`` that faust.tables.recovery sees: its one ``wait_for`` (the restore's
    queue) is ``wait_or_end_restore``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    wait_for = staticmethod(wait_or_end_restore)


def apply() -> None:
    require("faust-streaming", VERIFIED_FAUST, __name__)
    Recovery.__init__ = remember_recovery  # type: ignore[method-assign]
    recovery_module.asyncio = RecoveryAsyncio()  # type: ignore[assignment]
