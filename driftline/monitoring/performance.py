"""PerformanceMonitor: labelled events into windowed metrics, sequential error tests and alerts;
PerformanceEstimator: the expected accuracy and ROC AUC of predictions whose labels are not in.

Both keep their state in the pipeline's ``MutableMapping[str, bytes]`` beside the model's
detectors, and go through the same ``AlertPolicy`` as drift, in episodes of their own
(``<model>/_policy/performance`` counted in labelled events, ``.../performance_estimate`` in
predictions): one alert per episode, hysteresis, resolve, cooldown.

- **Windows**: every ``window_labels`` labelled events (in the order labels are joined) make a
  window; its metrics are compared with the reference profile's baseline. The primary metric
  (accuracy, or MAE for regression, or ``performance.metric``) worse than the baseline by more
  than ``tolerance`` is a signal; ``fire_after_windows`` such windows in a row fire.
- **Errors, sequentially** (classification): each labelled event is right or wrong; a Bernoulli
  CUSUM from the baseline error rate to it plus the tolerance signals within tens of events of
  a real drop, calibrated on the model's false-alarm budget (or river's DDM, EDDM, HDDM, ADWIN
  with their own defaults, when the config names one).
- **Estimate** (binary with scores, and a calibration in the profile): CBPE over windows of
  ``window_labels`` predictions, compared with the baseline like the realised metric.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from driftline import detectors
from driftline.config import AlertSettings, ModelConfig
from driftline.detectors.base import Detector
from driftline.detectors.performance import (
    HIGHER_IS_BETTER,
    PRIMARY,
    MetricAccumulator,
    ScoreCalibration,
    classification_metrics,
    expected_accuracy,
    expected_roc_auc,
    regression_metrics,
)
from driftline.detectors.profile import CategoricalProfile, ReferenceProfile
from driftline.detectors.quality import RateCheck, RunState
from driftline.events.codec import PredictionBatch
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
from driftline.monitoring.join import Joined
from driftline.monitoring.monitor import DEFAULT_DETECTORS, as_number, class_name, prediction_column
from driftline.monitoring.retraining import RetrainingPlanner, RetrainingState

OTHER = "_other"
MAX_VERSIONS = 8  # model versions with a slice of their own; later ones share "_other"
MAX_SEGMENT_VALUES = 20  # values per segment with a slice of their own
RIVER_ERROR_DETECTORS = {
    "ddm": "ddm",
    "eddm": "eddm",
    "hddm_a": "hddm_a",
    "hddm_w": "hddm_w",
    "adwin": "adwin",
}


class OutcomeEncoder:
    """Predictions, labels and scores of one model as arrays the metrics take."""

    def __init__(self, config: ModelConfig, profile: ReferenceProfile | None) -> None:
        self.task = config.task
        self.positive = config.performance.positive_class
        if self.task == "binary":
            self.classes = ["negative", self.positive]
        elif self.task == "multiclass":
            seen: dict[str, None] = {}
            for p in (profile.label, profile.prediction) if profile else ():
                if isinstance(p, CategoricalProfile):
                    seen.update(dict.fromkeys(p.categories))
            self.classes = [*seen, OTHER]
        else:
            self.classes = []
        self.index = {c: i for i, c in enumerate(self.classes)}

    def encode(self, values: Sequence[Any]) -> np.ndarray:
        """Class indices (-1 for a missing value), or floats (NaN) for regression."""
        if self.task == "regression":
            return np.array([as_number(v) for v in values], dtype=np.float64)
        # Encoded once per distinct value: a window holds few classes. Values equal in Python
        # (1, 1.0, True) have the same class name, so sharing their code is exact.
        codes = {v: self._code(v) for v in set(values)}
        return np.fromiter(map(codes.__getitem__, values), np.int64, len(values))

    def _code(self, value: Any) -> int:
        if value is None:
            return -1
        if self.task == "binary":
            return int(class_name(value) == self.positive)
        return self.index.get(class_name(value), len(self.classes) - 1)

    def proba(self, scores: Sequence[Any]) -> np.ndarray | None:
        """P(positive) per event (binary) or a row per event (multiclass); NaN where an event
        sent no usable scores. None when no event sent any."""
        if self.task == "regression" or not any(isinstance(s, dict) for s in scores):
            return None
        if self.task == "binary":
            positive = [s.get(self.positive) if type(s) is dict else None for s in scores]
            if set(map(type, positive)) <= {float, int, type(None)}:  # None becomes NaN
                return np.array(positive, dtype=np.float64)
            return np.array([as_number(v) for v in positive], dtype=np.float64)
        out = np.full((len(scores), len(self.classes)), math.nan)
        for i, s in enumerate(scores):
            if isinstance(s, dict):
                out[i] = [as_number(s.get(c, 0.0)) for c in self.classes[:-1]] + [0.0]
        return out

    def metrics(
        self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None
    ) -> dict[str, float]:
        if self.task == "regression":
            ok = np.isfinite(y_true) & np.isfinite(y_pred)
            return regression_metrics(y_true[ok], y_pred[ok]) if ok.any() else {}
        ok = (y_true >= 0) & (y_pred >= 0)
        if proba is not None:
            finite = np.isfinite(proba) if proba.ndim == 1 else np.isfinite(proba).all(axis=1)
            if finite[ok].all():
                return classification_metrics(y_true[ok], y_pred[ok], self.classes, proba[ok])
        return classification_metrics(y_true[ok], y_pred[ok], self.classes) if ok.any() else {}


def baseline_performance(
    config: ModelConfig,
    profile: ReferenceProfile | None,
    prediction: Sequence[Any],
    label: Sequence[Any],
    scores: Sequence[Any] | None = None,
) -> dict[str, float]:
    """The metrics on the reference data: what production is compared with."""
    encoder = OutcomeEncoder(config, profile)
    proba = encoder.proba(scores) if scores is not None else None
    return encoder.metrics(encoder.encode(label), encoder.encode(prediction), proba)


@dataclass
class _State:
    labelled: int = 0  # labelled events joined so far: the policy's event count
    window: list[list[Any]] = field(default_factory=list)  # [label, prediction, score]
    errors: list[Any] | None = None  # the error CUSUM's RunState
    river: str | None = None  # a river detector's state (latin-1 of its bytes)
    last: dict[str, float] = field(default_factory=dict)  # metrics of the last full window
    # the open time window (by label time): its number and an accumulator per slice
    time_window: int | None = None
    slices: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: list[str] = field(default_factory=list)  # the versions given their own slice
    segment_values: dict[str, list[str]] = field(default_factory=dict)  # same, per segment

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.__dict__)

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> _State:
        return cls(**orjson.loads(raw)) if raw else cls()


@dataclass(frozen=True)
class PerformanceOutcome:
    alerts: list[Alert]
    labelled: int  # labelled events in this call
    metrics: dict[str, float]  # the last complete window's, if one completed
    estimate: dict[str, float] = field(default_factory=dict)
    failing: bool = False  # the performance episode fires
    # the last time window closed in this call: slice ("all", "version=3", "zone=north")
    # -> its metrics
    by_time: dict[str, dict[str, float]] = field(default_factory=dict)
    retraining_requests: list[RetrainingRequest] = field(default_factory=list)


@dataclass(frozen=True)
class _Encoded:
    """A batch of labelled pairs as the metrics and detectors take them."""

    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None
    times: np.ndarray  # the labels' event times
    labels: np.ndarray | None  # the labels as the label detector reads them


@dataclass
class _LabelRun:
    """What one attempt at a batch of labels changes, written back only if it completes."""

    st: _State
    episode: EpisodeState
    errors: RunState
    river: Any
    labels_seen: Detector | None
    retraining: RetrainingState | None = None
    alerts: list[Alert] = field(default_factory=list)
    requests: list[RetrainingRequest] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    by_time: dict[str, dict[str, float]] = field(default_factory=dict)


class PerformanceMonitor:
    def __init__(
        self,
        model_id: str,
        config: ModelConfig,
        profile: ReferenceProfile | None,
        alerts: AlertSettings,
        arl: float,
    ) -> None:
        settings = config.performance
        self.model_id = model_id
        self.config = config
        self.settings = settings
        self.profile = profile
        self.encoder = OutcomeEncoder(config, profile)
        self.metric = settings.metric or PRIMARY[config.task]
        baseline = (profile.performance if profile else {}).get(self.metric)
        self.baseline = None if baseline is None or math.isnan(baseline) else float(baseline)
        # the policy's windows are the metric windows: counted in labelled events
        self.policy = AlertPolicy(
            alerts.model_copy(update={"window_events": settings.window_labels})
        )
        self.state_key = f"{model_id}/_perf/state"
        self.policy_key = f"{model_id}/_policy/performance"
        self.reference_version = profile.version if profile else ""
        self.label_detector: tuple[str, str] | None = None  # (detector, kind)
        if settings.label_drift and profile is not None and profile.label is not None:
            kind = "numeric" if config.task == "regression" else "categorical"
            self.label_detector = (DEFAULT_DETECTORS[kind], kind)
        self.label_key = f"{model_id}/_label/state"
        self.arl = arl
        # a lasting critical performance drop asks for retraining, within the same limits
        # (cooldown, per-day cap; state shared with drift) as a drift episode
        self.retraining = RetrainingPlanner(config.retraining, self.policy)
        self.retraining_key = f"{model_id}/_model/retraining"
        self.errors: RateCheck | None = None
        self.river_name: str | None = None
        accuracy = (profile.performance if profile else {}).get("accuracy")
        if config.task == "regression":
            # absolute errors are no 0/1 stream: ADWIN (river) can watch them; the default
            # CUSUM would need the reference's error distribution, which profiles do not keep
            if settings.error_detector == "adwin":
                self.river_name = "adwin"
        elif accuracy is not None:
            if settings.error_detector == "cusum":
                self.errors = RateCheck(
                    1.0 - accuracy,
                    profile.n_rows if profile else 0,
                    arl,
                    tolerance=settings.tolerance,
                )
            else:
                self.river_name = RIVER_ERROR_DETECTORS[settings.error_detector]

    def process(self, pairs: list[Joined], state: MutableMapping[str, bytes]) -> PerformanceOutcome:
        """Run the labelled events through windows, error test and policy; write state once.

        Chunks end at window ends and where an alert fires (the policy asks for a cut with
        a ``Cut``), so the alerts do not depend on how the labels were batched.
        """
        return run_in_chunks(lambda plan: self._process(pairs, state, plan))

    def _process(
        self, pairs: list[Joined], state: MutableMapping[str, bytes], plan: Plan
    ) -> PerformanceOutcome | Cut:
        st = _State.from_bytes(state.get(self.state_key))
        run = _LabelRun(
            st=st,
            episode=EpisodeState.from_bytes(state.get(self.policy_key)),
            errors=RunState.from_doc(st.errors),
            river=self._river(st),
            labels_seen=self._labels_detector(state),
        )
        encoded = self._encoded(pairs)
        before, n, pos = st.labelled, len(pairs), 0
        while pos < n:
            count = before + pos
            end_count = self.policy.chunk_end(count, before + n, plan.cuts)
            end = end_count - before
            signals = self._chunk_signals(run, pairs, encoded, pos, end, count)
            chunk = Chunk(
                self.model_id,
                pairs[end - 1].version,
                "performance",
                self.reference_version,
                count,
                encoded.times[pos:end],
            )
            cut = self._step(run, state, chunk, signals)
            if cut is not None:
                return cut
            pos = end
        self._write_back(run, state, before + n)
        return PerformanceOutcome(
            run.alerts,
            n,
            run.metrics,
            failing=run.episode.firing,
            by_time=run.by_time,
            retraining_requests=run.requests,
        )

    def _encoded(self, pairs: list[Joined]) -> _Encoded:
        labels = [p.label for p in pairs]
        return _Encoded(
            y_true=self.encoder.encode(labels),
            y_pred=self.encoder.encode([p.prediction for p in pairs]),
            proba=self.encoder.proba([p.score for p in pairs]),
            times=np.array([p.label_time for p in pairs], dtype=np.float64),
            labels=(
                prediction_column(labels, self.label_detector[1]) if self.label_detector else None
            ),
        )

    def _chunk_signals(
        self, run: _LabelRun, pairs: list[Joined], enc: _Encoded, pos: int, end: int, count: int
    ) -> list[Signal]:
        """The error test, the labels' detector and (at a window's end) the window's metric
        over pairs pos..end; the window and time slices take the pairs in."""
        st, part = run.st, slice(pos, end)
        proba = None if enc.proba is None else enc.proba[part]
        signals = self._error_signals(
            enc.y_true[part], enc.y_pred[part], count, run.errors, run.river
        )
        if run.labels_seen is not None and enc.labels is not None:
            signals += self._label_signals(run.labels_seen, enc.labels[part], count)
        # encoded once: the window keeps what its metrics need, not the raw events
        st.window.extend(
            map(
                list,
                zip(
                    _plain_column(enc.y_true[part]),
                    _plain_column(enc.y_pred[part]),
                    [None] * (end - pos) if proba is None else _plain_column(proba),
                    strict=True,
                ),
            )
        )
        closed = self._time_windows(st, pairs[part], enc.y_true[part], enc.y_pred[part], proba)
        run.by_time = closed or run.by_time
        end_count = count + end - pos
        if end_count % self.settings.window_labels == 0:
            run.metrics = self._window_metrics(st.window)
            st.last, st.window = run.metrics, []
            signal = self._window_signal(run.metrics, end_count)
            if signal is not None:
                signals.append(signal)
        return signals

    def _step(
        self,
        run: _LabelRun,
        state: MutableMapping[str, bytes],
        chunk: Chunk,
        signals: list[Signal],
    ) -> Cut | None:
        """The alert policy (and retraining) over one chunk; the Cut one of them needs."""
        stepped = self.policy.step(run.episode, chunk, signals)
        if isinstance(stepped, Cut):
            return stepped
        run.alerts.extend(stepped)
        if self.retraining.wants(run.episode, chunk.kind):
            return self.retraining.step(run, state, self.retraining_key, chunk)
        return None

    def _write_back(self, run: _LabelRun, state: MutableMapping[str, bytes], total: int) -> None:
        st = run.st
        if run.retraining is not None:
            state[self.retraining_key] = run.retraining.to_bytes()
        st.labelled = total
        st.errors = run.errors.to_doc()
        if run.river is not None:
            st.river = run.river.state_bytes().decode("latin-1")
        if run.labels_seen is not None:
            state[self.label_key] = run.labels_seen.state_bytes()
        state[self.state_key] = st.to_bytes()
        state[self.policy_key] = run.episode.to_bytes()

    def _time_windows(
        self,
        st: _State,
        pairs: list[Joined],
        y_true: np.ndarray,
        y_pred: np.ndarray,
        proba: np.ndarray | None,
    ) -> dict[str, dict[str, float]]:
        """Add the pairs to the open time window's slices; return the metrics of a window
        that closed (a label from a later window came). Late labels of an earlier window
        count in the open one."""
        closed: dict[str, dict[str, float]] = {}
        width = self.settings.window_seconds
        k = len(self.encoder.classes)
        windows = np.floor(np.array([p.label_time for p in pairs]) / width).astype(np.int64)
        for window in np.unique(windows):
            if st.time_window is not None and window > st.time_window:
                closed = {
                    name: MetricAccumulator.from_doc(self.config.task, k, doc).metrics()
                    for name, doc in st.slices.items()
                }
                st.slices = {}
            st.time_window = max(int(window), st.time_window or int(window))
            rows = np.flatnonzero(windows == window)
            for name, picked in self._slices(st, [pairs[i] for i in rows]).items():
                at = rows[picked]
                acc = MetricAccumulator.from_doc(self.config.task, k, st.slices.get(name))
                acc.add(y_true[at], y_pred[at], None if proba is None else proba[at])
                st.slices[name] = acc.to_doc()
        return closed

    def _slices(self, st: _State, pairs: list[Joined]) -> dict[str, np.ndarray]:
        """Slice name -> the pairs in it (indices): all, per version, per segment value."""
        out: dict[str, list[int]] = {"all": list(range(len(pairs)))}
        versions = {p.version for p in pairs}
        if not self.settings.segments and len(versions) == 1:  # the usual run: one slice each
            version = _tracked(st.versions, versions.pop(), MAX_VERSIONS)
            out[f"version={version}"] = out["all"]
            return {name: np.asarray(rows, dtype=np.int64) for name, rows in out.items()}
        for i, pair in enumerate(pairs):
            version = _tracked(st.versions, pair.version, MAX_VERSIONS)
            out.setdefault(f"version={version}", []).append(i)
            for name in self.settings.segments:
                value = (pair.segment or {}).get(name)
                if value is None:
                    continue
                seen = st.segment_values.setdefault(name, [])
                out.setdefault(f"{name}={_tracked(seen, value, MAX_SEGMENT_VALUES)}", []).append(i)
        return {name: np.asarray(rows, dtype=np.int64) for name, rows in out.items()}

    def _labels_detector(self, state: MutableMapping[str, bytes]) -> Detector | None:
        if self.label_detector is None or self.profile is None or self.profile.label is None:
            return None
        detector = detectors.create(self.label_detector[0], self.profile.label, arl=self.arl)
        stored = state.get(self.label_key)
        if stored is not None:
            detector.restore(stored)
        return detector

    def _label_signals(self, detector: Detector, column: np.ndarray, count: int) -> list[Signal]:
        """The labels' distribution against the reference's (a prior or target shift)."""
        present = ~np.isnan(column) if column.dtype.kind == "f" else column != None  # noqa: E711
        rows = np.flatnonzero(present)
        v = detector.update(column[rows])
        if not v.drift:
            return []
        at = count + int(rows[v.first_alarm]) + 1
        name = self.label_detector[0] if self.label_detector else ""
        return [Signal("_label", name, at, v.alarms, v.peak, v.threshold, feature="_label")]

    def _river(self, st: _State) -> Detector | None:
        if self.river_name is None:
            return None
        detector = detectors.create(self.river_name, None, arl=1.0)
        if st.river:
            detector.restore(st.river.encode("latin-1"))
        return detector

    def _error_signals(
        self,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        count: int,
        errors: RunState,
        river: Detector | None,
    ) -> list[Signal]:
        if self.errors is None and river is None:
            return []
        if self.config.task == "regression":
            rows = np.flatnonzero(np.isfinite(y_true) & np.isfinite(y_pred))
            wrong = np.abs(y_pred - y_true)[rows]  # for ADWIN: the absolute errors
        else:
            rows = np.flatnonzero((y_true >= 0) & (y_pred >= 0))
            wrong = (y_true != y_pred)[rows]
        if self.errors is not None:
            r = self.errors.update(errors, wrong)
            if r.alarms:
                at = count + int(rows[r.first]) + 1
                return [
                    Signal("errors", "cusum", at, r.alarms, r.peak, r.threshold, feature="errors")
                ]
            return []
        assert river is not None
        v = river.update(wrong.astype(np.float64))
        if v.drift:
            at = count + int(rows[v.first_alarm]) + 1
            name = self.river_name or ""
            return [Signal("errors", name, at, v.alarms, v.peak, v.threshold, feature="errors")]
        return []

    def _window_metrics(self, window: list[list[Any]]) -> dict[str, float]:
        """Metrics of a window of encoded rows [label, prediction, probability or None]."""
        dtype = np.float64 if self.config.task == "regression" else np.int64
        y_true = np.array([row[0] for row in window], dtype=np.float64).astype(dtype)
        y_pred = np.array([row[1] for row in window], dtype=np.float64).astype(dtype)
        proba = None
        if any(row[2] is not None for row in window):
            if self.config.task == "binary":
                proba = np.array([row[2] for row in window], dtype=np.float64)  # None: NaN
            else:
                proba = np.full((len(window), len(self.encoder.classes)), math.nan)
                for i, row in enumerate(window):
                    if row[2] is not None:
                        proba[i] = row[2]
        return self.encoder.metrics(y_true, y_pred, proba)

    def _window_signal(self, metrics: dict[str, float], at: int) -> Signal | None:
        value = metrics.get(self.metric)
        if value is None or math.isnan(value) or self.baseline is None:
            return None
        excess = _degradation(self.metric, value, self.baseline)
        if excess <= self.settings.tolerance:
            return None
        return Signal(
            self.metric,
            "window",
            at,
            1,
            excess,
            self.settings.tolerance,
            feature=self.metric,
            reference_rate=self.baseline,
            value=value,
        )


def _plain_column(values: np.ndarray) -> list[Any]:
    """Encoded values as JSON takes them: NaN (or a row with one) as None."""
    if values.dtype.kind != "f":
        return list(values.tolist())
    if values.ndim == 1:
        return [None if v != v else v for v in values.tolist()]  # v != v: NaN
    rows = values.tolist()
    nan_rows = np.isnan(values).any(axis=1).tolist()
    return [None if bad else row for bad, row in zip(nan_rows, rows, strict=True)]


def _tracked(seen: list[str], value: str, limit: int) -> str:
    """The value itself while fewer than ``limit`` values have their slice, else _other."""
    if value in seen:
        return value
    if len(seen) < limit:
        seen.append(value)
        return value
    return OTHER


def _degradation(metric: str, value: float, baseline: float) -> float:
    """How much worse than the baseline: an absolute drop for scores, a relative rise for
    errors (MAE 12 against 10 is 0.2)."""
    if HIGHER_IS_BETTER[metric]:
        return baseline - value
    return (value - baseline) / baseline if baseline > 0 else math.inf


class PerformanceEstimator:
    """CBPE on the prediction stream: expected accuracy and ROC AUC per window of predictions."""

    def __init__(
        self,
        model_id: str,
        config: ModelConfig,
        profile: ReferenceProfile,
        alerts: AlertSettings,
    ) -> None:
        assert profile.calibration is not None
        self.model_id = model_id
        self.settings = config.performance
        self.encoder = OutcomeEncoder(config, profile)
        self.calibration = ScoreCalibration(
            tuple(profile.calibration["edges"]), tuple(profile.calibration["rates"])
        )
        self.baseline = profile.performance.get("accuracy")
        self.policy = AlertPolicy(
            alerts.model_copy(update={"window_events": self.settings.window_labels})
        )
        self.state_key = f"{model_id}/_perf/estimate"
        self.policy_key = f"{model_id}/_policy/performance_estimate"
        self.reference_version = profile.version

    def process(
        self, batch: PredictionBatch, state: MutableMapping[str, bytes]
    ) -> PerformanceOutcome:
        return run_in_chunks(lambda plan: self._process(batch, state, plan))

    def _process(
        self, batch: PredictionBatch, state: MutableMapping[str, bytes], plan: Plan
    ) -> PerformanceOutcome | Cut:
        raw = state.get(self.state_key)
        doc: dict[str, Any] = (
            orjson.loads(raw) if raw else {"n": 0, "score": [], "predicted": [], "last": {}}
        )
        episode = EpisodeState.from_bytes(state.get(self.policy_key))
        score = self.encoder.proba(batch.scores)
        if score is None:
            score = np.full(len(batch), math.nan)
        predicted = self.encoder.encode(batch.predictions)
        before, n, pos = int(doc["n"]), len(batch), 0
        alerts: list[Alert] = []
        estimate: dict[str, float] = {}
        w = self.settings.window_labels
        while pos < n:
            count = before + pos
            end_count = self.policy.chunk_end(count, before + n, plan.cuts)
            end = end_count - before
            doc["score"].extend(score[pos:end].tolist())
            doc["predicted"].extend(predicted[pos:end].tolist())
            signals: list[Signal] = []
            if end_count % w == 0:
                estimate = self._estimate(np.array(doc["score"]), np.array(doc["predicted"]))
                doc["last"], doc["score"], doc["predicted"] = estimate, [], []
                value = estimate.get("accuracy")
                if value is not None and self.baseline is not None and not math.isnan(value):
                    excess = self.baseline - value
                    if excess > self.settings.tolerance:
                        signals.append(
                            Signal(
                                "estimated_accuracy",
                                "cbpe",
                                end_count,
                                1,
                                excess,
                                self.settings.tolerance,
                                feature="estimated_accuracy",
                                reference_rate=self.baseline,
                                value=value,
                            )
                        )
            chunk = Chunk(
                self.model_id,
                batch.versions[end - 1],
                "performance",
                self.reference_version,
                count,
                batch.timestamps[pos:end],
            )
            stepped = self.policy.step(episode, chunk, signals)
            if isinstance(stepped, Cut):
                return stepped
            alerts.extend(stepped)
            pos = end
        doc["n"] = before + n
        state[self.state_key] = orjson.dumps(doc)
        state[self.policy_key] = episode.to_bytes()
        return PerformanceOutcome(alerts, 0, {}, estimate, failing=episode.firing)

    def _estimate(self, score: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
        ok = np.isfinite(score) & (predicted >= 0)
        if not ok.any():
            return {}
        p = self.calibration.probability(score[ok])
        return {
            "accuracy": expected_accuracy(p, predicted[ok] == 1),
            "roc_auc": expected_roc_auc(score[ok], p),
        }
