"""A model's predictions sorted into the buckets of its reference profile's prediction."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from driftline.detectors.profile import FeatureProfile, NumericProfile
from driftline.monitoring.monitor import prediction_column


class PredictionBuckets:
    """Sorts a model's predictions into the buckets of its reference profile's prediction.

    A numeric prediction goes to the profile's quantile bins (names like ``03: 4.2 to 5.1``, a
    number first so they sort in order); a class to its own name, or ``_other`` for classes the
    reference did not have. The bucket names come from the profile, never from the events.
    """

    def __init__(self, profile: FeatureProfile) -> None:
        self.numeric = isinstance(profile, NumericProfile)
        if isinstance(profile, NumericProfile):
            self.edges = np.asarray(profile.bin_edges, dtype=np.float64)
            self.names = _bin_names(profile.bin_edges)
            self.reference = profile.bin_probs
        else:
            self.names = [*profile.categories, "_other"]
            self.reference = profile.probs
            self.index = {c: i for i, c in enumerate(profile.categories)}

    def counts(self, predictions: Sequence[Any]) -> np.ndarray:
        """Predictions per bucket; predictions that are not a number (or not a class) skipped."""
        if self.numeric:
            values = prediction_column(list(predictions), "numeric")  # NaN if not a number
            values = values[np.isfinite(values)]
            bins = np.searchsorted(self.edges, values, side="right")
        else:
            other = len(self.names) - 1
            found = [self.index.get(str(p), other) for p in predictions if p is not None]
            bins = np.array(found, dtype=np.int64)
        return np.bincount(bins, minlength=len(self.names))


def _bin_names(edges: Sequence[float]) -> list[str]:
    width = len(str(len(edges) + 1))
    bounds = [f"{e:.4g}" for e in edges]
    inner = [f"{lo} to {hi}" for lo, hi in pairwise(bounds)]
    labels = [f"below {bounds[0]}", *inner, f"{bounds[-1]} and above"] if bounds else ["all"]
    return [f"{i + 1:0{width}d}: {label}" for i, label in enumerate(labels)]
