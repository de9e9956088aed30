"""Takes of stream events bounded by their count and by their bytes.

Faust's ``Stream.take_events`` bounds a take by its number of events only. Single-event
messages want large takes: the detectors' fixed cost per call and the codec's numpy passes
are paid once per take. 500-event messages want fewer: each is ~200 KB of JSON, all held
until the take is done. A bound on both serves both. The logic is ``take_events``' own
(faust-streaming 0.15), with the bytes in the "full" test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, cast

import faust
from faust.types import ChannelT, EventT
from mode.utils.futures import notify


def take_bounded(
    stream: faust.Stream, max_events: int, max_bytes: int, within: float
) -> AsyncGenerator[list[EventT], None]:
    """Lists of up to ``max_events`` events (fewer once their values reach ``max_bytes``
    bytes, at least one), or what came within ``within`` seconds.

    A take's events are acked when the next take is asked for, or when the generator
    closes: as with ``take_events``, mark them acked first to leave them uncommitted.
    """
    takes = _takes(stream, max_events, max_bytes, within)
    # The stream closes it when it stops, as it does take_events' (faust-streaming 0.15+)
    active = getattr(stream, "_active_agens", None)
    if active is not None:
        active.add(takes)
    return takes


async def _takes(
    stream: faust.Stream, max_events: int, max_bytes: int, within: float
) -> AsyncGenerator[list[EventT], None]:
    events: list[EventT] = []
    size = 0
    full = asyncio.Event()
    consumed = asyncio.Event()
    consuming: asyncio.Future[Any] | None = None

    async def add(value: Any) -> Any:
        # Runs in the stream's background drainer for every event.
        nonlocal consuming, size
        try:
            if consuming is not None:  # the take is being processed: wait for its end
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("take found no current event")
            events.append(event)
            size += len(event.message.value or b"")
            if len(events) >= max_events or size >= max_bytes:
                full.set()
                consumed.clear()
                await stream.wait(consumed)  # type: ignore[arg-type]  # any .wait() will do
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stream.log.exception("Error adding to take: %r", exc)
            await stream.crash(exc)
        return value

    acks = stream.enable_acks
    stream.enable_acks = False  # acked here, once a take is done
    stream.add_processor(add)
    # as take_events does: the stream is drained in the background, through ``add``
    stream._enable_passive(cast(ChannelT, aiter(cast(ChannelT, stream.channel))))
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(full, timeout=within)  # type: ignore[arg-type]
            if not events:
                continue
            consuming = stream.loop.create_future()
            try:
                yield list(events)
            finally:
                for event in events:
                    await stream.ack(event)
                events.clear()
                size = 0
                notify(consuming)
                full.clear()
                consumed.set()
    finally:
        stream.enable_acks = acks
        stream._processors.remove(add)
