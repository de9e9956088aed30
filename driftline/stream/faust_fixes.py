"""A fix to faust-streaming (0.15, pinned below 0.16 in pyproject) that driftline needs.

With ``processing_guarantee=exactly_once`` Faust's table recovery asks where each changelog
partition ends through ``AIOKafkaConsumerThread._highwaters``, which answers with the
consumer's cached *last stable offset*. That cache is empty for a partition not fetched since
the last rebalance, which Faust reads as "the changelog is empty": a worker taking over a
partition then skipped restoring its state and went on from stale or missing detector state,
or crashed on the consistency check. tests/test_scale_out_integration.py caught it (three
workers joining and leaving: three models' counts lost thousands of events). The fix asks the
broker instead (``end_offsets``: under read_committed, the last stable offset), as Faust does
already for at_least_once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread


async def _highwaters_from_broker(
    self: AIOKafkaConsumerThread, partitions: list[Any]
) -> Mapping[Any, int]:
    consumer = self._ensure_consumer()
    offsets: Mapping[Any, int] = await consumer.end_offsets(partitions)
    return offsets


def apply() -> None:
    """Install the fix (idempotent); create_app calls it before building the app."""
    AIOKafkaConsumerThread._highwaters = _highwaters_from_broker  # type: ignore[method-assign]
