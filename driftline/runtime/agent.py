"""The agent's work on each take: holes filled, the pipeline run, its output on the broker,
then the state and the applied position written, in that order.

State (with the offsets it has applied) is written only once the alerts and dead letters of a
run are on the broker: a crash in between replays the messages and sends the same alerts
again (same ids, so delivery skips them), rather than marking them applied with their alerts
lost.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import faust
import orjson
from faust.streams import _current_event
from faust.types import EventT

from driftline.config import Config
from driftline.events.codec import DeadLetter, Reason
from driftline.events.records import (
    ComparisonWindow,
    PerformanceWindow,
    RetrainingRequest,
    SamplePointer,
    compact_json,
)
from driftline.monitoring.pipeline import BatchResult, Pipeline
from driftline.observability.metrics import WorkerMetrics
from driftline.runtime.holes import HoleReader, Refetched, holes
from driftline.runtime.lag import LagReporter
from driftline.runtime.patches import undecodable_batches
from driftline.runtime.profiles import ProfileFeed
from driftline.runtime.state import ModelRecords, position_key, position_offset
from driftline.runtime.take import take_bounded

log = logging.getLogger(__name__)


@dataclass
class Outputs:
    """The topics a run's output goes to."""

    alerts: Any
    retraining: Any
    samples: Any
    performance_windows: Any
    feature_windows: Any
    dead_letter: Any


class TakeRunner:
    """What the monitoring agent does with the takes of its stream."""

    def __init__(
        self,
        app: faust.App,
        config: Config,
        pipeline: Pipeline,
        metrics: WorkerMetrics,
        tables: tuple[MutableMapping[str, bytes], MutableMapping[str, bytes]],
        outputs: Outputs,
        readers: tuple[HoleReader, HoleReader],
        profiles: ProfileFeed | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.pipeline = pipeline
        self.metrics = metrics
        self.state, self.joins = tables
        self.outputs = outputs
        self.hole_reader, self.restore_reader = readers
        self.profiles = profiles
        self.records = ModelRecords(self.state)
        inputs = {config.topics.predictions, config.topics.labels, config.topics.retraining_status}
        self.lag = LagReporter(inputs, metrics.consumer_lag)
        self.limit = config.worker.max_message_bytes  # what the producer can send

    async def run(self, stream: faust.StreamT) -> None:
        """The agent: takes of messages, each processed whole or not at all."""
        assert isinstance(stream, faust.Stream)  # take_bounded needs the Stream's internals
        worker = self.config.worker
        linger = worker.micro_batch_linger_ms / 1000.0
        try:
            takes = take_bounded(
                stream, worker.micro_batch_messages, worker.micro_batch_bytes, linger
            )
            async for taken in takes:
                try:
                    await self.process_take(taken)
                except BaseException:  # a crash, or the worker stopping (SIGTERM) mid-run
                    self.records.writes.clear()  # not applied
                    # take_bounded acks the whole take as the stream closes, and the
                    # consumer's last commit would cover events whose state was never written.
                    # Marked as acked here, Faust's ack skips them and their offsets stay
                    # uncommitted: they are read again, and the applied-offset watermarks
                    # skip those whose state did get written.
                    for event in taken:
                        event.message.acked = True
                    raise
        finally:
            await self.hole_reader.close()
            await self.restore_reader.close()  # opened again if a restore needs it

    async def process_take(self, taken: Sequence[EventT]) -> None:
        if self.profiles is not None:  # published while running: used from this take on
            for profile in self.profiles.drain():
                if self.pipeline.add_profile(profile):
                    log.info(
                        "profile %s of %s version %s now in use",
                        profile.version[:12],
                        profile.model_id,
                        profile.model_version,
                    )
        for taken_group in by_partition(taken):
            # Table writes go to the changelog partition of the current event; a model's
            # messages all come from one partition (keyed by model_id), so make an event
            # of this group current before its state is written.
            _set_current_event(taken_group[-1])
            await self._process_group(taken_group)
        # The events are acked when the next take starts, and a commit covers the acked
        # offsets. Table writes wait in Faust's producer buffer until a task hands them to
        # Kafka's producer (into the open transaction): hand them over first, or a commit
        # (or a SIGTERM's last commit) can mark these events done without them.
        await changelog_handed_over(self.app)

    async def _process_group(self, taken_group: list[EventT]) -> None:
        group, position = await self._without_holes(taken_group)
        group, skipped = without_undecodable(group, position)
        metrics = self.metrics
        for event, _ in skipped:
            key = event.message.key or b""
            model = metrics.model_label(key.decode("utf-8", "replace"))
            metrics.dead_letters.labels(model, Reason.UNDECODABLE_BATCH).inc()
        await self._publish(self._run_pipeline(group), group, skipped)
        self.records.apply()
        # After the models' records, on the same changelog partition: a restore that has
        # this record has theirs, so reading on from here counts nothing twice. A run of
        # replays only leaves the position where it was.
        last = taken_group[-1].message
        position = max(position, last.offset)
        self.state[position_key(last.topic, last.partition)] = compact_json({"offset": position})
        self.lag.processed_up_to(last.tp, last.offset)

    def _run_pipeline(self, group: list[EventT | Refetched]) -> BatchResult:
        if not group:
            return BatchResult()
        sources = [(e.message.topic, e.message.partition, e.message.offset) for e in group]
        values = [e.value for e in group]
        topic = group[-1].message.topic
        if topic == self.config.topics.labels:
            return self.pipeline.process_labels(values, self.records, self.joins, sources)
        if topic == self.config.topics.retraining_status:
            return self.pipeline.process_status(values, self.records, sources)
        return self.pipeline.process_messages(values, self.records, sources, self.joins)

    async def _without_holes(self, group: list[EventT]) -> tuple[list[EventT | Refetched], int]:
        """The group with any records the consumer skipped put back in their place
        (runtime/holes.py), and the partition's applied position before it (-1: none)."""
        first = group[0].message
        applied = self.state.get(position_key(first.topic, first.partition))
        if applied is None:  # nothing applied from this partition yet
            return list(group), -1
        position = position_offset(applied)
        missing = holes(position + 1, [e.message.offset for e in group])
        if not missing:  # the usual run
            return list(group), position
        found = {
            end: await self.hole_reader.read(first.topic, first.partition, start, end)
            for start, end in missing
        }
        out: list[EventT | Refetched] = []
        for event in group:
            out.extend(found.pop(event.message.offset, ()))
            out.append(event)
        return out, position

    async def _with_sample(
        self, request: RetrainingRequest, rows: list[dict[str, Any]]
    ) -> RetrainingRequest:
        """The request, pointing at its sample, once the sample is on the broker."""
        pointer = await _send_sample(self.outputs.samples, request.model_id.encode(), rows)
        return replace(request, sample=pointer)

    async def _publish(
        self,
        result: BatchResult,
        events: Sequence[EventT | Refetched],
        skipped: Sequence[tuple[EventT | Refetched, DeadLetter]] = (),
    ) -> None:
        """Send what a run produced and wait until the broker has it."""
        sent: list[Awaitable[Any]] = []
        out = self.outputs
        dead_letters = [(events[index], dead) for index, dead in result.dead_letters]
        for event, dead in [*skipped, *dead_letters]:
            message = event.message
            value, headers = dead_letter_record(
                dead, message.topic, message.partition, message.offset, self.limit
            )
            # an undecodable batch's marker has no key: one source partition's dead letters
            # share a partition (and so keep their order) under its topic/partition name
            key = message.key or f"{message.topic}/{message.partition}".encode()
            sent.append(await out.dead_letter.send(key=key, value=value, headers=headers))
        for alert in result.alerts:
            log.info("alert %s: %s", alert.status, alert.message)
            sent.append(await out.alerts.send(key=alert.model_id.encode(), value=alert.to_json()))
        for request in result.retraining_requests:
            log.info("retraining request %s: %s", request.idempotency_key, request.reason)
            rows = result.samples.get(request.idempotency_key)
            if rows:
                request = await self._with_sample(request, rows)
            value = request.to_json()
            sent.append(await out.retraining.send(key=request.model_id.encode(), value=value))
        windows: list[PerformanceWindow | ComparisonWindow] = [*result.performance_windows]
        windows.extend(result.comparison_windows)
        for window in windows:
            key = window.model_id.encode()
            sent.append(await out.performance_windows.send(key=key, value=window.to_json()))
        for history in result.feature_windows:
            key = history.model_id.encode()
            sent.append(await out.feature_windows.send(key=key, value=history.to_json()))
        if sent:
            await asyncio.gather(*sent)


SAMPLE_ROWS_PER_MESSAGE = 500


async def _send_sample(topic: Any, key: bytes, rows: list[dict[str, Any]]) -> SamplePointer:
    """The rows on ``topic`` in messages of JSON arrays, in order on one partition (one key):
    the pointer a retraining request carries to them."""
    sent = []
    for start in range(0, len(rows), SAMPLE_ROWS_PER_MESSAGE):
        value = orjson.dumps(rows[start : start + SAMPLE_ROWS_PER_MESSAGE])
        sent.append(await topic.send(key=key, value=value))
    first = await sent[0]
    await asyncio.gather(*sent[1:])
    labelled = sum(1 for row in rows if row.get("label") is not None)
    return SamplePointer(
        events=len(rows),
        labelled=labelled,
        topic=topic.get_topic_name(),
        partition=first.partition,
        offset=first.offset,
        messages=len(sent),
    )


async def changelog_handed_over(app: faust.App) -> None:
    buffer = app.producer.buffer
    while buffer.size:  # flush() gives up after 0.1 s without progress: until it is empty
        await buffer.flush()


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
