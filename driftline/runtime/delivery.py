"""The delivery loop: alerts and retraining requests from their topics to HTTP receivers.

It runs in the worker beside the Faust agents, one lane per receiver, each on its own aiokafka
consumer (group ``<app_id>-delivery.<receiver>``), because it needs plain semantics: take a
record, post it to the lane's receiver if routed there (``Notifier`` retries), note the
delivery on the compacted ``deliveries`` topic (waiting for the broker's ack), then commit the
record's offset for that lane. So

- a dead or slow receiver holds only its own lane: the others' offsets go on;
- a record is committed in a lane only once its receiver has it or it is parked on the
  dead-letter topic (reason ``undeliverable``, header ``receiver``): an outage loses nothing;
- a record read again (after a crash before the commit, or published twice because the
  monitor replayed it after a crash) is skipped for every receiver that already has it: the
  ``deliveries`` topic is read whole at start;
- records of one partition (one model) are delivered to a receiver in order, one at a time.

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
from driftline.events.records import Alert, RetrainingRequest
from driftline.observability.notify import Notifier
from driftline.runtime.patches.undecodable_batches import undecodable_detail
from driftline.runtime.topics import aiokafka_options

log = logging.getLogger(__name__)


class DeliveryLoop:
    def __init__(self, config: Config, notifier: Notifier) -> None:
        self.config = config
        self.notifier = notifier
        self.topics = config.topics
        self.endpoints = {m: c.retraining.endpoint for m, c in config.models.items()}
        self.delivered: dict[str, bytes] = {}  # receiver/record id -> outcome
        routed = {name for route in config.notifications.routes for name in route.receivers}
        self.receivers = sorted(routed | {e for e in self.endpoints.values() if e})

    async def run(self) -> None:
        options = aiokafka_options(self.config.kafka)
        producer = AIOKafkaProducer(**options, acks="all")
        await producer.start()
        try:
            await self._load_deliveries(options)
            await asyncio.gather(*(self._lane_forever(name, producer) for name in self.receivers))
        finally:
            await producer.stop()
            await self.notifier.close()

    async def _lane_forever(self, receiver: str, producer: Any) -> None:
        """One receiver's lane; if Kafka drops it, log and start it again (the others go on)."""
        while True:
            try:
                await self._lane(receiver, producer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery to %s failed; restarting its lane in 5 s", receiver)
                await asyncio.sleep(5.0)

    async def _lane(self, receiver: str, producer: Any) -> None:
        """Everything routed to ``receiver``, in order per partition, with its own consumer
        group: its offsets move only as fast as this receiver takes records."""
        consumer = AIOKafkaConsumer(
            self.topics.alerts,
            self.topics.retraining_requests,
            **aiokafka_options(self.config.kafka),
            group_id=f"{self.config.worker.app_id}-delivery.{receiver}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=100)
                for tp, records in batches.items():
                    for record in records:
                        await self._handle(receiver, record, producer)
                        await consumer.commit({tp: record.offset + 1})
        finally:
            await consumer.stop()

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

    def _parsed(
        self, record: ConsumerRecord[bytes, bytes]
    ) -> tuple[Alert | RetrainingRequest, list[str], str]:
        """The record, the receivers it goes to, and its delivery id."""
        assert record.value is not None
        if record.topic == self.topics.alerts:
            alert = Alert.from_json(record.value)
            return alert, self.notifier.routes(alert), alert.delivery_key
        request = RetrainingRequest.from_json(record.value)
        endpoint = self.endpoints.get(request.model_id)
        return request, ([endpoint] if endpoint else []), f"retraining/{request.idempotency_key}"

    async def _handle(
        self, receiver: str, record: ConsumerRecord[bytes, bytes], producer: Any
    ) -> None:
        if record.value is None:
            unreadable = undecodable_detail(record.headers)
            if unreadable is not None:
                await self._park(producer, record, receiver, f"undecodable: {unreadable}")
            return
        try:
            item, receivers, ident = self._parsed(record)
        except Exception as exc:  # not a record driftline wrote: park it, never loop on it
            await self._park(producer, record, receiver, f"unreadable record: {exc}"[:500])
            return
        if receiver not in receivers:
            return
        key = f"{receiver}/{ident}"
        if key in self.delivered:
            self.notifier.count(receiver, "duplicate")
            return
        outcome = await self.notifier.deliver(receiver, item)
        if not outcome.delivered:
            await self._park(
                producer, record, receiver, f"after {outcome.attempts} attempts: {outcome.result}"
            )
        value = outcome.to_bytes()
        await producer.send_and_wait(self.topics.deliveries, key=key.encode(), value=value)
        self.delivered[key] = value
        # counted once noted: a delivery the metric shows is one a restart will not repeat
        self.notifier.count(receiver, "delivered" if outcome.delivered else "parked")

    async def _park(
        self, producer: Any, record: ConsumerRecord[bytes, bytes], receiver: str, detail: str
    ) -> None:
        await producer.send_and_wait(
            self.topics.dead_letter,
            key=record.key,
            value=record.value,
            headers=[
                ("reason", b"undeliverable"),
                ("detail", detail.encode()),
                ("receiver", receiver.encode()),
                ("source.topic", record.topic.encode()),
                ("source.partition", str(record.partition).encode()),
                ("source.offset", str(record.offset).encode()),
            ],
        )


async def run_forever(loop: DeliveryLoop) -> None:
    """Run the loop; if Kafka drops it, log and start again (nothing is committed early)."""
    if not loop.receivers:
        return
    while True:
        try:
            await loop.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery loop failed; restarting it in 5 s")
            await asyncio.sleep(5.0)
