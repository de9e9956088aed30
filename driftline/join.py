"""The label join: each label meets its prediction by ``prediction_id``, within a time-to-live.

State lives in a ``MutableMapping[str, bytes]``: the worker's ``label-join`` Faust table (its
changelog restores it after a restart or a rebalance; predictions and labels of a model are
keyed by model id onto the same partition number of their two topics, so one worker holds
both sides), a dict in tests. One key per waiting prediction or label, so a write costs the
same however many are waiting:

- ``p/<model>/<id>``: a prediction waiting for its label (time, version, prediction, score);
- ``l/<model>/<id>``: a label that came first, waiting for its prediction;
- ``x/<model>/<bucket>/<n>``: the ids one batch added in a time bucket (expiry index), and
  ``xn/<model>/<bucket>``: how many such lists the bucket has;
- ``w/<model>``: the watermark (latest event time seen) and the oldest bucket not yet expired.

Time is event time: a bucket expires once the watermark has passed its end by the TTL, so a
replay of the same messages expires the same entries. Waiting predictions that expire were
never labelled (normal: many never are); waiting labels that expire had no prediction.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from driftline.records import compact_json
from driftline.stream.codec import LabelBatch, PredictionBatch

BUCKETS_PER_TTL = 24  # expiry granularity: a twenty-fourth of the TTL


@dataclass(frozen=True)
class Joined:
    """A prediction with its label."""

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


class LabelJoin:
    def __init__(
        self, ttl_seconds: dict[str, float], segments: dict[str, list[str]] | None = None
    ) -> None:
        self.ttl = dict(ttl_seconds)  # per model whose performance is monitored
        self.segments = segments or {}  # per model: the segment names kept with a prediction

    def monitors(self, model_id: str) -> bool:
        return model_id in self.ttl

    def add_predictions(
        self, batch: PredictionBatch, store: MutableMapping[str, bytes]
    ) -> JoinResult:
        model, result = batch.model_id, JoinResult()
        added: dict[int, list[str]] = {}
        bucket_seconds = self.ttl[model] / BUCKETS_PER_TTL
        for i, pid in enumerate(batch.prediction_ids):
            ts = float(batch.timestamps[i])
            score = batch.scores[i] if batch.scores else None
            segment = self._segment(model, batch.segments[i] if batch.segments else None)
            early = store.get(f"l/{model}/{pid}")
            if early is not None:
                label_time, label = orjson.loads(early)
                del store[f"l/{model}/{pid}"]
                version, prediction = batch.versions[i], batch.predictions[i]
                result.pairs.append(
                    Joined(pid, ts, version, prediction, score, label, label_time, segment)
                )
                result.counts.joined += 1
                continue
            key = f"p/{model}/{pid}"
            if key in store:
                result.counts.duplicates += 1
                continue
            store[key] = compact_json([ts, batch.versions[i], batch.predictions[i], score, segment])
            added.setdefault(math.floor(ts / bucket_seconds), []).append("p" + pid)
        self._index(model, added, store)
        self._advance(model, batch.timestamps, store, result.counts)
        return result

    def add_labels(self, batch: LabelBatch, store: MutableMapping[str, bytes]) -> JoinResult:
        model, result = batch.model_id, JoinResult()
        added: dict[int, list[str]] = {}
        bucket_seconds = self.ttl[model] / BUCKETS_PER_TTL
        for pid, ts_raw, label in zip(
            batch.prediction_ids, batch.timestamps, batch.labels, strict=True
        ):
            ts = float(ts_raw)
            waiting = store.get(f"p/{model}/{pid}")
            if waiting is not None:
                p_time, version, prediction, score, segment = orjson.loads(waiting)
                del store[f"p/{model}/{pid}"]
                result.pairs.append(
                    Joined(pid, p_time, version, prediction, score, label, ts, segment)
                )
                result.counts.joined += 1
                continue
            key = f"l/{model}/{pid}"
            if key in store:
                result.counts.duplicates += 1
                continue
            store[key] = compact_json([ts, label])
            result.counts.waiting_labels += 1
            added.setdefault(math.floor(ts / bucket_seconds), []).append("l" + pid)
        self._index(model, added, store)
        self._advance(model, batch.timestamps, store, result.counts)
        return result

    def _segment(self, model: str, segment: Any) -> dict[str, str] | None:
        names = self.segments.get(model)
        if not names or not isinstance(segment, dict):
            return None
        return {n: str(segment[n])[:SEGMENT_CHARS] for n in names if segment.get(n) is not None}

    def waiting(self, model_id: str, store: MutableMapping[str, bytes]) -> int:
        """Entries waiting (a scan: for tests and benchmarks, not the hot path)."""
        prefixes = (f"p/{model_id}/", f"l/{model_id}/")
        return sum(1 for k in store if k.startswith(prefixes))

    def _index(
        self, model: str, added: dict[int, list[str]], store: MutableMapping[str, bytes]
    ) -> None:
        raw = store.get(f"w/{model}")
        oldest = orjson.loads(raw)[1] if raw else None
        if oldest is not None:  # late events go to the oldest live bucket, never a gone one
            clamped: dict[int, list[str]] = {}
            for bucket, ids in added.items():
                clamped.setdefault(max(bucket, oldest), []).extend(ids)
            added = clamped
        for bucket, ids in added.items():
            count_key = f"xn/{model}/{bucket}"
            n = int(store.get(count_key) or 0)
            store[f"x/{model}/{bucket}/{n}"] = compact_json(ids)
            store[count_key] = str(n + 1).encode()

    def _advance(
        self,
        model: str,
        times: Sequence[float] | Any,
        store: MutableMapping[str, bytes],
        counts: JoinCounts,
    ) -> None:
        """Move the watermark and expire the buckets it has left behind by the TTL."""
        if len(times) == 0:
            return
        mark_key = f"w/{model}"
        raw = store.get(mark_key)
        watermark, oldest = orjson.loads(raw) if raw else (-math.inf, None)
        watermark = max(watermark, float(max(times)))
        ttl = self.ttl[model]
        bucket_seconds = ttl / BUCKETS_PER_TTL
        # every bucket that ends at or before watermark - ttl is expired
        last_expired = math.floor((watermark - ttl) / bucket_seconds) - 1
        if oldest is None:
            oldest = math.floor(float(min(times)) / bucket_seconds)
        while oldest <= last_expired:
            self._expire_bucket(model, oldest, store, counts)
            oldest += 1
        store[mark_key] = compact_json([watermark, oldest])

    def _expire_bucket(
        self, model: str, bucket: int, store: MutableMapping[str, bytes], counts: JoinCounts
    ) -> None:
        count_key = f"xn/{model}/{bucket}"
        raw = store.get(count_key)
        if raw is None:
            return
        for n in range(int(raw)):
            list_key = f"x/{model}/{bucket}/{n}"
            for entry in orjson.loads(store.get(list_key) or b"[]"):
                key = f"{entry[0]}/{model}/{entry[1:]}"
                if key in store:
                    del store[key]
                    if entry[0] == "p":
                        counts.expired_predictions += 1
                    else:
                        counts.expired_labels += 1
            del store[list_key]
        del store[count_key]
