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

import orjson

from driftline.events.codec import PredictionBatch
from driftline.events.records import FeatureWindow, QualityWindow, SubjectWindow
from driftline.monitoring.monitor import BatchOutcome

SEP = "\x1f"  # between a feature and a check in a state key: neither may hold it


class FeatureHistory:
    def __init__(self, model_id: str, every: int, reference_version: str) -> None:
        self.model_id = model_id
        self.every = every
        self.reference_version = reference_version
        self.key = f"{model_id}/_history"

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
        if not doc:
            doc = {"start": end - len(batch), "first": float(batch.timestamps[0])}
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
        )
