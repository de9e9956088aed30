"""The Faust app: topics, the state table and thin agents around ``Pipeline``.

Agents decode nothing and decide nothing themselves: they hand message bytes to the pipeline,
write what it returns to Kafka (alerts, dead letters with reason headers) and leave detector
state in a table whose changelog restores it after a restart or a rebalance.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Iterator, MutableMapping, Sequence
from typing import Any

import faust
import orjson
from faust.sensors import Monitor
from faust.streams import _current_event
from faust.types import TP, CollectionT, EventT, Message, StreamT

from driftline.config import Config
from driftline.events.codec import DeadLetter, Reason
from driftline.events.records import compact_json
from driftline.monitoring.pipeline import BatchResult, Pipeline
from driftline.observability.notify import Notifier
from driftline.runtime import patches
from driftline.runtime.delivery import DeliveryLoop, run_forever
from driftline.runtime.holes import HoleReader, Refetched, holes
from driftline.runtime.lag import INTERVAL_SECONDS, LagReporter
from driftline.runtime.patches import undecodable_batches
from driftline.runtime.take import take_bounded
from driftline.runtime.topics import aiokafka_options, faust_credentials

log = logging.getLogger(__name__)

STATE_TABLE = "detector-state"
JOIN_TABLE = "label-join"


def create_app(config: Config, pipeline: Pipeline, partitions: int | None = None) -> faust.App:
    """Build the worker's Faust app; ``partitions`` is the predictions topic's real count."""
    partitions = partitions or config.topics.partitions
    patches.apply_all()  # before Faust builds anything (runtime/patches/)
    app = faust.App(
        config.worker.app_id,
        broker=[f"kafka://{host}" for host in config.kafka.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(config.kafka),  # SSL / SASL, as for every client
        store="memory://",
        value_serializer="raw",
        topic_partitions=partitions,
        topic_replication_factor=config.topics.replication_factor,
        table_standby_replicas=0,
        processing_guarantee=config.worker.processing_guarantee,
        broker_commit_interval=config.worker.commit_interval_seconds,
        broker_session_timeout=config.worker.session_timeout_seconds,
        consumer_group_instance_id=config.worker.group_instance_id(),
        consumer_auto_offset_reset="earliest",
        datadir=config.worker.data_dir,
        web_enabled=False,
        producer_max_request_size=config.worker.max_message_bytes + 65536,
        consumer_max_fetch_size=max(config.worker.max_message_bytes * 2, 4 * 1024 * 1024),
        Monitor=QuietMonitor,
    )
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
    inputs = app.topic(config.topics.predictions, config.topics.labels, **raw)
    alerts = app.topic(config.topics.alerts, **raw)
    retraining = app.topic(config.topics.retraining_requests, **raw)
    dead_letter = app.topic(config.topics.dead_letter, **raw)
    state = app.Table(
        STATE_TABLE,
        key_type=str,
        value_type=bytes,  # Faust picks json for the str keys and raw for the bytes values
        partitions=partitions,
    )
    # The label join: one record per waiting prediction or label (driftline/monitoring/join.py).
    joins = app.Table(JOIN_TABLE, key_type=str, value_type=bytes, partitions=partitions)

    limit = config.worker.max_message_bytes  # what the producer can send, headers aside

    async def publish(
        result: BatchResult,
        events: Sequence[EventT | Refetched],
        skipped: Sequence[tuple[EventT | Refetched, DeadLetter]] = (),
    ) -> None:
        """Send what a run produced and wait until the broker has it (see the agent)."""
        sent: list[Awaitable[Any]] = []
        dead_letters = [(events[index], dead) for index, dead in result.dead_letters]
        for event, dead in [*skipped, *dead_letters]:
            message = event.message
            value, headers = dead_letter_record(
                dead, message.topic, message.partition, message.offset, limit
            )
            sent.append(await dead_letter.send(key=message.key, value=value, headers=headers))
        for alert in result.alerts:
            log.info("alert %s: %s", alert.status, alert.message)
            sent.append(await alerts.send(key=alert.model_id.encode(), value=alert.to_json()))
        for request in result.retraining_requests:
            log.info("retraining request %s: %s", request.idempotency_key, request.reason)
            sent.append(
                await retraining.send(key=request.model_id.encode(), value=request.to_json())
            )
        if sent:
            await asyncio.gather(*sent)

    fetch_bytes = max(config.worker.max_message_bytes * 2, 4 << 20)
    # its own consumer: a restore runs while the agent's reader may hold an assignment
    restore_reader = HoleReader(aiokafka_options(config.kafka), fetch_bytes)
    patches.configure(
        applied=lambda: applied_positions(state),
        input_topics={config.topics.predictions, config.topics.labels},
        any_committed=restore_reader.any_committed,
    )

    hole_reader = HoleReader(aiokafka_options(config.kafka), fetch_bytes)

    async def without_holes(group: list[EventT]) -> tuple[list[EventT | Refetched], int]:
        """The group with any records the consumer skipped put back in their place
        (runtime/holes.py), and the partition's applied position before it (-1: none)."""
        first = group[0].message
        applied = state.get(position_key(first.topic, first.partition))
        if applied is None:  # nothing applied from this partition yet
            return list(group), -1
        position = position_offset(applied)
        missing = holes(position + 1, [e.message.offset for e in group])
        if not missing:  # the usual run
            return list(group), position
        found = {
            end: await hole_reader.read(first.topic, first.partition, start, end)
            for start, end in missing
        }
        out: list[EventT | Refetched] = []
        for event in group:
            out.extend(found.pop(event.message.offset, ()))
            out.append(event)
        return out, position

    linger = config.worker.micro_batch_linger_ms / 1000.0
    records = ModelRecords(state)
    lag = LagReporter(
        {config.topics.predictions, config.topics.labels}, pipeline.metrics.consumer_lag
    )

    @app.agent(inputs, name="driftline.monitor-predictions")
    async def monitor_predictions(stream: faust.StreamT) -> None:
        assert isinstance(stream, faust.Stream)  # take_bounded needs the Stream's internals
        try:
            takes = take_bounded(
                stream, config.worker.micro_batch_messages, config.worker.micro_batch_bytes, linger
            )
            async for taken in takes:
                try:
                    await process_take(taken)
                except BaseException:  # a crash, or the worker stopping (SIGTERM) mid-run
                    records.writes.clear()  # not applied
                    # take_bounded acks the whole take as the stream closes, and the
                    # consumer's last commit would cover events whose state was never written
                    # (a SIGTERM test lost them). Marked as acked here, Faust's ack skips them
                    # and their offsets stay uncommitted: they are read again, and the
                    # applied-offset watermarks skip those whose state did get written.
                    for event in taken:
                        event.message.acked = True
                    raise
        finally:
            await hole_reader.close()
            await restore_reader.close()  # opened again if a restore needs it

    async def process_take(taken: Sequence[EventT]) -> None:
        for taken_group in by_partition(taken):
            # Table writes go to the changelog partition of the current event; a model's
            # messages all come from one partition (keyed by model_id), so make an event
            # of this group current before its state is written.
            _set_current_event(taken_group[-1])
            group, position = await without_holes(taken_group)
            # State (with the offsets it has applied) is written only once the alerts and
            # dead letters of the run are on the broker: a crash in between replays the
            # messages and sends the same alerts again (same ids, so delivery skips them),
            # rather than marking them applied with their alerts lost.
            group, skipped = without_undecodable(group, position)
            for event, _ in skipped:
                key = event.message.key or b""
                model = pipeline.metrics.model_label(key.decode("utf-8", "replace"))
                pipeline.metrics.dead_letters.labels(model, Reason.UNDECODABLE_BATCH).inc()
            sources = [(e.message.topic, e.message.partition, e.message.offset) for e in group]
            values = [e.value for e in group]
            if not group:
                result = BatchResult()
            elif group[-1].message.topic == config.topics.labels:
                result = pipeline.process_labels(values, records, joins, sources)
            else:
                result = pipeline.process_messages(values, records, sources, joins)
            await publish(result, group, skipped)
            records.apply()
            # After the models' records, on the same changelog partition: a restore that
            # has this record has theirs, so reading on from here counts nothing twice.
            # A run of replays only leaves the position where it was.
            last = taken_group[-1].message
            position = max(position, last.offset)
            state[position_key(last.topic, last.partition)] = compact_json({"offset": position})
            lag.processed_up_to(last.tp, last.offset)
        # The events are acked when the next take starts, and a commit covers the acked
        # offsets. Table writes wait in Faust's producer buffer until a task hands them to
        # Kafka's producer (into the open transaction): hand them over first, or a commit
        # (or a SIGTERM's last commit) can mark these events done without them.
        await changelog_handed_over(app)

    @app.timer(INTERVAL_SECONDS, name="driftline.consumer-lag")
    async def report_lag() -> None:
        try:
            await lag.report(app.consumer)
        except Exception as exc:  # a metric must never stop the worker
            log.warning("consumer lag not measured: %s", exc)

    if needs_delivery(config):
        add_delivery_loop(app, config, pipeline)
    return app


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


async def changelog_handed_over(app: faust.App) -> None:
    buffer = app.producer.buffer
    while buffer.size:  # flush() gives up after 0.1 s without progress: until it is empty
        await buffer.flush()


def needs_delivery(config: Config) -> bool:
    return bool(config.notifications.routes) or any(
        m.retraining.endpoint for m in config.models.values()
    )


def add_delivery_loop(app: faust.App, config: Config, pipeline: Pipeline) -> None:
    """Post alerts and retraining requests to their receivers (see runtime/delivery.py)."""
    delivery = DeliveryLoop(config, Notifier(config.notifications, pipeline.metrics))

    @app.task
    async def deliver() -> None:
        await run_forever(delivery)


class ModelRecords(MutableMapping[str, bytes]):
    """The pipeline's state keys (``<model>/...``) kept as one table record per model.

    Writes wait in ``writes`` until ``apply()``, which writes each model's record whole. One
    record per model per run makes a run's state change atomic on the changelog: with a
    record per key, a kill -9 while the changelog was being written could leave some
    detectors updated and the applied offsets not, and the replay would count those
    messages twice there.
    """

    def __init__(self, table: MutableMapping[str, bytes]) -> None:
        self.table = table
        self.writes: dict[str, dict[str, bytes]] = {}
        self._parsed: dict[str, tuple[bytes | None, dict[str, bytes]]] = {}

    def model(self, model_id: str) -> dict[str, bytes]:
        raw = self.table.get(model_id)
        cached = self._parsed.get(model_id)
        if cached is not None and cached[0] is raw:
            return cached[1]
        data = {} if raw is None else {k: v.encode("latin-1") for k, v in orjson.loads(raw).items()}
        self._parsed[model_id] = (raw, data)
        return data

    def __getitem__(self, key: str) -> bytes:
        model_id = key.split("/", 1)[0]
        pending = self.writes.get(model_id)
        if pending is not None and key in pending:
            return pending[key]
        return self.model(model_id)[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        self.writes.setdefault(key.split("/", 1)[0], {})[key] = value

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("driftline never deletes detector state")

    def __iter__(self) -> Iterator[str]:
        keys = {k for m in self.table if not m.startswith(POSITIONS) for k in self.model(m)}
        keys.update(k for w in self.writes.values() for k in w)
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def apply(self) -> None:
        for model_id, writes in self.writes.items():
            data = {**self.model(model_id), **writes}
            # latin-1 maps each byte to one character: any bytes value survives JSON whole
            raw = compact_json({k: v.decode("latin-1") for k, v in data.items()})
            self.table[model_id] = raw
            self._parsed[model_id] = (raw, data)
        self.writes.clear()


def dead_letter_record(
    dead: DeadLetter, topic: str, partition: int, offset: int, limit: int
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The dead-letter topic's value and headers for one dead letter.

    The value is the original bytes (or the bad row's JSON), cut at ``limit`` bytes: only an
    oversize message is longer, and the worker's producer cannot send more (retrying the
    send would stop the partition for good). A cut value says so in its headers, and the
    whole message stays on the source topic at the offset the headers give.
    """
    headers = [
        ("reason", dead.reason.encode()),
        ("detail", dead.detail.encode()),
        ("source.topic", str(topic).encode()),
        ("source.partition", str(partition).encode()),
        ("source.offset", str(offset).encode()),
    ]
    if dead.row is not None:
        headers.append(("source.row", str(dead.row).encode()))
    value = dead.payload
    if len(value) > limit:
        headers.append(("payload.truncated_from", str(len(value)).encode()))
        value = value[:limit]
    return value, headers


POSITIONS = "_positions/"  # table keys of the input partitions' applied offsets


def position_key(topic: str, partition: int) -> str:
    return f"{POSITIONS}{topic}:{partition}"


def applied_positions(table: MutableMapping[str, bytes]) -> dict[tuple[str, int], int]:
    """The next offset to read of each input partition the state has a record of."""
    out = {}
    for key in list(table):
        if isinstance(key, str) and key.startswith(POSITIONS):
            topic, _, partition = key[len(POSITIONS) :].rpartition(":")
            out[(topic, int(partition))] = position_offset(table[key]) + 1
    return out


def position_offset(record: bytes) -> int:
    """The last applied offset a position record holds."""
    return int(orjson.loads(record)["offset"])


def without_undecodable(
    events: Sequence[EventT | Refetched], position: int
) -> tuple[list[EventT | Refetched], list[tuple[EventT | Refetched, DeadLetter]]]:
    """The events the client decoded, and a dead letter for each record batch it could not
    (marked by runtime/patches/undecodable_batches.py; the bytes stay on the source topic at
    its offsets).
    A marker at or below the partition's applied ``position`` was dead-lettered already."""
    kept, skipped = [], []
    for event in events:
        detail = undecodable_batches.undecodable_detail(event.message.headers)
        if detail is None:
            kept.append(event)
        elif event.message.offset > position:
            skipped.append((event, DeadLetter(Reason.UNDECODABLE_BATCH, detail, b"")))
    return kept, skipped


def by_partition(events: Sequence[EventT]) -> list[list[EventT]]:
    """Events grouped by source partition, each group in arrival order."""
    groups: dict[tuple[str, int], list[EventT]] = {}
    for event in events:
        groups.setdefault((event.message.topic, event.message.partition), []).append(event)
    return list(groups.values())


def _set_current_event(event: EventT) -> None:
    # faust has no public setter; this is what Stream._set_current_event does.
    _current_event.set(weakref.ref(event))
