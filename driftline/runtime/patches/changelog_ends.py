"""Changelog ends asked of the broker.

Breaks: under exactly_once Faust's recovery takes a changelog partition's end from the
consumer's cached last stable offset, empty for a partition not fetched since the rebalance;
a worker taking over a partition skipped restoring its state.
Fix: ``AIOKafkaConsumerThread._highwaters`` asks the broker (``end_offsets``), as Faust already
does under at_least_once. Test: tests/integration/test_scale_out_integration.py.
Upstream: faust-streaming's ``_highwaters`` using ``end_offsets`` for read_committed too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from driftline.runtime.patches.guard import require

VERIFIED_FAUST = ("0.15.",)


async def highwaters_from_broker(
    self: AIOKafkaConsumerThread, partitions: list[Any]
) -> Mapping[Any, int]:
    consumer = self._ensure_consumer()
    offsets: Mapping[Any, int] = await consumer.end_offsets(partitions)
    return offsets


def apply() -> None:
    require("faust-streaming", VERIFIED_FAUST, __name__)
    AIOKafkaConsumerThread._highwaters = highwaters_from_broker  # type: ignore[method-assign]
