"""Feature history: a model's detectors and data-quality checks over windows of predictions,
as ``FeatureWindow`` records (the worker publishes them; ``driftline replay`` writes them; the
report plots them).

A window closes at the end of the batch that reaches a multiple of ``history_events``: the
detectors' statistics are known at batch ends, so each subject's share is the highest
statistic / threshold at a batch end inside the window. Its state sits in the pipeline's
mapping beside the detectors', so a restarted worker carries on the same window.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import numpy as np
import orjson

from driftline.events.codec import PredictionBatch
from driftline.events.records import FeatureWindow, LabelsWindow, QualityWindow, SubjectWindow
from driftline.monitoring.join import JoinCounts
from driftline.monitoring.monitor import BatchOutcome

SEP = "\x1f"  # between a feature and a check in a state key: neither may hold it
# label delays are counted in bins of a tenth of a decade, from 0.1 s to about four months:
# a window's quantiles to within 12%, in a few dozen numbers
DELAY_EDGES = 10.0 ** np.arange(-1.0, 7.05, 0.1)
OUTCOMES = ("joined", "waiting_labels", "expired_labels", "expired_predictions", "duplicates")


class FeatureHistory:
    def __init__(
        self, model_id: str, every: int, reference_version: str, labels: bool, scope: str = ""
    ) -> None:
        """``labels``: the model joins labels (performance on): windows say how that went;
        ``scope``: the prefix of the state key (one per monitored version)."""
        self.model_id = model_id
        self.every = every
        self.reference_version = reference_version
        self.labels = labels
        self.key = f"{scope or model_id}/_history"

    def add_labels(
        self, counts: JoinCounts, delays: np.ndarray, state: MutableMapping[str, bytes]
    ) -> None:
        """Fold a run of labels into the open window: the join's outcomes, and the delays
        (seconds) of the labels that joined."""
        raw = state.get(self.key)
        doc: dict[str, Any] = orjson.loads(raw) if raw else {}
        outcomes = doc.setdefault("outcomes", [0] * len(OUTCOMES))
        for i, name in enumerate(OUTCOMES):
            outcomes[i] += getattr(counts, name)
        bins = doc.setdefault("delays", {})
        which = np.searchsorted(DELAY_EDGES, np.maximum(delays, 0.0), side="right")
        for b, n in zip(*np.unique(which, return_counts=True), strict=True):
            bins[str(b)] = bins.get(str(b), 0) + int(n)
        state[self.key] = orjson.dumps(doc)

    def add(
        self,
        batch: PredictionBatch,
        outcome: BatchOutcome,
        end: int,
        state: MutableMapping[str, bytes],
    ) -> FeatureWindow | None:
        """Fold one batch's outcome (``end``: the model's predictions counted after it) into
        the open window; the window's record when this batch closes it."""
        if not len(batch):
            return None
        raw = state.get(self.key)
        doc: dict[str, Any] = orjson.loads(raw) if raw else {}
        if "start" not in doc:  # the window's first batch (labels may have come before it)
            doc.update(start=end - len(batch), first=float(batch.timestamps[0]))
            doc.update(subjects={}, quality={})
        subjects: dict[str, list[Any]] = doc["subjects"]
        for f in outcome.features:
            if not f.verdict.threshold > 0:
                continue
            share = max(f.verdict.statistic, f.verdict.peak) / f.verdict.threshold
            seen = subjects.get(f.feature)
            top = share if seen is None else max(seen[1], share)
            subjects[f.feature] = [f.detector, top, f.firing]
        quality: dict[str, list[Any]] = doc["quality"]
        for (feature, check), flagged in outcome.quality.items():
            name = f"{feature}{SEP}{check}"
            quality[name] = [quality.get(name, [0])[0] + int(flagged), False]
        for entry in quality.values():  # failing: as at the window's end
            entry[1] = False
        for feature, check in outcome.quality_failing:
            name = f"{feature}{SEP}{check}"
            quality[name] = [quality.get(name, [0])[0], True]
        if end // self.every == doc["start"] // self.every:
            state[self.key] = orjson.dumps(doc)
            return None
        state[self.key] = b""
        return FeatureWindow(
            self.model_id,
            batch.versions[-1],
            self.reference_version,
            end,
            end - int(doc["start"]),
            float(doc["first"]),
            float(batch.timestamps[-1]),
            {
                name: SubjectWindow(d, round(s, 4), bool(firing))
                for name, (d, s, firing) in subjects.items()
            },
            [
                QualityWindow(feature, check, flagged, failing)
                for (feature, check), (flagged, failing) in (
                    (tuple(name.split(SEP, 1)), entry) for name, entry in sorted(quality.items())
                )
                if flagged or failing
            ],
            self._labels(doc) if self.labels else None,
        )

    @staticmethod
    def _labels(doc: dict[str, Any]) -> LabelsWindow:
        outcomes = doc.get("outcomes", [0] * len(OUTCOMES))
        bins = {int(b): n for b, n in doc.get("delays", {}).items()}
        joined, waiting, expired_labels, expired_predictions, duplicates = outcomes
        return LabelsWindow(
            joined,
            waiting,
            expired_labels,
            expired_predictions,
            duplicates,
            _delay_quantile(bins, 0.5),
            _delay_quantile(bins, 0.9),
        )


def _delay_quantile(bins: dict[int, int], q: float) -> float | None:
    """The delay at quantile ``q`` of the histogram: its bin's geometric middle."""
    total = sum(bins.values())
    if not total:
        return None
    seen = 0
    for b in sorted(bins):
        seen += bins[b]
        if seen >= q * total:
            low = DELAY_EDGES[b - 1] if b > 0 else 0.0
            high = DELAY_EDGES[b] if b < DELAY_EDGES.size else DELAY_EDGES[-1]
            return round(float(np.sqrt(low * high)) if low > 0 else float(high) / 2, 3)
    return None
