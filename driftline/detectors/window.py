"""Window distances: each full window of values compared with the reference, one number each.

PSI, Jensen-Shannon, Hellinger, chi-square, L-infinity, Kolmogorov-Smirnov and a normed
Wasserstein distance, all on tumbling windows of ``window`` values (the windows are fixed
positions of the stream, so batch and value-by-value feeding agree, and nothing is judged on a
window smaller than ``window``: the minimum-sample guard).

Numeric values are binned by their reference probability (the same randomised probability
integral transform the CUSUM uses), into 200 bins of 0.5% each; the binned distances use ten
decile bins, KS and Wasserstein the 200 bins. Without drift the window's counts are then
multinomial with known probabilities, which is what the thresholds are calibrated on: a window
may alarm with probability ``alpha = window / arl``, and each distance's threshold is its
``1 - alpha`` quantile under no drift, from its asymptotic law (chi-square for the
f-divergences, Kolmogorov's for KS, a union bound over bins for L-infinity, and a simulated,
tail-extrapolated quantile for Wasserstein).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import orjson
from scipy import stats

from driftline.detectors.base import Verdict, register
from driftline.detectors.cusum import NormalScores
from driftline.detectors.profile import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    bucket_codes,
)

FINE_BINS = 200
COARSE_BINS = 10
_EPS = 1e-6  # smoothing so that an empty bin does not make a log-ratio infinite


class _WindowDistance:
    """Tumbling-window machinery shared by the distances; subclasses define ``distance``."""

    name: ClassVar[str] = ""
    input_kind: ClassVar[str] = "numeric"
    calibrated: ClassVar[bool] = True
    #: does the distance use the fine (200) bins rather than the coarse (10) ones
    fine: ClassVar[bool] = False
    #: for the chi-square-like distances: n * scale * distance ~ chi2(k - 1) without drift
    chi2_scale: ClassVar[float] = 0.0

    def __init__(
        self,
        quantiles: tuple[float, ...] | None = None,
        categories: tuple[str, ...] | None = None,
        probs: tuple[float, ...] | None = None,
        arl: float = 1e6,
        window: int = 500,
        reference_count: int | None = None,
    ) -> None:
        if (quantiles is None) == (categories is None):
            raise ValueError("give quantiles (numeric) or categories and probs (categorical)")
        self.arl = float(arl)
        self.window = int(window)
        if quantiles is not None:
            self._scores: NormalScores | None = NormalScores(np.asarray(quantiles))
            self._index: dict[str, int] = {}
            k = FINE_BINS if self.fine else COARSE_BINS
            self._p = np.full(k, 1.0 / k)
            self._cells = FINE_BINS
        else:
            if self.fine:
                raise TypeError(f"{self.name} needs a numeric feature")
            assert probs is not None
            self._scores = None
            self._index = {c: i for i, c in enumerate(categories or ())}
            self._p, self._merge = _merge_rare(np.asarray(probs, dtype=np.float64), self.window)
            self._cells = len(probs)
        self.alpha = min(0.5, self.window / self.arl)
        # The reference is a sample too: a window differs from it by its own noise plus the
        # reference's. Calibrating on the effective size 1 / (1/window + 1/reference) is the
        # two-sample correction; without it rare false alarms creep in at tiny alpha.
        self.reference_count = reference_count
        self.n_eff = (
            self.window
            if not reference_count
            else 1.0 / (1.0 / self.window + 1.0 / reference_count)
        )
        self.threshold = float(self._threshold())
        self.reset()

    @classmethod
    def from_reference(cls, profile: FeatureProfile | None, arl: float, **params: Any) -> Any:
        present = round(profile.count * (1 - profile.missing_rate)) if profile else 0
        params.setdefault("reference_count", present or None)
        if isinstance(profile, NumericProfile):
            return cls(quantiles=profile.quantiles, arl=arl, **params)
        if isinstance(profile, CategoricalProfile):
            return cls(categories=profile.categories, probs=profile.probs, arl=arl, **params)
        raise TypeError(f"{cls.name} needs a reference profile")

    # -- calibration ----------------------------------------------------------------------

    def _threshold(self) -> float:
        k = self._p.size
        if self.chi2_scale:
            return float(stats.chi2.isf(self.alpha, k - 1) / (self.n_eff * self.chi2_scale))
        raise NotImplementedError

    # -- the stream -------------------------------------------------------------------------

    def reset(self) -> None:
        self._counts = np.zeros(self._cells)
        self._n = 0
        self._last = 0.0

    def _cells_of(self, x: np.ndarray) -> np.ndarray:
        if self._scores is not None:
            u = self._scores.uniform(np.asarray(x, dtype=np.float64), self._n)
            return np.minimum((u * FINE_BINS).astype(np.intp), FINE_BINS - 1)
        return bucket_codes(self._index, np.asarray(x, dtype=object))

    def _observed(self, counts: np.ndarray) -> np.ndarray:
        if self._scores is not None:
            if self.fine:
                return counts
            return counts.reshape(COARSE_BINS, -1).sum(axis=1)
        return np.bincount(self._merge, weights=counts, minlength=self._p.size)

    def update(self, x: np.ndarray) -> Verdict:
        cells = self._cells_of(x)
        tally = _Tally(self.threshold, self._last)
        for start, end, full in _pieces(cells.size, self.window, self._n % self.window):
            self._counts += np.bincount(cells[start:end], minlength=self._cells)
            self._n += end - start
            if full:
                q = self._observed(self._counts) / self.window
                self._last = float(self.distance(q, self._p))
                self._counts[:] = 0.0
                tally.closed(self._last, end - 1)
        return tally.verdict(self._last, self._n)

    def distance(self, q: np.ndarray, p: np.ndarray) -> float:
        raise NotImplementedError

    def state_bytes(self) -> bytes:
        return orjson.dumps({"n": self._n, "c": self._counts.tolist(), "last": self._last})

    def restore(self, state: bytes) -> None:
        doc = orjson.loads(state)
        counts = np.asarray(doc["c"], dtype=np.float64)
        if counts.shape != self._counts.shape:
            raise ValueError("state does not match this detector's configuration")
        self._n, self._counts, self._last = int(doc["n"]), counts, float(doc["last"])


def _pieces(size: int, window: int, filled: int) -> Iterator[tuple[int, int, bool]]:
    """The slices [start, end) of an update's ``size`` values that fill the current window
    (which holds ``filled`` already) and the ones after it, and whether each fills one.

    >>> list(_pieces(7, 4, 2))
    [(0, 2, True), (2, 6, True), (6, 7, False)]
    """
    pos = 0
    while pos < size:
        end = min(size, pos + window - filled)
        filled = (filled + end - pos) % window
        yield pos, end, filled == 0
        pos = end


class _Tally:
    """The alarms among the windows one update closes, and the update's verdict."""

    def __init__(self, threshold: float, last: float) -> None:
        self.threshold = threshold
        self.alarms, self.first, self.peak = 0, -1, last

    def closed(self, statistic: float, at: int) -> None:
        """A window closed at value ``at`` of the update, with ``statistic``."""
        if self.alarms == 0:
            self.peak = max(self.peak, statistic)
        if statistic > self.threshold:
            self.alarms += 1
            if self.first < 0:
                self.first, self.peak = at, statistic

    def verdict(self, statistic: float, n_seen: int) -> Verdict:
        return Verdict(
            statistic=statistic,
            threshold=self.threshold,
            drift=self.alarms > 0,
            warning=statistic > self.threshold / 2,
            n_seen=n_seen,
            alarms=self.alarms,
            first_alarm=self.first,
            peak=self.peak,
        )


def _merge_rare(p: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge categories expected fewer than 5 times a window into the last bucket.

    The chi-square approximations behind the thresholds need about 5 expected per cell.
    Returns the merged probabilities and, per original cell, its merged cell.
    """
    keep = p * window >= 5
    keep[-1] = False  # the "other" bucket is where the rare ones go
    order = np.flatnonzero(keep)
    mapping = np.full(p.size, order.size, dtype=np.intp)
    mapping[order] = np.arange(order.size)
    merged = np.bincount(mapping, weights=p, minlength=order.size + 1)
    if merged[-1] == 0:  # nothing rare: drop the empty bucket
        merged = merged[:-1]
        mapping = np.minimum(mapping, merged.size - 1)
    return merged, mapping


def _smooth(q: np.ndarray) -> np.ndarray:
    q = q + _EPS
    return np.asarray(q / q.sum())


@register
class PSI(_WindowDistance):
    """Population stability index of each window against the reference.

    ``sum((q - p) * ln(q / p))``; ``n * PSI`` is about chi-square(k - 1) without drift.

    Parameters
    ----------
    quantiles, categories, probs
        The reference: quantiles of a numeric feature, or categories with probabilities.
    arl
        Values between false alarms this detector may spend.
    window
        Values per window.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.detectors.profile import numeric_profile
    >>> rng = np.random.default_rng(1)
    >>> det = PSI.from_reference(numeric_profile(rng.normal(0, 1, 20_000)), arl=1e6)
    >>> det.update(rng.normal(0, 1, 5_000)).drift
    False
    >>> v = det.update(rng.normal(0.5, 1, 2_000))
    >>> v.drift, v.first_alarm
    (True, 499)
    """

    name: ClassVar[str] = "psi"
    input_kind: ClassVar[str] = "any"
    chi2_scale: ClassVar[float] = 1.0

    def distance(self, q: np.ndarray, p: np.ndarray) -> float:
        q = _smooth(q)
        return float(np.sum((q - p) * np.log(q / p)))


@register
class JensenShannon(_WindowDistance):
    """Jensen-Shannon divergence (natural log) of each window against the reference.

    ``8 n JS`` is about chi-square(k - 1) without drift.

    Parameters
    ----------
    quantiles, categories, probs
        The reference.
    arl
        Values between false alarms this detector may spend.
    window
        Values per window.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.detectors.profile import categorical_profile
    >>> rng = np.random.default_rng(2)
    >>> cats = np.array(["a", "b", "c"], dtype=object)
    >>> det = JensenShannon.from_reference(
    ...     categorical_profile(rng.choice(cats, 20_000, p=[0.5, 0.3, 0.2])), arl=1e6)
    >>> det.update(rng.choice(cats, 5_000, p=[0.5, 0.3, 0.2])).drift
    False
    >>> det.update(rng.choice(cats, 1_000, p=[0.3, 0.3, 0.4])).first_alarm
    499
    """

    name: ClassVar[str] = "jensen_shannon"
    input_kind: ClassVar[str] = "any"
    chi2_scale: ClassVar[float] = 8.0

    def distance(self, q: np.ndarray, p: np.ndarray) -> float:
        m = (q + p) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
            kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        return float((kl_q + kl_p) / 2)


@register
class Hellinger(_WindowDistance):
    """Squared Hellinger distance of each window against the reference.

    ``8 n H^2`` is about chi-square(k - 1) without drift.

    Parameters
    ----------
    quantiles, categories, probs
        The reference.
    arl
        Values between false alarms this detector may spend.
    window
        Values per window.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.detectors.profile import numeric_profile
    >>> rng = np.random.default_rng(3)
    >>> det = Hellinger.from_reference(numeric_profile(rng.exponential(1, 20_000)), arl=1e6)
    >>> det.update(rng.exponential(1, 5_000)).drift
    False
    >>> det.update(rng.exponential(1.6, 1_000)).first_alarm
    499
    """

    name: ClassVar[str] = "hellinger"
    input_kind: ClassVar[str] = "any"
    chi2_scale: ClassVar[float] = 8.0

    def distance(self, q: np.ndarray, p: np.ndarray) -> float:
        return float(0.5 * np.sum((np.sqrt(q) - np.sqrt(p)) ** 2))


@register
class ChiSquare(_WindowDistance):
    """Pearson's chi-square statistic of each window's counts against the reference.

    The statistic and its p-value are scipy's ``chisquare`` (a test checks it); the threshold
    is the chi-square(k - 1) quantile at the per-window false-alarm probability.

    Parameters
    ----------
    quantiles, categories, probs
        The reference.
    arl
        Values between false alarms this detector may spend.
    window
        Values per window.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.detectors.profile import numeric_profile
    >>> rng = np.random.default_rng(4)
    >>> det = ChiSquare.from_reference(numeric_profile(rng.normal(0, 1, 20_000)), arl=1e6)
    >>> det.update(rng.normal(0, 1, 5_000)).drift
    False
    >>> det.update(rng.normal(0, 1.6, 1_000)).first_alarm
    499
    """

    name: ClassVar[str] = "chi_square"
    input_kind: ClassVar[str] = "any"

    def _threshold(self) -> float:
        # the statistic is scipy's (window counts); scaled to the effective sample size
        return float(stats.chi2.isf(self.alpha, self._p.size - 1) * self.window / self.n_eff)

    def p_value(self) -> float:
        """p-value of the last complete window's statistic under "no drift"."""
        return float(stats.chi2.sf(self._last, self._p.size - 1))

    def distance(self, q: np.ndarray, p: np.ndarray) -> float:
        expected = p * self.window
        return float(np.sum((q * self.window - expected) ** 2 / expected))


@register
class LInfinity(_WindowDistance):
    """Largest absolute difference of bin frequencies between a window and the reference.

    Threshold by a union bound over bins of the normal approximation to each frequency.

    Parameters
    ----------
    quantiles, categories, probs
        The reference.
    arl
        Values between false alarms this detector may spend.
    window
        Values per window.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.detectors.profile import categorical_profile
    >>> rng = np.random.default_rng(5)
    >>> cats = np.array(["a", "b", "c", "d"], dtype=object)
    >>> p = [0.4, 0.3, 0.2, 0.1]
    >>> det = LInfinity.from_reference(categorical_profile(rng.choice(cats, 20_000, p=p)),
    ...                                arl=1e6)
    >>> det.update(rng.choice(cats, 5_000, p=p)).drift
    False
    >>> det.update(rng.choice(cats, 1_000, p=[0.2, 0.3, 0.2, 0.3])).first_alarm
    499
    """

    name: ClassVar[str] = "linf"
    input_kind: ClassVar[str] = "any"

    def _threshold(self) -> float:
        sd = np.sqrt(self._p * (1 - self._p) / self.n_eff)
        lo, hi = 0.0, 1.0
        for _ in range(60):  # bisection on sum_i P(|q_i - p_i| > t) = alpha
            mid = (lo + hi) / 2
            if 2 * stats.norm.sf(mid / np.maximum(sd, 1e-12)).sum() > self.alpha:
                lo = mid
            else:
                hi = mid
        return hi

    def distance(self, q: np.ndarray, p: np.ndarray) -> float:
        return float(np.max(np.abs(q - p)))


class _ValueWindow(_WindowDistance):
    """A window that keeps each value's reference probability (for exact KS/Wasserstein).

    ``window`` floats of state (4 KB at the default 500): still small per feature, and it lets
    the statistic be computed exactly rather than on bins.
    """

    fine: ClassVar[bool] = True

    def reset(self) -> None:
        self._values: list[np.ndarray] = []
        self._filled = 0
        self._n = 0
        self._last = 0.0
        self._last_p = 1.0

    def update(self, x: np.ndarray) -> Verdict:
        if self._scores is None:
            raise TypeError(f"{self.name} needs a numeric feature")
        u = self._scores.uniform(np.asarray(x, dtype=np.float64), self._n)
        tally = _Tally(self.threshold, self._last)
        for start, end, full in _pieces(u.size, self.window, self._filled):
            self._values.append(u[start:end])
            self._filled += end - start
            self._n += end - start
            if full:
                window = np.sort(np.concatenate(self._values))
                self._last, self._last_p = self.statistic_of(window)
                self._values, self._filled = [], 0
                tally.closed(self._last, end - 1)
        return tally.verdict(self._last, self._n)

    def statistic_of(self, u_sorted: np.ndarray) -> tuple[float, float]:
        raise NotImplementedError

    def p_value(self) -> float:
        """p-value of the last complete window's statistic under "no drift"."""
        return self._last_p

    def state_bytes(self) -> bytes:
        values = np.concatenate(self._values) if self._values else np.zeros(0)
        return orjson.dumps(
            {"n": self._n, "v": values, "last": self._last, "p": self._last_p},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )

    def restore(self, state: bytes) -> None:
        doc = orjson.loads(state)
        values = np.asarray(doc["v"], dtype=np.float64)
        self._values = [values] if values.size else []
        self._filled = values.size
        self._n, self._last = int(doc["n"]), float(doc["last"])
        self._last_p = float("nan") if doc["p"] is None else float(doc["p"])  # JSON has no NaN


@register
class KolmogorovSmirnov(_ValueWindow):
    """One-sample Kolmogorov-Smirnov test of each window against the reference CDF.

    Exact: the statistic and p-value are scipy's ``kstest`` of the window against the
    reference CDF (a test checks it); the threshold is the exact one-sample KS distribution's
    quantile (``kstwo``) at the per-window false-alarm probability.

    Parameters
    ----------
    quantiles
        Reference quantiles of the (numeric) feature.
    arl
        Values between false alarms this detector may spend.
    window
        Values per window.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.detectors.profile import numeric_profile
    >>> rng = np.random.default_rng(6)
    >>> det = KolmogorovSmirnov.from_reference(numeric_profile(rng.normal(0, 1, 20_000)),
    ...                                        arl=1e6)
    >>> det.update(rng.normal(0, 1, 5_000)).drift
    False
    >>> det.update(rng.normal(0.5, 1, 1_000)).first_alarm
    499
    """

    name: ClassVar[str] = "ks"
    input_kind: ClassVar[str] = "numeric"

    def _threshold(self) -> float:
        return float(stats.kstwo.isf(self.alpha, max(1, int(self.n_eff))))

    def statistic_of(self, u_sorted: np.ndarray) -> tuple[float, float]:
        n = u_sorted.size
        ranks = np.arange(1, n + 1) / n
        d = float(max(np.max(ranks - u_sorted), np.max(u_sorted - (ranks - 1.0 / n))))
        return d, float(stats.kstwo.sf(d, n))


@register
class NormedWasserstein(_ValueWindow):
    """Wasserstein-1 distance on the reference-probability scale (so it needs no units).

    ``integral |F_window(u) - u| du`` over the reference's probability scale: 0 when the
    window looks like the reference, 0.5 at most. Threshold: the no-drift quantile, simulated
    at a moderate level and extrapolated with a Gaussian tail (documented approximation).

    Parameters
    ----------
    quantiles
        Reference quantiles of the (numeric) feature.
    arl
        Values between false alarms this detector may spend.
    window
        Values per window.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.detectors.profile import numeric_profile
    >>> rng = np.random.default_rng(7)
    >>> det = NormedWasserstein.from_reference(numeric_profile(rng.normal(0, 1, 20_000)),
    ...                                        arl=1e6)
    >>> det.update(rng.normal(0, 1, 5_000)).drift
    False
    >>> det.update(rng.normal(0.5, 1, 1_000)).first_alarm
    499
    """

    name: ClassVar[str] = "wasserstein"
    input_kind: ClassVar[str] = "numeric"

    def _threshold(self) -> float:
        # the statistic shrinks like 1/sqrt(n): rescale to the effective size
        return _wasserstein_threshold(self.window, self.alpha) * np.sqrt(self.window / self.n_eff)

    def statistic_of(self, u_sorted: np.ndarray) -> tuple[float, float]:
        return _wasserstein_u(u_sorted), float("nan")


def _wasserstein_u(u_sorted: np.ndarray) -> float:
    """Exact integral of |F_n(u) - u| over [0, 1] for a sorted sample u."""
    return float(_wasserstein_rows(u_sorted[None, :])[0])


def _wasserstein_rows(u_sorted: np.ndarray) -> np.ndarray:
    """The same for each row of a 2-d array of sorted samples."""
    m, n = u_sorted.shape
    knots = np.concatenate([np.zeros((m, 1)), u_sorted, np.ones((m, 1))], axis=1)
    a, b = knots[:, :-1], knots[:, 1:]
    c = np.arange(n + 1) / n  # F_n is constant c on each interval [a, b)
    inside = (c > a) & (c < b)  # |c - u| changes sign inside the interval
    whole = np.abs(c - (a + b) / 2) * (b - a)
    split = ((c - a) ** 2 + (b - c) ** 2) / 2
    return np.asarray(np.where(inside, split, whole).sum(axis=1))


@functools.lru_cache(maxsize=64)
def _wasserstein_threshold(window: int, alpha: float) -> float:
    rng = np.random.default_rng(20_240_601)
    values = np.concatenate(
        [_wasserstein_rows(np.sort(rng.random((2_000, window)), axis=1)) for _ in range(5)]
    )
    mean = float(values.mean())
    level = 1e-3
    at_level = float(np.quantile(values, 1 - level))
    # Beyond the simulated level, scale the excess like a Gaussian tail: z(alpha) / z(level).
    scale = stats.norm.isf(min(alpha, level)) / stats.norm.isf(level)
    return mean + (at_level - mean) * scale
