"""CategoricalCUSUM: reference-based sequential test for a shift in category frequencies.

The post-change frequencies are unknown, so the test estimates them from the recent past
(exponentially forgotten counts, shrunk towards the reference) and scores each value by the
log-likelihood ratio ``ln(q_hat(x) / p_ref(x))``. The estimate for a block of values uses only
values before the block, which keeps every increment a true likelihood ratio: the CUSUM's
false-alarm bound ``e^h`` holds as for a known alternative (an adaptive CUSUM in the sense of
Lorden and Pollak). Blocks are fixed positions of the stream, so batch and sequential feeding
agree exactly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import orjson

from driftline.detectors.base import Verdict, cusum_scan, register
from driftline.detectors.profile import OTHER, CategoricalProfile, FeatureProfile


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
        self._index = {c: i for i, c in enumerate(self.categories)}
        self._other = len(self.categories)
        # A bucket never seen in the reference still gets a little mass, or one new value
        # would be an infinite likelihood ratio (the data-quality monitor names new values).
        p = np.asarray(self.probs, dtype=np.float64)
        p = np.maximum(p, self.MIN_PROB)
        self._p = p / p.sum()
        self._decay = float(np.exp(-self.block / self.memory))
        self.reset()

    @classmethod
    def from_reference(
        cls, profile: FeatureProfile | None, arl: float, **params: Any
    ) -> CategoricalCUSUM:
        if not isinstance(profile, CategoricalProfile):
            raise TypeError("categorical_cusum needs a categorical reference profile")
        return cls(profile.categories, profile.probs, arl=arl, **params)

    def reset(self) -> None:
        self._counts = np.zeros(self._p.size)  # forgotten counts of the blocks before
        self._pending = np.zeros(self._p.size)  # counts of the current, unfinished block
        self._stat = np.zeros(1)
        self._n = 0

    def codes(self, x: np.ndarray) -> np.ndarray:
        """Bucket index per value (unknown values and OTHER go to the last bucket)."""
        get, other = self._index.get, self._other
        return np.fromiter((get(v, other) for v in x), dtype=np.intp, count=len(x))

    def update(self, x: np.ndarray) -> Verdict:
        codes = self.codes(np.asarray(x, dtype=object))
        k, n0 = self._p.size, self._n
        # Block of each value by its position in the whole stream; row 0 is the block that is
        # under way, whose earlier values are in _pending.
        block_of = (n0 + np.arange(codes.size)) // self.block - n0 // self.block
        n_blocks = int(block_of[-1]) + 1 if codes.size else 0
        per_block = np.bincount(block_of * k + codes, minlength=n_blocks * k).reshape(n_blocks, k)
        if n_blocks:
            per_block[0] += self._pending.astype(per_block.dtype)
        # The alternative for block j is estimated from blocks before j only.
        before = np.empty((n_blocks, k))
        counts = self._counts
        for j in range(n_blocks):
            before[j] = counts
            counts = counts * self._decay + per_block[j]
        q_hat = (before + self.prior * self._p) / (before.sum(axis=1, keepdims=True) + self.prior)
        log_ratio = np.log(q_hat) - np.log(self._p)
        increments = log_ratio[block_of, codes][None, :]
        self._stat, alarms, first, peak = cusum_scan(increments, self._stat, self.threshold)
        self._n += codes.size
        if n_blocks:
            if self._n % self.block == 0:  # the last block is complete
                self._counts, self._pending = counts, np.zeros(k)
            else:  # the last block is still open: keep its counts pending
                self._counts = before[-1]
                self._pending = per_block[-1].astype(np.float64)
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


__all__ = ["OTHER", "CategoricalCUSUM"]
