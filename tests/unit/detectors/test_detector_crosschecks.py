"""driftline's detectors against the reference implementations: scipy and river."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import drift
from river.drift import binary
from scipy import stats

from driftline import detectors
from driftline.detectors.kswin import ks_counts, ks_p_values
from driftline.detectors.profile import categorical_profile, numeric_profile
from driftline.detectors.window import ChiSquare, KolmogorovSmirnov


def test_ks_statistic_and_p_value_equal_scipy() -> None:
    rng = np.random.default_rng(0)
    profile = numeric_profile(rng.gamma(2.0, 2.0, 20_000))
    q = np.asarray(profile.quantiles)
    det = KolmogorovSmirnov.from_reference(profile, arl=1e6, window=400)
    eps = 0.25 / (q.size - 1)

    def reference_cdf(v: np.ndarray) -> np.ndarray:
        return np.clip(np.interp(v, q, np.linspace(0, 1, q.size)), eps, 1 - eps)

    for shift in (0.0, 0.3, 1.0):
        window = rng.gamma(2.0, 2.0, 400) + shift
        verdict = det.update(window)
        expected = stats.kstest(window, reference_cdf, method="exact")
        assert verdict.statistic == pytest.approx(expected.statistic, rel=1e-12)
        assert det.p_value() == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi_square_statistic_and_p_value_equal_scipy() -> None:
    rng = np.random.default_rng(1)
    cats = np.array(["a", "b", "c", "d", "e"], dtype=object)
    p = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    profile = categorical_profile(rng.choice(cats, 50_000, p=p))
    det = ChiSquare.from_reference(profile, arl=1e6, window=500)
    ref_p = np.asarray(profile.probs[:-1])  # no "other" values in the reference
    for probs in (p, [0.2, 0.25, 0.2, 0.15, 0.2]):
        window = rng.choice(cats, 500, p=probs)
        verdict = det.update(window)
        observed = np.array([(window == c).sum() for c in profile.categories])
        expected = stats.chisquare(observed, ref_p * 500)
        assert verdict.statistic == pytest.approx(expected.statistic, rel=1e-9)
        assert det.p_value() == pytest.approx(expected.pvalue, rel=1e-9)


RIVER = {
    "adwin": (drift.ADWIN, "numeric"),
    "kswin": (lambda: drift.KSWIN(seed=42), "numeric"),
    "river_page_hinkley": (drift.PageHinkley, "numeric"),
    "ddm": (binary.DDM, "error"),
    "eddm": (binary.EDDM, "error"),
    "hddm_a": (binary.HDDMA, "error"),
    "hddm_w": (binary.HDDMW, "error"),
}


def _stream(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "numeric":
        return np.concatenate([rng.normal(0, 1, 1_500), rng.normal(2, 1, 1_500)])
    return np.concatenate([rng.random(1_500) < 0.1, rng.random(1_500) < 0.4]).astype(float)


def _river_alarms(river_detector, x: np.ndarray) -> list[int]:
    out = []
    for i, value in enumerate(x.tolist()):
        river_detector.update(value)
        if river_detector.drift_detected:
            out.append(i)
    return out


@pytest.mark.parametrize("name", sorted(RIVER))
def test_river_backed_detectors_fire_where_river_fires(name: str) -> None:
    factory, kind = RIVER[name]
    x = _stream(kind, seed=3)
    ours = detectors.create(name, None, arl=1e6)
    bounds = np.cumsum([0, 1, 7, 500, 1_000, 1_492])  # fed in uneven batches
    ours_first, river_first = [], []
    expected = _river_alarms(factory(), x)
    assert expected, "the stream must make river fire"
    for lo, hi in itertools.pairwise(bounds):
        verdict = ours.update(x[lo:hi])
        if verdict.drift:
            ours_first.append(lo + verdict.first_alarm)
        inside = [a for a in expected if lo <= a < hi]
        if inside:
            river_first.append(inside[0])
        assert verdict.alarms == len(inside)
    assert ours_first == river_first


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 100_000), shift=st.floats(-3, 3), scale=st.floats(0.2, 5))
def test_vectorised_page_hinkley_fires_where_river_fires(
    seed: int, shift: float, scale: float
) -> None:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, scale, 800), rng.normal(shift * scale, scale, 800)])
    ours = detectors.create("page_hinkley", None, arl=1e6)
    alarms, pos = [], 0
    for size in (300, 1, 499, 800):
        part = x[pos : pos + size]
        # feed value by value inside the batch boundaries to collect every alarm
        for i, value in enumerate(part):
            if ours.update(np.array([value])).drift:
                alarms.append(pos + i)
        pos += size
    assert alarms == _river_alarms(drift.PageHinkley(), x)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000), shift=st.floats(0, 1.5), ties=st.booleans())
def test_vectorised_kswin_statistic_and_p_value_equal_scipy(
    seed: int, shift: float, ties: bool
) -> None:
    rng = np.random.default_rng(seed)
    older, recent = rng.normal(0, 1, (5, 30)), rng.normal(shift, 1, (5, 30))
    if ties:  # a discrete feature: runs of equal values across both samples
        older, recent = np.round(older), np.round(recent)
    counts = ks_counts(older, recent)
    p_values = ks_p_values(30)
    for row in range(5):
        expected = stats.ks_2samp(older[row], recent[row], method="auto")
        assert counts[row] / 30 == pytest.approx(expected.statistic, rel=1e-12)
        assert p_values[counts[row]] == pytest.approx(expected.pvalue, rel=1e-9)


def test_vectorised_kswin_fires_where_river_kswin_fires() -> None:
    # Both draw their older sample at random, so alarms cannot coincide value for value; on a
    # large change both fire within a few dozen values of it, every time. The change comes
    # right after the first window fills, before either can have fired at random.
    for seed in range(8):
        rng = np.random.default_rng(seed)
        x = np.concatenate([rng.normal(0, 1, 100), rng.normal(1.5, 1, 300)])
        ours = detectors.create("kswin_vectorised", None, arl=1e6, seed=seed)
        ours_first = ours.update(x).first_alarm
        river_first = _river_alarms(drift.KSWIN(seed=seed), x)[0]
        assert 100 <= ours_first <= 160
        assert 100 <= river_first <= 160
