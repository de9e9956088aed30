"""RecentSample: a bounded uniform sample of a model's recent events, with their labels, for
the retraining job a request asks for.

Each event is kept with probability ``1 / every`` (geometric gaps: the cost is per kept
event), in column chunks (one per batch, cut with numpy, no per-event objects); the oldest
chunks are dropped once the rest hold ``PENDING * size`` events. Labels come later than their
predictions (often much later): a kept event whose label the join meets becomes a row of the
labelled sample, the latest ``size`` of them. A request gets the labelled rows, topped up with
the latest unlabelled ones to ``size``.

The sample lives in the worker's memory only (not in the changelog: it would be rewritten with
every batch): after a restart or a rebalance it fills again from the events that follow.
Labels are filled in as the label join meets the sampled predictions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftline.events.codec import PredictionBatch
from driftline.monitoring.join import Joined

PENDING = 4  # kept events waiting for their labels: this many times the sample's size


@dataclass
class _Chunk:
    """The sampled events of one batch (its rows, in columns), and their labels once known."""

    events: PredictionBatch
    labels: list[Any]
    label_times: list[float | None]

    def __len__(self) -> int:
        return len(self.events)

    def row(self, i: int) -> dict[str, Any]:
        events = self.events
        features: dict[str, Any] = {}
        for name, column in events.numeric.items():
            value = float(column[i])
            features[name] = None if value != value else value  # NaN: missing
        for name, column in events.categorical.items():
            features[name] = column[i]
        return {
            "prediction_id": events.prediction_ids[i],
            "timestamp": float(events.timestamps[i]),
            "model_version": events.versions[i],
            "features": features,
            "prediction": events.predictions[i],
            "label": self.labels[i],
            "label_time": self.label_times[i],
        }


class RecentSample:
    def __init__(self, size: int, every: int, seed: int = 0, labels: bool = True) -> None:
        """``every``: about one event in this many is kept; ``labels``: the model's labels are
        joined (its rows are looked up by id)."""
        self.size = size
        self.labels = labels
        self.rate = 1.0 / every
        self.rng = np.random.default_rng(seed)
        self.chunks: deque[_Chunk] = deque()
        self.count = 0
        self.labelled: deque[dict[str, Any]] = deque(maxlen=size)
        self._skip = self._gap() - 1  # events before the next sampled one
        self._by_id: dict[str, tuple[_Chunk, int]] = {}  # prediction id -> where, for labels

    def _gap(self) -> int:
        return int(self.rng.geometric(self.rate))

    def add(self, batch: PredictionBatch) -> None:
        """Offer every event of ``batch`` to the sample."""
        n = len(batch)
        if self._skip >= n:
            self._skip -= n
            return
        # the sampled positions: gaps between them are geometric (a Bernoulli process), so
        # the cost is per sampled event, not per event
        gaps = self.rng.geometric(self.rate, int(n * self.rate * 1.5) + 8)
        positions = self._skip + np.concatenate(([0], np.cumsum(gaps)))
        while positions[-1] < n:  # not enough draws: more
            more = self.rng.geometric(self.rate, int(n * self.rate) + 8)
            positions = np.concatenate((positions, positions[-1] + np.cumsum(more)))
        inside = int(np.searchsorted(positions, n))
        keep = positions[:inside]
        self._skip = int(positions[inside]) - n
        chunk = _Chunk(batch.rows(keep), [None] * len(keep), [None] * len(keep))
        self.chunks.append(chunk)
        self.count += len(chunk)
        if self.labels:
            for j, pid in enumerate(chunk.events.prediction_ids):
                self._by_id[pid] = (chunk, j)
        while self.count - len(self.chunks[0]) >= PENDING * self.size:
            old = self.chunks.popleft()
            self.count -= len(old)
            if self.labels:
                for pid in old.events.prediction_ids:
                    if self._by_id.get(pid, (None,))[0] is old:
                        del self._by_id[pid]

    def add_labels(self, pairs: list[Joined]) -> None:
        """Fill in the labels of sampled predictions the join met."""
        if not self._by_id:
            return
        for pair in pairs:
            found = self._by_id.pop(pair.prediction_id, None)
            if found is not None:
                chunk, j = found
                chunk.labels[j] = pair.label
                chunk.label_times[j] = pair.label_time
                self.labelled.append(chunk.row(j))

    def rows(self) -> list[dict[str, Any]]:
        """At most ``size`` rows: the latest labelled ones, then the latest unlabelled ones;
        in event-time order."""
        rows = list(self.labelled)
        for row in self._unlabelled_newest_first():
            if len(rows) >= self.size:
                break
            rows.append(row)
        return sorted(rows, key=lambda r: r["timestamp"])

    def _unlabelled_newest_first(self) -> Iterator[dict[str, Any]]:
        for chunk in reversed(self.chunks):
            for j in range(len(chunk) - 1, -1, -1):
                if chunk.labels[j] is None:
                    yield chunk.row(j)

    def __len__(self) -> int:
        return len(self.labelled) + self.count
