"""``driftline replay``: the worker's pipeline over a file of topic messages, without Kafka.

Each line of the events file is one message value as it would be on the predictions topic
(one event, a row batch or a columnar batch). Lines go through ``Pipeline.process_messages``
in the worker's micro-batch size; since detectors do not depend on how a stream is cut, the
alerts are the ones the worker would have sent for the same messages in the same order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from driftline.config import Config, InputError
from driftline.events.records import Alert
from driftline.monitoring.pipeline import Pipeline


@dataclass
class ReplaySummary:
    messages: int = 0
    events: int = 0
    alerts: list[Alert] = field(default_factory=list)
    dead_letters: Counter[str] = field(default_factory=Counter)


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


def replay(
    config: Config,
    messages: Iterable[bytes],
    alerts_out: IO[bytes] | None = None,
    dead_out: IO[bytes] | None = None,
) -> ReplaySummary:
    pipeline = Pipeline.from_config(config)
    state: dict[str, bytes] = {}
    summary = ReplaySummary()

    def run(values: list[bytes]) -> None:
        result = pipeline.process_messages(values, state)
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

    for take in takes(
        messages, config.worker.micro_batch_messages, config.worker.micro_batch_bytes
    ):
        run(take)
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
