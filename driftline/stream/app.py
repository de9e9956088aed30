"""The Faust app: topics, the state table and thin agents around ``Pipeline``.

Agents decode nothing and decide nothing themselves: they hand message bytes to the pipeline,
write what it returns to Kafka (alerts, dead letters with reason headers) and leave detector
state in a table whose changelog restores it after a restart or a rebalance.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from driftline.config import Config
from driftline.pipeline import MessageResult, Pipeline

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

    async def publish(result: MessageResult, message: Any) -> None:
        for dead in result.dead_letters:
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

    @app.agent(predictions, name="driftline.monitor-predictions")
    async def monitor_predictions(stream: faust.StreamT) -> None:
        async for event in stream.events():
            result = pipeline.process_predictions(event.value, state)
            await publish(result, event.message)

    return app
