"""Two fixes to faust-streaming (0.15, pinned below 0.16 in pyproject) that driftline needs.

1. Changelog ends from the broker.

With ``processing_guarantee=exactly_once`` Faust's table recovery asks where each changelog
partition ends through ``AIOKafkaConsumerThread._highwaters``, which answers with the
consumer's cached *last stable offset*. That cache is empty for a partition not fetched since
the last rebalance, which Faust reads as "the changelog is empty": a worker taking over a
partition then skipped restoring its state and went on from stale or missing detector state,
or crashed on the consistency check. tests/test_scale_out_integration.py caught it (three
workers joining and leaving: three models' counts lost thousands of events). The fix asks the
broker instead (``end_offsets``: under read_committed, the last stable offset), as Faust does
already for at_least_once.

2. Short fetch polls. Faust's consumer asks the broker to hold a fetch up to 1.5 s while its
partitions have no new data, and aiokafka keeps one fetch in flight per broker. While the
worker works through a partition's fetched messages, that fetch polls the other (idle)
partitions: when the worker is done, its next fetch of the busy partition waits behind the
poll. The worker sat idle a quarter of the time on 500-event messages (bench/throughput.py).
Polls of 100 ms cost an idle worker ten small requests a second; data still comes at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Transport

FETCH_MAX_WAIT_MS = 100
_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


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


def apply() -> None:
    """Install the fixes (idempotent); create_app calls it before building the app."""
    AIOKafkaConsumerThread._highwaters = _highwaters_from_broker  # type: ignore[method-assign]
    AIOKafkaConsumerThread._create_worker_consumer = (  # type: ignore[method-assign]
        _worker_consumer_with_short_polls
    )
