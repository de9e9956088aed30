"""NormalScoreCUSUM: reference-based sequential test for shifts in a numeric feature.

Each value is mapped to a normal score through the reference quantiles (a probability integral
transform; ties of a discrete feature are spread over their probability mass), so that under
"no drift" the scores are standard normal whatever the feature's shape. A bank of
log-likelihood-ratio CUSUMs then watches for mean shifts of +-0.25, 0.5 and 1 standard
deviations and for a doubling or halving of the variance; each restarts after an alarm.

Calibration: the bank may raise a false alarm once per ``arl`` values, split evenly over its
CUSUMs (union bound). Mean CUSUMs take the threshold at which Siegmund's approximation gives
them that ARL; variance CUSUMs use Lorden's bound ``h = ln(ARL)``, which holds for any
likelihood-ratio CUSUM. Increments are lowered by the worst case over the reference's own
error (a robust CUSUM), so the bound holds when the reference is a finite sample. The delay for
a shift with Kullback-Leibler divergence KL is then about h / KL values: CUSUM's optimum, plus
the price of not knowing the shift's size and of the reference's uncertainty.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import orjson
from scipy.special import ndtri

from driftline.detectors.base import Verdict, register
from driftline.detectors.kernels import interp_grid, interp_sorted, normal_score_bank
from driftline.detectors.profile import FeatureProfile, NumericProfile


def _splitmix_uniform(index: np.ndarray) -> np.ndarray:
    """Deterministic uniforms in [0, 1) from integer positions (splitmix64 finaliser).

    Used to spread values that sit on an atom of the reference (ties) uniformly over the
    atom's probability mass; keyed by position so that batch and sequential feeding agree.
    """
    z = index.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class NormalScores:
    """The probability integral transform of a numeric feature against its reference."""

    def __init__(self, quantiles: np.ndarray, reference_count: int | None = None) -> None:
        q = np.asarray(quantiles, dtype=np.float64)
        self._q = q  # shared, not copied: one array per feature
        self._levels = np.linspace(0.0, 1.0, q.size)
        self._has_atoms = bool(np.any(np.diff(q) == 0))
        # The quantiles interpolate the sample's order statistics from 0 at its minimum to 1
        # at its maximum, but the true CDF there is about 1/(n+1) and n/(n+1): taken as is, a
        # small reference spreads the scores past the robust slack. Plotting positions
        # k/(n+1) put each order statistic where it belongs.
        n = float(reference_count or 0)
        self._scale, self._offset = ((n - 1) / (n + 1), 1 / (n + 1)) if n > 1 else (1.0, 0.0)
        # Beyond the reference range the CDF is 0 or 1; clip a quarter grid step inside so
        # that scores stay finite (about +-3 sd with 201 quantiles).
        self._eps = 0.25 / (q.size - 1)
        # Without ties, scores are interpolated on the grid directly: one np.interp instead
        # of interp + ndtri (the score is close to linear within a 0.5% bin).
        levels = self._levels * self._scale + self._offset
        self._z_levels = ndtri(np.clip(levels, self._eps, 1.0 - self._eps))
        if not self._has_atoms:
            self._slopes = np.diff(self._z_levels) / np.diff(q)
            self._cells, self._inv_width = interp_grid(q)

    def __call__(self, x: np.ndarray, first_index: int) -> np.ndarray:
        """Normal scores of ``x``, whose first value is value ``first_index`` of the stream."""
        if not self._has_atoms:  # np.interp's result, about 3x faster on most features
            return interp_sorted(
                x, self._q, self._z_levels, self._slopes, self._cells, self._inv_width
            )
        return np.asarray(ndtri(self.uniform(x, first_index)))

    def uniform(self, x: np.ndarray, first_index: int) -> np.ndarray:
        """Reference probabilities of ``x``: uniform on (0, 1) while there is no drift."""
        u = np.interp(x, self._q, self._levels)
        if self._has_atoms:
            lo = np.searchsorted(self._q, x, side="left")
            hi = np.searchsorted(self._q, x, side="right")
            tied = hi > lo
            if tied.any():
                step = 1.0 / (self._q.size - 1)
                cdf_lo = np.maximum(lo - 0.5, 0) * step
                cdf_hi = np.minimum(hi - 0.5, self._q.size - 1) * step
                pos = np.arange(first_index, first_index + x.size)
                jitter = _splitmix_uniform(pos)
                u = np.where(tied, cdf_lo + jitter * (cdf_hi - cdf_lo), u)
        if self._offset:
            u = u * self._scale + self._offset
        np.clip(u, self._eps, 1.0 - self._eps, out=u)
        return u


def null_slack(reference_count: int | None) -> tuple[float, float, float]:
    """How far the scores of an undrifted feature may sit from N(0, 1).

    Returns (mean bias, E[z^2] bias upwards, E[z^2] bias downwards): three standard errors
    of the reference's mean and variance, and downwards another 3% for the interpolated
    tails, which only ever shrink E[z^2]. Without a count, assume 10,000 reference rows.
    """
    n = reference_count or 10_000
    moment = 3.0 * np.sqrt(2.0 / n)
    return 3.0 / np.sqrt(n), moment, moment + 0.03


def siegmund_threshold(shift: float, arl: float) -> float:
    """LLR threshold h at which a CUSUM for a mean shift of ``shift`` sd has ARL ``arl``.

    Siegmund's approximation for standard normal scores, in log-likelihood-ratio units:
    ``ARL(h) = (exp(h + 1.166 d) - (h + 1.166 d) - 1) / (d^2 / 2)``.
    """
    d = float(shift)

    def arl_of(h: float) -> float:
        a = h + 1.166 * d
        return float((np.expm1(a) - a) / (d * d / 2))

    lo, hi = 0.0, float(np.log(arl)) + 5.0
    for _ in range(100):  # arl_of is increasing in h: bisection
        mid = (lo + hi) / 2
        if arl_of(mid) < arl:
            lo = mid
        else:
            hi = mid
    return hi


@register
class NormalScoreCUSUM:
    """Bank of CUSUMs on normal scores: mean shifts both ways, variance up and down.

    Parameters
    ----------
    quantiles
        Reference quantiles of the feature, evenly spaced in probability.
    arl
        Values between false alarms this detector may spend (its share of the model's budget).
    mean_shifts
        Mean shifts to watch for, in reference standard deviations (both signs are watched).
    variance_ratios
        Variance ratios to watch for (above and below 1).

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.detectors.profile import numeric_profile
    >>> rng = np.random.default_rng(7)
    >>> ref = numeric_profile(rng.normal(10, 2, 20_000))
    >>> det = NormalScoreCUSUM.from_reference(ref, arl=1e6)
    >>> stable = rng.normal(10, 2, 5_000)
    >>> shifted = rng.normal(11, 2, 1_000)          # +0.5 sd from value 5000 on
    >>> det.update(stable).drift
    False
    >>> v = det.update(shifted)
    >>> v.drift, 0 < v.first_alarm < 300
    (True, True)
    """

    name: ClassVar[str] = "cusum"
    input_kind: ClassVar[str] = "numeric"
    calibrated: ClassVar[bool] = True

    def __init__(
        self,
        quantiles: np.ndarray | tuple[float, ...],
        arl: float = 1e6,
        mean_shifts: tuple[float, ...] = (0.25, 0.5, 1.0),
        variance_ratios: tuple[float, ...] = (2.0, 0.5),
        reference_count: int | None = None,
    ) -> None:
        self.quantiles = np.array(quantiles, dtype=np.float64)
        self.quantiles.setflags(write=False)
        self.arl = float(arl)
        self.mean_shifts = tuple(mean_shifts)
        self.variance_ratios = tuple(variance_ratios)
        self.reference_count = reference_count
        self._scores = NormalScores(self.quantiles, reference_count)
        # LLR of N(d, 1) vs N(0, 1) is d*z - d^2/2; of N(0, r) vs N(0, 1) it is
        # -ln(r)/2 + z^2 (1 - 1/r)/2. Rows: a*z + b*z^2 + c.
        rows = []
        for d in self.mean_shifts:
            rows += [(d, 0.0, -d * d / 2), (-d, 0.0, -d * d / 2)]
        for r in self.variance_ratios:
            rows.append((0.0, (1 - 1 / r) / 2, -np.log(r) / 2))
        coef = np.asarray(rows, dtype=np.float64)
        # Robust to the reference's own error: the scores of a feature that has not drifted
        # still have a mean off by about 1/sqrt(N) and a second moment off by sqrt(2/N) plus
        # a few percent from the interpolated tails (measured: 0.97 to 1.0). Each increment
        # is lowered by its worst case over that neighbourhood of "no drift", so the
        # false-alarm bound holds for all of it (a robust CUSUM), at a small cost in delay.
        mean_slack, moment_up, moment_down = null_slack(reference_count)
        b = coef[:, 1]
        coef[:, 2] -= np.abs(coef[:, 0]) * mean_slack + np.where(
            b > 0, b * moment_up, -b * moment_down
        )
        self._n_mean = 2 * len(self.mean_shifts)
        # Each CUSUM may spend 1/len(rows) of the budget (union bound). Mean CUSUMs use
        # Siegmund's approximation of their ARL, which is accurate for Gaussian scores and
        # lets the threshold sit lower than Lorden's bound; the variance CUSUMs keep the bound.
        per_cusum = self.arl * len(rows)
        thresholds = [siegmund_threshold(d, per_cusum) for d in self.mean_shifts for _ in "+-"]
        thresholds += [float(np.log(per_cusum))] * len(self.variance_ratios)
        self._h = np.asarray(thresholds)[:, None]
        # Verdicts report the CUSUMs as fractions of their own thresholds, scaled to the
        # largest threshold, so that one statistic and one threshold describe the bank.
        self.threshold = float(self._h.max())
        scaled = coef * (self.threshold / self._h)
        # Mean rows are a*z + c, variance rows b*z^2 + c: kept apart to skip the zero terms.
        m = self._n_mean
        self._a, self._c_mean = scaled[:m, 0].copy(), scaled[:m, 2].copy()
        self._b, self._c_var = scaled[m:, 1].copy(), scaled[m:, 2].copy()
        self._n_rows = len(rows)
        self.reset()

    @classmethod
    def from_reference(
        cls, profile: FeatureProfile | None, arl: float, **params: Any
    ) -> NormalScoreCUSUM:
        if not isinstance(profile, NumericProfile):
            raise TypeError("cusum needs a numeric reference profile")
        present = round(profile.count * (1 - profile.missing_rate))
        params.setdefault("reference_count", present or None)
        return cls(profile.quantiles, arl=arl, **params)

    def reset(self) -> None:
        self._stats = np.zeros(self._n_rows)
        self._n = 0

    def update(self, x: np.ndarray) -> Verdict:
        x = np.asarray(x, dtype=np.float64)
        z = self._scores(x, self._n)
        # Scaled increments: every CUSUM then crosses the common threshold exactly when it
        # crosses its own (the recursion is linear in the increments and the start value).
        alarms, first, peak = normal_score_bank(
            z, self._a, self._c_mean, self._b, self._c_var, self._stats, self.threshold
        )
        self._n += x.size
        top = float(self._stats.max()) if self._stats.size else 0.0
        return Verdict(
            statistic=top,
            threshold=self.threshold,
            drift=alarms > 0,
            warning=top > self.threshold / 2,
            n_seen=self._n,
            alarms=alarms,
            first_alarm=first,
            peak=peak,
        )

    def state_bytes(self) -> bytes:
        return orjson.dumps({"n": self._n, "s": self._stats.tolist()})

    def restore(self, state: bytes) -> None:
        doc = orjson.loads(state)
        stats = np.asarray(doc["s"], dtype=np.float64)
        if stats.shape != self._stats.shape:
            raise ValueError("state does not match this detector's configuration")
        self._stats, self._n = stats, int(doc["n"])
