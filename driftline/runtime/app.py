"""The Faust app: topics, the state tables, and a thin agent around ``TakeRunner``.

The agent decodes nothing and decides nothing itself: it hands message bytes to the pipeline,
writes what it returns to Kafka (alerts, dead letters with reason headers) and leaves detector
state in a table whose changelog restores it after a restart or a rebalance.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.sensors import Monitor
from faust.types import TP, CollectionT, EventT, Message, StreamT

from driftline.config import Config
from driftline.monitoring.pipeline import Pipeline
from driftline.observability.metrics import WorkerMetrics
from driftline.observability.notify import Notifier
from driftline.runtime import patches
from driftline.runtime.agent import Outputs, TakeRunner
from driftline.runtime.delivery import DeliveryLoop, run_forever
from driftline.runtime.holes import HoleReader
from driftline.runtime.lag import INTERVAL_SECONDS
from driftline.runtime.profiles import ProfileFeed
from driftline.runtime.state import JOIN_TABLE, STATE_TABLE, applied_positions
from driftline.runtime.topics import aiokafka_options, faust_credentials

log = logging.getLogger(__name__)


def create_app(
    config: Config,
    pipeline: Pipeline,
    metrics: WorkerMetrics,
    partitions: int | None = None,
    profiles: ProfileFeed | None = None,
) -> faust.App:
    """Build the worker's Faust app; ``partitions`` is the predictions topic's real count,
    ``profiles`` the profiles topic's feed (runtime/profiles.py), if it is read."""
    partitions = partitions or config.topics.partitions
    patches.apply_all()  # before Faust builds anything (runtime/patches/)
    app = faust_app(config, partitions)
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "partitions": partitions,
    }
    # Predictions and labels in one stream: a model's both land on the same partition number
    # (keyed by model id, same partition count), so one worker holds its detectors and its
    # label join, and one agent changes them in order.
    # Retraining statuses (keyed by model id too) close episodes kept in the same state.
    inputs = app.topic(
        config.topics.predictions, config.topics.labels, config.topics.retraining_status, **raw
    )
    outputs = Outputs(
        alerts=app.topic(config.topics.alerts, **raw),
        retraining=app.topic(config.topics.retraining_requests, **raw),
        samples=app.topic(config.topics.retraining_samples, **raw),
        performance_windows=app.topic(config.topics.performance_windows, **raw),
        feature_windows=app.topic(config.topics.feature_windows, **raw),
        dead_letter=app.topic(config.topics.dead_letter, **raw),
    )
    # Faust picks json for the str keys and raw for the bytes values
    state = app.Table(STATE_TABLE, key_type=str, value_type=bytes, partitions=partitions)
    # The label join's records (monitoring/join.py)
    joins = app.Table(JOIN_TABLE, key_type=str, value_type=bytes, partitions=partitions)

    fetch_bytes = max(config.worker.max_message_bytes * 2, 4 << 20)
    hole_reader = HoleReader(aiokafka_options(config.kafka), fetch_bytes)
    # its own consumer: a restore runs while the agent's reader may hold an assignment
    restore_reader = HoleReader(aiokafka_options(config.kafka), fetch_bytes)
    patches.configure(
        applied=lambda: applied_positions(state),
        input_topics={
            config.topics.predictions,
            config.topics.labels,
            config.topics.retraining_status,
        },
        any_committed=restore_reader.any_committed,
    )
    runner = TakeRunner(
        app,
        config,
        pipeline,
        metrics,
        (state, joins),
        outputs,
        (hole_reader, restore_reader),
        profiles,
    )
    app.agent(inputs, name="driftline.monitor-predictions")(runner.run)

    @app.timer(INTERVAL_SECONDS, name="driftline.consumer-lag")
    async def report_lag() -> None:
        try:
            await runner.lag.report(app.consumer)
        except Exception as exc:  # a metric must never stop the worker
            log.warning("consumer lag not measured: %s", exc)

    if needs_delivery(config):
        add_delivery_loop(app, config, metrics)
    return app


def faust_app(config: Config, partitions: int) -> faust.App:
    worker = config.worker
    return faust.App(
        worker.app_id,
        broker=[f"kafka://{host}" for host in config.kafka.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(config.kafka),  # SSL / SASL, as for every client
        store="memory://",
        value_serializer="raw",
        topic_partitions=partitions,
        topic_replication_factor=config.topics.replication_factor,
        table_standby_replicas=0,
        processing_guarantee=worker.processing_guarantee,
        broker_commit_interval=worker.commit_interval_seconds,
        broker_session_timeout=worker.session_timeout_seconds,
        consumer_group_instance_id=worker.group_instance_id(),
        consumer_auto_offset_reset="earliest",
        datadir=worker.data_dir,
        web_enabled=False,
        producer_max_request_size=worker.max_message_bytes + 65536,
        consumer_max_fetch_size=max(worker.max_message_bytes * 2, 4 * 1024 * 1024),
        Monitor=QuietMonitor,
    )


class QuietMonitor(Monitor):
    """Faust's monitor without its statistics per message and per table access.

    They feed only Faust's web views, which the worker turns off (its metrics are
    Prometheus'), and cost CPU on every message. What Faust's consumer asks of the monitor
    itself (partition ends, commits) stays.
    """

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT, event: EventT
    ) -> dict[str, Any] | None:
        return None

    def on_stream_event_out(
        self,
        tp: TP,
        offset: int,
        stream: StreamT,
        event: EventT,
        state: dict[str, Any] | None = None,
    ) -> None:
        pass

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_table_get(self, table: CollectionT, key: Any) -> None:
        pass

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        pass


def needs_delivery(config: Config) -> bool:
    return bool(config.notifications.routes) or any(
        m.retraining.endpoint for m in config.models.values()
    )


def add_delivery_loop(app: faust.App, config: Config, metrics: WorkerMetrics) -> None:
    """Post alerts and retraining requests to their receivers (see runtime/delivery.py)."""
    delivery = DeliveryLoop(config, Notifier(config.notifications, metrics))

    @app.task
    async def deliver() -> None:
        await run_forever(delivery)
