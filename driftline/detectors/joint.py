"""JointDrift: changes in how numeric features move together, with their marginals unchanged.

Each feature is mapped to normal scores through its reference quantiles (as the CUSUM bank
does), so that under "no drift" every pair of scores is close to a bivariate normal with the
reference's correlation ``r`` (a Gaussian copula). The stream is taken in blocks of ``block``
events at fixed positions (batch and sequential feeding agree); each block's correlation of
every pair comes from one cross-product matrix (a BLAS call for all pairs), centred on the
block's own means and scaled by its own spreads, so that features whose means or spreads
shift, together or alone, do not read as moving together: the marginal detectors report
those. Fisher's transform makes a block's correlation close to normal, with mean
``atanh(rho) + rho / (2 (n - 1))`` and variance ``1 / (n - 3)``; for every pair, two CUSUMs of
that normal likelihood ratio watch for the correlation moving ``shift`` above or below ``r``.

Calibration as for the CUSUM bank: the detector spends ``arl`` over all its CUSUMs (union
bound, Lorden's ``h = ln(ARL)``), and each null is widened by the reference's own error, three
standard errors of its correlation (Fisher's ``(1 - r^2) / sqrt(n - 3)``).

Cost per event is about k^2 / 2 multiply-adds for k features (the block's cross products) and
the state two statistics per pair: the monitor caps k (``joint_drift.max_features``).
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar

import numpy as np
import orjson

from driftline.detectors.base import Verdict
from driftline.detectors.cusum import NormalScores
from driftline.detectors.kernels import pair_correlation_bank
from driftline.detectors.profile import NumericProfile, ReferenceProfile

JOINT = "_joint"  # the subject a joint detector's verdicts are filed under
# below this sum of squared deviations per row (scores are in sd units) a block is constant
CONSTANT_SPREAD = 1e-9


def pair_name(a: str, b: str) -> str:
    return f"{a} & {b}"


class JointDrift:
    """Pairwise correlation CUSUMs on normal scores.

    Parameters
    ----------
    features
        The features watched, in the order of the columns ``update`` is given.
    quantiles
        Each feature's reference quantiles.
    correlation
        The reference correlations of the normal scores, the upper triangle row by row.
    arl
        Events between false alarms this detector may spend, across all its pairs.
    reference_count
        Rows the reference was computed from (None: 10,000).
    shift
        The change in correlation watched for, beyond the reference's own error.
    block
        Events per block.

    Examples
    --------
    >>> import numpy as np
    >>> from driftline.detectors.profile import build_profile
    >>> rng = np.random.default_rng(5)
    >>> ref = {f"x{i}": rng.normal(0, 1, 20_000) for i in range(5)}
    >>> profile = build_profile("m", "1", ref, dict.fromkeys(ref, "numeric"))
    >>> det = JointDrift.from_profile(profile, arl=1e7)
    >>> det.update(rng.normal(0, 1, (5_000, 5))).drift
    False
    >>> x = rng.normal(0, 1, (2_000, 5))
    >>> x[:, 1] = 0.8 * x[:, 0] + 0.6 * x[:, 1]     # x0 and x1 now move together
    >>> v = det.update(x)
    >>> v.drift, v.subject, v.first_alarm < 300
    (True, 'x0 & x1', True)
    """

    # Not in the registry: it watches a model's features together, not one feature.
    name: ClassVar[str] = "joint"
    input_kind: ClassVar[str] = "joint"  # a row of numeric features per event
    calibrated: ClassVar[bool] = True
    MAX_CORRELATION: ClassVar[float] = 0.98

    def __init__(
        self,
        features: tuple[str, ...],
        quantiles: tuple[tuple[float, ...], ...],
        correlation: tuple[float, ...],
        arl: float = 1e6,
        reference_count: int | None = None,
        shift: float = 0.3,
        block: int = 25,
    ) -> None:
        k = len(features)
        if k < 2 or len(quantiles) != k or len(correlation) != k * (k - 1) // 2:
            raise ValueError("joint drift needs two or more features and their correlations")
        if block < 10:
            raise ValueError("joint drift needs blocks of 10 events or more (Fisher's z)")
        self.features = tuple(features)
        self.arl = float(arl)
        self.reference_count = reference_count
        self.shift = float(shift)
        self.block = int(block)
        self._scores = [
            NormalScores(np.asarray(q, dtype=np.float64), reference_count) for q in quantiles
        ]
        self._i, self._j = (a.astype(np.int64) for a in np.triu_indices(k, 1))
        n = reference_count or 10_000
        r = np.asarray(correlation, dtype=np.float64)
        # The reference's correlation is known to about (1 - r^2) / sqrt(n): the null is that
        # neighbourhood, and each alternative lies ``shift`` beyond its edge.
        error = 3.0 * (1 - r * r) / np.sqrt(max(n - 3, 1))
        cap = self.MAX_CORRELATION
        null = np.concatenate([np.clip(r + error, -cap, cap), np.clip(r - error, -cap, cap)])
        alt = np.concatenate(
            [np.clip(r + error + shift, -cap, cap), np.clip(r - error - shift, -cap, cap)]
        )

        def mean_of(rho: np.ndarray) -> np.ndarray:  # a block's Fisher z, on average
            return np.arctanh(rho) + rho / (2 * (self.block - 1))

        # The LLR of N(m1, v) against N(m0, v) is (m1 - m0) / v * (z - (m0 + m1) / 2).
        m0, m1 = mean_of(null), mean_of(alt)
        self._weight = (m1 - m0) * (self.block - 3)
        self._centre = (m0 + m1) / 2
        self.threshold = float(np.log(self.arl * self._weight.size))
        self.reset()

    @classmethod
    def from_profile(
        cls,
        profile: ReferenceProfile,
        arl: float,
        features: list[str] | None = None,
        **params: Any,
    ) -> JointDrift:
        """The joint detector of ``features`` (default: all) from the profile's dependence
        section; ``ValueError`` if a feature is not in it."""
        dep = profile.dependence
        if not dep:
            raise ValueError("the profile has no dependence section (driftline baseline adds it)")
        known = list(dep["features"])
        names = list(features) if features is not None else known
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"joint drift: no reference dependence for {', '.join(unknown)}")
        k = len(known)
        full = np.eye(k)
        i, j = np.triu_indices(k, 1)
        full[i, j] = full[j, i] = dep["correlation"]
        at = [known.index(n) for n in names]
        sub = full[np.ix_(at, at)]
        a, b = np.triu_indices(len(names), 1)
        quantiles = []
        for name in names:
            feature = profile.features[name]
            if not isinstance(feature, NumericProfile):
                raise ValueError(f"joint drift: {name} is not numeric")
            quantiles.append(feature.quantiles)
        params.setdefault("reference_count", int(dep["rows"]) or None)
        correlation = tuple(float(v) for v in sub[a, b])
        return cls(tuple(names), tuple(quantiles), correlation, arl=arl, **params)

    def reset(self) -> None:
        self._stats = np.zeros(self._weight.size)
        self._pending = np.zeros((0, len(self.features)))
        self._n = 0

    def update(self, x: np.ndarray) -> Verdict:
        x = np.asarray(x, dtype=np.float64).reshape(-1, len(self.features))
        z = (
            np.column_stack([scores(x[:, c], self._n) for c, scores in enumerate(self._scores)])
            if x.shape[0]
            else np.zeros((0, len(self.features)))
        )
        pending = self._pending.shape[0]
        rows = np.concatenate([self._pending, z]) if pending else z
        full = rows.shape[0] // self.block
        alarms, first, peak, subject = 0, -1, float(self._stats.max(initial=0.0)), ""
        for start in range(0, full, 64):  # 64 blocks' cross products at a time: bounded memory
            stop = min(full, start + 64)
            blocks = rows[start * self.block : stop * self.block].reshape(
                stop - start, self.block, -1
            )
            sums = blocks.sum(axis=1)
            gram = np.matmul(blocks.transpose(0, 2, 1), blocks)
            gram -= sums[:, :, None] * sums[:, None, :] / self.block
            # rounding can leave a constant feature's sum of squares just below zero
            spread = np.sqrt(np.maximum(np.einsum("bii->bi", gram), 0.0))
            scale = spread[:, self._i] * spread[:, self._j]
            # a block where a feature is constant says nothing about its pairs: r = 0 there
            corr = np.divide(
                gram[:, self._i, self._j],
                scale,
                out=np.zeros_like(scale),
                where=scale > CONSTANT_SPREAD * self.block,
            )
            corr = np.clip(corr, -0.999_999, 0.999_999)
            found, block, top, crossed = pair_correlation_bank(
                np.arctanh(corr), self._weight, self._centre, self._stats, self.threshold
            )
            if alarms == 0:
                peak = max(peak, top) if not found else top
                if found:
                    # the block's last event, as an index into this batch
                    first = (start + block + 1) * self.block - pending - 1
                    subject = self._pair(crossed)
            alarms += found
        self._pending = rows[full * self.block :].copy()
        self._n += x.shape[0]
        top_now = float(self._stats.max(initial=0.0))
        return Verdict(
            statistic=top_now,
            threshold=self.threshold,
            drift=alarms > 0,
            warning=top_now > self.threshold / 2,
            n_seen=self._n,
            alarms=alarms,
            first_alarm=first,
            peak=peak,
            subject=subject,
        )

    def _pair(self, index: int) -> str:
        pair = index % self._i.size
        return pair_name(self.features[self._i[pair]], self.features[self._j[pair]])

    def state_bytes(self) -> bytes:
        def packed(a: np.ndarray) -> str:
            return base64.b64encode(a.astype(np.float64).tobytes()).decode()

        return orjson.dumps({"n": self._n, "s": packed(self._stats), "p": packed(self._pending)})

    def restore(self, state: bytes) -> None:
        doc = orjson.loads(state)
        stats = np.frombuffer(base64.b64decode(doc["s"]), dtype=np.float64).copy()
        if stats.shape != self._stats.shape:
            raise ValueError("state does not match this detector's configuration")
        pending = np.frombuffer(base64.b64decode(doc["p"]), dtype=np.float64)
        self._stats, self._n = stats, int(doc["n"])
        self._pending = pending.reshape(-1, len(self.features)).copy()
