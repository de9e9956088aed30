"""Pipeline: one message in, alerts and dead letters out, for every configured model.

This is everything the worker does to a prediction message apart from Kafka I/O, so the Faust
agent stays a few lines and ``driftline replay`` runs exactly the same code over a file.
"""

from __future__ import annotations

import functools
import gc
import logging
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import numpy as np

from driftline.config import Config
from driftline.detectors.profile import ReferenceProfile
from driftline.events.codec import (
    BatchDecoder,
    DeadLetter,
    Decoded,
    LabelBatch,
    PredictionBatch,
    ValidRows,
)
from driftline.events.records import Alert, FeatureWindow, PerformanceWindow, RetrainingRequest
from driftline.monitoring import validation
from driftline.monitoring.alerting import AlertPolicy
from driftline.monitoring.counting import UNCOUNTED, PipelineMetrics
from driftline.monitoring.history import FeatureHistory
from driftline.monitoring.join import JoinCounts, JoinResult, LabelJoin
from driftline.monitoring.label_loss import LabelLoss
from driftline.monitoring.monitor import BatchOutcome, ModelMonitor
from driftline.monitoring.performance import (
    PerformanceEstimator,
    PerformanceMonitor,
    PerformanceOutcome,
)
from driftline.monitoring.prediction_buckets import PredictionBuckets

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _collector_paused(run: Callable[_P, _R]) -> Callable[_P, _R]:
    """``run`` with Python's cycle collector off.

    A run's decoded rows (a few dicts per event) live until its end and hold no cycles, but
    the collector, woken every 700 allocations, scans them again and again. Cycles a run
    leaves behind are collected after it, as usual.
    """

    @functools.wraps(run)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if not gc.isenabled():
            return run(*args, **kwargs)
        gc.disable()
        try:
            return run(*args, **kwargs)
        finally:
            gc.enable()

    return paused


@dataclass
class BatchResult:
    """What a run over one or more messages produced."""

    alerts: list[Alert] = field(default_factory=list)
    # (index of the message in the run, dead letter): the agent adds the source offsets
    dead_letters: list[tuple[int, DeadLetter]] = field(default_factory=list)
    outcomes: list[BatchOutcome] = field(default_factory=list)
    retraining_requests: list[RetrainingRequest] = field(default_factory=list)
    performance: list[PerformanceOutcome] = field(default_factory=list)
    joins: JoinCounts = field(default_factory=JoinCounts)
    feature_windows: list[FeatureWindow] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(o.events for o in self.outcomes)

    @property
    def performance_windows(self) -> list[PerformanceWindow]:
        """Every performance window the run closed, realised and estimated, in order."""
        return [window for outcome in self.performance for window in outcome.windows]


class Pipeline:
    def __init__(
        self,
        config: Config,
        profiles: dict[str, ReferenceProfile | None],
        metrics: PipelineMetrics = UNCOUNTED,
    ) -> None:
        self.config = config
        self.metrics = metrics
        policy = AlertPolicy(config.alerts)
        validation.check(config, profiles)
        self.monitors = {
            model_id: ModelMonitor(model_id, model, profiles.get(model_id), policy)
            for model_id, model in config.models.items()
        }
        for model_id, monitor in self.monitors.items():  # every series from the start
            for feature, check in monitor.quality.series():
                self.metrics.quality_flagged.labels(model_id, feature, check)
                self.metrics.quality_failing.labels(model_id, feature, check)
        self.prediction_buckets: dict[str, PredictionBuckets] = {}
        for model_id, profile in profiles.items():
            if profile is None or profile.prediction is None:
                continue
            buckets = self.prediction_buckets[model_id] = PredictionBuckets(profile.prediction)
            for name, share in zip(buckets.names, buckets.reference, strict=True):
                self.metrics.predictions.labels(model_id, name)
                self.metrics.reference_prediction_share.labels(model_id, name).set(share)
        self._performance(config, profiles)
        self.histories = {
            model_id: FeatureHistory(
                model_id,
                config.worker.history_events,
                profile.version if profile else "",
                labels=config.models[model_id].performance.enabled,
            )
            for model_id, profile in ((m, profiles.get(m)) for m in config.models)
        }
        self._merge_events = config.worker.merge_events
        self.decoder = BatchDecoder(
            {m: mon.schema for m, mon in self.monitors.items()},
            max_message_bytes=config.worker.max_message_bytes,
            max_batch_events=config.worker.max_batch_events,
        )

    def _performance(self, config: Config, profiles: dict[str, ReferenceProfile | None]) -> None:
        """The label join and performance monitors of the models with performance enabled."""
        self.performance: dict[str, PerformanceMonitor] = {}
        self.estimators: dict[str, PerformanceEstimator] = {}
        for model_id, model in config.models.items():
            settings = model.performance
            if not settings.enabled:
                continue
            profile = profiles.get(model_id)
            monitor = PerformanceMonitor(
                model_id, model, profile, config.alerts, self.monitors[model_id].share
            )
            self.performance[model_id] = monitor
            for metric, value in (profile.performance if profile else {}).items():
                self.metrics.performance_baseline.labels(model_id, metric).set(value)
            if (
                model.task in PerformanceEstimator.WATCHED
                and settings.estimate
                and profile is not None
                and profile.calibration
            ):
                self.estimators[model_id] = PerformanceEstimator(
                    model_id, model, profile, config.alerts, self.monitors[model_id].share
                )
        self.label_loss = {
            model_id: LabelLoss(
                model_id,
                config.models[model_id].performance.label_ttl_seconds,
                config.alerts,
                self.monitors[model_id].share,
                config.models[model_id].data_quality.tolerance,
            )
            for model_id in self.performance
        }
        self.join = LabelJoin(
            {m: config.models[m].performance.label_ttl_seconds for m in self.performance},
            {m: config.models[m].performance.segments for m in self.performance},
        )

    @classmethod
    def from_config(cls, config: Config, metrics: PipelineMetrics = UNCOUNTED) -> Pipeline:
        """The pipeline of ``config``, counting into ``metrics`` (the worker's Prometheus
        metrics; nothing by default)."""
        return cls(config, validation.load_profiles(config), metrics)

    def process_predictions(
        self, value: bytes | None, state: MutableMapping[str, bytes]
    ) -> BatchResult:
        return self.process_messages([value], state)

    @_collector_paused
    def process_messages(
        self,
        values: Sequence[bytes | None],
        state: MutableMapping[str, bytes],
        sources: Sequence[Source] | None = None,
        joins: MutableMapping[str, bytes] | None = None,
    ) -> BatchResult:
        """Decode each message, then run each model's detectors once over all its rows.

        Detectors give the same verdicts however a stream is cut into batches, so merging
        many small messages changes nothing but the cost (one numpy pass instead of many).

        ``sources`` (topic, partition, offset per message) make replays harmless: after each
        model's detectors run, the highest offset applied is written beside their state, and a
        message at or below it (delivered again after a restart or rebalance, as Kafka's
        at-least-once delivery does) is skipped and counted instead of counted twice.

        ``joins`` is the label join's state: predictions of models with performance enabled
        wait there for their labels (a dict when there is no label stream to join).
        """
        started = time.perf_counter()
        result = BatchResult()
        pending: dict[str, list[PredictionBatch | ValidRows]] = {}
        applied = AppliedOffsets(state)
        sizes: dict[str, int] = {}
        messages: dict[str, int] = {}  # decoded messages per model label, counted once a run
        for index, value in enumerate(values):
            decoded = self.decoder.decode_prediction_rows(value)
            if self._replayed(decoded.model_id, sources, index, applied):
                continue
            label = self._dead_letters(decoded, index, result)
            batch = decoded.batch
            if not isinstance(batch, PredictionBatch | ValidRows):
                continue
            messages[label] = messages.get(label, 0) + 1
            model_id = batch.model_id
            if pending.get(model_id) and sizes[model_id] + len(batch) > self._merge_events:
                self._run(model_id, pending.pop(model_id), state, result, joins)
                sizes[model_id] = 0
            pending.setdefault(model_id, []).append(batch)
            sizes[model_id] = sizes.get(model_id, 0) + len(batch)
        # Decoded rows are held only until their model has about merge_events of them: memory
        # stays bounded however many large messages one take brings.
        for model_id, batches in pending.items():
            self._run(model_id, batches, state, result, joins)
        for label, n in messages.items():
            self.metrics.series(self.metrics.batches, label).inc(n)
        applied.write()  # after the detector states: same changelog partition, so in order
        for model_id in {o.model_id for o in result.outcomes}:
            self.metrics.series(self.metrics.batch_seconds, model_id).observe(
                time.perf_counter() - started
            )
        return result

    def _run(
        self,
        model_id: str,
        parts: list[PredictionBatch | ValidRows],
        state: MutableMapping[str, bytes],
        result: BatchResult,
        joins: MutableMapping[str, bytes] | None,
    ) -> None:
        batch = PredictionBatch.merge(self._in_columns(parts))
        monitor = self.monitors[model_id]
        outcome = monitor.process(batch, state)
        result.outcomes.append(outcome)
        closed = self.histories[model_id].add(batch, outcome, monitor.events_seen(state), state)
        if closed is not None:
            result.feature_windows.append(closed)
        result.alerts.extend(outcome.alerts)
        result.retraining_requests.extend(outcome.retraining_requests)
        self._record(batch, outcome)
        estimator = self.estimators.get(model_id)
        if estimator is not None:
            self._performed(model_id, estimator.process(batch, state), result)
        if joins is not None and self.join.monitors(model_id):
            joined = self.join.add_predictions(batch, joins)
            latest = float(batch.timestamps.max(initial=0.0))
            self._joined(model_id, joined, latest, batch.versions[-1], state, result)

    def _in_columns(self, parts: list[PredictionBatch | ValidRows]) -> list[PredictionBatch]:
        """Consecutive row messages put into columns together, in order."""
        batches: list[PredictionBatch] = []
        rows: list[ValidRows] = []
        for part in parts:
            if isinstance(part, ValidRows):
                rows.append(part)
                continue
            if rows:
                batches.append(self.decoder.columns_of(rows))
                rows = []
            batches.append(part)
        if rows:
            batches.append(self.decoder.columns_of(rows))
        return batches

    @_collector_paused
    def process_labels(
        self,
        values: Sequence[bytes | None],
        state: MutableMapping[str, bytes],
        joins: MutableMapping[str, bytes],
        sources: Sequence[Source] | None = None,
    ) -> BatchResult:
        """Decode label messages, join each label to its prediction, run the performance
        monitors on the pairs. Replays are skipped by offset as for predictions."""
        result = BatchResult()
        applied = AppliedOffsets(state)
        for index, value in enumerate(values):
            decoded = self.decoder.decode_labels(value)
            if self._replayed(decoded.model_id, sources, index, applied):
                continue
            self._dead_letters(decoded, index, result)
            batch = decoded.batch
            if not isinstance(batch, LabelBatch):
                continue
            if not self.join.monitors(batch.model_id):
                self.metrics.labels.labels(batch.model_id, "not_monitored").inc(len(batch))
                continue
            joined = self.join.add_labels(batch, joins)
            latest = float(batch.timestamps.max(initial=0.0))
            version = joined.pairs[-1].version if joined.pairs else ""
            self._joined(batch.model_id, joined, latest, version, state, result)
        applied.write()
        return result

    def _replayed(
        self,
        model_id: str | None,
        sources: Sequence[Source] | None,
        index: int,
        applied: AppliedOffsets,
    ) -> bool:
        """Whether message ``index`` was applied before (and is counted as replayed)."""
        if sources is None or model_id not in self.monitors:
            return False
        assert model_id is not None
        if applied.seen(model_id, sources[index]):
            self.metrics.replayed.labels(model_id).inc()
            return True
        return False

    def _dead_letters(self, decoded: Decoded, index: int, result: BatchResult) -> str:
        """Count and keep a decoded message's dead letters; its model's metric label."""
        label = self.metrics.model_label(decoded.model_id)
        for dead in decoded.dead_letters:
            self.metrics.dead_letters.labels(label, dead.reason).inc()
            result.dead_letters.append((index, dead))
        return label

    def _joined(
        self,
        model_id: str,
        joined: JoinResult,
        latest: float,
        version: str,
        state: MutableMapping[str, bytes],
        result: BatchResult,
    ) -> None:
        """Count the join's outcomes, watch labels expiring, run performance on the pairs
        (``latest``: the run's latest event time; ``version``: its model version)."""
        pairs, counts = joined.pairs, joined.counts
        m = self.metrics
        result.joins.add(counts)
        for outcome, n in (
            ("joined", counts.joined),
            ("waiting", counts.waiting_labels),
            ("expired_label", counts.expired_labels),
            ("expired_prediction", counts.expired_predictions),
            ("duplicate", counts.duplicates),
        ):
            if n:
                m.labels.labels(model_id, outcome).inc(n)
        delays = np.fromiter((p.label_time - p.time for p in pairs), np.float64, len(pairs))
        m.observe_label_delays(model_id, np.maximum(delays, 0.0))
        self.histories[model_id].add_labels(counts, delays, state)
        loss = self.label_loss[model_id].process(counts, delays, latest, version, state)
        result.alerts.extend(loss)
        for alert in loss:
            m.alerts.labels(model_id, alert.kind, alert.counted_as).inc()
        if pairs:
            self._performed(model_id, self.performance[model_id].process(pairs, state), result)

    def _performed(self, model_id: str, outcome: PerformanceOutcome, result: BatchResult) -> None:
        result.performance.append(outcome)
        result.alerts.extend(outcome.alerts)
        result.retraining_requests.extend(outcome.retraining_requests)
        for request in outcome.retraining_requests:
            self.metrics.retraining_requests.labels(model_id, request.kind).inc()
        for metric, value in outcome.metrics.items():
            self.metrics.performance.labels(model_id, metric).set(value)
        for metric, value in outcome.estimate.items():
            self.metrics.performance_estimate.labels(model_id, metric).set(value)
        for slice_name, values in outcome.by_time.items():
            for metric, value in values.items():
                self.metrics.performance_by_time.labels(model_id, metric, slice_name).set(value)
        for alert in outcome.alerts:
            self.metrics.alerts.labels(model_id, alert.kind, alert.counted_as).inc()

    def _record(self, batch: PredictionBatch, outcome: BatchOutcome) -> None:
        m, model = self.metrics, batch.model_id
        series = m.series
        series(m.events, model).inc(outcome.events)
        for feature, rows in batch.type_errors.items():
            series(m.type_errors, model, feature).inc(len(rows))
        for f in outcome.features:
            series(m.statistic, model, f.feature, f.detector).set(f.verdict.statistic)
            series(m.threshold, model, f.feature, f.detector).set(f.verdict.threshold)
            series(m.drifting, model, f.feature).set(1.0 if f.firing else 0.0)
        for (feature, check), flagged in outcome.quality.items():
            series(m.quality_flagged, model, feature, check).inc(flagged)
            failing = (feature, check) in outcome.quality_failing
            series(m.quality_failing, model, feature, check).set(1.0 if failing else 0.0)
        buckets = self.prediction_buckets.get(model)
        if buckets is not None:
            counts = buckets.counts(batch.predictions)
            for i in np.flatnonzero(counts):
                series(m.predictions, model, buckets.names[i]).inc(int(counts[i]))
        for alert in outcome.alerts:
            m.alerts.labels(model, alert.kind, alert.counted_as).inc()
        for request in outcome.retraining_requests:
            m.retraining_requests.labels(model, request.kind).inc()


Source = tuple[str, int, int]  # topic, partition, offset of a message


class AppliedOffsets:
    """The highest offset applied per model and source partition, beside the model's state:
    a message at or below it was delivered again (Kafka's at-least-once, after a restart or
    a rebalance) and is skipped instead of counted twice."""

    def __init__(self, state: MutableMapping[str, bytes]) -> None:
        self.state = state
        self.marks: dict[str, int] = {}  # state key -> offset applied in this run

    def seen(self, model_id: str, source: Source) -> bool:
        """Whether ``source`` was applied already; if not, it is from now on."""
        topic, partition, offset = source
        key = f"{model_id}/_applied/{topic}:{partition}"
        applied = self.marks.get(key)
        if applied is None:
            raw = self.state.get(key)
            applied = int(raw) if raw else -1
        if offset <= applied:
            return True
        self.marks[key] = offset
        return False

    def write(self) -> None:
        for key, offset in self.marks.items():
            self.state[key] = str(offset).encode()
