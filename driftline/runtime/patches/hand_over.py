"""A fetched message handed to the streams without four tasks.

Breaks: Faust's fetch loop hands each message over with ``wait_first(on_message(message),
suspend_flow.wait())``: four asyncio tasks per message, most of a worker's CPU on
single-event messages, though the hand-over almost never waits.
Fix: the hand-over's first step runs at once; when it finishes there the loop turns once and
the message is handed over; when it waits, Faust's ``wait_first`` takes over with the rest of
it (``continued``), so a suspended flow still cancels it. Test:
tests/unit/runtime/patches/test_hand_over.py. Upstream: a fast path in Faust's fetch loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from faust.transport.consumer import Consumer
from mode.services import WaitResults

from driftline.runtime.patches.guard import require

VERIFIED_FAUST = ("0.15.",)
_wait_first = Consumer.wait_first


async def hand_over_first(self: Consumer, *coros: Any, timeout: Any = None) -> WaitResults:
    """``Service.wait_first`` for the consumer, which calls it with two coroutines only to hand
    a message over, against its suspend flag; anything else goes to Faust's."""
    if (
        len(coros) != 2
        or timeout is not None
        or not (asyncio.iscoroutine(coros[0]) and asyncio.iscoroutine(coros[1]))
        or self._stopped.is_set()
        or self._crashed.is_set()
    ):
        return await _wait_first(self, *coros, timeout=timeout)
    hand_over, other = coros
    try:
        waiting = hand_over.send(None)
    except StopIteration as done:
        other.close()  # never started
        # One turn of the loop per message, as the tasks took: the stream takes each event
        # as it comes. Without it many go in at once, the queue reaches its pressure mark
        # and the partition's fetching pauses.
        await asyncio.sleep(0)
        return WaitResults([hand_over], [done.value], False)
    except BaseException:
        other.close()
        raise
    return await _wait_first(self, continued(hand_over, waiting), other)


async def continued(coro: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    """Runs ``coro`` on from a step that yielded ``waiting`` (a future, or None for a bare
    yield), as the task that would have run it does: the future's outcome is sent or thrown
    in, and this task's cancellation is thrown in too."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                # as a task does with what a step yields: else awaiting it again fails
                waiting._asyncio_future_blocking = False
                await waiting
        except BaseException as exc:  # the future failed, or this task was cancelled
            try:
                waiting = coro.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            waiting = coro.send(None)
        except StopIteration as done:
            return done.value


def apply() -> None:
    require("faust-streaming", VERIFIED_FAUST, __name__)
    Consumer.wait_first = hand_over_first  # type: ignore[method-assign,assignment]
