"""The alert policy and the retraining planner, through the pure pipeline (no Kafka).

Streams are columnar messages of a model with ``width`` standard-normal numeric features,
one event per second of event time; a drift shifts some features by ``shift`` sds.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from driftline.config import config_from_dict
from driftline.detectors.profile import build_profile
from driftline.events.records import Alert, RetrainingRequest
from driftline.monitoring.pipeline import Pipeline
from tests.streams import counted

T0 = 1_699_920_000.0  # a UTC midnight: the streams here stay within one day


def make_pipeline(tmp_path: Path, width: int = 5, **sections: Any) -> Pipeline:
    rng = np.random.default_rng(100)
    names = [f"f{i:02d}" for i in range(width)]
    reference = {name: rng.normal(0.0, 1.0, 20_000) for name in names}
    kinds = dict.fromkeys(names, "numeric")
    profile = build_profile("m", "1", reference, kinds)
    path = tmp_path / "m.json"
    path.write_bytes(profile.to_json())
    model = {"task": "regression", "features": kinds, "reference": str(path)}
    model.update(sections.pop("model", {}))
    return counted(config_from_dict({"models": {"m": model}, **sections}))


def stream(
    n: int, width: int, segments: list[tuple[int, int, float, int]], seed: int = 1
) -> dict[str, np.ndarray]:
    """Columns of ``n`` events; each (start, end, shift, features) shifts the first features."""
    rng = np.random.default_rng(seed)
    cols = {f"f{i:02d}": rng.normal(0.0, 1.0, n) for i in range(width)}
    for start, end, shift, count in segments:
        for i in range(count):
            cols[f"f{i:02d}"][start:end] += shift
    return cols


def messages(
    cols: dict[str, np.ndarray], cuts: list[int], version: str = "1", model: str = "m"
) -> list[bytes]:
    n = len(next(iter(cols.values())))
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < n), n]
    out = []
    for a, b in itertools.pairwise(bounds):
        out.append(
            orjson.dumps(
                {
                    "model_id": model,
                    "model_version": version,
                    "columns": {
                        "prediction_id": [f"p{i}" for i in range(a, b)],
                        "timestamp": [T0 + i for i in range(a, b)],
                        "prediction": [0.0] * (b - a),
                        "features": {k: v[a:b].tolist() for k, v in cols.items()},
                    },
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
        )
    return out


def run(
    p: Pipeline, cols: dict[str, np.ndarray], size: int = 500
) -> tuple[list[Alert], list[RetrainingRequest]]:
    n = len(next(iter(cols.values())))
    state: dict[str, bytes] = {}
    alerts: list[Alert] = []
    requests: list[RetrainingRequest] = []
    for value in messages(cols, list(range(size, n, size))):
        result = p.process_messages([value], state)
        alerts += result.alerts
        requests += result.retraining_requests
    return alerts, requests


def comparable(record: Alert | RetrainingRequest) -> Any:
    """The record without its wall-clock stamp, floats to 9 digits (batching changes the
    order of a few float additions, so statistics may differ in the last bits)."""
    doc = dataclasses.asdict(record)
    doc.pop("created_at")
    return _rounded(doc)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_an_episode_fires_once_and_resolves_once_with_the_same_id(tmp_path: Path) -> None:
    cols = stream(12_000, 5, [(4_000, 7_000, 1.0, 1)])
    p = make_pipeline(tmp_path)
    alerts, _ = run(p, cols)
    assert [(a.status, a.feature) for a in alerts] == [("firing", "f00"), ("resolved", "f00")]
    firing, resolved = alerts
    assert firing.alert_id == resolved.alert_id
    assert 4_000 < firing.window_start_event < firing.events_seen <= 4_000 + 250
    # a 1 sd shift crosses again well within the group wait (100 events): that evidence is
    # strong (the excess at critical_ratio), so the alert fires there, critical
    assert firing.window_start_event < firing.events_seen < firing.window_start_event + 100
    assert firing.severity == "critical" and firing.features[0].signals == 2
    assert firing.first_event_time == T0 + firing.window_start_event - 1
    profile = p.monitors["m"].profile
    assert profile is not None and firing.reference_version == profile.version
    assert firing.kind == "drift"
    assert firing.statistic >= firing.threshold > 0
    assert [f.feature for f in firing.features] == ["f00"] and firing.features_drifting == 1
    # resolves at a window end after 4 clean windows of 500 events following the drift
    assert resolved.events_seen % 500 == 0
    assert 7_000 + 4 * 500 <= resolved.events_seen <= 7_000 + 5 * 500


def test_fifty_features_drifting_at_once_give_one_grouped_ranked_alert(tmp_path: Path) -> None:
    cols = stream(6_000, 50, [(3_000, 6_000, 1.0, 50)])
    alerts, _ = run(make_pipeline(tmp_path, width=50), cols)
    # The strongest crosses twice before the group wait ends, and the alert fires there; the
    # features that follow within the wait join one update at its end, not one each.
    assert [(a.status, a.update) for a in alerts] == [("firing", 0), ("firing", 1)]
    alert, update = alerts
    assert update.events_seen == alert.window_start_event + 100
    assert update.features_drifting >= 45  # the ones that signalled within the group wait
    assert set(update.new_features).isdisjoint(f.feature for f in alert.features)
    assert len(alert.features) == 10  # alerts.top_features
    excess = [f.excess for f in alert.features]
    assert excess == sorted(excess, reverse=True)
    assert alert.feature == alert.features[0].feature
    assert alert.severity == "critical"  # a 1 sd shift signals again and again


def test_severity_follows_how_far_past_the_threshold(tmp_path: Path) -> None:
    big = run(make_pipeline(tmp_path), stream(8_000, 5, [(4_000, 8_000, 2.0, 1)]))[0]
    small = run(make_pipeline(tmp_path), stream(8_000, 5, [(4_000, 8_000, 0.35, 1)]))[0]
    assert big[0].severity == "critical" and big[0].features[0].signals >= 2
    assert small[0].severity == "warning" and small[0].features[0].excess < 2.0


def test_hysteresis_a_blip_shorter_than_the_windows_asked_for_does_not_fire(
    tmp_path: Path,
) -> None:
    # 150 events of a 2 sd shift: one drifted window, then clean
    blip = stream(6_000, 5, [(3_000, 3_150, 2.0, 1)])
    once = run(make_pipeline(tmp_path), blip)[0]
    twice = make_pipeline(tmp_path, alerts={"fire_after_windows": 2})
    assert [a.status for a in once] == ["firing", "resolved"]
    assert run(twice, blip)[0] == []
    # a sustained shift still fires with two windows asked for, in the second window
    sustained = run(twice, stream(6_000, 5, [(3_000, 6_000, 2.0, 1)]))[0]
    assert [a.status for a in sustained] == ["firing"]
    assert sustained[0].events_seen > 3_500


def test_cooldown_holds_back_a_new_episode_until_it_has_passed(tmp_path: Path) -> None:
    # two episodes with 3,000 quiet events (50 min of event time) between them
    cols = stream(14_000, 5, [(2_000, 3_000, 2.0, 1), (8_000, 14_000, 2.0, 1)])
    short = run(make_pipeline(tmp_path, alerts={"cooldown_seconds": 60}), cols)[0]
    assert [a.status for a in short] == ["firing", "resolved", "firing"]
    assert short[0].alert_id != short[2].alert_id  # a new episode, a new dedup id
    assert 8_000 < short[2].events_seen < 8_300
    long = run(make_pipeline(tmp_path, alerts={"cooldown_seconds": 4_000}), cols)[0]
    resolved_at = long[1].last_event_time
    assert [a.status for a in long] == ["firing", "resolved", "firing"]
    assert long[2].last_event_time >= resolved_at + 4_000 > short[2].last_event_time


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(1, 7_999), max_size=12))
@example(cuts=[2024])  # a cut on a feature's first signal (its later crossings differ)
@example(cuts=[2419])  # a cut on the event the retraining request falls due
def test_alerts_and_requests_do_not_depend_on_batch_cuts(tmp_path: Path, cuts: list[int]) -> None:
    cols = stream(8_000, 8, [(2_000, 8_000, 1.0, 3), (2_600, 8_000, 0.7, 5)])
    sections = {"model": {"retraining": {"after_critical_seconds": 300}}}
    expected = run(make_pipeline(tmp_path, width=8, **sections), cols, size=8_000)
    p = make_pipeline(tmp_path, width=8, **sections)
    state: dict[str, bytes] = {}
    alerts, requests = [], []
    for value in messages(cols, cuts):
        result = p.process_messages([value], state)
        alerts += result.alerts
        requests += result.retraining_requests
    assert expected[0] and expected[1]
    assert any(a.update for a in expected[0])  # the later features are an update, cut-proof too
    assert [comparable(a) for a in alerts] == [comparable(a) for a in expected[0]]
    assert [comparable(r) for r in requests] == [comparable(r) for r in expected[1]]


def test_an_open_episode_does_not_hide_a_feature_that_drifts_later(tmp_path: Path) -> None:
    """f00 drifts from event 2,000 for good; f01 from 6,000. f01 reaches on-call as an update
    of the open alert, as soon after its first signal as a new episode's alert would, once."""
    quiet = stream(12_000, 5, [])
    f01_alone = {**quiet, "f01": quiet["f01"] + np.where(np.arange(12_000) >= 6_000, 1.0, 0.0)}
    both = {**f01_alone, "f00": quiet["f00"] + np.where(np.arange(12_000) >= 2_000, 1.0, 0.0)}
    alerts, _ = run(make_pipeline(tmp_path), both)
    fired, update = alerts
    assert (fired.status, fired.feature, fired.update) == ("firing", "f00", 0)
    assert (update.status, update.alert_id, update.update) == ("firing", fired.alert_id, 1)
    assert update.new_features == ["f01"] and update.features_drifting == 2
    assert update.message.startswith("Drift on m (update 1: also f01): 2 features")
    assert update.window_start_event == fired.window_start_event  # one episode
    (f01,) = [f for f in update.features if f.feature == "f01"]
    assert f01.events_seen > 6_000 and f01.events_seen < update.events_seen
    # the same delay as f01 drifting alone on a quiet model
    (alone,) = run(make_pipeline(tmp_path), f01_alone)[0]
    assert alone.feature == "f01" and alone.events_seen == update.events_seen
    assert alone.delivery_key == f"{alone.alert_id}/firing"
    assert update.delivery_key == f"{fired.alert_id}/firing/1"
    assert update.counted_as == "update" and fired.counted_as == "firing"


def test_a_feature_back_after_its_clean_windows_is_news_again(tmp_path: Path) -> None:
    # f00 drifts throughout; f01 drifts, goes quiet for 3,000 events (6 clean windows), returns
    cols = stream(
        14_000, 5, [(1_000, 14_000, 1.0, 1), (4_000, 6_000, 1.5, 2), (9_000, 14_000, 1.5, 2)]
    )
    alerts, _ = run(make_pipeline(tmp_path), cols)
    assert [(a.status, a.update, a.new_features) for a in alerts] == [
        ("firing", 0, []),
        ("firing", 1, ["f01"]),
        ("firing", 2, ["f01"]),
    ]
    # while it keeps drifting, no more updates: each joining is told once
    assert 9_000 < alerts[2].events_seen < 9_500


def test_an_update_raises_the_severity_and_retraining_counts_from_there(
    tmp_path: Path,
) -> None:
    # a small shift of f00 from 2,000 (a warning); f01 shifts 2 sd from 5,000 (critical)
    cols = stream(9_000, 5, [(2_000, 9_000, 0.35, 1), (5_000, 9_000, 2.0, 2)])
    policy = {"retraining": {"after_critical_seconds": 600}}
    alerts, requests = run(make_pipeline(tmp_path, model=policy), cols)
    fired, update = alerts
    assert (fired.severity, update.severity, update.new_features) == (
        "warning",
        "critical",
        ["f01"],
    )
    (request,) = requests
    assert request.last_event_time >= update.last_event_time + 600


def test_a_sustained_episode_asks_for_retraining_once(tmp_path: Path) -> None:
    cols = stream(20_000, 5, [(2_000, 20_000, 2.0, 2)])
    p = make_pipeline(tmp_path, model={"retraining": {"after_critical_seconds": 600}})
    alerts, requests = run(p, cols)
    assert [a.status for a in alerts] == ["firing"] and alerts[0].severity == "critical"
    (request,) = requests
    assert request.alert_ids == [alerts[0].alert_id]
    assert request.last_event_time >= alerts[0].last_event_time + 600
    assert request.events_seen == alerts[0].events_seen + 600  # one event per second
    assert set(request.features[:2]) == {"f00", "f01"}
    assert request.reference_version == alerts[0].reference_version
    assert request.kind == "drift"
    again = run(
        make_pipeline(tmp_path, model={"retraining": {"after_critical_seconds": 600}}), cols
    )
    assert again[1][0].idempotency_key == request.idempotency_key  # deterministic


def test_retraining_cooldown_and_daily_cap(tmp_path: Path) -> None:
    # three sustained episodes 6,000 s of event time apart, with 3,000 quiet events between
    # them: more than the resolve windows plus a detector's last late signal
    segments = [(s, s + 3_000, 2.0, 1) for s in (1_000, 7_000, 13_000)]
    cols = stream(17_000, 5, segments)
    base = {"after_critical_seconds": 60, "cooldown_seconds": 0, "max_per_day": 10}
    alerts, requests = run(
        make_pipeline(tmp_path, alerts={"cooldown_seconds": 0}, model={"retraining": base}), cols
    )
    assert sum(a.status == "firing" for a in alerts) == 3 and len(requests) == 3
    assert len({r.idempotency_key for r in requests}) == 3
    cooled = {**base, "cooldown_seconds": 8_000}  # longer than one gap, shorter than two
    _, requests = run(
        make_pipeline(tmp_path, alerts={"cooldown_seconds": 0}, model={"retraining": cooled}),
        cols,
    )
    assert len(requests) == 2
    capped = {**base, "max_per_day": 1}
    _, requests = run(
        make_pipeline(tmp_path, alerts={"cooldown_seconds": 0}, model={"retraining": capped}),
        cols,
    )
    assert len(requests) == 1
    off = {**base, "enabled": False}
    _, requests = run(
        make_pipeline(tmp_path, alerts={"cooldown_seconds": 0}, model={"retraining": off}), cols
    )
    assert requests == []


def test_no_alert_on_a_stable_stream(tmp_path: Path) -> None:
    alerts, requests = run(make_pipeline(tmp_path, width=20), stream(30_000, 20, [], seed=9))
    assert alerts == [] and requests == []


@pytest.mark.parametrize("key", ["window_events", "resolve_after_windows", "fire_after_windows"])
def test_policy_settings_are_validated_by_name(tmp_path: Path, key: str) -> None:
    from driftline.config import ConfigError

    with pytest.raises(ConfigError, match=f"alerts.{key}"):
        make_pipeline(tmp_path, alerts={key: 0})


def test_two_features_that_start_moving_together_make_a_drift_alert_naming_the_pair(
    tmp_path: Path,
) -> None:
    """Each keeps its distribution (the marginal detectors stay quiet); their correlation goes
    from 0 to 0.8 at event 3,000: one alert, on the pair, from the joint detector."""
    cols = stream(8_000, 5, [])
    after = np.arange(8_000) >= 3_000
    mixed = 0.8 * cols["f00"] + 0.6 * cols["f03"]
    cols["f03"] = np.where(after, mixed, cols["f03"])
    (alert,) = run(make_pipeline(tmp_path), cols)[0]
    assert (alert.status, alert.kind, alert.feature) == ("firing", "drift", "f00 & f03")
    assert alert.features[0].detector == "joint" and len(alert.features) == 1
    assert 3_000 < alert.window_start_event < 4_000
    # off in the config: nothing
    off = make_pipeline(tmp_path, model={"joint_drift": {"enabled": False}})
    assert run(off, cols)[0] == []
