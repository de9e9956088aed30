"""Worker metrics: prediction buckets, series present from the start, consumer lag."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from faust.types import TP
from prometheus_client import CollectorRegistry, Gauge

from driftline.config import config_from_dict
from driftline.detectors.profile import categorical_profile, numeric_profile
from driftline.monitoring.pipeline import Pipeline
from driftline.monitoring.prediction_buckets import PredictionBuckets
from driftline.runtime.lag import LagReporter
from tests.streams import batch_message, counted, events, model_config, write_profile


def test_numeric_predictions_fall_in_the_reference_bins_in_order() -> None:
    rng = np.random.default_rng(1)
    profile = numeric_profile(rng.normal(10, 2, 5_000))
    buckets = PredictionBuckets(profile)
    assert len(buckets.names) == len(profile.bin_probs) == len(profile.bin_edges) + 1
    assert buckets.names == sorted(buckets.names)  # Grafana shows them in bin order
    assert buckets.names[0].startswith("01: below ") and buckets.names[-1].endswith(" and above")
    values = rng.normal(12, 2, 1_000)
    expected = np.bincount(
        np.digitize(values, profile.bin_edges), minlength=len(buckets.names)
    )  # right-closed as searchsorted(side="right")
    assert buckets.counts(list(values)).tolist() == expected.tolist()
    # Not numbers: skipped, the others still counted
    mixed = [1.0, None, "7", float("nan"), True, 50.0]
    assert buckets.counts(mixed).sum() == 2


def test_class_predictions_count_by_class_and_unknown_classes_as_other() -> None:
    profile = categorical_profile(np.array(["a"] * 60 + ["b"] * 40, dtype=object))
    buckets = PredictionBuckets(profile)
    assert buckets.names == ["a", "b", "_other"]
    counts = buckets.counts(["a", "b", "b", "zzz", None, 7])
    assert counts.tolist() == [1, 2, 2]


def pipeline(tmp_path: Path) -> Pipeline:
    profile = write_profile(tmp_path / "m1.json")
    config = config_from_dict({"models": {"m1": model_config(profile)}})
    return counted(config)


def test_prediction_series_and_reference_shares(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    reg = p.metrics.registry
    buckets = p.prediction_buckets["m1"]
    shares = [
        reg.get_sample_value("driftline_reference_prediction_share", {"model": "m1", "bucket": b})
        for b in buckets.names
    ]
    assert shares == list(buckets.reference) and abs(sum(shares) - 1) < 1e-9
    rows = events(400, np.random.default_rng(2))
    p.process_predictions(batch_message("m1", rows), {})
    counted = [
        reg.get_sample_value("driftline_predictions_total", {"model": "m1", "bucket": b})
        for b in buckets.names
    ]
    assert counted == buckets.counts([r["prediction"] for r in rows]).tolist()
    assert sum(counted) == 400


def test_dashboard_series_exist_before_any_event(tmp_path: Path) -> None:
    reg = pipeline(tmp_path).metrics.registry
    m1 = {"model": "m1"}
    assert (
        reg.get_sample_value("driftline_alerts_total", {**m1, "kind": "drift", "status": "firing"})
        == 0
    )
    assert reg.get_sample_value("driftline_retraining_requests_total", {**m1, "kind": "drift"}) == 0
    for feature in ("x1", "x2", "color"):
        assert reg.get_sample_value("driftline_feature_drifting", {**m1, "feature": feature}) == 0
    assert reg.get_sample_value("driftline_batches_processed_total", m1) == 0


def test_messages_are_counted_per_model_once_decoded(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    rng = np.random.default_rng(3)
    good = [batch_message("m1", events(n, rng)) for n in (1, 30, 500)]
    bad = [b"not json", batch_message("m1", [{"prediction_id": "x"}])]  # dead letters only
    p.process_messages([good[0], bad[0], good[1], bad[1], good[2]], {})
    count = p.metrics.registry.get_sample_value
    assert count("driftline_batches_processed_total", {"model": "m1"}) == 3
    p.process_messages(good[:2], {})
    assert count("driftline_batches_processed_total", {"model": "m1"}) == 5


def test_a_worker_registry_also_reports_the_process() -> None:
    from driftline.observability.metrics import WorkerMetrics

    config = config_from_dict({"models": {"m": {"task": "binary", "features": {"x": "numeric"}}}})
    names = {s.name for f in WorkerMetrics(config).registry.collect() for s in f.samples}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= names
    injected = {f.name for f in WorkerMetrics(config, CollectorRegistry()).registry.collect()}
    assert "process_resident_memory_bytes" not in injected  # tests' registries stay small


class FakeConsumer:
    """The three calls LagReporter makes of a Faust consumer."""

    def __init__(self, ends: dict, positions: dict) -> None:
        self.ends, self.positions = ends, positions

    def assignment(self) -> set:
        return set(self.ends)

    async def highwaters(self, *tps: object) -> dict:
        return {tp: self.ends[tp] for tp in tps}

    async def position(self, tp: object) -> int | None:
        return self.positions.get(tp)


def test_lag_counts_from_the_last_processed_offset_and_forgets_revoked_partitions() -> None:
    gauge = Gauge("lag", "lag", ["topic", "partition"], registry=CollectorRegistry())
    p0, p1 = (
        TP("preds", 0),
        TP("preds", 1),
    )
    other = TP("driftline-detector-state-changelog", 0)
    lag = LagReporter({"preds"}, gauge)
    lag.processed_up_to(p0, 89)
    consumer = FakeConsumer({p0: 100, p1: 50, other: 7}, {p1: 20})
    asyncio.run(lag.report(consumer))

    def value(partition: str) -> float | None:
        return gauge.collect()[0].samples and {
            s.labels["partition"]: s.value for s in gauge.collect()[0].samples
        }.get(partition)

    assert value("0") == 10  # offsets 90..99 not processed yet
    assert value("1") == 30  # nothing processed: from the committed position 20
    assert {s.labels["topic"] for s in gauge.collect()[0].samples} == {"preds"}
    consumer.ends.pop(p1)  # rebalanced away
    lag.processed_up_to(p0, 99)
    asyncio.run(lag.report(consumer))
    assert value("0") == 0 and value("1") is None


def test_observe_many_gives_the_samples_of_observe_one_by_one() -> None:
    from prometheus_client import Histogram

    from driftline.observability.metrics import observe_many

    values = np.array([0.0, 0.5, 1.0, 1.0000001, 7.0, 1e9, 3.0, 3.0])
    registries = CollectorRegistry(), CollectorRegistry()
    one, many = (
        Histogram("delay", "d", ["model"], buckets=(0.5, 1.0, 3.0, 10.0), registry=r)
        for r in registries
    )
    for v in values:
        one.labels("m").observe(float(v))
    observe_many(many.labels("m"), values)
    samples = [
        [
            (s.name, s.labels, s.value)
            for m in r.collect()
            for s in m.samples
            if "created" not in s.name
        ]
        for r in registries
    ]
    assert samples[0] == samples[1]
    assert registries[1].get_sample_value("delay_bucket", {"model": "m", "le": "1.0"}) == 3
