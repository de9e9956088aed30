"""The pure pipeline (decode, detectors, alert policy) without Kafka."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from driftline.config import config_from_dict
from driftline.monitoring.monitor import ModelMonitor
from driftline.monitoring.pipeline import Pipeline
from tests.streams import batch_message, counted, events, model_config, write_profile


def pipeline(tmp_path: Path, worker: dict | None = None, **model_extra: object) -> Pipeline:
    profile = write_profile(tmp_path / "m1.json")
    config = config_from_dict(
        {
            "alerts": {"window_events": 250, "resolve_after_windows": 4},
            "worker": worker or {},
            "models": {"m1": model_config(profile, **model_extra)},
        }
    )
    return counted(config)


def run(p: Pipeline, rows: list[dict], state: dict, size: int = 250) -> list:
    alerts = []
    for start in range(0, len(rows), size):
        alerts += p.process_predictions(
            batch_message("m1", rows[start : start + size]), state
        ).alerts
    return alerts


def test_drift_episode_fires_once_then_resolves(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = events(4_000, rng) + events(2_000, rng, 4_000, x1_shift=1.0) + events(4_000, rng, 6_000)
    alerts = run(pipeline(tmp_path), rows, {})
    assert [(a.feature, a.status) for a in alerts] == [("x1", "firing"), ("x1", "resolved")]
    firing, resolved = alerts
    assert firing.alert_id == resolved.alert_id
    assert firing.statistic > firing.threshold
    assert 4_000 < firing.events_seen < 4_200
    assert resolved.events_seen >= 6_000 + 1000  # resolves only after enough clean events


def test_state_in_a_mapping_survives_a_new_pipeline(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    rows = events(3_000, rng) + events(1_000, rng, 3_000, x1_shift=1.0)
    state_a: dict = {}
    straight = run(pipeline(tmp_path), rows, state_a)
    state_b: dict = {}
    run(pipeline(tmp_path), rows[:2_000], state_b)
    resumed_state = dict(state_b)  # what a restarted worker reads back from the changelog
    resumed = run(pipeline(tmp_path), rows[2_000:], resumed_state)
    assert straight and [(a.feature, a.events_seen, a.alert_id) for a in resumed] == [
        (a.feature, a.events_seen, a.alert_id) for a in straight
    ]
    assert resumed_state == state_a  # byte for byte the state of the uninterrupted run


def test_metrics_count_events_and_dead_letters(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    state: dict = {}
    p.process_predictions(batch_message("m1", events(10, np.random.default_rng(1))), state)
    p.process_predictions(b"not json", state)
    reg = p.metrics.registry
    assert reg.get_sample_value("driftline_events_processed_total", {"model": "m1"}) == 10
    assert (
        reg.get_sample_value(
            "driftline_dead_letters_total", {"model": "_unknown", "reason": "undecodable"}
        )
        == 1
    )


def test_random_model_and_feature_names_do_not_grow_series(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    state: dict = {}
    rng = np.random.default_rng(2)

    def series() -> int:
        return sum(len(m.samples) for m in p.metrics.registry.collect())

    p.process_predictions(batch_message("m1", events(5, rng)), state)
    before = series()
    for i in range(300):
        rows = events(2, rng)
        for r in rows:
            r["features"][f"junk_{i}"] = 1.0
        p.process_predictions(batch_message("m1", rows), state)
        p.process_predictions(batch_message(f"intruder-{i}", rows), state)
    assert series() == before


def test_detector_override_of_the_wrong_kind_is_a_config_error(tmp_path: Path) -> None:
    import pytest

    from driftline.config import ConfigError

    with pytest.raises(
        ConfigError,
        match=r"models.m1.detectors.color.detector: 'cusum' takes "
        r"numeric input, the feature is categorical; .*categorical_cusum",
    ):
        pipeline(tmp_path, detectors={"color": {"detector": "cusum"}})
    p = pipeline(tmp_path, detectors={"x1": {"detector": "ks"}, "color": {"detector": "psi"}})
    specs = {s.feature: s.detector for s in p.monitors["m1"].specs}
    assert specs == {"x1": "ks", "x2": "cusum", "color": "psi", "_joint": "joint"}


def test_large_takes_reach_the_detectors_in_bounded_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = pipeline(tmp_path, worker={"merge_events": 4_096})  # a few groups of this take
    sizes: list[int] = []
    original = ModelMonitor.process

    def recording(self, batch, state):
        sizes.append(len(batch))
        return original(self, batch, state)

    monkeypatch.setattr(ModelMonitor, "process", recording)
    rng = np.random.default_rng(8)
    messages = [batch_message("m1", events(500, rng, i * 500)) for i in range(40)]
    result = p.process_messages(messages, {})
    assert result.events == 20_000 == sum(sizes)
    merge = p.config.worker.merge_events
    assert max(sizes) <= merge and len(sizes) == -(-20_000 // (merge // 500 * 500))


def test_messages_delivered_again_are_skipped_not_counted_twice(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    rng = np.random.default_rng(9)
    messages = [batch_message("m1", events(100, rng, i * 100)) for i in range(10)]
    sources = [("t", 0, 1000 + i) for i in range(10)]
    state: dict = {}
    p.process_messages(messages[:6], state, sources[:6])
    after_six = dict(state)
    # a restart re-delivers messages 4..9: 4 and 5 were applied already
    p.process_messages(messages[4:], state, sources[4:])
    slot = p.versions["m1"].slot("1", state)
    assert slot is not None and slot.monitor.events_seen(state) == 1000
    assert state["m1/_applied/t:0"] == b"1009"
    reg = p.metrics.registry
    assert reg.get_sample_value("driftline_replayed_messages_skipped_total", {"model": "m1"}) == 2
    # the same messages once each, without any replay, give the same state (up to the
    # rounding of sums taken over different batch boundaries)
    straight: dict = {}
    pipeline(tmp_path).process_messages(messages, straight, sources)
    assert set(straight) == set(state) and after_six != state
    for key, value in state.items():
        if key.endswith(("cusum", "categorical_cusum")):
            ours, theirs = orjson.loads(value), orjson.loads(straight[key])
            assert ours["n"] == theirs["n"] == 1000
            assert ours["s"] == pytest.approx(theirs["s"], abs=1e-9)
        else:
            assert value == straight[key], key


def test_single_event_messages_give_the_state_one_batch_gives(tmp_path: Path) -> None:
    """Single-event messages are put into columns together (codec.ValidRows): the detector
    state, the wrong-type counts and the data-quality counts (an undeclared field among them)
    equal those of one batch message."""
    rng = np.random.default_rng(7)
    rows = events(300, rng)
    rows[5]["features"]["x1"] = "not a number"  # a wrong type: missing, and counted
    rows[9]["features"]["extra"] = 1.0  # an undeclared field
    singles = [orjson.dumps({"model_id": "m1", "model_version": "1", **r}) for r in rows]
    results = []
    for values in (singles, [batch_message("m1", rows)]):
        p = pipeline(tmp_path)
        state: dict = {}
        outcome = p.process_messages(values, state)
        assert outcome.events == 300 and outcome.dead_letters == []
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for m in p.metrics.registry.collect()
            for s in m.samples
            if ("type_errors" in s.name or "data_quality" in s.name)
            and not s.name.endswith("_created")
        }
        results.append((state, samples))
    assert results[0][0] == results[1][0]
    assert results[0][1] == results[1][1] and results[0][1]  # the same counts, and some
