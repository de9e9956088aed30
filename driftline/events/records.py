"""Records driftline publishes: Alert, RetrainingRequest, PerformanceWindow and FeatureWindow
(JSON on Kafka, versioned).

The JSON Schemas in ``driftline/events/schemas`` describe the same fields for producers and
consumers in other languages; a test checks these classes against them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson


def compact_json(value: Any) -> bytes:
    """JSON bytes of exactly their size, for values kept long (table records).

    orjson (3.12 on) returns its output in a buffer of at least 4 KB (larger outputs: rounded
    up) and never shrinks it: kept per waiting prediction, that was 4.4 KB each instead of
    about 0.2 KB (bench/label_join.py). The copy costs about a microsecond.
    """
    return bytes(memoryview(orjson.dumps(value)))


ALERT_SCHEMA = "driftline.alert/v1"
RETRAINING_SCHEMA = "driftline.retraining-request/v1"
PERFORMANCE_WINDOW_SCHEMA = "driftline.performance-window/v1"
FEATURE_WINDOW_SCHEMA = "driftline.feature-window/v1"
RETRAINING_STATUS_SCHEMA = "driftline.retraining-status/v1"
COMPARISON_WINDOW_SCHEMA = "driftline.comparison-window/v1"


@dataclass(frozen=True)
class FeatureEvidence:
    """One feature's part in an alert, ranked by ``excess`` (how far past its threshold)."""

    feature: str
    detector: str
    statistic: float  # the statistic when the feature first signalled in this episode
    threshold: float
    events_seen: int  # model events processed at the feature's first signal in the episode
    signals: int = 1  # times its detector signalled in the episode (it restarts after each)
    excess: float = 1.0  # max(statistic / threshold, signals): what severity and rank use
    # data quality: the share of events flagged from the first signal to the alert, the
    # reference's share, and a few flagged values (clipped; never whole events).
    # performance: the metric's value in the window that signalled, and its baseline.
    rate: float | None = None
    reference_rate: float | None = None
    examples: list[str] = field(default_factory=list)


AlertStatus = Literal["firing", "resolved"]
Severity = Literal["info", "warning", "critical"]  # info: a finding, not a problem
AlertKind = Literal["drift", "data_quality", "performance", "comparison"]


@dataclass(frozen=True)
class Alert:
    """One alert event: a problem starts (``firing``) or ends (``resolved``).

    A firing alert groups every feature of the model that signalled within the group wait;
    ``feature``, ``detector``, ``statistic`` and ``threshold`` repeat the top-ranked one.
    """

    alert_id: str  # dedup id: the same for the firing and the resolved record of an episode
    status: AlertStatus
    severity: Severity
    kind: AlertKind
    model_id: str
    model_version: str
    feature: str
    detector: str
    statistic: float
    threshold: float
    events_seen: int  # events of this model processed by the worker when the record was made
    first_event_time: float  # epoch seconds of the window the evidence covers
    last_event_time: float
    reference_version: str
    message: str
    created_at: float
    features: list[FeatureEvidence] = field(default_factory=list)
    window_start_event: int = 0  # the model's event count at the episode's first signal
    features_drifting: int = 0  # all features in the episode (``features`` lists the top ones)
    # on a drift alert: "<feature>: <check>" for its features with a data-quality problem
    # open at the same time (a broken pipeline, not the world, may be what moved them)
    data_quality: list[str] = field(default_factory=list)
    # an open episode's later record: its number (0 is the alert itself) and the features
    # that joined the episode since the last record
    update: int = 0
    new_features: list[str] = field(default_factory=list)
    schema: str = ALERT_SCHEMA

    @property
    def counted_as(self) -> str:
        """The alerts metric's status: an episode's updates are counted apart from its alert."""
        return "update" if self.update else self.status

    @property
    def delivery_key(self) -> str:
        """What receivers deduplicate on: one per record of an episode."""
        key = f"{self.alert_id}/{self.status}"
        return f"{key}/{self.update}" if self.update else key

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes | str) -> Alert:
        doc: dict[str, Any] = orjson.loads(data)
        doc["features"] = [FeatureEvidence(**f) for f in doc.get("features", [])]
        return cls(**doc)


@dataclass(frozen=True)
class RetrainingRequest:
    """Ask the retraining pipeline to act; consumers deduplicate on ``idempotency_key``."""

    idempotency_key: str
    model_id: str
    model_version: str
    reason: str
    reference_version: str  # the profile the drift was measured against
    alert_ids: list[str]
    features: list[str]  # the drifted features, most drifted first
    kind: AlertKind
    severity: Severity
    window_start_event: int
    events_seen: int
    first_event_time: float
    last_event_time: float
    created_at: float
    # where the job finds a sample of the model's recent events with their labels (None:
    # sampling is off, or nothing was sampled yet)
    sample: SamplePointer | None = None
    schema: str = RETRAINING_SCHEMA

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes | str) -> RetrainingRequest:
        doc = orjson.loads(data)
        if doc.get("sample") is not None:
            doc["sample"] = SamplePointer(**doc["sample"])
        return cls(**doc)


@dataclass(frozen=True)
class SamplePointer:
    """A retraining request's sample: ``events`` rows (``labelled`` of them with a label), as
    JSON lines in the file ``path``, or in ``messages`` messages of the Kafka ``topic`` from
    ``offset`` of ``partition`` on (each a JSON array of rows)."""

    events: int
    labelled: int
    path: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    messages: int | None = None


RetrainingState = Literal["accepted", "running", "succeeded", "failed"]


@dataclass(frozen=True)
class RetrainingStatus:
    """What became of a retraining request, from the retraining pipeline (Kafka key: model_id).

    ``succeeded`` names the new version and closes the episode that asked; ``failed`` says why,
    and the episode stays open (the policy may ask again after its cooldown)."""

    idempotency_key: str  # the request's
    model_id: str
    status: RetrainingState
    model_version: str = ""  # the version the request was about
    new_version: str = ""  # succeeded: the version trained
    detail: str = ""  # failed: why; otherwise anything worth a line
    created_at: float = 0.0
    schema: str = RETRAINING_STATUS_SCHEMA

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes | str) -> RetrainingStatus:
        doc = orjson.loads(data)
        if doc.get("schema") != RETRAINING_STATUS_SCHEMA:
            raise ValueError(f"schema {doc.get('schema')!r}, not {RETRAINING_STATUS_SCHEMA}")
        if doc.get("status") not in ("accepted", "running", "succeeded", "failed"):
            raise ValueError(f"status {doc.get('status')!r}: accepted, running, succeeded, failed")
        return cls(**doc)


@dataclass(frozen=True)
class MetricCheck:
    """One watched metric of a window against the reference baseline."""

    metric: str
    value: float | None
    baseline: float | None
    limit: float | None  # how much worse is news: absolute for scores, relative for errors
    verdict: Literal["worse", "within", "better", "unknown"]
    # realised: the range around the baseline a window stays in with no change; estimated:
    # the range the window's realised metric falls in (95%) if the calibration holds
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class PerformanceWindow:
    """A closed window of a model's performance: realised (from labels, counted in labelled
    events) or estimated (from the scores of predictions, counted in predictions)."""

    model_id: str
    model_version: str  # of the window's last event
    reference_version: str
    source: Literal["realised", "estimated"]
    window_end_event: int  # labelled events (realised) or predictions (estimated) so far
    events: int
    first_event_time: float
    last_event_time: float
    metrics: dict[str, float | None]
    checks: list[MetricCheck]
    schema: str = PERFORMANCE_WINDOW_SCHEMA

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes | str) -> PerformanceWindow:
        doc: dict[str, Any] = orjson.loads(data)
        doc["checks"] = [MetricCheck(**c) for c in doc.get("checks", [])]
        return cls(**doc)


@dataclass(frozen=True)
class ComparisonWindow:
    """A champion and a challenger (two versions on the same traffic) on the same labels: the
    window's metric of each, and the difference with its confidence interval, in the window
    and over every label they shared so far (on the performance-windows topic; key model_id).

    ``difference`` is positive when the challenger is better: accuracy gained for a classifier,
    the MAE's relative reduction for a regression. ``total_lower`` is the one-sided bound the
    decision uses (``challenger_better``: above ``margin``)."""

    model_id: str
    champion: str  # the version that came first
    challenger: str
    metric: Literal["accuracy", "mae"]
    window_end_label: int  # labels the two shared so far
    labels: int  # in this window
    first_label_time: float
    last_label_time: float
    champion_value: float
    challenger_value: float
    difference: float
    lower: float  # the window's interval at ``confidence``
    upper: float
    total_difference: float
    total_lower: float
    confidence: float
    margin: float
    challenger_better: bool
    schema: str = COMPARISON_WINDOW_SCHEMA

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes | str) -> ComparisonWindow:
        doc = orjson.loads(data)
        if doc.get("schema") != COMPARISON_WINDOW_SCHEMA:
            raise ValueError(f"schema {doc.get('schema')!r}, not {COMPARISON_WINDOW_SCHEMA}")
        return cls(**doc)


def performance_topic_record(data: bytes | str) -> PerformanceWindow | ComparisonWindow:
    """A record of the performance-windows topic, by its schema."""
    if orjson.loads(data).get("schema") == COMPARISON_WINDOW_SCHEMA:
        return ComparisonWindow.from_json(data)
    return PerformanceWindow.from_json(data)


@dataclass(frozen=True)
class SubjectWindow:
    """One watched subject (a feature, ``_prediction``, a feature pair) over a window."""

    detector: str
    share: float  # the highest statistic / threshold at a batch end in the window
    drifting: bool  # in a firing drift episode at the window's end


@dataclass(frozen=True)
class QualityWindow:
    """One data-quality check of one feature over a window."""

    feature: str
    check: str
    flagged: int  # events it flagged in the window
    failing: bool  # in a firing data-quality episode at the window's end


@dataclass(frozen=True)
class LabelsWindow:
    """The label join over a window: how labels fared, and how late the joined ones came."""

    joined: int
    waiting: int  # labels that came before their prediction (stored to wait for it)
    expired_labels: int  # labels whose prediction never came within the TTL
    expired_predictions: int  # predictions whose label never came within the TTL
    duplicates: int
    delay_p50: float | None  # seconds from prediction to label, of the labels joined
    delay_p90: float | None


@dataclass(frozen=True)
class FeatureWindow:
    """A model's drift detectors and data-quality checks over a window of ``events``
    predictions: the history that reports and status pages plot."""

    model_id: str
    model_version: str  # of the window's last event
    reference_version: str
    window_end_event: int  # the model's predictions counted at the window's end
    events: int
    first_event_time: float
    last_event_time: float
    subjects: dict[str, SubjectWindow]
    quality: list[QualityWindow]
    labels: LabelsWindow | None = None  # with performance on: the label join meanwhile
    schema: str = FEATURE_WINDOW_SCHEMA

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes | str) -> FeatureWindow:
        doc: dict[str, Any] = orjson.loads(data)
        doc["subjects"] = {k: SubjectWindow(**v) for k, v in doc.get("subjects", {}).items()}
        doc["quality"] = [QualityWindow(**q) for q in doc.get("quality", [])]
        if doc.get("labels") is not None:
            doc["labels"] = LabelsWindow(**doc["labels"])
        return cls(**doc)


def dedup_id(*parts: object) -> str:
    """A deterministic id from the parts that identify an alert episode."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:20]
