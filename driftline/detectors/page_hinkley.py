"""PageHinkley: river's Page-Hinkley test, vectorised (same parameters, same alarms).

river's ``drift.PageHinkley`` costs a Python call per value. The recursions it runs are linear
filters (``s_t = alpha * s_{t-1} + dev_t - delta``) followed by running extremes, which numpy
and ``scipy.signal.lfilter`` compute for a whole batch at once. A test checks that both fire
at the same positions on the same streams. Reference-free: it needs no profile.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

import numpy as np
from scipy.signal import lfilter

from driftline.detectors.base import Verdict, register
from driftline.detectors.profile import FeatureProfile


@register
class PageHinkley:
    """Page-Hinkley test for a change in the mean, both directions (river's algorithm).

    Parameters
    ----------
    min_instances
        Values before the test may signal.
    delta
        Magnitude of changes that are tolerated.
    threshold
        The statistic past which drift is signalled (in the feature's units).
    alpha
        Forgetting factor of the cumulative sums.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = PageHinkley()
    >>> x = np.concatenate([rng.normal(0, 1, 1_000), rng.normal(3, 1, 1_000)])
    >>> v = det.update(x)                       # the mean moves at value 1,000
    >>> v.first_alarm, v.alarms                 # where river's PageHinkley fires too
    (1016, 2)
    """

    name: ClassVar[str] = "page_hinkley"
    input_kind: ClassVar[str] = "numeric"
    calibrated: ClassVar[bool] = False  # its threshold is in the feature's units

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
    ) -> None:
        self.min_instances = int(min_instances)
        self.delta = float(delta)
        self.threshold = float(threshold)
        self.alpha = float(alpha)
        self.reset()

    @classmethod
    def from_reference(
        cls, profile: FeatureProfile | None, arl: float, **params: Any
    ) -> PageHinkley:
        return cls(**params)  # reference-free; its threshold is its own parameter

    def reset(self) -> None:
        self._restart()
        self._seen = 0

    def _restart(self) -> None:
        self._n = 0  # values since the last restart
        self._sum = 0.0  # of those values, for the running mean
        self._inc = 0.0
        self._dec = 0.0
        self._min_inc = float("inf")
        self._max_dec = -1.0  # river starts it at -1, not -inf
        self._stat = 0.0

    def _scan(self, x: np.ndarray) -> tuple[int, float]:
        """Advance over ``x``; return the first alarm's index in it (or -1) and the peak."""
        k = np.arange(self._n + 1, self._n + 1 + x.size, dtype=np.float64)
        mean = (self._sum + np.cumsum(x)) / k
        dev = x - mean
        inc = lfilter([1.0], [1.0, -self.alpha], dev - self.delta, zi=[self.alpha * self._inc])[0]
        dec = lfilter([1.0], [1.0, -self.alpha], dev + self.delta, zi=[self.alpha * self._dec])[0]
        min_inc = np.minimum.accumulate(np.minimum(inc, self._min_inc))
        max_dec = np.maximum.accumulate(np.maximum(dec, self._max_dec))
        test = np.maximum(inc - min_inc, max_dec - dec)
        armed = k >= self.min_instances
        hits = np.flatnonzero(armed & (test > self.threshold))
        end = int(hits[0]) + 1 if hits.size else x.size
        self._n += end
        self._sum += float(x[:end].sum())
        self._inc, self._dec = float(inc[end - 1]), float(dec[end - 1])
        self._min_inc, self._max_dec = float(min_inc[end - 1]), float(max_dec[end - 1])
        self._stat = float(test[end - 1]) if armed[end - 1] else 0.0
        peak = float(np.max(np.where(armed[:end], test[:end], 0.0)))
        return (int(hits[0]) if hits.size else -1), peak

    def update(self, x: np.ndarray) -> Verdict:
        x = np.asarray(x, dtype=np.float64)
        alarms, first, pos, peak = 0, -1, 0, self._stat
        while pos < x.size:
            hit, top = self._scan(x[pos:])
            if alarms == 0:
                peak = max(peak, top)  # the first alarm's crossing value, then kept
            if hit < 0:
                break
            alarms += 1
            first = pos + hit if first < 0 else first
            pos += hit + 1
            self._restart()  # river restarts on the value after a detection
        self._seen += x.size
        return Verdict(
            statistic=self._stat,
            threshold=self.threshold,
            drift=alarms > 0,
            warning=self._stat > self.threshold / 2,
            n_seen=self._seen,
            alarms=alarms,
            first_alarm=first,
            peak=peak,
        )

    _FIELDS: ClassVar[tuple[str, ...]] = (
        "_n",
        "_sum",
        "_inc",
        "_dec",
        "_min_inc",
        "_max_dec",
        "_seen",
        "_stat",
    )

    def state_bytes(self) -> bytes:
        return _STATE.pack(*(getattr(self, f) for f in self._FIELDS))

    def restore(self, state: bytes) -> None:
        for field, value in zip(self._FIELDS, _STATE.unpack(state), strict=True):
            setattr(self, field, value)


_STATE = struct.Struct("<qdddddqd")
