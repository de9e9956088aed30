"""The label join and performance monitoring, in process (the broker tests are apart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from driftline.config import ConfigError, config_from_dict
from driftline.events.codec import LabelBatch, PredictionBatch
from driftline.monitoring.join import LabelJoin
from driftline.monitoring.pipeline import Pipeline
from tests.streams import (
    FEATURES,
    batch_message,
    classifier_events,
    counted,
    write_classifier_profile,
    write_profile,
)

T0 = 1_700_000_000.0


def predictions(
    ids: list[str], times: list[float], version: str = "1", predicted: Any = 1
) -> PredictionBatch:
    n = len(ids)
    return PredictionBatch(
        model_id="m",
        model_version=version,
        prediction_ids=ids,
        timestamps=np.array(times),
        versions=[version] * n,
        numeric={},
        categorical={},
        predictions=[predicted] * n,
        scores=[None] * n,
        segments=[None] * n,
    )


def labels(ids: list[str], times: list[float], values: list[Any] | None = None) -> LabelBatch:
    return LabelBatch("m", ids, np.array(times), values or [1] * len(ids))


def test_a_label_meets_its_prediction_whichever_comes_first() -> None:
    join, store = LabelJoin({"m": 3_600.0}), {}
    assert join.add_predictions(predictions(["a", "b"], [T0, T0 + 1]), store).pairs == []
    first = join.add_labels(labels(["a", "c"], [T0 + 5, T0 + 6], [0, 1]), store)
    assert [(p.prediction_id, p.label, p.time) for p in first.pairs] == [("a", 0, T0)]
    assert first.counts.joined == 1 and first.counts.waiting_labels == 1
    later = join.add_predictions(predictions(["c"], [T0 + 7]), store)  # "c"'s label was early
    assert [(p.prediction_id, p.label, p.label_time) for p in later.pairs] == [("c", 1, T0 + 6)]
    assert join.waiting("m", store) == 1  # "b" still waits
    again = join.add_labels(labels(["b", "b"], [T0 + 8, T0 + 9]), store)
    assert again.counts.joined == 1 and again.counts.waiting_labels == 1  # the 2nd "b" waits


def test_entries_expire_after_the_ttl_in_event_time_and_nothing_leaks() -> None:
    ttl = 2_400.0
    join, store = LabelJoin({"m": ttl}), {}
    join.add_predictions(
        predictions([f"p{i}" for i in range(100)], [T0 + i for i in range(100)]), store
    )
    join.add_labels(labels(["never-predicted"], [T0 + 50]), store)
    counts = join.add_predictions(predictions(["x"], [T0 + ttl / 2]), store).counts
    assert counts.expired_predictions == 0  # not yet
    late = join.add_predictions(predictions(["old"], [T0 - 10_000]), store)  # out of order
    assert late.counts.expired_predictions == 0
    result = join.add_predictions(predictions(["y"], [T0 + 10 * ttl]), store)
    assert result.counts.expired_predictions == 100 + 1 + 1  # the 100, "x" and the late "old"
    assert result.counts.expired_labels == 1
    assert join.waiting("m", store) == 1  # only "y"
    assert [k for k in store if not k.startswith(("w/m", "c/m/"))] == []
    assert len([k for k in store if k.startswith("c/")]) == 1  # the chunk that holds "y"


def test_join_state_in_a_mapping_survives_a_new_join_object() -> None:
    store: dict[str, bytes] = {}
    LabelJoin({"m": 3_600.0}).add_predictions(predictions(["a"], [T0]), store)
    restored = dict(store)  # what the changelog gives back after a restart
    pairs = LabelJoin({"m": 3_600.0}).add_labels(labels(["a"], [T0 + 60]), restored).pairs
    assert [p.prediction_id for p in pairs] == ["a"]


def test_a_label_meets_the_prediction_of_every_version_on_the_same_traffic() -> None:
    join, store = LabelJoin({"m": 3_600.0}), {}
    join.add_predictions(predictions(["a", "b"], [T0, T0 + 1], "1", predicted=0), store)
    shadow = join.add_predictions(predictions(["a", "b"], [T0, T0 + 1], "2", predicted=1), store)
    assert shadow.counts.duplicates == 0
    again = join.add_predictions(predictions(["a"], [T0 + 2], "2"), store)
    assert again.counts.duplicates == 1  # the same id and version twice
    assert join.waiting("m", store) == 4
    restored = dict(store)  # and what a restart rebuilds from the chunks
    for state in (store, restored):
        result = LabelJoin({"m": 3_600.0}).add_labels(labels(["a"], [T0 + 9], [1]), state)
        assert [(p.version, p.prediction, p.label) for p in result.pairs] == [
            ("1", 0, 1),
            ("2", 1, 1),
        ]
        assert result.counts.joined == 1  # one label
    assert LabelJoin({"m": 3_600.0}).waiting("m", dict(store)) == 2  # "b" of both versions


def test_a_shadow_prediction_expires_with_its_bucket_and_the_next_one_stays_joinable() -> None:
    ttl = 2_400.0
    join, store = LabelJoin({"m": ttl}), {}
    join.add_predictions(predictions(["a"], [T0], "1"), store)
    join.add_predictions(predictions(["a"], [T0 + ttl], "2"), store)  # a later bucket
    expired = join.add_predictions(predictions(["x"], [T0 + 1.5 * ttl]), store).counts
    assert expired.expired_predictions == 1  # version 1's
    pairs = join.add_labels(labels(["a"], [T0 + 1.5 * ttl]), store).pairs
    assert [p.version for p in pairs] == ["2"]


def classifier_pipeline(
    tmp_path: Path, alerts: dict[str, Any] | None = None, **performance: Any
) -> Pipeline:
    profile = write_classifier_profile(tmp_path / "clf.json")
    config = config_from_dict(
        {
            "alerts": {"window_events": 500, "resolve_after_windows": 3, **(alerts or {})},
            "models": {
                "clf": {
                    "task": "binary",
                    "features": dict(FEATURES),
                    "reference": str(profile),
                    "performance": {"enabled": True, "window_labels": 500, **performance},
                }
            },
        }
    )
    return counted(config)


def label_message(rows: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"model_id": "clf", "events": rows})


def run_stream(
    p: Pipeline,
    stream: list[tuple[float, str, dict[str, Any]]],
    size: int,
    requests: list[Any] | None = None,
    windows: list[Any] | None = None,
) -> list[Any]:
    """Feed (arrival time, topic, event) in arrival order, ``size`` events per message."""
    state: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    alerts: list[Any] = []
    pending: list[dict[str, Any]] = []
    kind = ""

    def flush() -> None:
        if not pending:
            return
        if kind == "p":
            result = p.process_messages([batch_message("clf", pending)], state, joins=joins)
        else:
            result = p.process_labels([label_message(pending)], state, joins)
        alerts.extend(result.alerts)
        if requests is not None:
            requests.extend(result.retraining_requests)
        if windows is not None:
            windows.extend(result.performance_windows)
        pending.clear()

    for _, topic, event in stream:
        if topic != kind or len(pending) >= size:
            flush()
            kind = topic
        pending.append(event)
    flush()
    return alerts


def burst(t: float) -> float:
    """Labels come in bursts every 100 s (a labelling job), as many real label feeds do."""
    return float(np.ceil(t / 100.0) * 100.0)


def drifting_stream(seed: int, drop_at: int, n: int) -> list[tuple[float, str, dict[str, Any]]]:
    """Predictions at one per second; each label comes 30 to 600 s later (in bursts), 20% never
    do. From
    ``drop_at`` the concept flips for 35% of events: accuracy falls by about a third."""
    rng = np.random.default_rng(seed)
    before = classifier_events(drop_at, rng)
    after = classifier_events(n - drop_at, rng, start=drop_at, flip=0.35)
    preds = before[0] + after[0]
    labs = before[1] + after[1]
    stream = [(e["timestamp"], "p", e) for e in preds]
    for label in labs:
        if rng.random() < 0.2:
            continue
        arrives = burst(label["timestamp"] + float(rng.uniform(30, 600)))
        stream.append((arrives, "l", {**label, "timestamp": arrives}))
    stream.sort(key=lambda row: (row[0], row[1]))
    return stream


def test_a_performance_drop_fires_after_it_and_never_before(tmp_path: Path) -> None:
    drop_at = 6_000
    stream = drifting_stream(1, drop_at, 12_000)
    requests: list[Any] = []
    alerts = run_stream(classifier_pipeline(tmp_path), stream, 200, requests)
    performance = [a for a in alerts if a.kind == "performance" and a.status == "firing"]
    # one episode: the error test fires it, the window's accuracy (far past its bar) makes
    # it critical in one update
    assert [a.update for a in performance] == [0, 1], [a.message for a in alerts]
    alert, update = performance
    # none before the drop; within a window of labels after it (at about 0.8 labels a
    # second, 10 minutes late, a window of 500 labels is about 20 minutes of event time)
    assert T0 + drop_at <= alert.first_event_time < T0 + drop_at + 1_500
    assert alert.features[0].feature == "errors" and alert.severity == "warning"
    assert update.alert_id == alert.alert_id and update.severity == "critical"
    assert update.new_features == ["accuracy"]
    (accuracy,) = [f for f in update.features if f.feature == "accuracy"]
    assert accuracy.reference_rate == pytest.approx(0.776, abs=0.01)
    assert alert.message.startswith("Performance on clf: ")
    assert [a for a in alerts if a.kind == "drift"] == []  # concept drift: inputs unchanged
    # accuracy down by a third held critical for after_critical_seconds: retrain
    assert [r.alert_ids for r in requests] == [[alert.alert_id]]


def test_a_lasting_critical_performance_drop_asks_for_retraining(tmp_path: Path) -> None:
    stream = drifting_stream(1, 6_000, 12_000)
    requests: list[Any] = []
    p = classifier_pipeline(tmp_path, alerts={"critical_ratio": 1.2})
    alerts = run_stream(p, stream, 200, requests)
    records = [a for a in alerts if a.kind == "performance" and a.status == "firing"]
    alert = records[-1]
    assert alert.severity == "critical" and {a.alert_id for a in records} == {alert.alert_id}
    (request,) = requests  # after 900 s of event time (the policy's after_critical_seconds)
    assert request.kind == "performance" and request.alert_ids == [alert.alert_id]
    assert request.last_event_time - alert.last_event_time >= 900


def test_performance_alerts_do_not_depend_on_how_the_stream_was_cut(tmp_path: Path) -> None:
    stream = drifting_stream(2, 5_000, 10_000)
    runs = [
        [
            (a.alert_id, a.status, a.events_seen)
            for a in run_stream(classifier_pipeline(tmp_path), stream, size)
        ]
        for size in (7, 200, 1_000)
    ]
    assert runs[0] and runs[0] == runs[1] == runs[2]


def test_a_stable_stream_raises_no_performance_alert(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    preds, labs = classifier_events(20_000, rng)
    stream = [(e["timestamp"], "p", e) for e in preds] + [
        (burst(e["timestamp"] + 120), "l", {**e, "timestamp": burst(e["timestamp"] + 120)})
        for e in labs
    ]
    stream.sort(key=lambda row: (row[0], row[1]))
    p = classifier_pipeline(tmp_path)
    assert run_stream(p, stream, 500) == []
    reg = p.metrics.registry
    accuracy = reg.get_sample_value("driftline_performance", {"model": "clf", "metric": "accuracy"})
    baseline = reg.get_sample_value(
        "driftline_performance_baseline", {"model": "clf", "metric": "accuracy"}
    )
    assert accuracy is not None and baseline is not None and abs(accuracy - baseline) < 0.05
    joined = reg.get_sample_value("driftline_labels_total", {"model": "clf", "outcome": "joined"})
    assert joined == 20_000


def test_the_estimate_follows_a_covariate_shift_before_any_label(tmp_path: Path) -> None:
    """x1 moves toward the decision boundary: the real accuracy falls; with no labels at all,
    the estimate (CBPE) falls with it and raises a performance alert."""
    rng = np.random.default_rng(4)
    stable, _ = classifier_events(5_000, rng)
    # x1 - 5 ~ N(0, 2) squeezed to N(0, 0.4): most events near the decision boundary, where
    # the (still calibrated) model is right about half the time
    shifted, _ = classifier_events(5_000, rng, start=5_000)
    for e in shifted:
        x1 = 5.0 + (e["features"]["x1"] - 5.0) * 0.2  # squeezed toward the boundary
        s = 1 / (1 + np.exp(-(x1 - 5.0)))
        e["features"]["x1"] = x1
        e["scores"] = {"0": float(1 - s), "1": float(s)}
        e["prediction"] = int(s >= 0.5)
    p = classifier_pipeline(tmp_path)
    state: dict[str, bytes] = {}
    alerts = []
    for rows in (stable, shifted):
        for start in range(0, len(rows), 500):
            result = p.process_messages(
                [batch_message("clf", rows[start : start + 500])], state, joins={}
            )
            alerts += result.alerts
    reg = p.metrics.registry
    estimate = reg.get_sample_value(
        "driftline_performance_estimate", {"model": "clf", "metric": "accuracy"}
    )
    true_scores = np.array([e["scores"]["1"] for e in shifted])
    expected_true = float(np.mean(np.maximum(true_scores, 1 - true_scores)))
    assert estimate is not None and abs(estimate - expected_true) < 0.03
    fired = [a for a in alerts if a.kind == "performance" and a.status == "firing"]
    assert len(fired) == 1 and fired[0].detector == "cbpe"
    assert fired[0].events_seen > 5_000


def test_performance_needs_a_baseline_in_the_profile(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "m1.json")  # no labels: no baseline
    raw = {
        "models": {
            "m1": {
                "task": "regression",
                "features": dict(FEATURES),
                "reference": str(profile),
                "performance": {"enabled": True},
            }
        }
    }
    with pytest.raises(ConfigError, match=r"models\.m1\.performance: .* no baseline mae"):
        counted(config_from_dict(raw))


def test_the_prediction_distribution_is_watched_like_a_feature(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    stable, _ = classifier_events(3_000, rng)
    shifted, _ = classifier_events(3_000, rng, start=3_000, x1_shift=1.0)
    p = classifier_pipeline(tmp_path)
    state: dict[str, bytes] = {}
    alerts = []
    for rows in (stable, shifted):
        for start in range(0, len(rows), 250):
            message = batch_message("clf", rows[start : start + 250])
            alerts += p.process_messages([message], state, joins={}).alerts
    drift, *updates = [a for a in alerts if a.kind == "drift" and a.status == "firing"]
    assert min(f.events_seen for f in drift.features) > 3_000
    # the predictions follow x1 a little later: the open episode's update names them
    assert [(u.alert_id, u.new_features) for u in updates] in (
        [],
        [(drift.alert_id, ["_prediction"])],
    )
    # the share of positive predictions went from about 50% to 70%: its detector signals too
    drifting = p.metrics.registry.get_sample_value(
        "driftline_feature_drifting", {"model": "clf", "feature": "_prediction"}
    )
    assert drifting == 1.0


@pytest.mark.parametrize("detector", ["ddm", "hddm_a"])
def test_river_error_detectors_can_watch_the_errors_instead(tmp_path: Path, detector: str) -> None:
    stream = drifting_stream(1, 6_000, 12_000)
    alerts = run_stream(classifier_pipeline(tmp_path, error_detector=detector), stream, 200)
    firing = [a for a in alerts if a.kind == "performance" and a.update == 0]
    assert len(firing) == 1 and firing[0].first_event_time >= T0 + 6_000
    p = classifier_pipeline(tmp_path, error_detector=detector)
    state: dict[str, bytes] = {}
    p.process_messages([batch_message("clf", [stream[0][2]])], state, joins={})
    slot = p.versions["clf"].slot("1", state)  # the version's monitors
    assert slot is not None and slot.performance is not None
    assert not slot.performance.errors and slot.performance.river_name == detector


def test_a_shift_in_the_labels_alone_is_reported(tmp_path: Path) -> None:
    """From event 4,000 the world has more positives than the reference (a prior shift): the
    labels' detector reports it within the performance episode."""
    rng = np.random.default_rng(8)
    preds, labs = classifier_events(10_000, rng)
    for label in labs[4_000:]:
        if rng.random() < 0.4:
            label["label"] = 1
    stream = [(e["timestamp"], "p", e) for e in preds] + [
        (burst(e["timestamp"] + 60), "l", {**e, "timestamp": burst(e["timestamp"] + 60)})
        for e in labs
    ]
    stream.sort(key=lambda row: (row[0], row[1]))
    alerts = run_stream(classifier_pipeline(tmp_path), stream, 500)
    firing = [a for a in alerts if a.kind == "performance" and a.status == "firing"]
    assert firing and firing[0].first_event_time >= T0 + 4_000
    assert "_label" in {f.feature for a in firing for f in a.features}


def test_time_windows_give_metrics_per_version_and_segment_value_bounded(
    tmp_path: Path,
) -> None:
    """Labels over three hours of event time, two model versions, 30 zones: each closed hour
    gives metrics for the model, per version and per zone; 20 zones get their own slice, the
    other 10 share _other. A zone where the model is always wrong shows it."""
    rng = np.random.default_rng(12)
    preds, labs = classifier_events(10_800, rng)  # one prediction a second: three hours
    for i, (e, label) in enumerate(zip(preds, labs, strict=True)):
        e["segment"] = {"zone": f"z{i % 30:02d}", "ignored": "x"}
        if e["segment"]["zone"] == "z00":
            label["label"] = 1 - e["prediction"]  # always wrong in z00
    p = classifier_pipeline(tmp_path, segments=["zone"], window_seconds=3_600)
    state: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    for start in range(0, 10_800, 600):
        version = "1" if start < 5_400 else "2"
        p.process_messages(
            [batch_message("clf", preds[start : start + 600], version)], state, joins=joins
        )
        late = [{**e, "timestamp": e["timestamp"] + 60} for e in labs[start : start + 600]]
        p.process_labels([label_message(late)], state, joins)
    reg = p.metrics.registry

    def accuracy(slice_name: str) -> float | None:
        return reg.get_sample_value(
            "driftline_performance_by_time",
            {"model": "clf", "metric": "accuracy", "slice": slice_name},
        )

    slices = {
        s.labels["slice"]
        for f in reg.collect()
        if f.name == "driftline_performance_by_time"
        for s in f.samples
    }
    assert {"all", "version=1", "version=2", "zone=z00", "zone=_other"} <= slices
    assert len([s for s in slices if s.startswith("zone=")]) == 21  # 20 and _other
    assert not any(s.startswith("ignored=") for s in slices)  # only configured segments
    assert accuracy("zone=z00") == 0.0
    assert 0.65 < (accuracy("all") or 0) < 0.8  # the baseline's 0.78, less z00's share


def test_a_regressions_errors_can_be_watched_by_adwin(tmp_path: Path) -> None:
    """A regression model's prediction is x1 * 2 (+ noise as its error); from event 3,000 the
    truth moves away by 3: ADWIN on the absolute errors signals, and a wrong detector name
    for a regression fails fast."""
    from driftline.detectors.performance import regression_metrics
    from driftline.detectors.profile import build_profile
    from tests.streams import columns, events

    rng = np.random.default_rng(13)
    cols = columns(20_000, rng)
    truth = cols["x1"] * 2 + rng.normal(0, 1, 20_000)
    profile = build_profile(
        "reg",
        "1",
        cols,
        FEATURES,
        prediction=cols["x1"] * 2,
        label=truth,
        performance=regression_metrics(truth, cols["x1"] * 2),
    )
    path = tmp_path / "reg.json"
    path.write_bytes(profile.to_json())

    def pipeline(detector: str) -> Pipeline:
        model = {
            "task": "regression",
            "features": dict(FEATURES),
            "reference": str(path),
            "performance": {"enabled": True, "error_detector": detector, "tolerance": 0.5},
        }
        return counted(config_from_dict({"models": {"reg": model}}))

    with pytest.raises(ConfigError, match=r"performance\.error_detector: ddm watches 0/1"):
        pipeline("ddm")
    p = pipeline("adwin")
    rows = events(6_000, rng)
    labels = [
        {
            "prediction_id": r["prediction_id"],
            "timestamp": r["timestamp"] + 30,
            "label": r["prediction"] + float(rng.normal(0, 1)) + (3.0 if i >= 3_000 else 0.0),
        }
        for i, r in enumerate(rows)
    ]
    state: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    alerts = []
    for start in range(0, 6_000, 500):
        p.process_messages([batch_message("reg", rows[start : start + 500])], state, joins=joins)
        message = orjson.dumps({"model_id": "reg", "events": labels[start : start + 500]})
        alerts += p.process_labels([message], state, joins).alerts
    firing = [a for a in alerts if a.kind == "performance" and a.status == "firing"]
    assert len(firing) == 1 and firing[0].events_seen > 3_000
    assert {(f.feature, f.detector) for f in firing[0].features} >= {("errors", "adwin")}


def test_a_waiting_prediction_costs_the_join_a_few_hundred_bytes() -> None:
    """Memory grows with rate x TTL: what the join holds per waiting prediction (its chunk in
    the store and its entry in memory) is bounded. tracemalloc counts allocations, not time."""
    import gc
    import tracemalloc

    n = 5_000
    batches = [
        predictions([f"id-{i:08d}" for i in range(s, s + 500)], [T0 + i for i in range(s, s + 500)])
        for s in range(0, n, 500)
    ]
    join, store = LabelJoin({"m": 86_400.0}), {}
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for batch in batches:
        join.add_predictions(batch, store)
    del batch
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert join.waiting("m", store) == n
    assert grown / n < 600, grown / n


def labelled_at_once(
    preds: list[dict[str, Any]], labs: list[dict[str, Any]]
) -> list[tuple[float, str, dict[str, Any]]]:
    """Every 250 predictions followed by their labels: windows of labels are windows of
    predictions."""
    stream = []
    for start in range(0, len(preds), 250):
        stream += [(e["timestamp"], "p", e) for e in preds[start : start + 250]]
        stream += [(e["timestamp"], "l", e) for e in labs[start : start + 250]]
    return stream


def test_a_lasting_small_drop_is_one_episode_however_near_its_bar(tmp_path: Path) -> None:
    """Accuracy 0.776 falling by about 0.08 for good (15% of the concept flipped): windows
    land either side of the bar, but once the episode fires half the bar keeps it open."""
    rng = np.random.default_rng(21)
    before = classifier_events(4_000, rng)
    after = classifier_events(20_000, rng, start=4_000, flip=0.15)
    stream = labelled_at_once(before[0] + after[0], before[1] + after[1])
    windows: list[Any] = []
    alerts = run_stream(classifier_pipeline(tmp_path), stream, 250, windows=windows)
    performance = [a for a in alerts if a.kind == "performance"]
    assert [a.status for a in performance if a.update == 0] == ["firing"], [
        a.message for a in performance
    ]
    assert performance[0].first_event_time >= T0 + 4_000
    realised = [w for w in windows if w.source == "realised"]
    after_drop = [w.checks[0] for w in realised if w.window_end_event > 4_500]
    # the drop sits near the bar: some windows alone would not have signalled
    assert {c.verdict for c in after_drop} == {"worse", "within"}


def test_an_improvement_is_information_not_an_alert(tmp_path: Path) -> None:
    rng = np.random.default_rng(22)
    preds, labs = classifier_events(10_000, rng)
    for pred, lab in zip(preds, labs, strict=True):
        if rng.random() < 0.5:  # the model got better: half its errors gone
            lab["label"] = pred["prediction"]
    windows: list[Any] = []
    alerts = run_stream(
        classifier_pipeline(tmp_path), labelled_at_once(preds, labs), 500, windows=windows
    )
    assert [a for a in alerts if a.kind == "performance"] == []
    realised = [w.checks[0] for w in windows if w.source == "realised"]
    assert len(realised) == 20 and all(c.verdict == "better" for c in realised)
    assert all(c.value is not None and c.value > c.high for c in realised)


def test_every_window_is_a_record_with_its_bar_and_band(tmp_path: Path) -> None:
    """Realised windows: the metrics of the window's labelled events. Estimated windows: CBPE's
    expected accuracy and AUC, with a 95% band that holds the realised value about 95% of the
    time on a stream like the reference. Both validate against the published schema."""
    import jsonschema

    from driftline.detectors.performance import classification_metrics
    from driftline.events.records import PerformanceWindow
    from tests.unit.events.test_schemas import schema

    rng = np.random.default_rng(23)
    preds, labs = classifier_events(25_000, rng)
    windows: list[Any] = []
    alerts = run_stream(
        classifier_pipeline(tmp_path), labelled_at_once(preds, labs), 500, windows=windows
    )
    assert [a for a in alerts if a.kind == "performance"] == []
    realised = [w for w in windows if w.source == "realised"]
    estimated = [w for w in windows if w.source == "estimated"]
    assert len(realised) == len(estimated) == 50
    for w in windows:
        jsonschema.validate(orjson.loads(w.to_json()), schema("performance-window"))
        assert PerformanceWindow.from_json(w.to_json()) == w
    first = realised[0]
    y = np.array([lab["label"] for lab in labs[:500]])
    p = np.array([pred["prediction"] for pred in preds[:500]])
    s = np.array([pred["scores"]["1"] for pred in preds[:500]])
    offline = classification_metrics(y, p, ["negative", "1"], s)
    assert first.metrics["accuracy"] == pytest.approx(offline["accuracy"], abs=1e-12)
    assert first.metrics["roc_auc"] == pytest.approx(offline["roc_auc"], abs=1e-12)
    assert (first.events, first.window_end_event) == (500, 500)
    assert (first.first_event_time, first.last_event_time) == (T0, T0 + 499)
    check = first.checks[0]
    assert check.metric == "accuracy" and check.low < check.baseline < check.high
    covered = {"accuracy": 0, "roc_auc": 0}
    for real, est in zip(realised, estimated, strict=True):
        assert real.window_end_event == est.window_end_event
        for c in est.checks:
            assert c.low is not None and c.high is not None
            covered[c.metric] += c.low <= real.metrics[c.metric] <= c.high
    assert covered["accuracy"] >= 42 and covered["roc_auc"] >= 42, covered


@pytest.mark.parametrize("scale", [1.0, 1.25])
def test_a_regressions_errors_alert_only_when_they_grow(tmp_path: Path, scale: float) -> None:
    """The bar on MAE comes from its spread over windows of the reference (no fixed 5%), and
    the share of errors past the reference's 90th percentile is a rate with no tails: a
    stable stream of heavy-tailed errors raises nothing; errors a quarter larger from event
    10,000 on are found by that rate's CUSUM, after the change."""
    from dataclasses import replace

    from driftline.config import ModelConfig
    from driftline.detectors.profile import build_profile
    from driftline.monitoring.performance import baseline_performance, performance_spread
    from tests.streams import columns, events

    rng = np.random.default_rng(24)
    cols = columns(20_000, rng)
    truth = cols["x1"] * 2 + rng.standard_t(3, 20_000)  # heavy-tailed errors
    pred = cols["x1"] * 2
    profile = build_profile("reg", "1", cols, FEATURES, prediction=pred, label=truth)
    model = {"task": "regression", "features": dict(FEATURES), "performance": {"enabled": True}}
    config = ModelConfig(**model)
    profile = replace(
        profile,
        performance=baseline_performance(config, profile, list(pred), list(truth)),
        performance_spread=performance_spread(config, profile, list(pred), list(truth)),
    )
    assert 2.2 < profile.performance["abs_error_p90"] < 2.5  # |t3|'s 90th percentile: 2.35
    path = tmp_path / "reg.json"
    path.write_bytes(profile.to_json())
    p = counted(config_from_dict({"models": {"reg": {**model, "reference": str(path)}}}))
    state: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    alerts, windows = [], []
    rows = events(30_000, rng)
    for start in range(0, 30_000, 1_000):
        part = rows[start : start + 1_000]
        noise = scale if start >= 10_000 else 1.0
        labels = [
            {
                "prediction_id": r["prediction_id"],
                "timestamp": r["timestamp"] + 30,
                "label": r["prediction"] + noise * float(rng.standard_t(3)),
            }
            for r in part
        ]
        p.process_messages([batch_message("reg", part)], state, joins=joins)
        message = orjson.dumps({"model_id": "reg", "events": labels})
        result = p.process_labels([message], state, joins)
        alerts += result.alerts
        windows += result.performance_windows
    assert len(windows) == 60
    bar = windows[0].checks[0]
    # heavy-tailed errors: a window's MAE wanders by more than the old fixed 5%
    assert bar.metric == "mae" and bar.limit is not None and 0.05 < bar.limit < 0.4
    fired = [a for a in alerts if a.kind == "performance" and a.update == 0]
    if scale == 1.0:
        assert fired == []
        return
    assert len(fired) == 1 and fired[0].events_seen > 10_000
    assert fired[0].features[0].feature == "errors" and fired[0].detector == "cusum"


def test_a_small_references_chance_error_does_not_make_the_error_test_alarm() -> None:
    """A retrained version's reference is often a few hundred rows: here 637, whose 90th
    percentile of errors came out low by chance, so that 14.6% of live errors pass it (the
    reference: 10%; four of its standard errors). The error test allows the reference three
    standard errors, as the drift detectors do: unchanged traffic raises no alarm in 16,000
    labels; a real rise (to 25%) is still found within 1,500."""
    from driftline.detectors.quality import RunState
    from driftline.monitoring.performance import error_checks

    checks = error_checks(0.1, 637, 6.2e7, 0.0)  # a check's ARL in the demo's ETA model
    for seed in range(20):
        flags = np.random.default_rng(seed).random(16_000) < 0.146
        assert [c.update(RunState(), flags).alarms for c in checks] == [0, 0], seed
    flags = np.random.default_rng(99).random(16_000) < 0.25
    found = [r.first for c in checks if (r := c.update(RunState(), flags)).alarms]
    assert found and min(found) < 1_500


@pytest.mark.parametrize("delay", [300.0, 1_200.0])
def test_labels_that_come_after_their_prediction_expired_are_an_alert(
    tmp_path: Path, delay: float, caplog: pytest.LogCaptureFixture
) -> None:
    """TTL 600 s: labels 300 s late all join; labels 1,200 s late come after their predictions
    expired, wait in vain, expire in turn: one data-quality alert and a throttled log line
    naming the TTL, not just a counter."""
    rng = np.random.default_rng(25)
    preds, labs = classifier_events(8_000, rng)
    stream = [(e["timestamp"], "p", e) for e in preds]
    stream += [
        (e["timestamp"] + delay, "l", {**e, "timestamp": e["timestamp"] + delay}) for e in labs
    ]
    stream.sort(key=lambda row: (row[0], row[1]))
    p = classifier_pipeline(tmp_path, label_ttl_seconds=600.0)
    with caplog.at_level("WARNING", logger="driftline.monitoring.label_loss"):
        alerts = run_stream(p, stream, 250)
    lost = [a for a in alerts if a.kind == "data_quality"]
    logged = [r.getMessage() for r in caplog.records]
    if delay < 600:
        assert lost == [] and logged == []
        return
    firing = [a for a in lost if a.status == "firing"]
    assert len(firing) == 1, [a.message for a in lost]
    assert firing[0].features[0].feature == "labels" and firing[0].features[0].detector == "expired"
    assert "labels expiring without their prediction" in firing[0].message
    assert len(logged) == 1 and "label_ttl_seconds is 600 s" in logged[0]
    expired = p.metrics.registry.get_sample_value(
        "driftline_labels_total", {"model": "clf", "outcome": "expired_label"}
    )
    assert expired is not None and expired > 5_000


def test_a_regressions_mae_is_estimated_before_labels_and_follows_a_covariate_shift(
    tmp_path: Path,
) -> None:
    """Direct loss estimation: errors grow with the predicted value; when production moves to
    larger predictions (inside the reference's range: beyond it, the edge bins' errors are
    all it knows), the expected MAE rises with the realised one, with no label at all."""
    from dataclasses import replace

    from driftline.config import ModelConfig
    from driftline.detectors.performance import LossModel, regression_metrics
    from driftline.detectors.profile import build_profile
    from driftline.monitoring.performance import estimated_baseline, performance_spread

    rng = np.random.default_rng(26)

    def world(n: int, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
        pred = rng.uniform(low, high, n)
        return pred, pred + rng.normal(0, 1, n) * pred / 5

    pred, truth = world(20_000, 1.0, 9.0)
    features = {"x1": "numeric"}
    profile = build_profile("reg", "1", {"x1": pred}, features, prediction=pred, label=truth)
    model = {"task": "regression", "features": features, "performance": {"enabled": True}}
    config = ModelConfig(**model)
    fitted = LossModel.fit(pred, truth)
    profile = replace(
        profile,
        performance=regression_metrics(truth, pred)
        | estimated_baseline(config, profile, list(pred), None, fitted),
        performance_spread=performance_spread(
            config, profile, list(pred), list(truth), None, fitted
        ),
        calibration=fitted.to_doc(),
    )
    path = tmp_path / "reg.json"
    path.write_bytes(profile.to_json())
    p = counted(config_from_dict({"models": {"reg": {**model, "reference": str(path)}}}))
    state: dict[str, bytes] = {}
    alerts, windows, realised = [], [], []
    for part, (low, high) in enumerate([(1.0, 9.0)] * 10 + [(6.0, 9.0)] * 10):
        x, y = world(500, low, high)
        rows = [
            {
                "prediction_id": f"r{part}-{i}",
                "timestamp": T0 + part * 500 + i,
                "features": {"x1": float(x[i])},
                "prediction": float(x[i]),
            }
            for i in range(500)
        ]
        result = p.process_messages([batch_message("reg", rows)], state, joins={})
        alerts += result.alerts
        windows += result.performance_windows
        realised.append(float(np.mean(np.abs(y - x))))
    assert len(windows) == 20 and {w.source for w in windows} == {"estimated"}
    covered = 0
    for window, mae in zip(windows, realised, strict=True):
        (check,) = [c for c in window.checks if c.metric == "mae"]
        assert check.value is not None and abs(check.value - mae) < 0.15
        covered += check.low <= mae <= check.high
    assert covered >= 17
    fired = [a for a in alerts if a.kind == "performance" and a.status == "firing"]
    assert len(fired) == 1 and fired[0].features[0].detector == "cbpe"
    assert fired[0].features[0].feature == "estimated_mae" and fired[0].events_seen > 5_000


def multiclass_world(
    rng: np.random.Generator, n: int, spread: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three classes along x (a below -0.2, c above 0.2, b between); the model's scores are
    overconfident (its logits 1.5 times the true ones): calibration must learn that away."""
    x = rng.normal(0, spread, n)
    logits = np.column_stack([-3 * x, np.zeros(n), 3 * x])
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > truth.cumsum(axis=1)).sum(axis=1)
    scores = np.exp(1.5 * logits) / np.exp(1.5 * logits).sum(axis=1, keepdims=True)
    return x, scores, y


def test_a_multiclass_models_accuracy_and_auc_are_estimated_from_its_class_scores(
    tmp_path: Path,
) -> None:
    """Multiclass CBPE, from ``driftline baseline`` on a file with a score column per class
    to the worker's windows: when the inputs crowd toward the class boundaries, the estimated
    accuracy and ROC AUC fall with the realised ones, with no label at all, and each fires."""
    from driftline.config import ModelConfig
    from driftline.detectors.performance import classification_metrics
    from driftline.monitoring.baseline import profile_from_file

    rng = np.random.default_rng(23)
    classes = ["a", "b", "c"]
    x, scores, y = multiclass_world(rng, 20_000, 1.5)
    data = tmp_path / "train.csv"
    lines = ["x1,prediction,label,score_a,score_b,score_c"]
    for xi, s, yi in zip(x, scores, y, strict=True):
        lines.append(f"{xi},{classes[s.argmax()]},{classes[yi]},{s[0]},{s[1]},{s[2]}")
    data.write_text("\n".join(lines) + "\n")
    model = {
        "task": "multiclass",
        "features": {"x1": "numeric"},
        "performance": {"enabled": True},
    }
    profile, notes = profile_from_file("mc", ModelConfig(**model), data, "1")
    assert notes == [] and profile.calibration is not None
    assert sorted(profile.calibration["classes"]) == classes
    assert {"estimated_accuracy", "estimated_roc_auc"} <= profile.performance.keys()
    path = tmp_path / "mc.json"
    path.write_bytes(profile.to_json())
    p = counted(config_from_dict({"models": {"mc": {**model, "reference": str(path)}}}))
    state: dict[str, bytes] = {}
    alerts, windows, realised = [], [], []
    for part, spread in enumerate([1.5] * 10 + [0.4] * 10):
        xs, s, ys = multiclass_world(rng, 500, spread)
        rows = [
            {
                "prediction_id": f"m{part}-{i}",
                "timestamp": T0 + part * 500 + i,
                "features": {"x1": float(xs[i])},
                "prediction": classes[int(s[i].argmax())],
                "scores": dict(zip(classes, map(float, s[i]), strict=True)),
            }
            for i in range(500)
        ]
        result = p.process_messages([batch_message("mc", rows)], state, joins={})
        alerts += result.alerts
        windows += result.performance_windows
        realised.append(classification_metrics(ys, s.argmax(axis=1), classes, s))
    assert len(windows) == 20 and {w.source for w in windows} == {"estimated"}
    for metric in ("accuracy", "roc_auc"):
        covered = 0
        for window, truth in zip(windows, realised, strict=True):
            (check,) = [c for c in window.checks if c.metric == metric]
            assert check.value is not None and abs(check.value - truth[metric]) < 0.06
            covered += check.low <= truth[metric] <= check.high
        assert covered >= 17, metric
    assert realised[-1]["accuracy"] < realised[0]["accuracy"] - 0.15  # the shift is real
    fired = [a for a in alerts if a.kind == "performance" and a.update == 0]
    assert len(fired) == 1 and fired[0].events_seen > 5_000
    subjects = {f.feature for a in alerts if a.kind == "performance" for f in a.features}
    assert subjects == {"estimated_accuracy", "estimated_roc_auc"}
