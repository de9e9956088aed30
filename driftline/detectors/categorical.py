"""CategoricalCUSUM: reference-based sequential test for a shift in category frequencies.

The post-change frequencies are unknown, so the test estimates them from the recent past
(exponentially forgotten counts, shrunk towards the reference) and scores each value by the
log-likelihood ratio ``ln(q_hat(x) / p_ref(x))``. The estimate for a block of values uses only
values before the block, which keeps every increment a true likelihood ratio: the CUSUM's
false-alarm bound ``e^h`` holds as for a known alternative (an adaptive CUSUM in the sense of
Lorden and Pollak). Blocks are fixed positions of the stream, so batch and sequential feeding
agree exactly.

The reference frequencies are themselves estimates from a finite sample. With the reference's
row count, the null is every set of frequencies within a 3-sigma Wilson interval of each
reference frequency, and each increment is taken against the member of that set closest to the
current estimate (its reverse information projection): ``q_hat(x) / p*(x)`` then has mean at
most one under every member, so the bound holds whichever of them the stream follows, and a
small reference does not read as drift.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import orjson

from driftline.detectors.base import Verdict, register
from driftline.detectors.kernels import adaptive_categorical_scan
from driftline.detectors.profile import (
    OTHER,
    CategoricalProfile,
    FeatureProfile,
    bucket_codes,
    category_index,
)


@register
class CategoricalCUSUM:
    """Adaptive likelihood-ratio CUSUM over category frequencies against the reference.

    Parameters
    ----------
    categories
        Reference categories; anything else counts in the last ("other") bucket.
    probs
        Reference probabilities, one per category and then the "other" bucket.
    arl
        Values between false alarms this detector may spend.
    block
        Values per block: the alternative estimate is refreshed between blocks.
    memory
        Roughly how many recent values the alternative estimate remembers.
    prior
        Pseudo-counts of the reference in the alternative estimate (its shrinkage).
    reference_count
        Rows the reference frequencies were counted from; None takes them as exact.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.detectors.profile import categorical_profile
    >>> rng = np.random.default_rng(3)
    >>> cities = np.array(["north", "south", "east", "west"], dtype=object)
    >>> ref = categorical_profile(rng.choice(cities, 20_000, p=[0.4, 0.3, 0.2, 0.1]))
    >>> det = CategoricalCUSUM.from_reference(ref, arl=1e6)
    >>> det.update(rng.choice(cities, 5_000, p=[0.4, 0.3, 0.2, 0.1])).drift
    False
    >>> v = det.update(rng.choice(cities, 2_000, p=[0.2, 0.3, 0.2, 0.3]))
    >>> v.drift, 0 < v.first_alarm < 600
    (True, True)
    """

    name: ClassVar[str] = "categorical_cusum"
    MIN_PROB: ClassVar[float] = 1e-4
    #: the width of each frequency's confidence interval, in standard errors
    Z: ClassVar[float] = 3.0
    input_kind: ClassVar[str] = "categorical"
    calibrated: ClassVar[bool] = True

    def __init__(
        self,
        categories: tuple[str, ...],
        probs: tuple[float, ...],
        arl: float = 1e6,
        block: int = 25,
        memory: float = 200.0,
        prior: float = 20.0,
        reference_count: int | None = None,
    ) -> None:
        if len(probs) != len(categories) + 1:
            raise ValueError("probs needs one entry per category plus the 'other' bucket")
        self.categories = tuple(categories)
        self.probs = tuple(float(p) for p in probs)
        self.arl = float(arl)
        self.block = int(block)
        self.memory = float(memory)
        self.prior = float(prior)
        self.threshold = float(np.log(self.arl))
        self._index = category_index(self.categories)
        # A bucket never seen in the reference still gets a little mass, or one new value
        # would be an infinite likelihood ratio (the data-quality monitor names new values).
        p = np.asarray(self.probs, dtype=np.float64)
        p = np.maximum(p, self.MIN_PROB)
        self._p = p / p.sum()
        self._log_p = np.log(self._p)
        self._decay = float(np.exp(-self.block / self.memory))
        self.reference_count = reference_count
        self._low, self._high = frequency_bounds(self._p, reference_count, self.Z, self.MIN_PROB)
        self.reset()

    @classmethod
    def from_reference(
        cls, profile: FeatureProfile | None, arl: float, **params: Any
    ) -> CategoricalCUSUM:
        if not isinstance(profile, CategoricalProfile):
            raise TypeError("categorical_cusum needs a categorical reference profile")
        present = round(profile.count * (1 - profile.missing_rate))
        params.setdefault("reference_count", present or None)
        return cls(profile.categories, profile.probs, arl=arl, **params)

    def reset(self) -> None:
        self._counts = np.zeros(self._p.size)  # forgotten counts of the blocks before
        self._pending = np.zeros(self._p.size)  # counts of the current, unfinished block
        self._stat = np.zeros(1)
        self._n = 0

    def codes(self, x: np.ndarray) -> np.ndarray:
        """Bucket index per value (unknown values and OTHER go to the last bucket)."""
        return bucket_codes(self._index, x)

    def update(self, x: np.ndarray) -> Verdict:
        return self.update_codes(self.codes(np.asarray(x, dtype=object)))

    def update_codes(self, codes: np.ndarray) -> Verdict:
        """``update`` for values already bucketed (``codes``' buckets, as ints)."""
        alarms, first, peak = adaptive_categorical_scan(
            codes,
            self._n,
            self._log_p,
            self._p,
            self.prior,
            self._decay,
            self.block,
            self._counts,
            self._pending,
            self._stat,
            self.threshold,
            self._low,
            self._high,
        )
        self._n += codes.size
        stat = float(self._stat[0])
        return Verdict(
            statistic=stat,
            threshold=self.threshold,
            drift=alarms > 0,
            warning=stat > self.threshold / 2,
            n_seen=self._n,
            alarms=alarms,
            first_alarm=first,
            peak=peak,
        )

    def state_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "n": self._n,
                "s": float(self._stat[0]),
                "c": self._counts.tolist(),
                "p": self._pending.tolist(),
            }
        )

    def restore(self, state: bytes) -> None:
        doc = orjson.loads(state)
        counts = np.asarray(doc["c"], dtype=np.float64)
        if counts.shape != self._counts.shape:
            raise ValueError("state does not match this detector's configuration")
        self._n = int(doc["n"])
        self._stat = np.asarray([doc["s"]], dtype=np.float64)
        self._counts = counts
        self._pending = np.asarray(doc["p"], dtype=np.float64)


def frequency_bounds(
    p: np.ndarray, count: int | None, z: float, floor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score intervals at ``z`` standard errors around frequencies counted from
    ``count`` rows (lower ends at least ``floor``); two empty arrays without a count."""
    if not count:
        return np.empty(0), np.empty(0)
    n, z2 = float(count), z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return np.maximum(centre - half, floor), np.minimum(centre + half, 1.0)


__all__ = ["OTHER", "CategoricalCUSUM", "frequency_bounds"]
