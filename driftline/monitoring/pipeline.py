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
from dataclasses import dataclass, field, replace
from typing import Any, ParamSpec, TypeVar

import numpy as np

from driftline.config import Config
from driftline.detectors.profile import ReferenceProfile
from driftline.events.codec import (
    BatchDecoder,
    DeadLetter,
    Decoded,
    LabelBatch,
    PredictionBatch,
    Reason,
    ValidRows,
)
from driftline.events.records import (
    RETRAINING_STATUS_SCHEMA,
    Alert,
    ComparisonWindow,
    FeatureWindow,
    PerformanceWindow,
    RetrainingRequest,
    RetrainingStatus,
)
from driftline.monitoring import validation
from driftline.monitoring.alerting import AlertPolicy
from driftline.monitoring.comparison import VersionComparison
from driftline.monitoring.counting import UNCOUNTED, PipelineMetrics
from driftline.monitoring.history import FeatureHistory
from driftline.monitoring.join import JoinCounts, Joined, JoinResult, LabelJoin
from driftline.monitoring.label_loss import LabelLoss
from driftline.monitoring.monitor import BatchOutcome, ModelMonitor
from driftline.monitoring.performance import (
    PerformanceEstimator,
    PerformanceMonitor,
    PerformanceOutcome,
)
from driftline.monitoring.prediction_buckets import PredictionBuckets
from driftline.monitoring.retraining import RequestBook
from driftline.monitoring.sample import RecentSample
from driftline.monitoring.versions import ModelVersions, ProfileBook, Slot, with_standing_in

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
    # a retraining request's sample of recent events, by its idempotency key
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    comparison_windows: list[ComparisonWindow] = field(default_factory=list)

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
        self.policy = AlertPolicy(config.alerts)
        validation.check(config, profiles)
        # each model as its config and reference file describe it: its events' schema and
        # its share of the budget (the live versions' monitors are built alike)
        self.monitors = {
            model_id: ModelMonitor(model_id, model, profiles.get(model_id), self.policy)
            for model_id, model in config.models.items()
        }
        self.book = ProfileBook()
        for model_id, profile in profiles.items():
            if profile is not None:
                self.book.add(profile, model_id)
        self.versions = {
            model_id: ModelVersions(model_id, model, self.book, self._slot_factory(model_id))
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
        self.samples = {
            model_id: RecentSample(
                model.retraining.sample_events,
                model.retraining.sample_every,
                seed=i,
                labels=model.performance.enabled,
            )
            for i, (model_id, model) in enumerate(config.models.items())
            if model.retraining.enabled and model.retraining.sample_events
        }
        self._merge_events = config.worker.merge_events
        self.decoder = BatchDecoder(
            {m: mon.schema for m, mon in self.monitors.items()},
            max_message_bytes=config.worker.max_message_bytes,
            max_batch_events=config.worker.max_batch_events,
        )

    def _slot_factory(self, model_id: str) -> Callable[[str, ReferenceProfile | None, str], Slot]:
        """How a version of ``model_id`` gets its monitors, on ``profile``, keyed by ``scope``."""
        model = self.config.models[model_id]
        settings = model.performance

        def make(version: str, profile: ReferenceProfile | None, scope: str) -> Slot:
            monitor = ModelMonitor(model_id, model, profile, self.policy, scope=scope)
            history = FeatureHistory(
                model_id,
                self.config.worker.history_events,
                profile.version if profile else "",
                labels=settings.enabled,
                scope=scope,
            )
            own = profile is not None and profile.model_version == version
            slot = Slot(version, profile, own, scope, monitor, history)
            if not settings.enabled:
                return slot
            alerts, share = self.config.alerts, monitor.share
            slot.performance = PerformanceMonitor(
                model_id, model, profile, alerts, share, scope=scope
            )
            if (
                model.task in PerformanceEstimator.WATCHED
                and settings.estimate
                and profile is not None
                and profile.calibration
            ):
                slot.estimator = PerformanceEstimator(
                    model_id, model, profile, alerts, share, scope=scope
                )
            return slot

        return make

    def add_profile(self, profile: ReferenceProfile) -> bool:
        """Use ``profile`` for its model version from the next event on (read from the
        profiles topic while running); whether it changed anything."""
        if profile.model_id not in self.versions:
            return False
        return self.book.add(profile)

    def _performance(self, config: Config, profiles: dict[str, ReferenceProfile | None]) -> None:
        """The label join of the models with performance enabled (their monitors are per
        version: ``_slot_factory``)."""
        self.performance = {m for m, model in config.models.items() if model.performance.enabled}
        for model_id in self.performance:
            profile = profiles.get(model_id)
            for metric, value in (profile.performance if profile else {}).items():
                self.metrics.performance_baseline.labels(model_id, metric).set(value)
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
        self._versions_shown: dict[str, frozenset[str]] = {}  # in the live-versions gauge
        self.comparisons = {
            model_id: VersionComparison(
                model_id,
                config.models[model_id].task,
                config.models[model_id].performance.comparison,
                config.models[model_id].performance.window_labels,
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
        self._sampled(result, state)
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
        routed = self.versions[model_id].route(batch, state)
        sample = self.samples.get(model_id)
        if sample is not None:
            sample.add(batch)
        self._alerted(model_id, routed.alerts, result)
        if routed.unmonitored:
            self.metrics.series(self.metrics.unmonitored, model_id).inc(routed.unmonitored)
        for slot, part in routed.parts:  # the newest version last: its values stay in gauges
            outcome = slot.monitor.process(part, state)
            if not slot.own:
                alerts = [with_standing_in(a, slot) for a in outcome.alerts]
                outcome = replace(outcome, alerts=alerts)
            result.outcomes.append(outcome)
            closed = slot.history.add(part, outcome, slot.monitor.events_seen(state), state)
            if closed is not None:
                result.feature_windows.append(closed)
            result.alerts.extend(outcome.alerts)
            result.retraining_requests.extend(outcome.retraining_requests)
            self._record(part, outcome)
            if slot.estimator is not None:
                self._performed(model_id, slot.estimator.process(part, state), result, slot)
        monitored = len(batch) - routed.unmonitored
        if monitored:  # the model's events over all its versions (each counts its own too)
            key = f"{model_id}/_model/events"
            state[key] = str(int(state.get(key) or 0) + monitored).encode()
        latest = float(batch.timestamps.max(initial=0.0))
        if joins is not None and self.join.monitors(model_id):
            joined = self.join.add_predictions(batch, joins)
            self._joined(model_id, joined, latest, batch.versions[-1], state, result)
        retired = self.versions[model_id].retire(state, latest)  # after all their rows
        self._alerted(model_id, retired, result)
        self._export_versions(model_id)

    def _alerted(self, model_id: str, alerts: list[Alert], result: BatchResult) -> None:
        """Alerts made outside the monitors' outcomes: into the run's result, and counted."""
        result.alerts.extend(alerts)
        for alert in alerts:
            self.metrics.alerts.labels(model_id, alert.kind, alert.counted_as).inc()

    def _export_versions(self, model_id: str) -> None:
        """The live-versions gauge: a series per version monitored now, gone once retired."""
        live = self.versions[model_id].last_live
        shown = self._versions_shown.get(model_id, frozenset())
        if live == shown:
            return
        for version in live - shown:
            self.metrics.live_versions.labels(model_id, version).set(1)
        for version in shown - live:
            self.metrics.live_versions.remove(model_id, version)
        self._versions_shown[model_id] = live

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
        self._sampled(result, state)
        applied.write()
        return result

    def _sampled(self, result: BatchResult, state: MutableMapping[str, bytes]) -> None:
        """Each retraining request of the run gets its model's sample, and is remembered
        until its status comes back (``process_status``)."""
        for request in result.retraining_requests:
            RequestBook(request.model_id).add(request, state)
            sample = self.samples.get(request.model_id)
            if sample is not None and len(sample):
                result.samples[request.idempotency_key] = sample.rows()

    @_collector_paused
    def process_status(
        self,
        values: Sequence[bytes | None],
        state: MutableMapping[str, bytes],
        sources: Sequence[Source] | None = None,
    ) -> BatchResult:
        """Retraining status records: ``succeeded`` resolves the episodes its request was
        made for, naming the new version; ``failed`` lets them ask again. A record that is
        not a status, or names no configured model, is a dead letter."""
        result = BatchResult()
        applied = AppliedOffsets(state)
        for index, value in enumerate(values):
            try:
                status = RetrainingStatus.from_json(value or b"")
            except (ValueError, TypeError) as exc:
                detail = f"not a {RETRAINING_STATUS_SCHEMA} record: {exc}"
                result.dead_letters.append((index, DeadLetter(Reason.SCHEMA, detail, value or b"")))
                continue
            model_id = status.model_id
            if model_id not in self.versions:
                detail = f"model {model_id!r} is not configured"
                dead = DeadLetter(Reason.UNKNOWN_MODEL, detail, value or b"")
                result.dead_letters.append((index, dead))
                continue
            if self._replayed(model_id, sources, index, applied):
                continue
            self.metrics.retraining_status.labels(model_id, status.status).inc()
            self._alerted(model_id, self._retraining_outcome(status, state), result)
        applied.write()
        return result

    def _retraining_outcome(
        self, status: RetrainingStatus, state: MutableMapping[str, bytes]
    ) -> list[Alert]:
        book = RequestBook(status.model_id)
        if status.status not in ("succeeded", "failed"):
            return []  # accepted, running: counted
        request = book.pop(status.idempotency_key, state)
        if request is None:
            log.info("retraining status %s for request %s, which is not awaited (closed, or "
                     "not this deployment's)", status.status, status.idempotency_key)  # fmt: skip
            return []
        versions = self.versions[status.model_id]
        if status.status == "failed":
            versions.ask_again(request["version"], request["alert_ids"], state)
            return []
        reason = (
            f"retrained as version {status.new_version or '(unnamed)'} "
            f"(retraining request {status.idempotency_key})"
        )
        return versions.close_episodes(request["version"], request["alert_ids"], reason, state)

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
        versions = self.versions[model_id]
        newest = versions.newest(state)
        if newest is not None:
            newest.history.add_labels(counts, delays, state)
        loss = self.label_loss[model_id].process(counts, delays, latest, version, state)
        self._alerted(model_id, loss, result)
        sample = self.samples.get(model_id)
        if sample is not None and pairs:
            sample.add_labels(pairs)
        for pair_version, version_pairs in by_version_of(pairs).items():
            slot = versions.slot(pair_version, state)
            if slot is None or slot.performance is None:  # a version not monitored (now)
                continue
            performed = slot.performance.process(version_pairs, state)
            self._performed(model_id, performed, result, slot)
        live = versions.live(state) if pairs else {}
        if len(live) > 1:  # shadow versions' pairs, compared on the same labels
            first_seen = {v: entry.first for v, entry in live.items()}
            events = int(state.get(f"{model_id}/_model/events") or 0)
            compared = self.comparisons[model_id].process(pairs, first_seen, state, events)
            result.comparison_windows.extend(compared.windows)
            self._alerted(model_id, compared.alerts, result)

    def _performed(
        self, model_id: str, outcome: PerformanceOutcome, result: BatchResult, slot: Slot
    ) -> None:
        if not slot.own:
            outcome.alerts[:] = [with_standing_in(a, slot) for a in outcome.alerts]
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


def by_version_of(pairs: list[Joined]) -> dict[str, list[Joined]]:
    """Joined predictions by model version, each in order."""
    out: dict[str, list[Joined]] = {}
    for pair in pairs:
        out.setdefault(pair.version, []).append(pair)
    return out


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
