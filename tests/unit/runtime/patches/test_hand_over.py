"""runtime/patches/hand_over.py: the consumer's hand-over of a message runs at once
when it
does not wait, and goes to Faust's ``wait_first`` (tasks, the suspend flag) when it does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mode import Service

from driftline.runtime.patches import hand_over as fix


def run(body: Callable[[Service], Awaitable[Any]]) -> Any:
    """``body(consumer)`` in a fresh event loop, with a mode Service standing in for the
    consumer (``wait_first`` is the Service's)."""

    async def main() -> Any:
        return await body(Service())

    return asyncio.run(main())


def test_a_hand_over_that_does_not_wait_runs_in_the_callers_task() -> None:
    seen: list[Any] = []

    async def hand_over() -> str:
        seen.append(asyncio.current_task())
        return "handed"

    async def body(consumer: Service) -> Any:
        flag = asyncio.Event()
        other = flag.wait()
        asyncio.get_running_loop().call_soon(seen.append, "the loop turned")
        result = await fix.hand_over_first(consumer, hand_over(), other)
        assert other.cr_frame is None  # closed, never started (no "never awaited" warning)
        return result, asyncio.current_task(), list(seen)

    (winners, results, stopped), caller, seen_on_return = run(body)
    assert results == ["handed"] and len(winners) == 1 and not stopped
    # no task was made for it, and the loop turned before it returned (the stream takes the
    # event)
    assert seen_on_return == [caller, "the loop turned"]


def test_a_hand_over_that_waits_finishes_through_faust() -> None:
    steps: list[str] = []

    async def hand_over(gate: asyncio.Future[str]) -> str:
        steps.append("first step")
        value = await gate  # a full queue, a held flow
        await asyncio.sleep(0)  # a bare yield on the way
        steps.append(f"after {value}")
        return value.upper()

    async def body(consumer: Service) -> Any:
        loop = asyncio.get_running_loop()
        gate: asyncio.Future[str] = loop.create_future()
        loop.call_later(0.05, gate.set_result, "open")
        return await fix.hand_over_first(consumer, hand_over(gate), asyncio.Event().wait())

    _, results, stopped = run(body)
    assert steps == ["first step", "after open"]
    assert results == ["OPEN"] and not stopped


def test_a_waiting_hand_over_is_cancelled_when_the_flow_is_suspended() -> None:
    steps: list[str] = []

    async def hand_over(gate: asyncio.Future[None]) -> None:
        try:
            await gate
            steps.append("delivered")
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise

    async def body(consumer: Service) -> Any:
        loop = asyncio.get_running_loop()
        gate: asyncio.Future[None] = loop.create_future()
        suspend = asyncio.Event()
        loop.call_later(0.05, suspend.set)
        result = await fix.hand_over_first(consumer, hand_over(gate), suspend.wait())
        await asyncio.sleep(0.01)  # the cancelled hand-over runs its handler
        return result, gate.cancelled()

    (_, results, _), gate_cancelled = run(body)
    assert results == [True]  # the suspend flag won, as with Faust's wait_first alone
    assert steps == ["cancelled"] and gate_cancelled


def test_a_cancellation_at_a_bare_yield_is_thrown_into_the_hand_over() -> None:
    steps: list[str] = []

    async def hand_over(gate: asyncio.Future[None]) -> None:
        await gate
        loop = asyncio.get_running_loop()
        until = loop.time() + 1.0  # bounded: a hand-over deaf to cancellation ends here
        try:
            while loop.time() < until:  # bare yields only (asyncio.sleep(0)): no future
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise
        steps.append("never cancelled")

    async def body(consumer: Service) -> None:
        loop = asyncio.get_running_loop()
        gate: asyncio.Future[None] = loop.create_future()
        suspend = asyncio.Event()
        loop.call_later(0.01, gate.set_result, None)
        loop.call_later(0.05, suspend.set)
        await fix.hand_over_first(consumer, hand_over(gate), suspend.wait())
        await asyncio.sleep(0.01)

    run(body)
    assert steps == ["cancelled"]


def test_a_failed_wait_is_thrown_into_the_hand_over() -> None:
    async def hand_over(gate: asyncio.Future[None]) -> str:
        try:
            await gate
        except KeyError as exc:
            return f"caught {exc}"
        return "not reached"

    async def body(consumer: Service) -> Any:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, gate.set_exception, KeyError("k"))
        return await fix.hand_over_first(consumer, hand_over(gate), asyncio.Event().wait())

    assert run(body).results == ["caught 'k'"]


def test_an_error_at_the_first_step_propagates() -> None:
    async def hand_over() -> None:
        raise ValueError("bad message")

    async def body(consumer: Service) -> Any:
        return await fix.hand_over_first(consumer, hand_over(), asyncio.Event().wait())

    with pytest.raises(ValueError, match="bad message"):
        run(body)


def test_other_waits_go_to_faust(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, Any, str]] = []

    async def faust_wait_first(self: Service, *coros: Any, timeout: Any = None) -> Any:
        first = getattr(coros[0], "__qualname__", type(coros[0]).__name__)
        calls.append((len(coros), timeout, first))
        for c in coros:
            if asyncio.iscoroutine(c):
                c.close()

    monkeypatch.setattr(fix, "_wait_first", faust_wait_first)

    async def body(consumer: Service) -> None:
        event = asyncio.Event()
        await fix.hand_over_first(consumer, event)  # Service.wait(event)
        await fix.hand_over_first(consumer, event.wait(), event.wait(), timeout=1.0)
        consumer._stopped.set()
        await fix.hand_over_first(consumer, event.wait(), event.wait())

    run(body)
    # as they came: not started here, nor handed on without their timeout
    assert calls == [(1, None, "Event"), (2, 1.0, "Event.wait"), (2, None, "Event.wait")]


def test_apply_installs_it_on_the_consumer() -> None:
    from faust.transport.consumer import Consumer

    fix.apply()
    assert Consumer.wait_first is fix.hand_over_first
