"""The Faust app: topics, the state table and thin agents around ``Pipeline``.

Agents decode nothing and decide nothing themselves: they hand message bytes to the pipeline,
write what it returns to Kafka (alerts, dead letters with reason headers) and leave detector
state in a table whose changelog restores it after a restart or a rebalance.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import EventT

from driftline.config import Config
from driftline.pipeline import BatchResult, Pipeline

log = logging.getLogger(__name__)

STATE_TABLE = "detector-state"


def create_app(config: Config, pipeline: Pipeline, partitions: int | None = None) -> faust.App:
    """Build the worker's Faust app; ``partitions`` is the predictions topic's real count."""
    partitions = partitions or config.topics.partitions
    app = faust.App(
        config.worker.app_id,
        broker=[f"kafka://{host}" for host in config.kafka.bootstrap_servers.split(",")],
        store="memory://",
        value_serializer="raw",
        topic_partitions=partitions,
        topic_replication_factor=config.topics.replication_factor,
        table_standby_replicas=0,
        processing_guarantee=config.worker.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        datadir=config.worker.data_dir,
        web_enabled=False,
        producer_max_request_size=config.worker.max_message_bytes + 65536,
        consumer_max_fetch_size=max(config.worker.max_message_bytes * 2, 4 * 1024 * 1024),
    )
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "partitions": partitions,
    }
    predictions = app.topic(config.topics.predictions, **raw)
    alerts = app.topic(config.topics.alerts, **raw)
    dead_letter = app.topic(config.topics.dead_letter, **raw)
    state = app.Table(
        STATE_TABLE,
        key_type=str,
        value_type=bytes,  # Faust picks json for the str keys and raw for the bytes values
        partitions=partitions,
    )

    async def publish(result: BatchResult, events: Sequence[EventT]) -> None:
        for index, dead in result.dead_letters:
            message = events[index].message
            headers = [
                ("reason", dead.reason.encode()),
                ("detail", dead.detail.encode()),
                ("source.topic", str(message.topic).encode()),
                ("source.partition", str(message.partition).encode()),
                ("source.offset", str(message.offset).encode()),
            ]
            if dead.row is not None:
                headers.append(("source.row", str(dead.row).encode()))
            await dead_letter.send(key=message.key, value=dead.payload, headers=headers)
        for alert in result.alerts:
            log.info("alert %s: %s", alert.status, alert.message)
            await alerts.send(key=alert.model_id.encode(), value=alert.to_json())

    linger = config.worker.micro_batch_linger_ms / 1000.0

    @app.agent(predictions, name="driftline.monitor-predictions")
    async def monitor_predictions(stream: faust.StreamT) -> None:
        assert isinstance(stream, faust.Stream)  # take_events is not on the StreamT protocol
        async for taken in stream.take_events(config.worker.micro_batch_messages, linger):
            for group in by_partition(taken):
                # Table writes go to the changelog partition of the current event; a model's
                # messages all come from one partition (keyed by model_id), so make an event
                # of this group current before its state is written.
                _set_current_event(group[-1])
                sources = [(e.message.topic, e.message.partition, e.message.offset) for e in group]
                result = pipeline.process_messages([e.value for e in group], state, sources)
                await publish(result, group)

    return app


def by_partition(events: Sequence[EventT]) -> list[list[EventT]]:
    """Events grouped by source partition, each group in arrival order."""
    groups: dict[tuple[str, int], list[EventT]] = {}
    for event in events:
        groups.setdefault((event.message.topic, event.message.partition), []).append(event)
    return list(groups.values())


def _set_current_event(event: EventT) -> None:
    # faust has no public setter; this is what Stream._set_current_event does.
    _current_event.set(weakref.ref(event))
