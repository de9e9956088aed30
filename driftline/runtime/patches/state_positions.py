"""Input partitions read from where the restored state has applied them.

Breaks: after a restart or rebalance Faust reads each input partition from its committed
offset; when the restored state is older (a restore that stopped short, a stop that committed
offsets without their state), the messages in between were never counted.
Fix: after the seek that follows a finished restore, each input partition goes back to the
state's applied position (``configure``); one with committed offsets but no state is read
from its start. Tests: tests/integration/test_crash_integration.py, test_scale_out_integration.py.
Upstream: Faust seeking input partitions to offsets kept with the changelog (as quix-streams).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.types import TP

from driftline.runtime.patches.guard import require

log = logging.getLogger(__name__)

VERIFIED_FAUST = ("0.15.",)
_perform_seek = Consumer.perform_seek
_recovery_completed = Recovery.on_recovery_completed
_resume_streams = Recovery._resume_streams
_restoring_done = False  # True while Faust resumes the streams after a finished restore

# The next offset to read of each input partition according to the restored state, and the
# input topics (set by ``configure``; None: Faust's committed offsets only).
positions: Callable[[], Mapping[tuple[str, int], int]] | None = None
input_topics: set[str] = set()


def configure(applied: Callable[[], Mapping[tuple[str, int], int]], topics: set[str]) -> None:
    global positions, input_topics
    positions, input_topics = applied, set(topics)


def after_the_restore(resume: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """``resume`` (Faust's end of a recovery: seek, then let the streams go), during which a
    seek from any task may trust the table: the restore is done."""

    async def resume_restored(self: Recovery, generation_id: int = 0) -> None:
        global _restoring_done
        _restoring_done = True
        try:
            await resume(self, generation_id)
        finally:
            _restoring_done = False

    return resume_restored


async def seek_where_the_state_is(self: Consumer) -> None:
    await _perform_seek(self)
    if positions is None or not _restoring_done:
        return
    wanted = positions()
    for tp in self.assignment():
        position = wanted.get((tp.topic, tp.partition))
        committed = self._committed_offset.get(tp)
        if committed is None or tp.topic not in input_topics:
            continue
        if position is None and committed > 0:
            # Offsets committed, yet no state from the partition: the restore came back
            # empty (or the changelog was lost). Its models start again from the topic's
            # first record.
            log.warning(
                "%s[%d]: the restored state has nothing from this partition, the committed "
                "offset is %d: reading it again from the start",
                tp.topic,
                tp.partition,
                committed,
            )
            await self.seek(TP(tp.topic, tp.partition), 0)
        elif position is not None and position < committed:
            log.warning(
                "%s[%d]: the restored state has applied messages up to offset %d, the "
                "committed offset is %d: reading again from %d",
                tp.topic,
                tp.partition,
                position - 1,
                committed,
                position,
            )
            await self.seek(TP(tp.topic, tp.partition), position)


def apply() -> None:
    require("faust-streaming", VERIFIED_FAUST, __name__)
    Consumer.perform_seek = seek_where_the_state_is  # type: ignore[method-assign]
    Recovery.on_recovery_completed = after_the_restore(_recovery_completed)  # type: ignore[method-assign,assignment]
    Recovery._resume_streams = after_the_restore(_resume_streams)  # type: ignore[method-assign,assignment]
