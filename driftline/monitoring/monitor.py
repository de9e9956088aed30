"""ModelMonitor: the pure pipeline from a decoded batch to alerts, shared by worker and replay.

State lives in any ``MutableMapping[str, bytes]``: a Faust table in the worker (each key is
written back once per batch, so the changelog records it), a dict in replay and tests. Live
detector objects are cached and rebuilt from the mapping only when its bytes changed under us
(after a restart or a rebalance), so the hot path does not deserialise every batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from driftline import detectors
from driftline.config import ModelConfig
from driftline.detectors.base import Detector, Verdict
from driftline.detectors.categorical import CategoricalCUSUM
from driftline.detectors.joint import JOINT, JointDrift
from driftline.detectors.profile import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    ReferenceProfile,
)
from driftline.detectors.quality import RunState
from driftline.detectors.seasonal import SeasonalMap, slot_of
from driftline.events.codec import ModelSchema, PredictionBatch
from driftline.events.records import Alert, RetrainingRequest
from driftline.monitoring.alerting import (
    AlertPolicy,
    Chunk,
    Cut,
    EpisodeState,
    Plan,
    Signal,
    run_in_chunks,
)
from driftline.monitoring.quality import QualityMonitor
from driftline.monitoring.retraining import RetrainingPlanner, RetrainingState
from driftline.monitoring.validation import DEFAULT_DETECTORS

log = logging.getLogger(__name__)

PREDICTION = "_prediction"  # the prediction's distribution, watched like a feature


@dataclass(frozen=True)
class FeatureOutcome:
    feature: str
    detector: str
    verdict: Verdict
    firing: bool


@dataclass(frozen=True)
class BatchOutcome:
    model_id: str
    events: int
    alerts: list[Alert]
    features: list[FeatureOutcome]
    retraining_requests: list[RetrainingRequest] = field(default_factory=list)
    # (feature or "_schema", check) -> events flagged in the batch; and the checks failing
    quality: dict[tuple[str, str], int] = field(default_factory=dict)
    quality_failing: set[tuple[str, str]] = field(default_factory=set)


@dataclass(frozen=True)
class _FeatureSpec:
    feature: str
    kind: str
    detector: str
    arl: float
    params: dict[str, float]


@dataclass(frozen=True)
class _Column:
    """One watched column of a batch, with the detector that reads it."""

    spec: _FeatureSpec
    column: np.ndarray
    present: np.ndarray
    complete: bool  # no missing values: chunks go to the detector as slices
    detector: Detector
    update: Callable[[np.ndarray], Verdict]


@dataclass
class _Run:
    """What one attempt at a batch changes, written back only if it completes."""

    episode: EpisodeState
    quality: EpisodeState
    checks: dict[str, RunState]  # the rate checks of data quality
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    retraining: RetrainingState | None = None
    alerts: list[Alert] = field(default_factory=list)
    requests: list[RetrainingRequest] = field(default_factory=list)
    verdicts: dict[str, Verdict] = field(default_factory=dict)


class ModelMonitor:
    """Detectors and alert policy for one model."""

    def __init__(
        self,
        model_id: str,
        config: ModelConfig,
        profile: ReferenceProfile | None,
        policy: AlertPolicy,
        scope: str = "",
    ) -> None:
        """``scope``: the prefix of this monitor's state keys (one per monitored version,
        starting with ``model_id/``); the model id when empty."""
        self.model_id = model_id
        self.scope = scope or model_id
        self.config = config
        self.profile = profile
        self.policy = policy
        self.schema = ModelSchema(
            numeric=tuple(f for f, t in config.features.items() if t == "numeric"),
            categorical=tuple(f for f, t in config.features.items() if t == "categorical"),
            categories={
                f: tuple(ref.categories)
                for f, ref in (profile.features.items() if profile else ())
                if isinstance(ref, CategoricalProfile) and config.features.get(f) == "categorical"
            },
            numeric_outcome=config.task == "regression",
        )
        self._quality_checks = QualityMonitor.count(config, profile)
        # the error test, the estimate's check and the labels' detector (performance.py)
        self._performance_checks = 3 if config.performance.enabled else 0
        self.share = config.false_alarm_budget  # one check's ARL, set by _specs
        self.joint_features: list[str] = []  # set by _specs
        self.seasonal = self._seasonal_maps()
        self.specs = self._specs()
        self.quality = QualityMonitor(
            model_id,
            config,
            profile,
            len(self.specs) + self._quality_checks + self._performance_checks,
            scope=self.scope,
        )
        self._live: dict[str, tuple[bytes, Detector]] = {}
        self._episode_cache: dict[str, tuple[bytes | None, EpisodeState]] = {}
        self.retraining = RetrainingPlanner(config.retraining, policy)

    def _specs(self) -> list[_FeatureSpec]:
        if self.profile is None:
            log.warning("model %s has no reference profile: drift detection is off", self.model_id)
            return []
        features = [f for f in self.config.features if f in self.profile.features]
        missing = set(self.config.features) - set(features)
        if missing:
            log.warning(
                "model %s: no reference for %s; those features are not drift-checked",
                self.model_id,
                ", ".join(sorted(missing)),
            )
        settings = self.config.performance
        watch_prediction = (
            settings.enabled and settings.prediction_drift and self.profile.prediction is not None
        )
        # The model's budget is shared evenly: with F detectors, Q data-quality checks and P
        # performance checks each may raise a false alarm once per (F + Q + P) * budget
        # values, so the model as a whole keeps its budget (union bound).
        joint = self.joint_features = self._joint_features()
        checks = (
            len(features)
            + watch_prediction
            + bool(joint)
            + self._quality_checks
            + self._performance_checks
        )
        share = self.share = self.config.false_alarm_budget * max(checks, 1)
        specs = []
        for feature in features:
            kind = self.config.features[feature]
            override = self.config.detectors.get(feature)
            # checked against the registry beforehand (monitoring/validation.py)
            name = (override.detector if override else None) or DEFAULT_DETECTORS[kind]
            arl = (override.false_alarm_budget if override else None) or share
            params = dict(override.params) if override else {}
            specs.append(_FeatureSpec(feature, kind, name, arl, params))
        if watch_prediction:
            kind = "numeric" if self.config.task == "regression" else "categorical"
            specs.append(_FeatureSpec(PREDICTION, kind, DEFAULT_DETECTORS[kind], share, {}))
        if joint:
            shift = self.config.joint_drift.shift
            specs.append(_FeatureSpec(JOINT, "joint", JointDrift.name, share, {"shift": shift}))
        return specs

    def _seasonal_maps(self) -> dict[str, SeasonalMap]:
        """The features compared with their own time slot: configured, and in the profile."""
        section = self.profile.seasonal if self.profile else None
        settings = self.config.seasonality
        if self.profile is None or settings is None:
            return {}
        if section is None or section["period"] != settings.period:
            log.warning(
                "model %s: seasonality is configured but its reference has no %s section; "
                "rebuild it with driftline baseline (the data needs a timestamp column)",
                self.model_id,
                settings.period,
            )
            return {}
        maps = {}
        for feature in self.config.seasonal_features():
            pooled = self.profile.features.get(feature)
            if feature in section["features"] and isinstance(pooled, NumericProfile):
                maps[feature] = SeasonalMap.from_section(section, feature, pooled.quantile_array)
        return maps

    def _slots(self, timestamps: np.ndarray) -> np.ndarray:
        """Each event's time slot of the model's seasonality (once per batch)."""
        settings = self.config.seasonality
        assert settings is not None
        return slot_of(timestamps, settings.period, settings.slot_count())

    def _joint_features(self) -> list[str]:
        """The numeric features watched together: the config's, where the profile has them."""
        assert self.profile is not None
        dependence = self.profile.dependence
        known = set(dependence["features"]) if dependence else set()
        watched = [f for f in self.config.joint_features() if f in known]
        return watched if len(watched) >= 2 else []

    def _profile_of(self, feature: str) -> FeatureProfile:
        assert self.profile is not None
        if feature == PREDICTION:
            assert self.profile.prediction is not None
            return self.profile.prediction
        return self.profile.features[feature]

    def key(self, feature: str, part: str) -> str:
        return f"{self.scope}/{feature}/{part}"

    @property
    def policy_key(self) -> str:
        return f"{self.scope}/_policy/drift"

    @property
    def quality_policy_key(self) -> str:
        return f"{self.scope}/_policy/data_quality"

    @property
    def retraining_key(self) -> str:  # the model's, whatever the version: limits are per model
        return f"{self.model_id}/_model/retraining"

    def _detector(
        self, spec: _FeatureSpec, state: MutableMapping[str, bytes], fresh: bool
    ) -> Detector:
        key = self.key(spec.feature, spec.detector)
        stored = state.get(key)
        cached = self._live.get(key)
        if not fresh and cached is not None and stored is cached[0]:
            return cached[1]
        if spec.feature == JOINT:
            assert self.profile is not None
            detector: Detector = JointDrift.from_profile(
                self.profile, spec.arl, self.joint_features, **spec.params
            )
        else:
            detector = detectors.create(
                spec.detector, self._profile_of(spec.feature), arl=spec.arl, **spec.params
            )
        if stored is not None:
            detector.restore(stored)
        return detector

    def events_seen(self, state: MutableMapping[str, bytes]) -> int:
        raw = state.get(self.key("_model", "events"))
        return int(raw) if raw else 0

    def process(self, batch: PredictionBatch, state: MutableMapping[str, bytes]) -> BatchOutcome:
        """Run the detectors and the alert policy over one batch; write state back once.

        The batch is fed in chunks that end where a policy window ends and where an alert
        fires, so alerts do not depend on batch boundaries. While nothing is drifting the
        windows do not matter and the whole batch is one chunk; if it turns out to hold a
        signal, the batch is run again from the stored state with the precise cuts.
        """
        return run_in_chunks(lambda plan: self._process(batch, state, plan))

    def _process(
        self, batch: PredictionBatch, state: MutableMapping[str, bytes], plan: Plan
    ) -> BatchOutcome | Cut:
        fresh = plan.windowed  # an earlier attempt changed the cached objects: from the bytes
        before, n = self.events_seen(state), len(batch)
        columns = self._columns(batch, state, fresh)
        run = _Run(
            episode=self._episode(self.policy_key, state, fresh),
            quality=self._episode(self.quality_policy_key, state, fresh),
            checks=self.quality.load(state, fresh),
        )
        pos = 0
        while pos < n:
            count = before + pos
            windowed = plan.windowed or not run.episode.quiet or not run.quality.quiet
            pending = (run.episode.due, run.quality.due)
            end_count = self.policy.chunk_end(count, before + n, plan.cuts, pending, windowed)
            end = end_count - before
            tracked = set(run.quality.subjects)
            quality_signals = self.quality.step(
                batch, pos, end, count, run.checks, tracked, run.counts
            )
            signals = self._drift_signals(columns, pos, end, count, run.verdicts)
            has_signal = bool(signals or quality_signals)
            if has_signal and not windowed and self.policy.window_end(count) < end_count:
                return Cut()  # run again cut at the policy windows
            times = batch.timestamps[pos:end]
            version = batch.versions[end - 1]  # at the chunk's end, where an alert fires
            cut = self._step(run, state, count, version, times, signals, quality_signals)
            if cut is not None:
                return cut
            pos = end
        self._write_back(state, columns, run, before + n)
        return self._outcome(run, n)

    def _columns(
        self, batch: PredictionBatch, state: MutableMapping[str, bytes], fresh: bool
    ) -> list[_Column]:
        """Each watched column of the batch with its detector (restored from ``state``)."""
        columns = []
        slots = self._slots(batch.timestamps) if self.seasonal else None
        for spec in self.specs:
            if spec.feature == PREDICTION:
                column = prediction_column(batch.predictions, spec.kind)
                present = ~np.isnan(column) if spec.kind == "numeric" else column != None  # noqa: E711
            elif spec.feature == JOINT:  # one row per event; rows with a value missing skipped
                names = self.joint_features
                column = np.column_stack([batch.numeric[f] for f in names])
                present = ~np.logical_or.reduce([batch.missing(f) for f in names])
            else:
                numeric = spec.kind == "numeric"
                column = (batch.numeric if numeric else batch.categorical)[spec.feature]
                present = ~batch.missing(spec.feature)
                seasonal = self.seasonal.get(spec.feature)
                if seasonal is not None and slots is not None:  # carried through its time
                    column = seasonal(column, slots)  # slot to the pooled reference
            detector = self._detector(spec, state, fresh)
            update: Callable[[np.ndarray], Verdict] = detector.update
            if isinstance(detector, CategoricalCUSUM) and spec.feature != PREDICTION:
                # the batch's buckets, shared with the data-quality checks
                column = batch.codes(spec.feature, detector.categories)
                update = detector.update_codes
            # Without missing values a chunk goes to its detector as a slice, not a copy.
            complete = bool(present.all())
            columns.append(_Column(spec, column, present, complete, detector, update))
        return columns

    def _drift_signals(
        self, columns: list[_Column], pos: int, end: int, count: int, verdicts: dict[str, Verdict]
    ) -> list[Signal]:
        """Each column's detector over rows pos..end; a signal for each that drifted."""
        signals = []
        for c in columns:
            if c.complete:
                verdict = c.update(c.column[pos:end])
                row = verdict.first_alarm
            else:
                rows = np.flatnonzero(c.present[pos:end])
                verdict = c.update(c.column[pos:end][rows])
                row = int(rows[verdict.first_alarm]) if verdict.drift else -1
            verdicts[c.spec.feature] = verdict
            if verdict.drift:
                signals.append(
                    Signal(
                        verdict.subject or c.spec.feature,
                        c.spec.detector,
                        count + row + 1,
                        verdict.alarms,
                        verdict.peak,
                        verdict.threshold,
                    )
                )
        return signals

    def _step(
        self,
        run: _Run,
        state: MutableMapping[str, bytes],
        count: int,
        version: str,
        times: np.ndarray,
        signals: list[Signal],
        quality_signals: list[Signal],
    ) -> Cut | None:
        """The alert policies (and retraining) over one chunk; the Cut one of them needs."""
        reference_version = self.profile.version if self.profile else ""
        # Data quality first: when a pipeline breaks, its alert comes before any drift
        # alert it causes, and the drift alert can point at it.
        if quality_signals or not run.quality.quiet:
            flagged = {k: check.flagged for k, check in run.checks.items()}
            chunk = Chunk(
                self.model_id, version, "data_quality", reference_version, count, times, flagged
            )
            stepped = self.policy.step(run.quality, chunk, quality_signals)
            if isinstance(stepped, Cut):
                return stepped
            run.alerts.extend(stepped)
        if not signals and run.episode.quiet:
            return None
        chunk = Chunk(self.model_id, version, "drift", reference_version, count, times)
        stepped = self.policy.step(run.episode, chunk, signals)
        if isinstance(stepped, Cut):
            return stepped
        run.alerts.extend(
            self._with_cycle_hint(self._with_quality(alert, run.quality)) for alert in stepped
        )
        # A broken pipeline is not mended by retraining: hold requests meanwhile.
        if self.retraining.wants(run.episode, chunk.kind) and not run.quality.firing:
            return self.retraining.step(run, state, self.retraining_key, chunk)
        return None

    def _write_back(
        self, state: MutableMapping[str, bytes], columns: list[_Column], run: _Run, total: int
    ) -> None:
        """Once per batch: each assignment is a changelog record in the worker."""
        for c in columns:
            key = self.key(c.spec.feature, c.spec.detector)
            blob = c.detector.state_bytes()
            state[key] = blob  # assigned back: Faust records only assignments
            self._live[key] = (blob, c.detector)
        for key, ep in ((self.policy_key, run.episode), (self.quality_policy_key, run.quality)):
            blob = ep.to_bytes()
            if blob != state.get(key, b""):
                state[key] = blob
            self._episode_cache[key] = (state.get(key), ep)
        if self.quality.settings.enabled:
            self.quality.save(state, run.checks)
        if run.retraining is not None:
            state[self.retraining_key] = run.retraining.to_bytes()
        state[self.key("_model", "events")] = str(total).encode()

    def _outcome(self, run: _Run, n: int) -> BatchOutcome:
        drifting = self.policy.drifting(run.episode)
        outcomes = [
            FeatureOutcome(f, spec.detector, run.verdicts[f], f in drifting)
            for spec in self.specs
            if (f := spec.feature) in run.verdicts
        ]
        failing_now = self.policy.drifting(run.quality)
        failing = {
            (self.quality.label(t.feature, t.detector), t.detector)
            for s, t in run.quality.subjects.items()
            if s in failing_now
        }
        return BatchOutcome(
            model_id=self.model_id,
            events=n,
            alerts=run.alerts,
            features=outcomes,
            retraining_requests=run.requests,
            quality=run.counts,
            quality_failing=failing,
        )

    def _with_quality(self, alert: Alert, quality: EpisodeState) -> Alert:
        """A firing drift alert names its features' open data-quality problems."""
        if alert.status != "firing":
            return alert
        open_now = self.policy.drifting(quality)
        names = {f.feature for f in alert.features}
        problems = sorted(
            f"{t.feature}: {t.detector}"
            for s, t in quality.subjects.items()
            if s in open_now and t.feature in names
        )
        if not problems:
            return alert
        note = f" (data-quality problem open on {', '.join(problems)}: check the pipeline first)"
        return replace(alert, data_quality=problems, message=alert.message + note)

    def _with_cycle_hint(self, alert: Alert) -> Alert:
        """A firing drift alert on features whose training data followed the clock, and
        that are not compared by time slot, says so and how to configure it."""
        cyclic = self.profile.cyclic if self.profile else {}
        if alert.status != "firing" or not cyclic:
            return alert
        named = [f.feature for f in alert.features if f.feature in cyclic]
        named = [f for f in named if f not in self.seasonal]
        if not named:
            return alert
        period = cyclic[named[0]]
        note = (
            f" ({', '.join(named)} follow{'s' if len(named) == 1 else ''} a {period} cycle in "
            f"the training data: set models.{self.model_id}.seasonality: {{period: {period}}} "
            "and rebuild the baseline with its timestamps, to compare each value with its own "
            "time slot)"
        )
        return replace(alert, message=alert.message + note)

    def _episode(self, key: str, state: MutableMapping[str, bytes], fresh: bool) -> EpisodeState:
        stored = state.get(key)
        cached = self._episode_cache.get(key)
        if not fresh and cached is not None and stored is cached[0]:
            return cached[1]
        return EpisodeState.from_bytes(stored)


def prediction_column(predictions: list[Any], kind: str) -> np.ndarray:
    """Predictions as a feature column: floats (NaN if not a number) or class names."""
    if kind == "numeric":
        values = np.asarray(predictions)
        if values.dtype.kind in "fiu":
            return values.astype(np.float64)
        return np.array([as_number(v) for v in predictions], dtype=np.float64)
    # named once per distinct value (1, 1.0 and True, equal in Python, share a name)
    names = {v: None if v is None else class_name(v) for v in set(predictions)}
    return np.array(list(map(names.__getitem__, predictions)), dtype=object)


def as_number(value: Any) -> float:
    """A number sent in an event as a float; NaN for anything else (bools included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return np.nan
    return float(value)


def class_name(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
