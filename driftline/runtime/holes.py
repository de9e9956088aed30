"""Records the consumer skipped, read again from the broker before a run goes on.

Faust's fetch loop can drop a record it fetched and deliver the ones after it, right after a
worker took over a partition (docs/runtime-patches.md tells how it was found). The state knows
the next offset of each input partition (the applied position the agent writes after each
run), so a run that starts past it, or skips offsets inside, has a hole: the records in it are
read from the broker with a plain consumer (read_committed, as the worker's) and run first, in
order. A hole with no records in it (transaction markers, a transactional producer's aborted
records) costs a fetch.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

log = logging.getLogger(__name__)

# A dropped fetch leaves a hole of a few records. A wider one is not that (an operator moved
# the group's offsets, or retention removed records): reading it all back is not this
# module's call, so it is logged and left.
MAX_HOLE = 10_000
FETCH_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Refetched:
    """A record read back from the broker, shaped like the Faust event the agent reads."""

    message: ConsumerRecord[bytes, bytes]

    @property
    def value(self) -> bytes | None:
        return self.message.value


def holes(expected: int, offsets: list[int]) -> list[tuple[int, int]]:
    """The ranges [start, end) of offsets missing from a partition's run, which should have
    started at ``expected`` (offsets below it are replays, left to the applied watermarks).

    >>> holes(10, [10, 11, 13, 14, 20])
    [(12, 13), (15, 20)]
    >>> holes(10, [8, 9, 10])
    []
    """
    out = []
    for offset in offsets:
        if offset > expected:
            out.append((expected, offset))
        expected = max(expected, offset + 1)
    return out


class HoleReader:
    """Reads ranges of a partition with a consumer of its own (no group), started at the
    first hole and kept: a transactional producer upstream leaves a one-offset hole (its
    commit marker) per transaction, each a fetch to check."""

    def __init__(self, options: dict[str, Any], max_fetch_bytes: int) -> None:
        self._options = options
        self._max_fetch_bytes = max_fetch_bytes
        self._consumer: AIOKafkaConsumer | None = None

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Refetched]:
        """The records at offsets [start, end) of ``topic``'s ``partition``."""
        if end - start > MAX_HOLE:
            log.warning(
                "%s[%d]: offsets %d to %d were not delivered; too many to read again",
                topic,
                partition,
                start,
                end - 1,
            )
            return []
        consumer = await self._started()
        tp = TopicPartition(topic, partition)
        found, complete = await _records_between(consumer, tp, start, end)
        if not complete:
            log.warning("%s[%d]: offsets %d to %d not read again", topic, partition, start, end)
        if found:
            log.warning(
                "%s[%d]: %d records between offsets %d and %d were not delivered by the "
                "consumer: read them from the broker",
                topic,
                partition,
                len(found),
                start,
                end - 1,
            )
        return [Refetched(r) for r in found]

    async def any_committed(self, topic: str, partition: int, start: int, end: int) -> bool:
        """Whether a committed record lies at offsets [start, end) of ``topic``'s
        ``partition``; True when it cannot tell (a range over MAX_HOLE, or no answer within
        the fetch timeout), so that a caller waiting for records goes on waiting."""
        if end - start > MAX_HOLE:
            return True
        consumer = await self._started()
        tp = TopicPartition(topic, partition)
        found, complete = await _records_between(consumer, tp, start, end, first_only=True)
        return bool(found) or not complete

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **self._options,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",  # as the worker reads
                auto_offset_reset="earliest",  # a hole below the log start: from there
                max_partition_fetch_bytes=self._max_fetch_bytes,
                fetch_max_bytes=self._max_fetch_bytes,
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()


async def _records_between(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    start: int,
    end: int,
    first_only: bool = False,
) -> tuple[list[ConsumerRecord[bytes, bytes]], bool]:
    """The committed records at offsets [start, end) (only the first with ``first_only``),
    and whether the range was read to its end within the fetch timeout."""
    consumer.assign([tp])
    consumer.seek(tp, start)
    found: list[ConsumerRecord[bytes, bytes]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FETCH_TIMEOUT_SECONDS
    while await consumer.position(tp) < end:  # past a marker too: read_committed skips it
        if loop.time() > deadline:
            return found, False
        batch = await consumer.getmany(tp, timeout_ms=500)
        found.extend(r for r in batch.get(tp, []) if start <= r.offset < end)
        if found and first_only:
            return found[:1], True
    return found, True
