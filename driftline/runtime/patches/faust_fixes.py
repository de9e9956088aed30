"""Fixes to faust-streaming (0.15, pinned below 0.16 in pyproject) that driftline needs.

1. Changelog ends from the broker.

With ``processing_guarantee=exactly_once`` Faust's table recovery asks where each changelog
partition ends through ``AIOKafkaConsumerThread._highwaters``, which answers with the
consumer's cached *last stable offset*. That cache is empty for a partition not fetched since
the last rebalance, which Faust reads as "the changelog is empty": a worker taking over a
partition then skipped restoring its state and went on from stale or missing detector state,
or crashed on the consistency check. tests/integration/test_scale_out_integration.py caught it
(three workers joining and leaving: three models' counts lost thousands of events). The fix asks the
broker instead (``end_offsets``: under read_committed, the last stable offset), as Faust does
already for at_least_once.

2. Short fetch polls. Faust's consumer asks the broker to hold a fetch up to 1.5 s while its
partitions have no new data, and aiokafka keeps one fetch in flight per broker. While the
worker works through a partition's fetched messages, that fetch polls the other (idle)
partitions: when the worker is done, its next fetch of the busy partition waits behind the
poll. The worker sat idle a quarter of the time on 500-event messages (bench/throughput.py).
Polls of 100 ms cost an idle worker ten small requests a second; data still comes at once.

3. Positions that follow the state. After a rebalance or a restart Faust reads each input
partition again from its committed offset. When the restored state is older than that
offset, the messages in between were never counted: a restore that stopped short of the
changelog's end (Faust ends it on a guess under exactly_once, after 10 s without records) or
a stop whose last offsets got committed without their state. The crash and scale-out tests
lost 100 to 200 events that way about one run in six. Here, after Faust's seek, each input
partition goes back to where the state says it was applied to (``positions``, which
create_app sets); the applied-offset watermarks skip what the state did count. A partition
with committed offsets but nothing in the state (an empty restore) is read from its start.
Only the seek that follows a finished restore looks at the state: Faust's fetch loop also
seeks while a rebalance is under way, when the table is still being restored.

4. Commit before a rebalance. Under exactly_once each partition's changelog writes and
consumed offsets wait in an open transaction until the next periodic commit, and Faust does
not commit when partitions are revoked. A worker that keeps a partition across a rebalance
then restores it from the changelog (the memory store is rebuilt on every assignment) only up
to the last stable offset, which stops before its own open transaction: its state went back
by a few seconds of traffic while its stream went on, and those events were never counted
(one scale-out test run inspected: two models 300 events short). Committing each partition's
transaction with the offsets the state has applied, once the streams are idle and before the
new assignment, makes all of it stable, as Kafka Streams does on revocation.

5. A restore's end, asked of the broker. Under exactly_once a changelog partition ends with a
transaction marker, which is never delivered as a record, so Faust's restore never sees its
last offset: it ends only after its queue stayed empty through two 5 s waits, then trusts the
consumer's position. Every rebalance paused the worker 10 s, and the position alone is not
proof (records fetched but not yet handed over pass it: waits of 0.5 s ended one restore of 8
early). Here, whenever the queue is empty for a quarter of a second, a read_committed read
of each unfinished partition's remaining offsets (``any_committed``, which create_app sets)
says whether a record is still to come. When none is, the restore ends at once; while one
is, Faust waits as before. A partition with no record received yet counts from offset 0,
where Faust leaves it out.

6. A message handed over without four tasks. Faust's fetch loop hands each message to the
streams with ``wait_first(on_message(message), suspend_flow.wait())``, which makes four tasks
(the hand-over, the suspend flag, the service's stopped and crashed flags) and waits on them:
about 40% of a worker's CPU on single-event messages. The hand-over almost never
waits: it puts the event in the stream's queue without blocking (a full queue pauses the
partition's fetching instead), and waits only while flow control holds the streams (a
rebalance), the producer's buffer is full or a queue is full. Here its first step runs at
once; when it finishes there, the message is handed over as the tasks would have done in the
loop's next turn, and the loop turns once. When it waits, Faust's ``wait_first`` takes over
with the rest of it (``_continued``), so a suspended flow still cancels it as before. Single
events: 43 CPU µs a message instead of 73, and 1.41 and 1.57 times a bare Faust agent's rate
in two runs of bench/throughput.py (0.80-0.88 before).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from aiokafka.structs import TopicPartition
from faust.app.base import App
from faust.tables import recovery as recovery_module
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Transport
from faust.types import TP
from mode.services import WaitResults

log = logging.getLogger(__name__)

FETCH_MAX_WAIT_MS = 100
_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer
_perform_seek = Consumer.perform_seek
_on_partitions_revoked = App._on_partitions_revoked
_recovery_completed = Recovery.on_recovery_completed
_resume_streams = Recovery._resume_streams
_restoring_done = False  # True while Faust resumes the streams after a finished restore

# The next offset to read of each input partition, according to the restored state, and the
# input topics (set by create_app; None: Faust's committed offsets only).
positions: Callable[[], Mapping[tuple[str, int], int]] | None = None
input_topics: set[str] = set()
# (topic, partition, start, end) -> whether a committed record lies in [start, end), True when
# it cannot tell; set by create_app
any_committed: Callable[[str, int, int, int], Awaitable[bool]] | None = None
QUIET_SECONDS = 0.25  # an empty restore queue this long: ask the broker what is left
_recovery_init = Recovery.__init__
_wait_first = Consumer.wait_first
_recoveries: list[Recovery] = []  # the app's (one per process)


async def _highwaters_from_broker(
    self: AIOKafkaConsumerThread, partitions: list[Any]
) -> Mapping[Any, int]:
    consumer = self._ensure_consumer()
    offsets: Mapping[Any, int] = await consumer.end_offsets(partitions)
    return offsets


def _worker_consumer_with_short_polls(self: AIOKafkaConsumerThread, transport: Transport) -> Any:
    consumer = _create_worker_consumer(self, transport)
    consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
    return consumer


def _after_the_restore(resume: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
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


async def _seek_where_the_state_is(self: Consumer) -> None:
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


async def _revoke_after_commit(self: App, revoked: set[TP]) -> None:
    assignment = set() if self.should_stop else self.consumer.assignment()
    # Faust's handler waits for the streams to finish what they hold and flushes the producer.
    await _on_partitions_revoked(self, revoked)
    if self.should_stop or not self.in_transaction or positions is None:
        return
    wanted = positions()
    offsets = {  # aiokafka's partition type: its transactions check for it
        TopicPartition(tp.topic, tp.partition): wanted[(tp.topic, tp.partition)]
        for tp in assignment
        if (tp.topic, tp.partition) in wanted
    }
    if not offsets:
        return
    try:
        await self.consumer.transactions.commit(offsets, start_new_transaction=True)
        log.info("committed the state of %d input partitions before the rebalance", len(offsets))
    except Exception as exc:  # the periodic commit, or the next owner's replay, covers it
        log.warning("commit before the rebalance failed: %r", exc)


def _remember_recovery(self: Recovery, *args: Any, **kwargs: Any) -> None:
    _recovery_init(self, *args, **kwargs)
    _recoveries[:] = [self]


async def _restore_ends(recovery: Recovery) -> dict[TP, int] | None:
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


async def _wait_or_end_restore(aw: Awaitable[Any], timeout: float) -> Any:
    """``asyncio.wait_for`` for the restore's queue: times out early when the broker says the
    restore has nothing left to receive (fix 5)."""
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
            ends = await _restore_ends(recovery)
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


async def _hand_over_first(self: Consumer, *coros: Any, timeout: Any = None) -> WaitResults:
    """``Service.wait_first`` for the consumer, which calls it with two coroutines only to hand
    a message over, against its suspend flag (fix 6); anything else goes to Faust's."""
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
        # as it comes. Without it a hundred go in at a time, the queue reaches its pressure
        # mark, the partition's fetching pauses: single events ran 0.9x as fast as before.
        await asyncio.sleep(0)
        return WaitResults([hand_over], [done.value], False)
    except BaseException:
        other.close()
        raise
    return await _wait_first(self, _continued(hand_over, waiting), other)


async def _continued(coro: Coroutine[Any, Any, Any], waiting: Any) -> Any:
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


class _RecoveryAsyncio:
    """The ``asyncio`` that faust.tables.recovery sees: its one ``wait_for`` (the restore's
    queue) is ``_wait_or_end_restore``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    wait_for = staticmethod(_wait_or_end_restore)


def apply() -> None:
    """Install the fixes (idempotent); create_app calls it before building the app."""
    AIOKafkaConsumerThread._highwaters = _highwaters_from_broker  # type: ignore[method-assign]
    AIOKafkaConsumerThread._create_worker_consumer = (  # type: ignore[method-assign]
        _worker_consumer_with_short_polls
    )
    Consumer.perform_seek = _seek_where_the_state_is  # type: ignore[method-assign]
    App._on_partitions_revoked = _revoke_after_commit  # type: ignore[method-assign]
    Recovery.on_recovery_completed = _after_the_restore(_recovery_completed)  # type: ignore[method-assign,assignment]
    Recovery._resume_streams = _after_the_restore(_resume_streams)  # type: ignore[method-assign,assignment]
    Recovery.__init__ = _remember_recovery  # type: ignore[method-assign]
    recovery_module.asyncio = _RecoveryAsyncio()  # type: ignore[assignment]
    Consumer.wait_first = _hand_over_first  # type: ignore[method-assign,assignment]
