"""PerformanceMonitor: labelled events into windowed metrics, sequential error tests and alerts;
PerformanceEstimator: the expected metrics of predictions whose labels are not in yet.

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
- **Estimate** (a calibration in the profile): CBPE's expected accuracy and ROC AUC for
  classifiers with scores (binary, or multiclass with one score per class), the expected MAE
  and RMSE of a regression (direct loss estimation), over windows of ``window_labels``
  predictions, each with its band, compared with the estimate's own baseline like the
  realised metric.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson

from driftline import detectors
from driftline.config import AlertSettings, ModelConfig
from driftline.detectors.base import Detector
from driftline.detectors.performance import (
    PRIMARY,
    ClassCalibration,
    LossModel,
    MetricAccumulator,
    ScoreCalibration,
    WindowBar,
    classification_metrics,
    expected_accuracy,
    expected_accuracy_spread,
    expected_multiclass,
    expected_roc_auc,
    regression_metrics,
)
from driftline.detectors.profile import CategoricalProfile, ReferenceProfile
from driftline.detectors.quality import RateCheck, RunState
from driftline.detectors.reference_size import Z as REFERENCE_Z
from driftline.events.codec import PredictionBatch
from driftline.events.records import Alert, MetricCheck, PerformanceWindow, RetrainingRequest
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
# A regression's error test counts errors larger than this quantile of the reference's: a
# 0/1 stream whose rate is known, whatever the tails of the errors themselves.
LARGE_ERROR_QUANTILE = 0.9
LARGE_ERROR = "abs_error_p90"  # its value, in the profile's baseline performance
SPREAD_DRAWS = 1_000  # bootstrap windows of the reference: enough for a skewness
BAND_Z = 1.96  # the estimate's band: 95% of realised windows, if the calibration holds
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
    """The metrics on the reference data: what production is compared with (and for a
    regression, what a large error is: the absolute errors' ``LARGE_ERROR_QUANTILE``)."""
    encoder = OutcomeEncoder(config, profile)
    proba = encoder.proba(scores) if scores is not None else None
    y_true, y_pred = encoder.encode(label), encoder.encode(prediction)
    out = encoder.metrics(y_true, y_pred, proba)
    if config.task == "regression" and out:
        error = np.abs(y_pred - y_true)
        out[LARGE_ERROR] = float(np.quantile(error[np.isfinite(error)], LARGE_ERROR_QUANTILE))
    return out


def performance_spread(
    config: ModelConfig,
    profile: ReferenceProfile | None,
    prediction: Sequence[Any],
    label: Sequence[Any],
    scores: Sequence[Any] | None = None,
    calibration: Estimation | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Each metric's per-row spread on the reference: the standard deviation (``sd``) and
    skewness (``skew``) of its value over bootstrap windows of ``window_labels`` rows, both
    times sqrt(window_labels), so that they hold for any window size (and the same for the
    estimate's metrics, as ``estimated_<metric>``, when there is a calibration)."""
    encoder = OutcomeEncoder(config, profile)
    y_true, y_pred = encoder.encode(label), encoder.encode(prediction)
    proba = encoder.proba(scores) if scores is not None else None
    n = len(y_true)
    window = min(config.performance.window_labels, n)
    if window < 2:
        return {}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(SPREAD_DRAWS):
        rows = rng.integers(0, n, window)
        part = None if proba is None else proba[rows]
        values = encoder.metrics(y_true[rows], y_pred[rows], part)
        if calibration is not None:
            estimate = estimate_with(calibration, part, y_pred[rows])
            values |= {f"estimated_{k}": v for k, v in estimate.items()}
        for metric, value in values.items():
            draws.setdefault(metric, []).append(value)
    out = {}
    root = math.sqrt(window)
    for metric, series in draws.items():
        drawn = np.asarray(series, dtype=np.float64)
        finite = drawn[np.isfinite(drawn)]
        sd = float(np.std(finite, ddof=1)) if finite.size > 2 else 0.0
        if sd > 0:
            skew = float(np.mean(((finite - finite.mean()) / sd) ** 3))
            out[metric] = {"sd": sd * root, "skew": skew * root}
    return out


def estimated_baseline(
    config: ModelConfig,
    profile: ReferenceProfile | None,
    prediction: Sequence[Any],
    scores: Sequence[Any] | None,
    calibration: Estimation,
) -> dict[str, float]:
    """The estimate's own metrics on the reference (``estimated_<metric>``): what estimates
    are compared with, so that the estimation's bias (binned probabilities rank a little
    worse than the scores) is not taken for a drop."""
    encoder = OutcomeEncoder(config, profile)
    proba = encoder.proba(scores) if scores is not None else None
    estimate = estimate_with(calibration, proba, encoder.encode(prediction))
    return {f"estimated_{k}": v for k, v in estimate.items()}


def cbpe(
    calibration: ScoreCalibration, score: np.ndarray, predicted: np.ndarray
) -> dict[str, float]:
    """Expected accuracy and ROC AUC of binary predictions from their scores."""
    ok = np.isfinite(score) & (predicted >= 0)
    if not ok.any():
        return {}
    p = calibration.probability(score[ok])
    return {
        "accuracy": expected_accuracy(p, predicted[ok] == 1),
        "roc_auc": expected_roc_auc(score[ok], p),
    }


@dataclass
class _State:
    labelled: int = 0  # labelled events joined so far: the policy's event count
    window: list[list[Any]] = field(default_factory=list)  # [label, prediction, score]
    window_first_time: float | None = None  # the open window's first label time
    recent: list[float | None] = field(default_factory=list)  # the last windows' metric
    error_bank: list[Any] = field(default_factory=list)  # the error CUSUMs' RunStates
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
        if not raw:
            return cls()
        doc = orjson.loads(raw)
        # state written by an older release may hold fields this one dropped
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class PerformanceOutcome:
    alerts: list[Alert]
    labelled: int  # labelled events in this call
    metrics: dict[str, float]  # the last complete window's, if one completed
    estimate: dict[str, float] = field(default_factory=dict)
    windows: list[PerformanceWindow] = field(default_factory=list)  # every window closed
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
    errors: list[RunState]
    river: Any
    labels_seen: Detector | None
    retraining: RetrainingState | None = None
    alerts: list[Alert] = field(default_factory=list)
    windows: list[PerformanceWindow] = field(default_factory=list)
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
        scope: str = "",
    ) -> None:
        """``scope``: the prefix of the state keys (one per monitored version)."""
        settings = config.performance
        self.model_id = model_id
        scope = scope or model_id
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
        self.state_key = f"{scope}/_perf/state"
        self.policy_key = f"{scope}/_policy/performance"
        self.reference_version = profile.version if profile else ""
        self.label_detector: tuple[str, str] | None = None  # (detector, kind)
        if settings.label_drift and profile is not None and profile.label is not None:
            kind = "numeric" if config.task == "regression" else "categorical"
            self.label_detector = (DEFAULT_DETECTORS[kind], kind)
        self.label_key = f"{scope}/_label/state"
        self.arl = arl
        # a lasting critical performance drop asks for retraining, within the same limits
        # (cooldown, per-day cap; state shared with drift) as a drift episode
        self.retraining = RetrainingPlanner(config.retraining, self.policy)
        self.retraining_key = f"{model_id}/_model/retraining"
        self.bars: MetricBars | None = None
        if self.baseline is not None and profile is not None:
            self.bars = MetricBars.of(
                WindowBar.of(
                    self.metric,
                    self.baseline,
                    profile.performance_spread.get(self.metric, {}),
                    settings.window_labels,
                    profile.n_rows,
                    arl,
                    minimum=settings.tolerance,
                ),
                alerts.resolve_after_windows,
            )
        self.errors: list[RateCheck] = []
        self.river_name: str | None = None
        accuracy = (profile.performance if profile else {}).get("accuracy")
        self.large_error: float | None = None
        if config.task == "regression":
            # ADWIN (river) watches the absolute errors; the default CUSUMs the share of large
            # ones (tolerance applies to the windows: it has no share to become)
            large = (profile.performance if profile else {}).get(LARGE_ERROR)
            if settings.error_detector == "adwin":
                self.river_name = "adwin"
            elif settings.error_detector == "cusum" and large is not None and profile:
                self.large_error = float(large)
                rate = 1.0 - LARGE_ERROR_QUANTILE
                self.errors = error_checks(rate, profile.n_rows, arl, 0.0)
        elif accuracy is not None:
            if settings.error_detector == "cusum":
                self.errors = error_checks(
                    1.0 - accuracy, profile.n_rows if profile else 0, arl, settings.tolerance
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
            errors=[RunState.from_doc(doc) for doc in st.error_bank]
            or [RunState() for _ in self.errors],
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
            windows=run.windows,
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
        if not st.window:
            st.window_first_time = float(enc.times[pos])
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
            check = self._check(run.metrics)
            run.windows.append(
                PerformanceWindow(
                    self.model_id,
                    pairs[end - 1].version,
                    self.reference_version,
                    "realised",
                    end_count,
                    len(st.window),
                    st.window_first_time or float(enc.times[end - 1]),
                    float(enc.times[end - 1]),
                    _finite_or_none(run.metrics),
                    [check],
                )
            )
            st.last, st.window = run.metrics, []
            st.recent = [*st.recent, check.value][-(self.bars.windows if self.bars else 1) :]
            signal = window_signal(
                self.metric, "window", self.bars, st.recent, end_count, run.episode.firing
            )
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
        st.error_bank = [errors.to_doc() for errors in run.errors]
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
        errors: list[RunState],
        river: Detector | None,
    ) -> list[Signal]:
        if not self.errors and river is None:
            return []
        if self.config.task == "regression":
            rows = np.flatnonzero(np.isfinite(y_true) & np.isfinite(y_pred))
            wrong = np.abs(y_pred - y_true)[rows]  # for ADWIN: the absolute errors
            if self.large_error is not None:
                wrong = wrong > self.large_error
        else:
            rows = np.flatnonzero((y_true >= 0) & (y_pred >= 0))
            wrong = (y_true != y_pred)[rows]
        if self.errors:
            results = [
                check.update(state, wrong) for check, state in zip(self.errors, errors, strict=True)
            ]
            fired = [r for r in results if r.alarms]
            if not fired:
                return []
            r = min(fired, key=lambda r: r.first)  # the first check to cross speaks
            at = count + int(rows[r.first]) + 1
            alarms = sum(f.alarms for f in fired)
            return [Signal("errors", "cusum", at, alarms, r.peak, r.threshold, feature="errors")]
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

    def _check(self, metrics: dict[str, float]) -> MetricCheck:
        bar = self.bars.fire if self.bars else None
        return metric_check(self.metric, metrics.get(self.metric), bar)


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


def error_checks(
    error_rate: float,
    reference_rows: int,
    arl: float,
    tolerance: float,
    reference_z: float = REFERENCE_Z,
) -> list[RateCheck]:
    """The sequential test on the 0/1 errors: two Bernoulli CUSUMs, one built for the error
    rate rising by half (a 0.944 accuracy falling to 0.916), one for it tripling, so that
    small lasting drops and sudden breaks are both found early. Each spends half the budget;
    ``tolerance`` is the smallest rise either is built for; ``reference_z``, the standard
    errors of the reference's rate allowed (``RateCheck``)."""
    small = max(tolerance, 0.5 * error_rate, 0.005)
    large = max(2 * tolerance, 2.0 * error_rate, 0.02)
    return [
        RateCheck(error_rate, reference_rows, 2 * arl, tolerance=shift, reference_z=reference_z)
        for shift in (small, large)
    ]


def metric_check(
    metric: str, value: float | None, bar: WindowBar | None, band: tuple[float, float] | None = None
) -> MetricCheck:
    """A window's value of ``metric`` against its bar; ``band`` (an estimate's) or else the
    bar's no-change range around the baseline."""
    if value is None or math.isnan(value) or bar is None:
        known = None if value is None or math.isnan(value) else value
        return MetricCheck(metric, known, bar.baseline if bar else None, None, "unknown")
    low, high = band or bar.band(bar.baseline)
    verdict = bar.verdict(value)
    return MetricCheck(metric, value, bar.baseline, bar.limit, verdict, low, high)  # type: ignore[arg-type]


@dataclass(frozen=True)
class MetricBars:
    """A metric's bar for one window, and the one that holds an open episode: the mean of the
    last ``windows`` windows worse than half the bar of a window that many times as long. A
    lasting drop too small for one window's bar, found by the error test, stays one episode
    (the mean of several windows tells it from noise); it resolves once those windows are
    clean again."""

    fire: WindowBar
    hold: WindowBar
    windows: int

    @classmethod
    def of(cls, fire: WindowBar, windows: int) -> MetricBars:
        # the bar's spread shrinks with the square root of the windows pooled
        hold = replace(fire, limit=fire.limit / (2 * math.sqrt(windows)))
        return cls(fire, hold, windows)


def window_signal(
    subject: str,
    detector: str,
    bars: MetricBars | None,
    recent: list[float | None],
    at: int,
    firing: bool,
) -> Signal | None:
    """The latest window (``recent[-1]``) worse than its bar signals; while the episode fires,
    the mean of the last windows worse than the hold bar does."""
    if bars is None or not recent or recent[-1] is None:
        return None
    bar, value = bars.fire, recent[-1]
    if firing:
        known = [v for v in recent[-bars.windows :] if v is not None]
        bar, value = bars.hold, sum(known) / len(known)
    excess = bar.excess(value)
    limit = bar.limit
    if excess <= limit:
        return None
    return Signal(
        subject,
        detector,
        at,
        1,
        excess,
        limit,
        feature=subject,
        reference_rate=bar.baseline,
        value=value,
    )


def _finite_or_none(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}


Estimation = ScoreCalibration | ClassCalibration | LossModel  # a task's estimate, as learnt


def estimation_of(task: str, doc: dict[str, Any]) -> Estimation:
    """The profile's ``calibration`` section as the task's estimation model."""
    if task == "regression":
        return LossModel.from_doc(doc)
    if task == "multiclass":
        return ClassCalibration.from_doc(doc)
    return ScoreCalibration(tuple(doc["edges"]), tuple(doc["rates"]))


def estimation_doc(estimation: Estimation) -> dict[str, Any]:
    """The estimation model as the profile's ``calibration`` section."""
    if isinstance(estimation, ScoreCalibration):
        return {"edges": list(estimation.edges), "rates": list(estimation.rates)}
    return estimation.to_doc()


def estimate_with(
    estimation: Estimation, proba: np.ndarray | None, predicted: np.ndarray
) -> dict[str, float]:
    """The expected metrics of a window: CBPE from a classifier's scores (``proba``: P(positive)
    per event, or a row of class scores whose columns follow the calibration's classes),
    direct loss estimation from a regression's predictions."""
    if isinstance(estimation, LossModel):
        return estimation.expected(predicted[np.isfinite(predicted)])
    if proba is None:
        return {}
    if isinstance(estimation, ClassCalibration):
        proba, predicted = _calibrated_rows(estimation, proba, predicted)
        return expected_multiclass(proba, estimation.probability(proba), predicted)
    return cbpe(estimation, proba, predicted)


def _calibrated_rows(
    calibration: ClassCalibration, proba: np.ndarray, predicted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The events a multiclass estimate can use: all their classes' scores sent, and a
    predicted class the calibration knows (not one the reference never saw)."""
    k = len(calibration.classes)
    scores = proba[:, :k]
    ok = np.isfinite(scores).all(axis=1) & (predicted >= 0) & (predicted < k)
    return scores[ok], predicted[ok]


class PerformanceEstimator:
    """Performance before labels, per window of predictions: CBPE's expected accuracy and ROC
    AUC for a classifier with scores (binary or multiclass), the expected MAE and RMSE for a
    regression (direct loss estimation); each with its band, and a signal when one is worse
    than its baseline past its bar."""

    WATCHED = {
        "binary": ("accuracy", "roc_auc"),
        "multiclass": ("accuracy", "roc_auc"),
        "regression": ("mae", "rmse"),
    }

    def __init__(
        self,
        model_id: str,
        config: ModelConfig,
        profile: ReferenceProfile,
        alerts: AlertSettings,
        arl: float,
        scope: str = "",
    ) -> None:
        assert profile.calibration is not None
        self.model_id = model_id
        self.scope = scope or model_id
        self.task = config.task
        self.watched = self.WATCHED[config.task]
        self.settings = config.performance
        self.encoder = OutcomeEncoder(config, profile)
        self.estimation = estimation_of(config.task, profile.calibration)
        if isinstance(self.estimation, ClassCalibration):
            known = tuple(self.encoder.classes[:-1])
            if self.estimation.classes != known:
                raise ValueError(
                    f"models.{model_id}: the reference profile's calibration is for classes "
                    f"{list(self.estimation.classes)}, its labels and predictions are "
                    f"{list(known)}; rebuild it with driftline baseline"
                )
        w = self.settings.window_labels
        baseline = profile.performance
        self.bars = {
            metric: MetricBars.of(
                WindowBar.of(
                    metric,
                    baseline.get(f"estimated_{metric}", baseline[metric]),
                    profile.performance_spread.get(f"estimated_{metric}", {}),
                    w,
                    profile.n_rows,
                    arl,
                    minimum=self.settings.tolerance,
                ),
                alerts.resolve_after_windows,
            )
            for metric in self.watched
            if math.isfinite(profile.performance.get(metric, math.nan))
        }
        # the realised metric's own spread over windows: the band of an estimate that has no
        # spread of its own (AUC, RMSE)
        self.spread = {m: profile.performance_spread.get(m, {}).get("sd") for m in self.watched}
        self.policy = AlertPolicy(
            alerts.model_copy(update={"window_events": self.settings.window_labels})
        )
        self.state_key = f"{self.scope}/_perf/estimate"
        self.policy_key = f"{self.scope}/_policy/performance_estimate"
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
        windows: list[PerformanceWindow] = []
        episode = EpisodeState.from_bytes(state.get(self.policy_key))
        score = self.encoder.proba(batch.scores)
        if score is None:
            width = (len(self.encoder.classes),) if self.task == "multiclass" else ()
            score = np.full((len(batch), *width), math.nan)
        predicted = self.encoder.encode(batch.predictions)
        before, n, pos = int(doc["n"]), len(batch), 0
        alerts: list[Alert] = []
        estimate: dict[str, float] = {}
        w = self.settings.window_labels
        while pos < n:
            count = before + pos
            end_count = self.policy.chunk_end(count, before + n, plan.cuts)
            end = end_count - before
            if not doc["score"]:
                doc["first_time"] = float(batch.timestamps[pos])
            doc["score"].extend(score[pos:end].tolist())
            doc["predicted"].extend(predicted[pos:end].tolist())
            signals: list[Signal] = []
            if end_count % w == 0:
                window = self._window(
                    np.array(doc["score"], dtype=np.float64),
                    np.array(
                        doc["predicted"],
                        dtype=np.float64 if self.task == "regression" else np.int64,
                    ),
                    batch.versions[end - 1],
                    end_count,
                    (doc.get("first_time", 0.0), float(batch.timestamps[end - 1])),
                )
                windows.append(window)
                estimate = {k: v for k, v in window.metrics.items() if v is not None}
                doc["last"], doc["score"], doc["predicted"] = estimate, [], []
                signals = self._signals(
                    window, doc.setdefault("recent", {}), end_count, episode.firing
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
        return PerformanceOutcome(alerts, 0, {}, estimate, failing=episode.firing, windows=windows)

    def _window(
        self,
        score: np.ndarray,
        predicted: np.ndarray,
        version: str,
        end_count: int,
        times: tuple[float, float],
    ) -> PerformanceWindow:
        """One window of predictions: the estimates, their bands, and their checks."""
        estimate = estimate_with(self.estimation, score, predicted)
        spreads = self._spreads(score, predicted)
        checks = []
        for metric in self.watched:
            value = estimate.get(metric)
            band = None
            if value is not None and math.isfinite(value) and math.isfinite(spreads[metric]):
                band = (value - BAND_Z * spreads[metric], value + BAND_Z * spreads[metric])
            bars = self.bars.get(metric)
            checks.append(metric_check(metric, value, bars.fire if bars else None, band))
        return PerformanceWindow(
            self.model_id,
            version,
            self.reference_version,
            "estimated",
            end_count,
            len(score),
            times[0],
            times[1],
            _finite_or_none(estimate),
            checks,
        )

    def _spreads(self, score: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
        """How far the window's realised metrics may fall from the estimates, if the learnt
        calibration (or loss model) holds: one standard deviation each."""
        if isinstance(self.estimation, LossModel):
            ok = predicted[np.isfinite(predicted)]
            n = max(ok.size, 1)
            return {
                "mae": self.estimation.mae_spread(ok),
                "rmse": (self.spread["rmse"] or math.nan) / math.sqrt(n),
            }
        if isinstance(self.estimation, ClassCalibration):
            score, predicted = _calibrated_rows(self.estimation, score, predicted)
            calibrated = self.estimation.probability(score)
            right = calibrated[np.arange(predicted.size), predicted]
        else:
            ok = np.isfinite(score) & (predicted >= 0)
            score, p = score[ok], self.estimation.probability(score[ok])
            right = np.where(predicted[ok] == 1, p, 1 - p)
        return {
            "accuracy": expected_accuracy_spread(right),
            "roc_auc": (self.spread["roc_auc"] or math.nan) / math.sqrt(max(len(score), 1)),
        }

    def _signals(
        self,
        window: PerformanceWindow,
        recent: dict[str, list[float | None]],
        at: int,
        firing: bool,
    ) -> list[Signal]:
        """A signal per estimated metric worse than its bar (its hold bar while the episode
        fires, as for the realised metric); ``recent``: the last windows' values, updated."""
        signals = []
        for check in window.checks:
            subject = f"estimated_{check.metric}"
            bars = self.bars.get(check.metric)
            keep = bars.windows if bars else 1
            values = recent[check.metric] = [*recent.get(check.metric, []), check.value][-keep:]
            signal = window_signal(subject, "cbpe", bars, values, at, firing)
            if signal is not None:
                signals.append(signal)
        return signals
