"""Fetches of idle partitions held 100 ms, not 1.5 s.

Breaks: aiokafka keeps one fetch in flight per broker, and Faust asks the broker to hold it up
to 1.5 s while the partitions have no new data: the next fetch of a busy partition waited
behind a poll of the idle ones, and the worker sat idle between batches.
Fix: the worker's consumer gets ``fetch_max_wait_ms`` 100 (an idle worker: ten small requests
a second). Test: bench/throughput.py (worker against getmany).
Upstream: a Faust setting for the consumer's ``fetch_max_wait_ms``.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Transport

from driftline.runtime.patches.guard import require

VERIFIED_FAUST = ("0.15.",)
FETCH_MAX_WAIT_MS = 100
_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


def worker_consumer_with_short_polls(self: AIOKafkaConsumerThread, transport: Transport) -> Any:
    consumer = _create_worker_consumer(self, transport)
    consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
    return consumer


def apply() -> None:
    require("faust-streaming", VERIFIED_FAUST, __name__)
    AIOKafkaConsumerThread._create_worker_consumer = (  # type: ignore[method-assign]
        worker_consumer_with_short_polls
    )
