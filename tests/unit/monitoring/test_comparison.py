"""Champion and challenger on the same labels, in process (tests/integration has the worker)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from driftline.config import ComparisonSettings
from driftline.events.records import ComparisonWindow
from driftline.monitoring.comparison import VersionComparison, error_spent
from driftline.monitoring.join import Joined

T0 = 1_700_000_000.0


def shadow_pairs(
    rng: np.random.Generator, n: int, champion_accuracy: float, challenger_accuracy: float
) -> list[Joined]:
    """The join's pairs for ``n`` labels that met both versions (champion "1", challenger
    "2"), the challenger's pair first as a shadow's may be."""
    out = []
    for i in range(n):
        label = int(rng.integers(0, 2))
        right_1 = rng.random() < champion_accuracy
        right_2 = rng.random() < challenger_accuracy
        t = T0 + i
        for version, right in (("2", right_2), ("1", right_1)):
            predicted = label if right else 1 - label
            out.append(Joined(f"p{i}", t, version, predicted, None, label, t + 60))
    return out


FIRST_SEEN = {"1": T0 - 1_000, "2": T0 - 10}


def test_windows_equal_an_offline_paired_computation() -> None:
    rng = np.random.default_rng(1)
    pairs = shadow_pairs(rng, 1_000, 0.80, 0.86)
    comparison = VersionComparison("m", "binary", ComparisonSettings(), window_labels=400)
    state: dict[str, bytes] = {}
    windows = []
    for start in range(0, len(pairs), 146):  # label batches that cut across windows
        windows += comparison.process(pairs[start : start + 146], FIRST_SEEN, state, 0).windows
    assert [w.window_end_label for w in windows] == [400, 800]
    # batches that end where windows end: the state then holds an empty window
    aligned: list[ComparisonWindow] = []
    state = {}
    for start in range(0, len(pairs), 400):
        aligned += comparison.process(pairs[start : start + 400], FIRST_SEEN, state, 0).windows
    assert aligned == windows
    wrong = {v: np.array([p.prediction != p.label for p in pairs if p.version == v]) for v in "12"}
    for k, window in enumerate(windows):
        rows = slice(400 * k, 400 * (k + 1))
        d = wrong["1"][rows].astype(float) - wrong["2"][rows]
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        assert (window.champion, window.challenger) == ("1", "2")
        assert np.isclose(window.champion_value, 1 - wrong["1"][rows].mean())
        assert np.isclose(window.challenger_value, 1 - wrong["2"][rows].mean())
        assert np.isclose(window.difference, d.mean())
        assert np.isclose(window.lower, d.mean() - half)
        assert np.isclose(window.upper, d.mean() + half)
        total = wrong["1"][: rows.stop].astype(float) - wrong["2"][: rows.stop]
        spent = 0.05 * (((k + 1) / (k + 5)) ** 2 - (k / (k + 4)) ** 2)  # at look k + 1
        bound = total.mean() - stats.t.ppf(1 - spent, len(total) - 1) * total.std(ddof=1) / np.sqrt(
            len(total)
        )
        assert np.isclose(window.total_lower, bound)


def test_the_looks_spend_the_error_slowly_at_first_and_never_more_than_all_of_it() -> None:
    spent = np.cumsum([error_spent(k, 0.05) for k in range(1, 100_001)])
    assert np.all(np.diff(spent) > 0) and spent[-1] < 0.05
    assert np.isclose(spent[0], 0.05 / 25)  # (1 / 5)^2: the first window decides only on a lot
    assert np.isclose(spent[3], 0.05 / 4) and np.isclose(spent[9], 0.05 * (10 / 14) ** 2)
    assert spent[-1] > 0.0499  # all of it, eventually


def test_a_better_challenger_fires_one_info_alert_and_an_equal_one_rarely_does() -> None:
    settings = ComparisonSettings(margin=0.01)
    better = VersionComparison("m", "binary", settings, window_labels=500)
    state: dict[str, bytes] = {}
    compared = better.process(
        shadow_pairs(np.random.default_rng(2), 5_000, 0.80, 0.88), FIRST_SEEN, state, 123
    )
    assert len(compared.windows) == 10
    assert [a.status for a in compared.alerts] == ["firing"]
    alert = compared.alerts[0]
    assert (alert.severity, alert.kind, alert.model_version) == ("info", "comparison", "2")
    assert "challenger 2 better than champion 1" in alert.message
    # equal versions, looked at every window: the spent error keeps the decision at its level
    fired = 0
    for seed in range(40):
        equal = VersionComparison("m", "binary", ComparisonSettings(), window_labels=200)
        pairs = shadow_pairs(np.random.default_rng(100 + seed), 4_000, 0.85, 0.85)
        fired += any(a.status == "firing" for a in equal.process(pairs, FIRST_SEEN, {}, 0).alerts)
    assert fired <= 5  # at most 5% of 40 expected; 5 or more has probability under 1.5%


def test_a_regression_compares_absolute_errors_as_a_share_of_the_champions_mae() -> None:
    rng = np.random.default_rng(3)
    pairs = []
    for i in range(300):
        y = float(rng.normal())
        for version, noise in (("1", 1.0), ("2", 0.5)):
            pairs.append(Joined(f"p{i}", T0 + i, version, y + noise * rng.normal(), None, y, T0))
    window = (
        VersionComparison("m", "regression", ComparisonSettings(), window_labels=300)
        .process(pairs, FIRST_SEEN, {}, 0)
        .windows[0]
    )
    err = {
        v: np.array([abs(p.prediction - p.label) for p in pairs if p.version == v]) for v in "12"
    }
    assert window.metric == "mae"
    assert np.isclose(window.champion_value, err["1"].mean())
    assert np.isclose(window.difference, (err["1"].mean() - err["2"].mean()) / err["1"].mean())
    assert window.challenger_better
