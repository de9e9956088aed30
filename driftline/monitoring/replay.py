"""``driftline replay``: the worker's pipeline over a file of topic messages, without Kafka.

Each line of the events file is one message value as it would be on the predictions topic
(one event, a row batch or a columnar batch) or on the labels topic (a label event or a row
batch of them: events with a ``label`` and no ``features``), in the order they arrived; or
the labels are in a file of their own, and the two files (each in time order) are merged by
their messages' timestamps, a prediction before a label of the same time. Runs
of prediction lines go through ``Pipeline.process_messages`` and runs of label lines through
``Pipeline.process_labels``, in the worker's micro-batch size; since detectors and the label
join do not depend on how a stream is cut, the alerts are the ones the worker would have sent
for the same messages in the same order. Every closed performance window (realised and
estimated) can be written out as a record, as the worker publishes them.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import IO

import orjson

from driftline.config import Config, InputError
from driftline.detectors.profile import ReferenceProfile
from driftline.events.codec import message_time
from driftline.events.records import Alert
from driftline.monitoring.pipeline import Pipeline


@dataclass
class ReplaySummary:
    messages: int = 0
    events: int = 0
    alerts: list[Alert] = field(default_factory=list)
    dead_letters: Counter[str] = field(default_factory=Counter)
    labels: int = 0  # label messages among the messages
    windows: int = 0  # performance windows closed


def read_messages(path: Path) -> Iterator[bytes]:
    """The file's non-blank lines. Its first must be a JSON object (a message as on the
    topic): a file of something else (a CSV, say) would be all dead letters."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    _check_first_line(path)
    return _lines(path)


def _check_first_line(path: Path) -> None:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                if isinstance(orjson.loads(line), dict):
                    return
            except orjson.JSONDecodeError:
                pass
            raise InputError(
                f"{path}, line {number}: not a JSON object; replay reads JSON lines, one "
                "predictions-topic message (an event or a batch) per line (a table of training "
                "data is for driftline baseline)"
            )


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for line in handle:
            line = line.strip()
            if line:
                yield line


def merged_by_time(predictions: Iterable[bytes], labels: Iterable[bytes]) -> Iterator[bytes]:
    """Two files' messages, each file in time order, as one stream in time order; on equal
    times predictions come first. A message without a readable timestamp keeps its place
    after the one before it in its file (it goes on to the dead letters)."""

    def timed(messages: Iterable[bytes], kind: int) -> Iterator[tuple[float, int, bytes]]:
        last = float("-inf")
        for value in messages:
            stamp = message_time(value)
            last = last if stamp is None else stamp
            yield last, kind, value

    merged = heapq.merge(timed(predictions, 0), timed(labels, 1), key=lambda t: t[:2])
    return (value for _, _, value in merged)


def is_label_message(value: bytes) -> bool:
    """A labels-topic message: its (first) event has a ``label`` and no ``features``."""
    if b'"label"' not in value:  # most lines: no parse needed
        return False
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    if isinstance(doc, dict) and isinstance(doc.get("events"), list) and doc["events"]:
        doc = doc["events"][0]
    return isinstance(doc, dict) and "label" in doc and "features" not in doc


def replay(
    config: Config,
    messages: Iterable[bytes],
    alerts_out: IO[bytes] | None = None,
    dead_out: IO[bytes] | None = None,
    windows_out: IO[bytes] | None = None,
    history_out: IO[bytes] | None = None,
    profiles: Iterable[ReferenceProfile] = (),
) -> ReplaySummary:
    """``profiles``: more versions' profiles beside the config's files (what the workers
    read from the profiles topic)."""
    pipeline = Pipeline.from_config(config)
    for profile in profiles:
        pipeline.add_profile(profile)
    state: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    summary = ReplaySummary()

    def run(values: list[bytes], labels: bool) -> None:
        if labels:
            result = pipeline.process_labels(values, state, joins)
            summary.labels += len(values)
        else:
            result = pipeline.process_messages(values, state, joins=joins)
        summary.messages += len(values)
        summary.events += result.events
        summary.alerts.extend(result.alerts)
        for index, dead in result.dead_letters:
            summary.dead_letters[dead.reason] += 1
            if dead_out is not None:
                line = {
                    "line": summary.messages - len(values) + index + 1,
                    "reason": dead.reason,
                    "detail": dead.detail,
                    "row": dead.row,
                    "payload": dead.payload.decode("utf-8", "replace"),
                }
                dead_out.write(orjson.dumps(line) + b"\n")
        if alerts_out is not None:
            for alert in result.alerts:
                alerts_out.write(alert.to_json() + b"\n")
        summary.windows += len(result.performance_windows)
        if history_out is not None:
            for history in result.feature_windows:
                history_out.write(history.to_json() + b"\n")
        if windows_out is not None:
            for window in result.performance_windows:
                windows_out.write(window.to_json() + b"\n")
            for comparison in result.comparison_windows:
                windows_out.write(comparison.to_json() + b"\n")

    for labels, run_of_kind in groupby(messages, key=is_label_message):
        worker = config.worker
        for take in takes(run_of_kind, worker.micro_batch_messages, worker.micro_batch_bytes):
            run(take, labels)
    return summary


def takes(messages: Iterable[bytes], max_messages: int, max_bytes: int) -> Iterator[list[bytes]]:
    """The messages in the worker's takes: up to ``max_messages`` of them, fewer once they
    reach ``max_bytes`` bytes (runtime/take.py bounds the worker's takes the same way)."""
    take: list[bytes] = []
    size = 0
    for value in messages:
        take.append(value)
        size += len(value)
        if len(take) >= max_messages or size >= max_bytes:
            yield take
            take, size = [], 0
    if take:
        yield take
