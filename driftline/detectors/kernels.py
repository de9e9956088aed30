"""Compiled inner loops of the sequential detectors (numba).

A CUSUM is a recursion, ``S_t = max(0, S_{t-1} + inc_t)``, restarted after each alarm. numpy
can only do it in several passes over the whole batch (running sums and minima, then a rescan
after every alarm); a compiled loop does it in one pass of a few nanoseconds per value and
CUSUM, without building the batch's matrix of increments. The loops run value by value, so
feeding a stream in one batch or value by value gives bit-identical statistics.

The machine code is cached in ``__pycache__`` (or ``NUMBA_CACHE_DIR``): a worker compiles once
per machine (about 4 s), not at every start. ``warm_up()`` compiles ahead: ``make setup`` and
the Docker image's build call it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit


def compiled(fn: Callable[..., Any]) -> Any:
    """``njit`` with an on-disk cache, or without one where no cache directory is writable."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # numba found nowhere to cache: compile at each start instead
        return njit(nogil=True)(fn)


@compiled
def normal_score_bank(
    z: np.ndarray,
    a: np.ndarray,
    c_mean: np.ndarray,
    b: np.ndarray,
    c_var: np.ndarray,
    stats: np.ndarray,
    threshold: float,
) -> tuple[int, int, float]:
    """The normal-score bank: mean rows ``a*z + c_mean``, then variance rows ``b*z^2 + c_var``.

    One-sided CUSUMs ``S_t = max(0, S_{t-1} + inc_t)`` side by side, the increments computed
    on the fly from the scores ``z``; ``stats`` (mean rows first) is updated in place. When
    any CUSUM crosses ``threshold`` all restart from zero at the next value. Returns the
    number of alarms, the index of the first alarm (or -1) and the peak: the largest
    statistic reached before the first alarm, or at it.
    """
    m, v = a.size, b.size
    alarms, first = 0, -1
    peak = stats.max() if m + v else 0.0
    for t in range(z.size):
        zt = z[t]
        zz = zt * zt
        top = 0.0
        for i in range(m):
            s = stats[i] + (a[i] * zt + c_mean[i])  # the increment, then the sum
            s = s if s > 0.0 else 0.0
            stats[i] = s
            top = s if s > top else top
        for j in range(v):
            s = stats[m + j] + (b[j] * zz + c_var[j])
            s = s if s > 0.0 else 0.0
            stats[m + j] = s
            top = s if s > top else top
        if alarms == 0 and top > peak:
            peak = top
        if top > threshold:
            if alarms == 0:
                first, peak = t, top
            alarms += 1
            stats[:] = 0.0
    return alarms, first, peak


@compiled
def closest_in_box(q: np.ndarray, low: np.ndarray, high: np.ndarray, out: np.ndarray) -> None:
    """The frequencies ``p`` with ``low <= p <= high`` and sum one closest to ``q`` in
    KL(q || p) (its reverse information projection), written to ``out``.

    The optimum is ``p_i = clip(q_i / lam, low_i, high_i)`` with ``lam`` making the sum one
    (the KKT conditions); the sum falls as ``lam`` grows, so ``lam`` is found by bisection.
    Needs ``q > 0`` and ``sum(low) <= 1 <= sum(high)``.
    """
    k = q.size
    lam_lo, lam_hi = np.inf, 0.0
    for i in range(k):
        lam_lo = min(lam_lo, q[i] / high[i])
        lam_hi = max(lam_hi, q[i] / low[i])
    for _ in range(60):  # geometric bisection: lam spans orders of magnitude
        lam = np.sqrt(lam_lo * lam_hi)
        total = 0.0
        for i in range(k):
            total += min(max(q[i] / lam, low[i]), high[i])
        if total > 1.0:
            lam_lo = lam
        else:
            lam_hi = lam
    lam = np.sqrt(lam_lo * lam_hi)
    for i in range(k):
        out[i] = min(max(q[i] / lam, low[i]), high[i])


@compiled
def adaptive_categorical_scan(
    codes: np.ndarray,
    first_position: int,
    log_p: np.ndarray,
    prior_p: np.ndarray,
    prior: float,
    decay: float,
    block: int,
    counts: np.ndarray,
    pending: np.ndarray,
    stat: np.ndarray,
    threshold: float,
    low: np.ndarray,
    high: np.ndarray,
) -> tuple[int, int, float]:
    """The adaptive categorical CUSUM; ``counts``, ``pending`` and ``stat`` updated in place.

    ``counts`` are the forgotten counts of the completed blocks, ``pending`` the counts of
    the block under way. Each value scores ``ln(q_hat(x) / p(x))`` where ``q_hat`` is
    estimated from the completed blocks only, ``(counts + prior * p) / (sum + prior)``; a
    block folds into ``counts`` (after decaying them) once its last value is scored. With
    bounds ``low``/``high`` on the true frequencies (empty: ``p`` is exact), ``p`` is the
    frequencies within them closest to ``q_hat``.
    """
    k = log_p.size
    log_ratio = np.empty(k)
    q = np.empty(k)

    def refresh() -> None:
        total = counts.sum() + prior
        for i in range(k):
            q[i] = (counts[i] + prior * prior_p[i]) / total
        if low.size == 0:  # the reference taken as exact
            for i in range(k):
                log_ratio[i] = np.log(q[i]) - log_p[i]
            return
        closest_in_box(q, low, high, log_ratio)
        for i in range(k):
            log_ratio[i] = np.log(q[i]) - np.log(log_ratio[i])

    refresh()
    alarms, first = 0, -1
    s = stat[0]
    peak = s
    for t in range(codes.size):
        c = codes[t]
        s += log_ratio[c]
        s = s if s > 0.0 else 0.0
        if alarms == 0 and s > peak:
            peak = s
        if s > threshold:
            if alarms == 0:
                first, peak = t, s
            alarms += 1
            s = 0.0
        pending[c] += 1.0
        if (first_position + t + 1) % block == 0:  # the block is complete
            for i in range(k):
                counts[i] = counts[i] * decay + pending[i]
                pending[i] = 0.0
            refresh()
    stat[0] = s
    return alarms, first, peak


@compiled
def pair_correlation_bank(
    zeta: np.ndarray,
    weight: np.ndarray,
    centre: np.ndarray,
    stats: np.ndarray,
    threshold: float,
) -> tuple[int, int, float, int]:
    """The joint detector's CUSUMs over blocks: ``zeta[b, p]`` is block b's Fisher-transformed
    correlation of pair p, whose CUSUMs (correlation up, then down) are rows p and p + pairs
    of ``stats`` (updated in place) with increments ``weight * (zeta - centre)``. All restart
    after an alarm. Returns the alarms, the first alarm's block (or -1), the peak, and the
    CUSUM that crossed first (or -1).
    """
    pairs = zeta.shape[1]
    alarms, first_block, crossed = 0, -1, -1
    peak = stats.max() if stats.size else 0.0
    for b in range(zeta.shape[0]):
        top, top_at = 0.0, -1
        for r in range(2 * pairs):
            p = r if r < pairs else r - pairs
            s = stats[r] + weight[r] * (zeta[b, p] - centre[r])
            s = s if s > 0.0 else 0.0
            stats[r] = s
            if s > top:
                top, top_at = s, r
        if alarms == 0 and top > peak:
            peak = top
        if top > threshold:
            if alarms == 0:
                first_block, peak, crossed = b, top, top_at
            alarms += 1
            stats[:] = 0.0
    return alarms, first_block, peak, crossed


@compiled
def constant_runs(same: np.ndarray, run: int, run_length: int) -> tuple[int, int, int]:
    """Runs of equal values: ``same[t]`` says value t equals the one before it.

    A run of ``run_length`` values signals and the count restarts (the next value starts a
    new run either way). ``run`` is the length of the run the chunk continues. Returns the
    number of signals, the index of the first (or -1) and the length of the run at the end.
    """
    alarms, first = 0, -1
    for t in range(same.size):
        run = run + 1 if same[t] else 1
        if run >= run_length:
            if alarms == 0:
                first = t
            alarms += 1
            run = 0
    return alarms, first, run


def interp_grid(xp: np.ndarray, cells_per_point: int = 4) -> tuple[np.ndarray, float]:
    """The lookup table of ``interp_sorted``: ``cells[k]`` is the index of the last point
    at or below edge ``k`` of equal cells over ``xp``'s range; and 1 / the cells' width."""
    n_cells = cells_per_point * xp.size
    width = (xp[-1] - xp[0]) / n_cells
    edges = xp[0] + np.arange(n_cells + 1) * width
    return np.searchsorted(xp, edges, side="right") - 1, 1.0 / width


@compiled
def interp_sorted(
    x: np.ndarray,
    xp: np.ndarray,
    fp: np.ndarray,
    slopes: np.ndarray,
    cells: np.ndarray,
    inv_width: float,
) -> np.ndarray:
    """``np.interp(x, xp, fp)`` for strictly increasing ``xp``, bit for bit, faster.

    np.interp binary-searches all of ``xp`` for each value; here a table of equal cells
    over the range (``interp_grid``) narrows the search to the points within one cell.
    """
    last = xp.size - 1
    n_cells = cells.size - 1
    out = np.empty(x.size)
    for i in range(x.size):
        v = x[i]
        if v != v:
            out[i] = v
            continue
        if v < xp[0]:
            out[i] = fp[0]
            continue
        if v >= xp[last]:
            out[i] = fp[last]
            continue
        k = min(int((v - xp[0]) * inv_width), n_cells - 1)
        lo = cells[k]
        if xp[lo] > v:  # the cell's edge rounded past v
            lo = 0
        hi = min(cells[k + 1] + 1, last)
        if xp[hi] <= v:
            hi = last
        while hi - lo > 1:  # xp[lo] <= v < xp[hi]
            mid = (lo + hi) // 2
            if xp[mid] <= v:
                lo = mid
            else:
                hi = mid
        if v == xp[lo]:
            out[i] = fp[lo]
            continue
        # numpy's formula, and its fallback from the other end when it gives NaN
        y = slopes[lo] * (v - xp[lo]) + fp[lo]
        if y != y:
            y = slopes[lo] * (v - xp[lo + 1]) + fp[lo + 1]
            if y != y and fp[lo] == fp[lo + 1]:
                y = fp[lo]
        out[i] = y
    return out


def warm_up() -> None:
    """Compile (or load from the cache) every kernel once, on tiny inputs."""
    z, one = np.zeros(2), np.ones(1)
    normal_score_bank(z, one, one, one, one, np.zeros(2), 1.0)
    constant_runs(np.zeros(2, dtype=np.bool_), 0, 3)
    xp = np.arange(3.0)
    interp_sorted(z, xp, xp, one, *interp_grid(xp))
    pair_correlation_bank(np.zeros((1, 1)), z, z, np.zeros(2), 1.0)
    codes = np.zeros(2, dtype=np.intp)
    adaptive_categorical_scan(
        codes,
        0,
        np.log(one),
        one,
        1.0,
        0.5,
        2,
        np.zeros(1),
        np.zeros(1),
        np.zeros(1),
        1.0,
        one,
        one,
    )
