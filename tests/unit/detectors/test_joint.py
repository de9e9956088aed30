"""JointDrift: pairs of features that start moving together, and nothing else."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.detectors.joint import JointDrift
from driftline.detectors.kernels import pair_correlation_bank
from driftline.detectors.profile import build_profile

K = 8


def draw(rng: np.random.Generator, n: int, rho: float = 0.0) -> np.ndarray:
    """K features of four shapes (normal, gamma, Student t3, Poisson counts); features 0 and
    1 share a Gaussian copula of correlation ``rho``, the rest are independent."""
    g = rng.normal(0, 1, (n, K))
    g[:, 1] = rho * g[:, 0] + np.sqrt(1 - rho * rho) * g[:, 1]
    from scipy import stats

    u = stats.norm.cdf(g)
    x = np.empty((n, K))
    for c in range(K):
        shape = c % 4
        if shape == 0:
            x[:, c] = 10 + 2 * g[:, c]
        elif shape == 1:
            x[:, c] = stats.gamma.ppf(u[:, c], 2.0, scale=1.5)
        elif shape == 2:
            x[:, c] = stats.t.ppf(u[:, c], 3)
        else:
            x[:, c] = stats.poisson.ppf(u[:, c], 3.0)
    return x


def detector(rho: float = 0.0, rows: int = 20_000, seed: int = 0, arl: float = 1e7) -> JointDrift:
    x = draw(np.random.default_rng([seed, 1]), rows, rho)
    columns = {f"x{c}": x[:, c] for c in range(K)}
    profile = build_profile("m", "1", columns, dict.fromkeys(columns, "numeric"))
    return JointDrift.from_profile(profile, arl=arl)


@pytest.mark.parametrize("rho", [0.0, 0.6])
def test_no_alarm_on_the_references_own_law(rho: float) -> None:
    """Heavy tails, ties and a correlated pair in the reference: the same law never alarms."""
    det = detector(rho)
    for seed in range(5):
        assert det.update(draw(np.random.default_rng([seed, 2]), 20_000, rho)).alarms == 0


def test_no_alarm_when_the_marginals_move_and_the_dependence_does_not() -> None:
    """Means and spreads shifting, of one feature or all together, are the marginal
    detectors' to report; the pairs' correlations did not change."""
    rng = np.random.default_rng(3)
    for change in ("one mean", "all means", "one spread x2", "all spreads / 2"):
        det = detector()
        x = draw(rng, 10_000)
        if change == "one mean":
            x[:, 0] += 2.0
        elif change == "all means":
            x += x.std(axis=0)
        elif change == "one spread x2":
            x[:, 0] = 10 + (x[:, 0] - 10) * 2
        else:
            x = x.mean(axis=0) + (x - x.mean(axis=0)) / 2
        assert det.update(x).alarms == 0, change


def test_a_feature_stuck_at_one_value_says_nothing_about_its_pairs() -> None:
    """A broken feature stuck at a constant is data quality's to report: its pairs' blocks
    count as uncorrelated, quietly (no warnings from a sum of squares rounded below zero)."""
    det = detector()
    x = draw(np.random.default_rng(6), 10_000)
    x[:, 0] = 10.37
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert det.update(x).alarms == 0


def test_a_pair_that_starts_moving_together_is_found_and_named() -> None:
    det = detector()
    det.update(draw(np.random.default_rng(4), 5_000))
    verdict = det.update(draw(np.random.default_rng(5), 2_000, rho=0.8))
    assert verdict.drift and verdict.subject == "x0 & x1"
    assert verdict.first_alarm < 300


def test_a_small_reference_widens_the_null() -> None:
    """A 200-row reference's correlations are off by about 0.07: that is not drift."""
    alarms = 0
    for seed in range(10):
        det = detector(rows=200, seed=seed)
        alarms += det.update(draw(np.random.default_rng([seed, 3]), 10_000)).alarms
    assert alarms == 0


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 400), min_size=1, max_size=12))
def test_any_batching_gives_the_same_verdicts(sizes: list[int]) -> None:
    x = np.concatenate(
        [draw(np.random.default_rng(6), 1_500), draw(np.random.default_rng(7), 1_500, 0.9)]
    )
    whole = detector()
    one = whole.update(x)
    pieces, pos, alarms = detector(), 0, []
    for size in [*sizes, x.shape[0]]:
        part = x[pos : pos + size]
        verdict = pieces.update(part)
        if verdict.drift:
            alarms.append(pos + verdict.first_alarm)
        pos += part.shape[0]
        if pos >= x.shape[0]:
            break
    assert one.drift and alarms and alarms[0] == one.first_alarm
    assert pieces.state_bytes() == whole.state_bytes()


def test_state_round_trip_continues_identically() -> None:
    x = draw(np.random.default_rng(8), 3_000, 0.7)
    a, b = detector(), detector()
    a.update(x[:1_234])
    b.restore(a.state_bytes())
    assert a.update(x[1_234:]) == b.update(x[1_234:])
    with pytest.raises(ValueError, match="does not match"):
        JointDrift.from_profile(
            build_profile("m", "1", {"a": x[:, 0], "b": x[:, 1]}, {"a": "numeric", "b": "numeric"}),
            arl=1e6,
        ).restore(a.state_bytes())


def test_a_subset_of_the_profiles_features_is_the_profile_of_that_subset() -> None:
    x = draw(np.random.default_rng(9), 5_000, 0.5)
    columns = {f"x{c}": x[:, c] for c in range(K)}
    full = build_profile("m", "1", columns, dict.fromkeys(columns, "numeric"))
    some = ["x5", "x0", "x1"]
    types = dict.fromkeys(columns, "numeric")
    alone = build_profile("m", "1", columns, types, dependence_features=some)
    a = JointDrift.from_profile(full, arl=1e6, features=some)
    b = JointDrift.from_profile(alone, arl=1e6)
    assert a.features == b.features == tuple(some)
    stream = draw(np.random.default_rng(10), 2_000, 0.95)[:, [5, 0, 1]]
    assert a.update(stream) == b.update(stream)
    with pytest.raises(ValueError, match="no reference dependence for nope"):
        JointDrift.from_profile(full, arl=1e6, features=["x0", "nope"])


def test_the_kernel_is_the_recursion() -> None:
    rng = np.random.default_rng(11)
    zeta = rng.normal(0, 0.3, (40, 3))
    weight, centre = rng.normal(0, 5, 6), rng.normal(0, 0.2, 6)
    stats, threshold = np.zeros(6), 4.0
    alarms, first, peak, crossed = pair_correlation_bank(zeta, weight, centre, stats, threshold)
    want, n, f, c = np.zeros(6), 0, -1, -1
    for b in range(40):
        want = np.maximum(want + weight * (np.tile(zeta[b], 2) - centre), 0.0)
        if want.max() > threshold:
            if n == 0:
                f, c = b, int(want.argmax())
            n += 1
            want[:] = 0.0
    assert (alarms, first, crossed) == (n, f, c) and n > 0
    assert np.allclose(stats, want) and peak > threshold
