"""The compiled detector loops against the plain-Python recursions they replace."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors.kernels import (
    adaptive_categorical_scan,
    closest_in_box,
    constant_runs,
    interp_grid,
    interp_sorted,
    normal_score_bank,
)


def python_cusum(increments: np.ndarray, start: np.ndarray, threshold: float) -> tuple:
    """S_t = max(0, S_{t-1} + inc_t) per row; all rows restart after any crosses."""
    state = [float(s) for s in start]
    alarms, first, peak = 0, -1, max(state)
    for t in range(increments.shape[1]):
        state = [max(0.0, s + float(inc)) for s, inc in zip(state, increments[:, t], strict=True)]
        top = max(state)
        if alarms == 0:
            peak = max(peak, top)
        if top > threshold:
            if alarms == 0:
                first, peak = t, top
            alarms += 1
            state = [0.0] * len(state)
    return state, alarms, first, peak


@settings(max_examples=200, deadline=None)
@given(
    means=st.integers(0, 4),
    variances=st.integers(0, 2),
    n=st.integers(0, 300),
    drift=st.floats(-0.5, 0.5),
    threshold=st.floats(0.5, 20.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_normal_score_bank_is_the_recursion(
    means: int, variances: int, n: int, drift: float, threshold: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(drift, 1.0, n)
    a, c_mean = rng.normal(0, 1, means), rng.uniform(-0.5, 0.0, means)
    b, c_var = rng.normal(0, 0.3, variances), rng.uniform(-0.3, 0.0, variances)
    # the bank's increments: mean rows a*z + c, then variance rows b*z^2 + c
    increments = np.vstack(
        [a[:, None] * z + c_mean[:, None], b[:, None] * (z * z) + c_var[:, None]]
    )
    if means + variances == 0:
        return
    start = rng.uniform(0, threshold, means + variances)
    state = start.copy()
    alarms, first, peak = normal_score_bank(z, a, c_mean, b, c_var, state, threshold)
    want_state, want_alarms, want_first, want_peak = python_cusum(increments, start, threshold)
    assert (alarms, first) == (want_alarms, want_first)
    assert state.tolist() == want_state  # same operations in the same order: bit-identical
    assert peak == want_peak


EXACT = (np.empty(0), np.empty(0))  # no bounds: the reference frequencies taken as exact


def python_adaptive_categorical(
    codes: list[int], position: int, p: np.ndarray, prior: float, decay: float, block: int
) -> list[float]:
    """Statistic after each value: increments ln(q_hat / p) with q_hat from finished blocks."""
    counts, pending, s, path = [0.0] * p.size, [0.0] * p.size, 0.0, []
    threshold = 8.0
    for t, c in enumerate(codes):
        total = sum(counts) + prior
        s = max(0.0, s + math.log((counts[c] + prior * p[c]) / total) - math.log(p[c]))
        if s > threshold:
            s = 0.0
        path.append(s)
        pending[c] += 1.0
        if (position + t + 1) % block == 0:
            counts = [k * decay + q for k, q in zip(counts, pending, strict=True)]
            pending = [0.0] * p.size
    return path


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 400), block=st.integers(1, 30), seed=st.integers(0, 2**32 - 1))
def test_adaptive_categorical_scan_is_the_recursion(n: int, block: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.array([0.5, 0.3, 0.15, 0.05])
    # a shift half way, so that the statistic climbs and restarts
    codes = np.concatenate(
        [rng.choice(4, n // 2, p=p), rng.choice(4, n - n // 2, p=[0.1, 0.2, 0.3, 0.4])]
    ).astype(np.intp)
    want = python_adaptive_categorical(codes.tolist(), 0, p, 20.0, 0.9, block)
    # value by value: the statistic after each value
    counts, pending, stat = np.zeros(4), np.zeros(4), np.zeros(1)
    got = []
    for t in range(n):
        adaptive_categorical_scan(
            codes[t : t + 1], t, np.log(p), p, 20.0, 0.9, block, counts, pending, stat, 8.0, *EXACT
        )
        got.append(float(stat[0]))
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
    # one batch: the same end state
    whole = np.zeros(4), np.zeros(4), np.zeros(1)
    adaptive_categorical_scan(codes, 0, np.log(p), p, 20.0, 0.9, block, *whole, 8.0, *EXACT)
    assert whole[2][0] == pytest.approx(want[-1], rel=1e-12, abs=1e-12)
    assert np.allclose(whole[0], counts) and np.array_equal(whole[1], pending)


def random_box(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies p and a box around them (p inside), as the reference's intervals are."""
    p = rng.dirichlet(np.ones(k))
    width = rng.uniform(0.0, 0.2, k)
    return p, np.maximum(p - width * rng.uniform(0, 1, k), 1e-4), np.minimum(p + width, 1.0)


@settings(max_examples=200, deadline=None)
@given(k=st.integers(2, 12), seed=st.integers(0, 2**32 - 1))
def test_closest_in_box_is_the_kl_projection(k: int, seed: int) -> None:
    """It is feasible, no other member of the box is closer to q in KL(q || .), and q over it
    has mean at most one under every member (what keeps the CUSUM's false-alarm bound)."""
    rng = np.random.default_rng(seed)
    p, low, high = random_box(rng, k)
    q = rng.dirichlet(np.ones(k))
    q = np.maximum(q, 1e-6) / np.maximum(q, 1e-6).sum()
    out = np.empty(k)
    closest_in_box(q, low, high, out)
    assert out.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(out >= low - 1e-12) and np.all(out <= high + 1e-12)

    def kl(r: np.ndarray) -> float:
        return float(np.sum(q * np.log(q / r)))

    members = [p]
    for _ in range(200):  # other members: p moved towards random points, kept in the box
        r = np.clip(p + rng.normal(0, 0.05, k), low, high)
        r = p + (r - p) - (r - p).sum() / k  # back on the simplex ...
        if np.all(r >= low) and np.all(r <= high):  # ... if still inside
            members.append(r)
    for r in members:
        assert kl(out) <= kl(r) + 1e-9
        assert float(np.sum(r * q / out)) <= 1.0 + 1e-9


@settings(max_examples=300, deadline=None)
@given(
    shape=st.sampled_from(["normal", "lognormal", "cauchy", "few"]),
    points=st.integers(2, 300),
    cells_per_point=st.integers(1, 16),
    seed=st.integers(0, 2**32 - 1),
)
def test_interp_sorted_is_np_interp(
    shape: str, points: int, cells_per_point: int, seed: int
) -> None:
    """Bit for bit, on skewed and heavy-tailed grids too, at the points, beyond the range,
    for infinities and NaN."""
    rng = np.random.default_rng(seed)
    draw = {
        "normal": lambda n: rng.normal(0, 1, n),
        "lognormal": lambda n: rng.lognormal(0, 3, n),
        "cauchy": lambda n: rng.standard_cauchy(n),
        "few": lambda n: rng.integers(0, 5, n) + rng.normal(0, 1e-9, n),
    }[shape]
    xp = np.unique(draw(points))
    if xp.size < 2:
        return
    fp = np.sort(rng.normal(0, 1, xp.size))
    slopes = np.diff(fp) / np.diff(xp)
    x = np.concatenate(
        [draw(500), xp, np.nextafter(xp, np.inf), [np.nan, -np.inf, np.inf, xp[0] - 1, xp[-1] + 1]]
    )
    got = interp_sorted(x, xp, fp, slopes, *interp_grid(xp, cells_per_point))
    assert np.array_equal(got, np.interp(x, xp, fp), equal_nan=True)


def python_runs(same: list[bool], run: int, run_length: int) -> tuple[int, int, int]:
    alarms, first = 0, -1
    for t, s in enumerate(same):
        run = run + 1 if s else 1
        if run >= run_length:
            first = t if alarms == 0 else first
            alarms, run = alarms + 1, 0
    return alarms, first, run


@settings(max_examples=200, deadline=None)
@given(
    same=st.lists(st.sampled_from([True, True, True, True, False]), max_size=400),
    run=st.integers(0, 50),
    run_length=st.integers(1, 60),
)
def test_constant_runs_is_the_recursion(same: list[bool], run: int, run_length: int) -> None:
    got = constant_runs(np.array(same, dtype=bool), run, run_length)
    assert got == python_runs(same, run, run_length)
