"""VectorisedKSWIN: river's KSWIN (a sliding-window Kolmogorov-Smirnov test), vectorised.

KSWIN keeps the last ``window_size`` values and, at every value, compares the newest
``stat_size`` of them with ``stat_size`` values drawn from the older part of the window; drift
when the two-sample KS test gives ``p <= alpha`` and the statistic exceeds 0.1, after which the
window starts empty. river runs one ``scipy.stats.ks_2samp`` per value (hundreds of
microseconds each); here all the tests of a batch are one set of numpy operations:

- The draws are fixed random subsets (a table of permutations made from the seed), chosen by
  the value's position in the stream, so that the test at a position does not depend on how
  the stream was cut into batches.
- With equal sample sizes the statistic is ``k / stat_size`` for an integer k, so the rule
  ``p <= alpha and D > 0.1`` is ``k >= k_min``, where ``k_min`` comes from scipy's exact
  two-sample p-values, computed once. Reference-free: it needs no profile.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, ClassVar

import numpy as np
import orjson
from scipy import stats

from driftline.detectors.base import Verdict, in_pieces, register
from driftline.detectors.profile import FeatureProfile

PERMUTATIONS = 64  # draws cycle through this many random subsets of the window's older part
# A batch's tests hold about 2 x stat_size x 25 bytes per value: run it in pieces of this many
# values (about 6 MB with the defaults) however many events the pipeline merged.
PIECE = 4096


@functools.cache
def ks_p_values(size: int) -> tuple[float, ...]:
    """Exact two-sided p-value of the two-sample KS statistic k/size, samples of ``size`` each.

    Samples 0..size-1 and (k - 0.5)..(k - 0.5 + size - 1) are k/size apart at most, so scipy's
    ``ks_2samp`` on them gives the p-value of exactly that statistic (the method river uses).
    """
    a = np.arange(size, dtype=np.float64)
    out = [1.0]
    with warnings.catch_warnings():  # scipy falls back to the asymptotic p-value, as for river
        warnings.simplefilter("ignore", RuntimeWarning)
        for k in range(1, size + 1):
            out.append(float(stats.ks_2samp(a, a + k - 0.5, method="auto").pvalue))
    return tuple(out)


@functools.cache
def draw_table(seed: int, older: int, size: int) -> np.ndarray:
    """``PERMUTATIONS`` random subsets of ``size`` indices out of ``older``, one per row.

    Shared (read-only) by every detector with the same settings: one table per process, not
    per feature.
    """
    rng = np.random.default_rng(seed)
    draws = [np.sort(rng.permutation(older)[:size]) for _ in range(PERMUTATIONS)]
    table = np.asarray(draws, dtype=np.intp)
    table.setflags(write=False)
    return table


def ks_counts(older: np.ndarray, recent: np.ndarray) -> np.ndarray:
    """Row-wise two-sample KS statistic, times the (equal) sample size, for (m, r) arrays."""
    r = older.shape[1]
    both = np.concatenate([older, recent], axis=1)
    order = np.argsort(both, axis=1, kind="stable")
    ordered = np.take_along_axis(both, order, axis=1)
    # ECDF difference (in counts) after each sorted value: +1 for an older, -1 for a recent
    gap = np.cumsum(np.where(order < r, 1, -1), axis=1)
    # Only where a run of tied values ends are both ECDFs evaluated at the same point.
    run_ends = np.ones(ordered.shape, dtype=bool)
    run_ends[:, :-1] = ordered[:, 1:] != ordered[:, :-1]
    return np.where(run_ends, np.abs(gap), 0).max(axis=1)


@register
class VectorisedKSWIN:
    """Sliding-window KS test on a numeric stream (river's KSWIN, all tests of a batch at once).

    Parameters
    ----------
    alpha
        Significance level of each test (one test per value once the window is full).
    window_size
        Values in the sliding window.
    stat_size
        Newest values tested against as many drawn from the older part of the window.
    seed
        Seed of the random draws.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = VectorisedKSWIN(seed=42)
    >>> x = np.concatenate([rng.normal(0, 1, 1_000), rng.normal(3, 1, 1_000)])
    >>> [i for i, value in enumerate(x) if det.update(value[None]).drift]  # mean moves at 1,000
    [392, 603, 857, 1013, 1121]

    river's ``KSWIN(seed=42)`` fires at 602, 1012, 1114 and 1592 on the same stream: with a
    test at every value at ``alpha`` = 0.005, both also fire without drift (about once per 700
    to 800 values, ``tests/unit/detectors/test_detector_crosschecks.py``), which is why neither is
    a default.
    """

    name: ClassVar[str] = "kswin_vectorised"
    input_kind: ClassVar[str] = "numeric"
    calibrated: ClassVar[bool] = False  # alpha per test, as river's; not the model's budget

    def __init__(
        self, alpha: float = 0.005, window_size: int = 100, stat_size: int = 30, seed: int = 42
    ) -> None:
        if not 0 < alpha < 1:
            raise ValueError("alpha must be between 0 and 1")
        if not 0 < stat_size <= window_size - stat_size:
            raise ValueError("stat_size must be positive and at most half of window_size")
        self.alpha = float(alpha)
        self.window_size = int(window_size)
        self.stat_size = int(stat_size)
        self.seed = int(seed)
        p_values = ks_p_values(self.stat_size)
        # Smallest count k with p(k) <= alpha and k / stat_size > 0.1 (river's extra guard).
        self._k_min = next(
            (
                k
                for k in range(1, self.stat_size + 1)
                if p_values[k] <= self.alpha and k > 0.1 * self.stat_size
            ),
            self.stat_size + 1,  # never: alpha below every attainable p-value
        )
        self.threshold = self._k_min / self.stat_size
        self.reset()

    @classmethod
    def from_reference(
        cls, profile: FeatureProfile | None, arl: float, **params: Any
    ) -> VectorisedKSWIN:
        return cls(**params)  # reference-free; alpha is its own parameter

    def reset(self) -> None:
        self._tail = np.zeros(0)  # the window's last values, at most window_size - 1
        self._filled = 0  # values since the window last started empty
        self._n = 0
        self._last = 0.0  # the statistic of the latest test

    def update(self, x: np.ndarray) -> Verdict:
        return in_pieces(self._update, np.asarray(x, dtype=np.float64), PIECE)

    def _update(self, x: np.ndarray) -> Verdict:
        w, r = self.window_size, self.stat_size
        values = np.concatenate([self._tail, x])
        offset = self._tail.size  # index in `values` of x[0]
        # A window ends at each value of x that has w - 1 values before it in `values`.
        first_end = max(offset, w - 1)
        counts = np.zeros(0, dtype=np.intp)
        if first_end < values.size:
            windows = np.lib.stride_tricks.sliding_window_view(values, w)[first_end - w + 1 :]
            positions = self._n - offset + np.arange(first_end, values.size)  # in the stream
            table = draw_table(self.seed, w - r, r)
            draws = table[positions % PERMUTATIONS]
            older = np.take_along_axis(windows, draws, axis=1)
            counts = ks_counts(older, windows[:, w - r :])
        ends = first_end - offset  # index in x of the first full window (counts[0])
        # A test needs a window filled since the last alarm: from index w - 1 - filled on, and
        # w values after each alarm. Only the alarms are walked in Python.
        hits = np.flatnonzero(counts >= self._k_min) + ends
        alarms, first, peak = 0, -1, self._last
        start, last_alarm = max(w - 1 - self._filled, 0), -1
        while True:
            j = int(np.searchsorted(hits, start))
            if j == hits.size:
                break
            last_alarm = int(hits[j])
            if alarms == 0:
                first, peak = last_alarm, float(counts[last_alarm - ends]) / r
            alarms += 1
            start = last_alarm + w
        if start < x.size:  # tests after the last alarm (or all of them): no alarm among them
            tested = counts[start - ends :]
            self._last = float(tested[-1]) / r
            if alarms == 0:
                peak = max(peak, float(tested.max()) / r)
        elif alarms:
            self._last = 0.0  # the window restarted empty and has not been tested since
        if alarms:
            self._filled = min(w, x.size - 1 - last_alarm)
        else:
            self._filled = min(w, self._filled + x.size)
        self._tail = values[-(w - 1) :].copy() if w > 1 else np.zeros(0)
        self._n += x.size
        return Verdict(
            statistic=self._last,
            threshold=self.threshold,
            drift=alarms > 0,
            warning=self._last > self.threshold / 2,
            n_seen=self._n,
            alarms=alarms,
            first_alarm=first,
            peak=peak,
        )

    def state_bytes(self) -> bytes:
        return orjson.dumps(
            {"n": self._n, "f": self._filled, "s": self._last, "t": self._tail.tolist()}
        )

    def restore(self, state: bytes) -> None:
        doc = orjson.loads(state)
        tail = np.asarray(doc["t"], dtype=np.float64)
        if tail.size > self.window_size - 1:
            raise ValueError("state does not match this detector's configuration")
        self._n, self._filled, self._last = int(doc["n"]), int(doc["f"]), float(doc["s"])
        self._tail = tail
