"""The delivery loop: alerts and retraining requests from their topics to HTTP receivers.

It runs in the worker beside the Faust agents but on its own aiokafka consumer (group
``<app_id>-delivery``), because it needs plain semantics: take a record, post it to each
receiver (``Notifier`` retries), note each delivery on the compacted ``deliveries`` topic
(waiting for the broker's ack), then commit the record's offset. So

- a record is committed only once every receiver has it or it is parked on the dead-letter
  topic (reason ``undeliverable``): an outage loses nothing;
- a record read again (after a crash before the commit, or published twice because the
  monitor replayed it after a crash) is skipped for every receiver that already has it: the
  ``deliveries`` topic is read whole at start;
- records of one partition (one model) are delivered in order, one at a time.

A crash between a receiver's 200 and the delivery note re-sends that one record to that
receiver after the restart: at-least-once, which is why every message carries its dedup id.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from driftline.config import Config
from driftline.notify import Delivery, Notifier
from driftline.records import Alert, RetrainingRequest
from driftline.stream.topics import aiokafka_options

log = logging.getLogger(__name__)


class DeliveryLoop:
    def __init__(self, config: Config, notifier: Notifier) -> None:
        self.config = config
        self.notifier = notifier
        self.topics = config.topics
        self.endpoints = {m: c.retraining.endpoint for m, c in config.models.items()}
        self.delivered: dict[str, bytes] = {}  # receiver/record id -> outcome

    async def run(self) -> None:
        options = aiokafka_options(self.config.kafka)
        producer = AIOKafkaProducer(**options, acks="all")
        consumer = AIOKafkaConsumer(
            self.topics.alerts,
            self.topics.retraining_requests,
            **options,
            group_id=f"{self.config.worker.app_id}-delivery",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await producer.start()
        try:
            await self._load_deliveries(options)
            await consumer.start()
            try:
                while True:
                    batches = await consumer.getmany(timeout_ms=1000, max_records=100)
                    for tp, records in batches.items():
                        for record in records:
                            await self._handle(record, producer)
                            await consumer.commit({tp: record.offset + 1})
            finally:
                await consumer.stop()
        finally:
            await producer.stop()
            await self.notifier.close()

    async def _load_deliveries(self, options: dict[str, Any]) -> None:
        """Everything the deliveries topic says was delivered, up to its end now."""
        reader = AIOKafkaConsumer(**options, enable_auto_commit=False, group_id=None)
        await reader.start()
        try:
            tp = TopicPartition(self.topics.deliveries, 0)
            reader.assign([tp])
            await reader.seek_to_beginning(tp)
            end = (await reader.end_offsets([tp]))[tp]
            while await reader.position(tp) < end:
                for records in (await reader.getmany(tp, timeout_ms=1000)).values():
                    for r in records:
                        if r.key is not None and r.value is not None:
                            self.delivered[r.key.decode()] = r.value
        finally:
            await reader.stop()
        log.info("delivery loop: %d deliveries on record", len(self.delivered))

    async def _handle(self, record: ConsumerRecord[bytes, bytes], producer: Any) -> None:
        if record.value is None:
            return
        item: Alert | RetrainingRequest
        if record.topic == self.topics.alerts:
            item = Alert.from_json(record.value)
            receivers, ident = self.notifier.routes(item), f"{item.alert_id}/{item.status}"
        else:
            item = RetrainingRequest.from_json(record.value)
            endpoint = self.endpoints.get(item.model_id)
            receivers, ident = (
                ([endpoint] if endpoint else []),
                f"retraining/{item.idempotency_key}",
            )
        for name in receivers:
            key = f"{name}/{ident}"
            if key in self.delivered:
                self.notifier.count(name, "duplicate")
                continue
            outcome = await self.notifier.deliver(name, item)
            if not outcome.delivered:
                await self._park(producer, record, name, outcome)
            value = outcome.to_bytes()
            await producer.send_and_wait(self.topics.deliveries, key=key.encode(), value=value)
            self.delivered[key] = value
            # counted once noted: a delivery the metric shows is one a restart will not repeat
            self.notifier.count(name, "delivered" if outcome.delivered else "parked")

    async def _park(
        self, producer: Any, record: ConsumerRecord[bytes, bytes], receiver: str, outcome: Delivery
    ) -> None:
        await producer.send_and_wait(
            self.topics.dead_letter,
            key=record.key,
            value=record.value,
            headers=[
                ("reason", b"undeliverable"),
                ("detail", f"after {outcome.attempts} attempts: {outcome.result}".encode()),
                ("receiver", receiver.encode()),
                ("source.topic", record.topic.encode()),
                ("source.partition", str(record.partition).encode()),
                ("source.offset", str(record.offset).encode()),
            ],
        )


async def run_forever(loop: DeliveryLoop) -> None:
    """Run the loop; if Kafka drops it, log and start again (nothing is committed early)."""
    while True:
        try:
            await loop.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery loop failed; restarting it in 5 s")
            await asyncio.sleep(5.0)
