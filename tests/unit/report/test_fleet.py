"""The status page's fold of the records: each model's state, bounded memory."""

from __future__ import annotations

from dataclasses import replace

from driftline.config import config_from_dict
from driftline.events.records import FeatureWindow, SubjectWindow
from driftline.report.fleet import EPISODES, HISTORY, Fleet, render_fleet
from tests.unit.observability.test_notify import make_alert

MODEL = {"task": "binary", "features": {"x": "numeric"}}


def fleet() -> Fleet:
    return Fleet(config_from_dict({"models": {"a": MODEL, "b": MODEL, "c": MODEL}}))


def test_a_model_is_in_the_state_of_its_worst_open_episode() -> None:
    f = fleet()
    f.add_alert(make_alert(model_id="a", kind="drift", alert_id="d1", created_at=10.0))
    f.add_alert(make_alert(model_id="a", kind="data_quality", alert_id="q1", created_at=20.0))
    f.add_alert(make_alert(model_id="b", kind="performance", alert_id="p1"))
    f.add_alert(make_alert(model_id="c", kind="drift", alert_id="d2"))
    f.add_alert(make_alert(model_id="c", kind="drift", alert_id="d2", status="resolved"))
    assert [f.health(m)[0] for m in "abc"] == ["broken", "degraded", "healthy"]
    _, episode = f.health("a")
    assert episode is not None and episode.alert_id == "q1"
    html = render_fleet(f, {"p": 3})
    order = [html.index(f'data-model="{m}"') for m in "abc"]
    assert order == sorted(order)  # worst first
    assert 'data-lag="p">3<' in html


def test_memory_stays_bounded() -> None:
    f = fleet()
    for i in range(EPISODES + 50):
        f.add_alert(make_alert(model_id="a", alert_id=f"e{i}"))
    window = FeatureWindow(
        "a", "1", "r", 0, 1, 0.0, 0.0, {"x": SubjectWindow("cusum", 0.1, False)}, []
    )
    for i in range(HISTORY + 50):
        f.add_feature_window(replace(window, window_end_event=i))
    assert len(f.models["a"].alerts) == EPISODES and "e0" not in f.models["a"].alerts
    assert len(f.models["a"].history) == HISTORY
    assert f.models["a"].history[-1].window_end_event == HISTORY + 49


def test_the_page_follows_the_newest_version() -> None:
    """A new version's detectors start again: its row names it, and its sparkline draws its
    own windows, not the old version's beside them."""
    import re

    f = fleet()
    window = FeatureWindow(
        "a", "3", "r", 0, 1, 0.0, 0.0, {"x": SubjectWindow("cusum", 0.9, True)}, []
    )
    for i in range(10):
        f.add_feature_window(replace(window, window_end_event=1_000 * (i + 1)))
    assert f.models["a"].version == "3"
    for i in range(4):
        newer = replace(
            window, model_version="4", subjects={"x": SubjectWindow("cusum", 0.1, False)}
        )
        f.add_feature_window(replace(newer, window_end_event=1_000 * (i + 1)))
    html = render_fleet(f, None)
    row = html[html.index('data-model="a"') : html.index("</tr>", html.index('data-model="a"'))]
    assert 'data-version="4"' in row and "version 4" in row
    (points,) = re.findall(r'points="([^"]*)"', row)
    assert len(points.split()) == 4  # version 4's windows only
    assert "x 0.10" in row  # its latest share, not version 3's 0.90


def test_a_models_page_shows_its_champion_and_challenger_windows() -> None:
    import numpy as np

    from driftline.config import ComparisonSettings
    from driftline.monitoring.comparison import VersionComparison
    from driftline.report.fleet import render_model
    from tests.unit.monitoring.test_comparison import FIRST_SEEN, shadow_pairs

    f = fleet()
    compared = VersionComparison("a", "binary", ComparisonSettings(), 500).process(
        shadow_pairs(np.random.default_rng(3), 1_000, 0.8, 0.8), FIRST_SEEN, {}, 0
    )
    for window in compared.windows:
        f.add_comparison_window(window)
    html = render_model(f, "a", None, None)
    assert 'data-comparison="1/2"' in html and "champion 1, challenger 2" in html
    assert f"{compared.windows[-1].total_lower:+.4g}" in html
    assert "Champion and challenger" not in render_model(f, "b", None, None)
