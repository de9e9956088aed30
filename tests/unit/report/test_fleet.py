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
