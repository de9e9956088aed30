"""The label join: each label meets its prediction by ``prediction_id``, within a time-to-live.

State lives in a ``MutableMapping[str, bytes]``: the worker's ``label-join`` Faust table (its
changelog restores it after a restart or a rebalance; predictions and labels of a model are
keyed by model id onto the same partition number of their two topics, so one worker holds
both sides), a dict in tests and in replay.

Every table write is a changelog message, so the join writes a few records per batch, not one
per event:

- ``c/<model>/<bucket>/<n>``: a chunk, what one batch changed in one time bucket: the
  predictions (``p``) and labels (``l``) it left waiting there, and the ids of those waiting
  there that it joined (``dp``, ``dl``);
- ``w/<model>``: the watermark (latest event time seen), the oldest bucket not yet expired,
  and how many chunks each live bucket has.

What is waiting is kept in memory as well (``_Waiting``), rebuilt from the chunks when the
table's ``w/<model>`` record is not the one this join last wrote (a restart, a restore, a
partition that moved here). Time is event time: a bucket expires, chunks and all, once the
watermark has passed its end by the TTL, so a replay of the same messages expires the same
entries. Waiting predictions that expire were never labelled (normal: many never are);
waiting labels that expire had no prediction.

Versions on the same traffic (a shadow challenger answering the same requests with the same
``prediction_id``) each leave a prediction waiting under that id, and one label meets them
all: a pair per version. A second prediction of the same id and version is a duplicate. A
label that came before its predictions meets the first of them only.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import orjson

from driftline.events.codec import LabelBatch, PredictionBatch
from driftline.events.records import compact_json

BUCKETS_PER_TTL = 24  # expiry granularity: a twenty-fourth of the TTL
# A chunk record larger than this is split, so that one batch of predictions with many class
# scores stays well under the changelog producer's request size.
MAX_CHUNK_BYTES = 1 << 20


class Joined(NamedTuple):
    """A prediction with its label (a tuple: one is made per label)."""

    prediction_id: str
    time: float  # the prediction's event time
    version: str
    prediction: Any
    score: Any  # the event's scores (class -> probability) or None
    label: Any
    label_time: float
    segment: dict[str, str] | None = None  # the configured segments' values


@dataclass
class JoinCounts:
    joined: int = 0  # labels that met their prediction (either arriving second)
    waiting_labels: int = 0  # labels stored to wait for their prediction
    expired_predictions: int = 0  # predictions whose label never came within the TTL
    expired_labels: int = 0  # labels whose prediction never came within the TTL
    duplicates: int = 0  # a second label (or prediction) for an id already waiting

    def add(self, other: JoinCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class JoinResult:
    pairs: list[Joined] = field(default_factory=list)
    counts: JoinCounts = field(default_factory=JoinCounts)


SEGMENT_CHARS = 64  # segment values are clipped: they become metric labels


@dataclass
class _Waiting:
    """One model's waiting entries in memory, and the ``w/<model>`` record they match."""

    mark: bytes | None = None
    watermark: float = -math.inf
    oldest: int | None = None  # the oldest bucket not yet expired
    chunks: dict[int, int] = field(default_factory=dict)  # bucket -> chunks written
    # Entries as compact JSON, parsed when joined: a few times smaller than parsed lists.
    # id -> (bucket, [time, version, prediction, score, segment])
    predictions: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    # id -> (bucket, [time, label])
    labels: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    # id -> the entries of other versions for an id in ``predictions``, in arrival order
    shadows: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)

    def holds_version(self, pid: str, version: str) -> bool:
        """Whether a prediction of ``version`` waits under ``pid`` (which waits)."""
        held = [self.predictions[pid], *self.shadows.get(pid, ())]
        return any(orjson.loads(raw)[1] == version for _, raw in held)

    def drop(self, pid: str, bucket: int) -> int:
        """Drop the predictions of ``pid`` that wait in ``bucket``; how many."""
        dropped = 0
        shadows = self.shadows.pop(pid, [])
        kept = [entry for entry in shadows if entry[0] != bucket]
        dropped += len(shadows) - len(kept)
        held = self.predictions.get(pid)
        if held is not None and held[0] == bucket:
            del self.predictions[pid]
            dropped += 1
            if kept:  # the next version's prediction takes the expired one's place
                self.predictions[pid] = kept.pop(0)
        if kept:
            self.shadows[pid] = kept
        return dropped

    def bucket(self, ts: float, bucket_seconds: float) -> int:
        """The bucket of an event time; late events go to the oldest live one, never a gone one."""
        b = math.floor(ts / bucket_seconds)
        return b if self.oldest is None else max(b, self.oldest)

    def buckets(self, times: np.ndarray, bucket_seconds: float) -> list[int]:
        """``bucket`` of each of ``times``."""
        found = np.floor(np.asarray(times, dtype=np.float64) / bucket_seconds).astype(np.int64)
        if self.oldest is not None:
            np.maximum(found, self.oldest, out=found)
        return list(found.tolist())


class _Changes:
    """What one batch changes, by bucket: the chunks it will write."""

    def __init__(self) -> None:
        self.by_bucket: dict[int, dict[str, list[Any]]] = {}
        self.joined: list[tuple[int, str]] = []  # (bucket, id) of the entries a batch joined

    def add(self, bucket: int, kind: str, item: Any) -> None:
        self.by_bucket.setdefault(bucket, {}).setdefault(kind, []).append(item)


class LabelJoin:
    def __init__(
        self, ttl_seconds: dict[str, float], segments: dict[str, list[str]] | None = None
    ) -> None:
        self.ttl = dict(ttl_seconds)  # per model whose performance is monitored
        self.segments = segments or {}  # per model: the segment names kept with a prediction
        # per (store, model); valid while the store's w/<model> record is the one written here
        self._memory: dict[tuple[int, str], _Waiting] = {}

    def monitors(self, model_id: str) -> bool:
        return model_id in self.ttl

    def add_predictions(
        self, batch: PredictionBatch, store: MutableMapping[str, bytes]
    ) -> JoinResult:
        model, result = batch.model_id, JoinResult()
        waiting = self._waiting(model, store)
        changes = _Changes()
        n = len(batch)
        times = batch.timestamps.tolist()
        buckets = waiting.buckets(batch.timestamps, self.ttl[model] / BUCKETS_PER_TTL)
        scores = batch.scores or [None] * n
        segments = self._segments(model, batch.segments, n)
        versions, predictions = batch.versions, batch.predictions
        labels, waiting_predictions = waiting.labels, waiting.predictions
        added: dict[int, list[Any]] = {}  # bucket -> the chunk's new entries
        for i, pid in enumerate(batch.prediction_ids):
            if labels:  # labels that came first: rare, and only then looked up
                early = labels.pop(pid, None)
                if early is not None:
                    bucket, raw = early
                    label_time, label = orjson.loads(raw)
                    changes.add(bucket, "dl", pid)
                    result.pairs.append(
                        Joined(
                            pid,
                            times[i],
                            versions[i],
                            predictions[i],
                            scores[i],
                            label,
                            label_time,
                            segments[i],
                        )
                    )
                    result.counts.joined += 1
                    continue
            entry = [times[i], versions[i], predictions[i], scores[i], segments[i]]
            if pid in waiting_predictions:
                if waiting.holds_version(pid, versions[i]):
                    result.counts.duplicates += 1
                    continue
                waiting.shadows.setdefault(pid, []).append((buckets[i], compact_json(entry)))
            else:
                waiting_predictions[pid] = (buckets[i], compact_json(entry))
            entry.insert(0, pid)
            added.setdefault(buckets[i], []).append(entry)
        for bucket, entries in added.items():
            changes.by_bucket.setdefault(bucket, {})["p"] = entries
        self._write(model, waiting, changes, batch.timestamps, store, result.counts)
        return result

    def add_labels(self, batch: LabelBatch, store: MutableMapping[str, bytes]) -> JoinResult:
        model, result = batch.model_id, JoinResult()
        waiting = self._waiting(model, store)
        changes = _Changes()
        bucket_seconds = self.ttl[model] / BUCKETS_PER_TTL
        pop, pairs, joined, loads = (
            waiting.predictions.pop,
            result.pairs,
            changes.joined,
            orjson.loads,
        )
        shadows = waiting.shadows
        for pid, ts, label in zip(
            batch.prediction_ids, batch.timestamps.tolist(), batch.labels, strict=True
        ):
            found = pop(pid, None)
            if found is not None:
                result.counts.joined += 1
                held = [found, *shadows.pop(pid, ())] if shadows else [found]
                for bucket, raw in held:
                    p_time, version, prediction, score, segment = loads(raw)
                    joined.append((bucket, pid))
                    pairs.append(
                        Joined(pid, p_time, version, prediction, score, label, ts, segment)
                    )
                continue
            if pid in waiting.labels:
                result.counts.duplicates += 1
                continue
            bucket = waiting.bucket(ts, bucket_seconds)
            waiting.labels[pid] = (bucket, compact_json([ts, label]))
            changes.add(bucket, "l", [pid, ts, label])
            result.counts.waiting_labels += 1
        for bucket, pid in dict.fromkeys(changes.joined):
            changes.by_bucket.setdefault(bucket, {}).setdefault("dp", []).append(pid)
        self._write(model, waiting, changes, batch.timestamps, store, result.counts)
        return result

    def _segments(self, model: str, segments: Any, n: int) -> list[dict[str, str] | None]:
        """The configured segments' values of each row (None when none are configured)."""
        if not self.segments.get(model) or not segments:
            return [None] * n
        return [self._segment(model, segment) for segment in segments]

    def _segment(self, model: str, segment: Any) -> dict[str, str] | None:
        names = self.segments.get(model)
        if not names or not isinstance(segment, dict):
            return None
        return {n: str(segment[n])[:SEGMENT_CHARS] for n in names if segment.get(n) is not None}

    def waiting(self, model_id: str, store: MutableMapping[str, bytes]) -> int:
        """Predictions and labels waiting for their other half."""
        waiting = self._waiting(model_id, store)
        shadows = sum(len(entries) for entries in waiting.shadows.values())
        return len(waiting.predictions) + shadows + len(waiting.labels)

    def _waiting(self, model: str, store: MutableMapping[str, bytes]) -> _Waiting:
        key = (id(store), model)
        mark = store.get(f"w/{model}")
        known = self._memory.get(key)
        if known is not None and known.mark is mark:
            return known
        waiting = _rebuilt(model, mark, store)
        self._memory[key] = waiting
        return waiting

    def _write(
        self,
        model: str,
        waiting: _Waiting,
        changes: _Changes,
        times: Sequence[float] | Any,
        store: MutableMapping[str, bytes],
        counts: JoinCounts,
    ) -> None:
        """Write the batch's chunks, move the watermark and expire the buckets it has left
        behind by the TTL, then the ``w/<model>`` record."""
        for bucket, content in changes.by_bucket.items():
            for part in _split(content):
                n = waiting.chunks.get(bucket, 0)
                store[f"c/{model}/{bucket}/{n}"] = part
                waiting.chunks[bucket] = n + 1
        if len(times) == 0 and not changes.by_bucket:
            return
        if len(times):
            ttl = self.ttl[model]
            bucket_seconds = ttl / BUCKETS_PER_TTL
            waiting.watermark = max(waiting.watermark, float(max(times)))
            if waiting.oldest is None:
                waiting.oldest = math.floor(float(min(times)) / bucket_seconds)
            # every bucket that ends at or before watermark - ttl is expired
            last_expired = math.floor((waiting.watermark - ttl) / bucket_seconds) - 1
            for bucket in sorted(b for b in waiting.chunks if b <= last_expired):
                _expire(model, bucket, waiting, store, counts)
            waiting.oldest = max(waiting.oldest, last_expired + 1)
        mark = compact_json([waiting.watermark, waiting.oldest, sorted(waiting.chunks.items())])
        store[f"w/{model}"] = mark
        waiting.mark = mark


def _split(content: dict[str, list[Any]]) -> list[bytes]:
    """A batch's changes to one bucket as chunk records of at most MAX_CHUNK_BYTES (unless a
    single entry is larger)."""
    raw = compact_json(content)
    items = sum(len(v) for v in content.values())
    if len(raw) <= MAX_CHUNK_BYTES or items <= 1:
        return [raw]
    first: dict[str, list[Any]] = {}
    second: dict[str, list[Any]] = {}
    half = items // 2
    taken = 0
    for kind, values in content.items():
        cut = max(0, min(len(values), half - taken))
        if cut:
            first[kind] = values[:cut]
        if cut < len(values):
            second[kind] = values[cut:]
        taken += cut
    return _split(first) + _split(second)


def _rebuilt(model: str, mark: bytes | None, store: MutableMapping[str, bytes]) -> _Waiting:
    """A model's waiting entries from its chunks in the store."""
    waiting = _Waiting(mark=mark)
    if mark is None:
        return waiting
    watermark, oldest, chunks = orjson.loads(mark)
    waiting.watermark, waiting.oldest = watermark, oldest
    waiting.chunks = {int(bucket): int(n) for bucket, n in chunks}
    for bucket, n in sorted(waiting.chunks.items()):
        # per bucket: a joined id's removal is written to each bucket it waited in, after it
        predictions: dict[str, list[bytes]] = {}  # id -> its versions' entries, in order
        labels: dict[str, tuple[int, bytes]] = {}
        for i in range(n):
            chunk = orjson.loads(store[f"c/{model}/{bucket}/{i}"])
            for pid, *entry in chunk.get("p", ()):
                predictions.setdefault(pid, []).append(compact_json(entry))
            for pid, *entry in chunk.get("l", ()):
                labels[pid] = (bucket, compact_json(entry))
            for pid in chunk.get("dp", ()):
                predictions.pop(pid, None)
            for pid in chunk.get("dl", ()):
                labels.pop(pid, None)
        for pid, entries in predictions.items():
            for raw in entries:
                if pid in waiting.predictions:
                    waiting.shadows.setdefault(pid, []).append((bucket, raw))
                else:
                    waiting.predictions[pid] = (bucket, raw)
        waiting.labels.update(labels)
    return waiting


def _expire(
    model: str,
    bucket: int,
    waiting: _Waiting,
    store: MutableMapping[str, bytes],
    counts: JoinCounts,
) -> None:
    for i in range(waiting.chunks.pop(bucket)):
        key = f"c/{model}/{bucket}/{i}"
        chunk = orjson.loads(store[key])
        for pid in dict.fromkeys(pid for pid, *_ in chunk.get("p", ())):
            counts.expired_predictions += waiting.drop(pid, bucket)
        for pid, *_ in chunk.get("l", ()):
            held = waiting.labels.get(pid)
            if held is not None and held[0] == bucket:
                del waiting.labels[pid]
                counts.expired_labels += 1
        del store[key]
