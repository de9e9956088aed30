"""The YAML configuration: models, Kafka, topics, worker; validated once at start.

Errors name the file, the key and what was expected (``ConfigError``). Secrets are never
written in the file: a key ending in ``_env`` names the environment variable that holds the
secret, and the value is kept as a ``SecretStr`` so it cannot leak into logs or reprs.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

FeatureType = Literal["numeric", "categorical"]
Task = Literal["binary", "multiclass", "regression"]


class ConfigError(ValueError):
    """A configuration problem, worded as ``file: key: expectation``."""


class InputError(ValueError):
    """A data or events file that cannot be used, worded as ``file[, line N][, column C]:
    what is wrong; what to do``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Strict):
    bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        description="host:port list, comma-separated ($KAFKA_BOOTSTRAP_SERVERS overrides)",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="how every client connects: the worker, its delivery loop, the CLI, the SDK",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="with a SASL_* protocol"
    )
    sasl_username: str | None = Field(default=None, description="with a SASL_* protocol")
    sasl_password_env: str | None = Field(
        default=None,
        description="environment variable holding the SASL password (never the password itself)",
    )
    ssl_cafile: str | None = Field(
        default=None, description="the CA that signed the broker's certificate (SSL, SASL_SSL)"
    )
    # Resolved from sasl_password_env at load time; never read from the file itself.
    sasl_password: SecretStr | None = Field(default=None, exclude=True)


class TopicSettings(_Strict):
    prefix: str = Field(
        default="driftline.",
        description="every topic's name starts with it: <prefix>predictions, <prefix>labels, ...",
    )
    partitions: int = Field(
        default=6,
        ge=1,
        description="partitions of topics driftline creates; fixed once a worker has state",
    )
    replication_factor: int = Field(default=1, ge=1, description="3 in production")

    def name(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    @property
    def predictions(self) -> str:
        return self.name("predictions")

    @property
    def labels(self) -> str:
        return self.name("labels")

    @property
    def alerts(self) -> str:
        return self.name("alerts")

    @property
    def retraining_requests(self) -> str:
        return self.name("retraining-requests")

    @property
    def dead_letter(self) -> str:
        return self.name("dead-letter")

    @property
    def performance_windows(self) -> str:
        return self.name("performance-windows")

    @property
    def feature_windows(self) -> str:
        return self.name("feature-windows")

    @property
    def profiles(self) -> str:
        return self.name("profiles")

    @property
    def retraining_samples(self) -> str:
        return self.name("retraining-samples")

    @property
    def retraining_status(self) -> str:
        return self.name("retraining-status")

    @property
    def deliveries(self) -> str:
        return self.name("deliveries")


class WorkerSettings(_Strict):
    app_id: str = Field(
        default="driftline",
        description="the consumer group, and the prefix of Faust's changelog topics",
    )
    # One record per window on <prefix>feature-windows: the history reports plot. A window
    # closes at the end of the batch that reaches a multiple of this count.
    history_events: int = Field(
        default=5_000,
        ge=100,
        description="predictions per feature-window record (detector shares and data-quality "
        "flags over time)",
    )
    profiles_from_kafka: bool = Field(
        default=True,
        description="also read reference profiles from the compacted profiles topic (one per "
        "model version), at start and while running: a published profile takes effect "
        "without a restart",
    )
    max_message_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="larger messages are dead-lettered (reason oversize)",
    )
    max_batch_events: int = Field(
        default=20_000,
        ge=1,
        description="a batch message with more events is dead-lettered (reason oversize)",
    )
    # Messages taken from the stream at once and run through the detectors together: this
    # is what makes single-event messages affordable. A take also ends at micro_batch_bytes
    # of message values, so large messages do not make it huge (docs/tuning.md).
    micro_batch_messages: int = Field(
        default=1000, ge=1, description="messages run through the detectors together (a take)"
    )
    micro_batch_bytes: int = Field(
        default=40 * 1024 * 1024,
        ge=1,
        description="a take also ends at this many bytes of message values",
    )
    # How long a take waits for more messages: longer batches more single events per take,
    # at the cost of latency (docs/tuning.md).
    micro_batch_linger_ms: float = Field(
        default=100.0, ge=0, description="how long a take waits for more messages"
    )
    # Bounds the decoded rows held and one detector call's temporaries (8 CUSUM rows x events;
    # KSWIN runs in pieces). Each call has a fixed cost per feature (checks, metrics, state),
    # while larger calls leave the caches (docs/tuning.md).
    merge_events: int = Field(default=16_384, ge=1, description="events per detector call")
    metrics_port: int = Field(default=9464, ge=0, le=65535, description="0 disables")
    # Loopback unless an operator opens it (0.0.0.0 in a container that Prometheus scrapes).
    metrics_host: str = Field(default="127.0.0.1", description="address /metrics listens on")
    # exactly_once: Faust writes the state changelog and commits the consumed offsets in one
    # Kafka transaction. With at_least_once Faust may commit offsets before the changelog
    # writes of those messages are on the broker, and a kill -9 in between loses them. It
    # costs some throughput (docs/tuning.md).
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="exactly_once",
        description="exactly_once: state and consumed offsets committed in one transaction",
    )
    # How often consumed offsets are committed (Faust's broker_commit_interval). Longer means
    # more messages read again after a crash; state and deliveries stay exact either way.
    commit_interval_seconds: float = Field(
        default=2.8, gt=0, description="how often consumed offsets are committed"
    )
    # A worker that died without leaving its group holds its partitions this long, unless it
    # comes back under the same instance_id (below), which takes them back at once.
    session_timeout_seconds: float = Field(
        default=60.0,
        ge=6.0,
        description="a worker that died without leaving holds its partitions this long",
    )
    # Kafka static membership: a worker restarted with the same id (after a crash, a deploy)
    # gets its partitions back without waiting for the session timeout. Each worker process
    # needs its own; by default the host name and the absolute data_dir. "" turns it off
    # (a static member that stops holds its partitions for the session timeout).
    instance_id: str | None = Field(default=None, description="group.instance.id")
    data_dir: str = Field(
        default=".driftline/worker", description="worker files; relative to where it runs"
    )

    def group_instance_id(self) -> str | None:
        if self.instance_id is not None:
            return self.instance_id or None
        return f"{socket.gethostname()}:{Path(self.data_dir).resolve()}"


class AlertSettings(_Strict):
    """The alert policy between detector verdicts and the alerts topic (see alerting.py).

    Windows are counted in a model's events, so the worker and ``driftline replay`` make the
    same alerts however the stream was cut into batches; cooldowns are in event time.
    """

    window_events: int = Field(default=500, ge=1, description="events per policy window")
    fire_after_windows: int = Field(
        default=1, ge=1, description="consecutive windows with a signal before an alert fires"
    )
    resolve_after_windows: int = Field(
        default=4, ge=1, description="consecutive clean windows before an alert resolves"
    )
    # Features of one model rarely cross their thresholds on the same event; waiting this
    # many events after the first lets the others join one grouped alert.
    group_wait_events: int = Field(
        default=100,
        ge=0,
        description="events after the first signal during which other features join the alert",
    )
    cooldown_seconds: float = Field(
        default=600.0, ge=0, description="event time after a resolve before the next firing"
    )
    # A feature's excess is max(peak statistic / threshold, signals in the episode so far):
    # detectors restart after a signal, so repeated signals are how a big shift shows.
    critical_ratio: float = Field(
        default=2.0,
        ge=1.0,
        description="a top feature's excess (statistic / threshold, or signals) that makes an "
        "alert critical",
    )
    top_features: int = Field(default=10, ge=1, description="features listed in one alert")


class RetrainingPolicy(_Strict):
    """When sustained trouble on a model becomes a RetrainingRequest (in event time)."""

    enabled: bool = Field(default=True, description="ask for retraining at all")
    after_critical_seconds: float = Field(
        default=900.0, ge=0, description="a critical alert held this long asks for retraining"
    )
    cooldown_seconds: float = Field(
        default=6 * 3600.0, ge=0, description="event time after a request before the next one"
    )
    max_per_day: int = Field(default=2, ge=0, description="requests per UTC day at most")
    sample_events: int = Field(
        default=5_000,
        ge=0,
        description="recent events (with their labels) sampled per model and handed to the "
        "retraining job with each request; 0 turns sampling off",
    )
    sample_every: int = Field(
        default=10,
        ge=1,
        description="about one event in this many is sampled: lower it when a request comes "
        "few events after its drift began, so the sample holds enough of them to train on",
    )
    endpoint: str | None = Field(
        default=None, description="a webhook receiver that is also POSTed each request"
    )


class VersionSettings(_Strict):
    """How a model's versions are told apart: each live version is monitored on its own."""

    max_live: int = Field(
        default=3,
        ge=1,
        description="versions of the model monitored at once; events of others are only counted",
    )
    retire_after_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="a version without events this long (event time) while the model's other "
        "versions have them is retired: its open episodes resolve and its state is dropped",
    )


class ReceiverSettings(_Strict):
    type: Literal["slack", "webhook"] = Field(
        description="slack: an incoming webhook (Block Kit); webhook: the record as JSON"
    )
    url_env: str = Field(description="environment variable holding the URL (a secret)")
    # Resolved from url_env at load time; never read from the file itself.
    url: SecretStr | None = Field(default=None, exclude=True)


class RouteSettings(_Strict):
    receivers: list[str] = Field(
        min_length=1,
        description="receivers (names under notifications.receivers) the matching alerts go to",
    )
    models: list[str] | None = Field(default=None, description="all models when absent")
    severities: list[Literal["info", "warning", "critical"]] | None = Field(
        default=None, description="all severities when absent"
    )
    kinds: list[Literal["drift", "data_quality", "performance", "comparison"]] | None = Field(
        default=None, description="all kinds when absent"
    )


class DeliverySettings(_Strict):
    timeout_seconds: float = Field(default=10.0, gt=0, description="one HTTP attempt")
    initial_backoff_seconds: float = Field(
        default=1.0, gt=0, description="the first retry waits about this long (jittered, doubling)"
    )
    max_backoff_seconds: float = Field(
        default=60.0, gt=0, description="the longest wait between retries"
    )
    # A Slack outage shorter than this loses nothing; after it the alert is parked on the
    # dead-letter topic (reason undeliverable) so that the receiver's lane goes on.
    give_up_after_seconds: float = Field(
        default=900.0,
        gt=0,
        description="after this long failing, the alert is parked on the dead-letter topic",
    )
    # A Retry-After past the give-up time is obeyed once, for a last attempt, up to this long;
    # a longer one parks the record at once.
    max_retry_after_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="a receiver's Retry-After past the give-up time is obeyed once up to this long",
    )


class NotificationSettings(_Strict):
    receivers: dict[str, ReceiverSettings] = Field(
        default_factory=dict, description="name -> receiver"
    )
    routes: list[RouteSettings] = Field(
        default_factory=list, description="each matching route adds its receivers"
    )
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings, description="retries and timeouts of every receiver"
    )
    grafana_url: str | None = Field(default=None, description="base URL for dashboard links")
    status_url: str | None = Field(
        default=None,
        description="base URL of driftline status: alerts link to their model's page there "
        "when no grafana_url is set",
    )


class DetectorOverride(_Strict):
    detector: str | None = Field(
        default=None,
        description="a detector's name (default: cusum for numeric, categorical_cusum for "
        "categorical)",
    )
    false_alarm_budget: float | None = Field(
        default=None,
        gt=1,
        description="this feature's own budget instead of its share of the model's",
    )
    params: dict[str, float] = Field(default_factory=dict, description="the detector's parameters")


QualityCheck = Literal[
    "missing",
    "type_error",
    "out_of_range",
    "unseen_category",
    "constant",
    "unexpected_field",
    "model_version",
]


class DataQualitySettings(_Strict):
    """Data-quality checks of one model's events (see driftline/monitoring/quality.py).

    Each check watches a rate against the reference profile with a share of the model's
    false-alarm budget, like the drift detectors.
    """

    enabled: bool = Field(default=True, description="run the checks at all")
    # The smallest rise of a rate (missing, out of range, unseen, wrong type) worth an alert:
    # 0.05 catches a missing rate going from 1% to 6%, and ignores wobbles of a point or two.
    tolerance: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="the smallest rise of a rate (missing, out of range, ...) worth an alert",
    )
    # Values this share of the reference range beyond its min or max count as out of range:
    # wide, so that a widened tail of the same distribution is drift, not a broken pipeline.
    range_margin: float = Field(
        default=1.0,
        ge=0,
        description="share of the reference range beyond its min or max still in range "
        "(below zero is out of range for a feature whose reference had no negative values)",
    )
    # At least this many equal values in a row make a feature "constant" (more when the
    # reference repeats values often). Features that are legitimately constant for a while
    # (an hour of day on time-ordered traffic) should skip the check.
    constant_min_run: int = Field(
        default=100,
        ge=2,
        description="equal values in a row that make a feature constant (at least)",
    )
    model_version: bool = Field(
        default=True, description="report a model version that has no reference profile of its own"
    )
    ignore_fields: list[str] = Field(
        default_factory=list, description="undeclared fields the events are known to carry"
    )
    skip: dict[str, list[QualityCheck]] = Field(
        default_factory=dict, description="feature -> checks not to run on it"
    )


ErrorDetector = Literal["cusum", "ddm", "eddm", "hddm_a", "hddm_w", "adwin"]
PerformanceMetric = Literal[
    "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "mape"
]


class ComparisonSettings(_Strict):
    """Versions on the same traffic (shadow predictions with the same prediction_id) compared
    on the same labels: the first version to arrive is the champion."""

    window_labels: int | None = Field(
        default=None,
        ge=20,
        description="labels both versions share per comparison window (default: the "
        "performance window)",
    )
    margin: float = Field(
        default=0.0,
        ge=0,
        description="how much better the challenger must be: accuracy points (classifiers), "
        "relative MAE reduction (regression)",
    )
    confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1,
        description="of the intervals, and of the decision over every window so far",
    )


class PerformanceSettings(_Strict):
    """Labels joined to predictions, windowed metrics against the baseline, estimates."""

    # Off by default: it keeps every prediction (id, prediction, scores, time) until its
    # label comes or the TTL passes, so memory grows with rate x TTL (bench/throughput.py
    # --restore measures a waiting prediction's cost; shorten the TTL or sample).
    enabled: bool = Field(
        default=False,
        description="join labels to predictions (keeps each prediction until its label or the TTL)",
    )
    label_ttl_seconds: float = Field(
        default=86_400.0, gt=0, description="how long a prediction waits for its label"
    )
    window_labels: int = Field(default=500, ge=20, description="labelled events per window")
    # Time windows (by the labels' event time): the metrics of each, for the whole model, per
    # model version and per value of each segment named here (the events' ``segment`` field).
    window_seconds: float = Field(
        default=3_600.0,
        gt=0,
        description="time windows by label time, per model version and segment value",
    )
    segments: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="names in the events' segment field to slice metrics by",
    )
    metric: PerformanceMetric | None = Field(
        default=None, description="the metric alerts watch (accuracy, or mae for regression)"
    )
    # The bar a window must pass comes from the metric's spread over windows of the reference
    # data and the false-alarm budget; the tolerance is the smallest change worth an alert on
    # top of that: an absolute drop for scores (0.02: accuracy 0.91 -> 0.89), a relative rise
    # for errors (0.05: MAE up 5%).
    tolerance: float = Field(
        default=0.0,
        ge=0,
        description="the smallest drop (scores, absolute) or rise (errors, relative) worth an "
        "alert, on top of the statistical bar",
    )
    # The sequential test on the stream of errors (0/1 per labelled event) that warns before
    # a window completes: "cusum" spends the model's false-alarm budget (a Bernoulli CUSUM
    # from the baseline error rate to it plus the tolerance); river's detectors use their own
    # defaults, not the budget. A regression's: "cusum" on the share of errors larger than
    # the reference's 90th percentile, or "adwin" on the absolute errors.
    error_detector: ErrorDetector = Field(
        default="cusum",
        description="the sequential test on the errors (cusum spends the budget; the others "
        "are river's)",
    )
    positive_class: str = Field(default="1", description="binary: the class scores are for")
    estimate: bool = Field(
        default=True,
        description="estimate performance before labels: accuracy and ROC AUC of a classifier "
        "with scores (CBPE, binary or multiclass), MAE and RMSE of a regression (direct loss "
        "estimation)",
    )
    # The distributions of the predictions and of the labels against the reference profile's,
    # through the same detectors as the features (subjects "_prediction" and "_label").
    prediction_drift: bool = Field(
        default=True, description="watch the predictions' distribution like a feature (_prediction)"
    )
    label_drift: bool = Field(
        default=True, description="watch the labels' distribution like a feature (_label)"
    )
    comparison: ComparisonSettings = Field(
        default_factory=ComparisonSettings,
        description="champion and challenger on the same labels",
    )


class JointDriftSettings(_Strict):
    """Changes in how numeric features move together while each keeps its own distribution
    (detectors/joint.py): every pair of the watched features, in one check of the budget."""

    enabled: bool = Field(
        default=True, description="watch the numeric features' pairwise correlations"
    )
    # The cost per event grows with the square of the features watched: k (k - 1) / 2 pairs.
    max_features: int = Field(
        default=20,
        ge=2,
        le=50,
        description="the first this many numeric features (in config order) are watched",
    )
    shift: float = Field(
        default=0.3,
        gt=0,
        lt=1,
        description="the change in a pair's correlation watched for (beyond the reference's "
        "own error)",
    )


class SeasonalitySettings(_Strict):
    """Numeric features compared with their own time slot of the reference
    (detectors/seasonal.py); ``driftline baseline`` needs the data's timestamps."""

    period: Literal["daily", "weekly"] = Field(description="the cycle the features follow")
    slots: int | None = Field(
        default=None,
        ge=2,
        le=168,
        description="time slots per period, each with its own quantiles (default: 24 a day, "
        "7 a week); every slot needs 30 reference rows",
    )
    features: list[str] | None = Field(
        default=None, description="the features on the cycle (default: every numeric feature)"
    )

    def slot_count(self) -> int:
        return self.slots or (24 if self.period == "daily" else 7)


class ModelConfig(_Strict):
    task: Task = Field(description="what the model predicts")
    features: dict[str, FeatureType] = Field(
        description="feature name -> numeric or categorical (the ones to monitor)"
    )
    reference: str | None = Field(default=None, description="reference profile JSON path")
    false_alarm_budget: float = Field(
        default=1_000_000, gt=1, description="expected events between false alarms, whole model"
    )
    detectors: dict[str, DetectorOverride] = Field(
        default_factory=dict,
        description="feature -> detector settings, where the default does not suit",
    )
    retraining: RetrainingPolicy = Field(
        default_factory=RetrainingPolicy, description="when trouble becomes a retraining request"
    )
    versions: VersionSettings = Field(
        default_factory=VersionSettings, description="each live version monitored on its own"
    )
    data_quality: DataQualitySettings = Field(
        default_factory=DataQualitySettings,
        description="checks for broken pipelines, apart from drift",
    )
    performance: PerformanceSettings = Field(
        default_factory=PerformanceSettings, description="labels, metrics and estimates"
    )
    joint_drift: JointDriftSettings = Field(
        default_factory=JointDriftSettings,
        description="how the numeric features move together",
    )
    seasonality: SeasonalitySettings | None = Field(
        default=None, description="daily or weekly cycles: compare each value with its time slot"
    )

    @model_validator(mode="after")
    def _seasonal_features_are_numeric(self) -> ModelConfig:
        chosen = self.seasonality.features if self.seasonality else None
        wrong = [f for f in chosen or [] if self.features.get(f) != "numeric"]
        if wrong:
            raise ValueError(
                f"seasonality.features: {', '.join(wrong)} not among the numeric features"
            )
        return self

    def seasonal_features(self) -> list[str]:
        if self.seasonality is None:
            return []
        numeric = [f for f, kind in self.features.items() if kind == "numeric"]
        chosen = self.seasonality.features
        return numeric if chosen is None else [f for f in numeric if f in chosen]

    def joint_features(self) -> list[str]:
        """The numeric features the joint drift detector watches (none if it is off)."""
        if not self.joint_drift.enabled:
            return []
        numeric = [f for f, kind in self.features.items() if kind == "numeric"]
        return numeric[: self.joint_drift.max_features]

    @field_validator("features")
    @classmethod
    def _some_features(cls, value: dict[str, FeatureType]) -> dict[str, FeatureType]:
        if not value:
            raise ValueError("declare at least one feature")
        return value


class Config(_Strict):
    kafka: KafkaSettings = Field(
        default_factory=KafkaSettings, description="the broker and how to connect"
    )
    topics: TopicSettings = Field(
        default_factory=TopicSettings, description="the topics' names and partitions"
    )
    worker: WorkerSettings = Field(default_factory=WorkerSettings, description="the stream worker")
    alerts: AlertSettings = Field(
        default_factory=AlertSettings, description="the alert policy, for every model"
    )
    notifications: NotificationSettings = Field(
        default_factory=NotificationSettings, description="where alerts go"
    )
    models: dict[str, ModelConfig] = Field(
        description="model id (as in the events) -> how to monitor it"
    )
    source: str = Field(default="<memory>", exclude=True)

    def secrets(self) -> list[str]:
        """The secret values the config resolved from the environment (to keep out of logs)."""
        values = [r.url for r in self.notifications.receivers.values() if r.url is not None]
        if self.kafka.sasl_password is not None:
            values.append(self.kafka.sasl_password)
        return [v.get_secret_value() for v in values]

    def reference_path(self, model_id: str) -> Path | None:
        ref = self.models[model_id].reference
        if ref is None:
            return None
        path = Path(ref)
        if not path.is_absolute() and self.source != "<memory>":
            path = Path(self.source).parent / path
        return path


def load_config(
    path: str | os.PathLike[str], env: dict[str, str] | None = None, delivers: bool = True
) -> Config:
    """Read, validate and resolve a config file; raise ``ConfigError`` naming file and key.

    ``delivers``: whether the command posts to the notification receivers; only then are
    their URLs read from the environment (and required there)."""
    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    return config_from_dict(raw, source=source, env=env, delivers=delivers)


def config_from_dict(
    raw: Any, source: str = "<memory>", env: dict[str, str] | None = None, delivers: bool = True
) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {_kind(raw)}")
    env = dict(os.environ) if env is None else env
    _refuse_inline_secrets(raw, source)
    try:
        config = Config.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise ConfigError(_describe(source, exc)) from None
    kafka = config.kafka
    if kafka.sasl_password_env:
        secret = env.get(kafka.sasl_password_env)
        if secret is None:
            raise ConfigError(
                f"{source}: kafka.sasl_password_env: environment variable "
                f"{kafka.sasl_password_env} is not set"
            )
        kafka = kafka.model_copy(update={"sasl_password": SecretStr(secret)})
        config = config.model_copy(update={"kafka": kafka})
    config = _resolve_receivers(config, source, env, delivers)
    for model_id, model in config.models.items():
        endpoint = model.retraining.endpoint
        if endpoint is not None and endpoint not in config.notifications.receivers:
            raise ConfigError(
                f"{source}: models.{model_id}.retraining.endpoint: {endpoint!r} is not a "
                f"receiver under notifications.receivers"
            )
        named = [("detectors", f) for f in model.detectors]
        named += [("data_quality.skip", f) for f in model.data_quality.skip]
        for where, feature in named:
            if feature not in model.features:
                raise ConfigError(
                    f"{source}: models.{model_id}.{where}.{feature}: not a declared feature "
                    f"(declared: {', '.join(model.features)})"
                )
    return config


def _refuse_inline_secrets(raw: dict[str, Any], source: str) -> None:
    """Secrets come from the environment only: one written in the file is an error."""
    found = []
    kafka = raw.get("kafka")
    if isinstance(kafka, dict) and "sasl_password" in kafka:
        found.append(("kafka.sasl_password", "kafka.sasl_password_env"))
    notifications = raw.get("notifications")
    receivers = notifications.get("receivers") if isinstance(notifications, dict) else None
    for name, receiver in (receivers or {}).items() if isinstance(receivers, dict) else ():
        if isinstance(receiver, dict) and "url" in receiver:
            where = f"notifications.receivers.{name}"
            found.append((f"{where}.url", f"{where}.url_env"))
    if found:
        key, use = found[0]
        raise ConfigError(
            f"{source}: {key}: secrets are not written in the config file; put the value in "
            f"an environment variable and name it in {use}"
        )


def _resolve_receivers(
    config: Config, source: str, env: dict[str, str], delivers: bool = True
) -> Config:
    """Read each receiver's URL from its environment variable (for commands that deliver);
    check routes point somewhere."""
    notifications = config.notifications
    receivers = {}
    for name, receiver in notifications.receivers.items():
        if not delivers:
            receivers[name] = receiver
            continue
        url = env.get(receiver.url_env)
        if not url:
            raise ConfigError(
                f"{source}: notifications.receivers.{name}.url_env: environment variable "
                f"{receiver.url_env} is not set"
            )
        if not url.startswith(("http://", "https://")):
            # The value is a secret: say what is wrong with it, never what it is.
            raise ConfigError(
                f"{source}: notifications.receivers.{name}.url_env: {receiver.url_env} does "
                "not hold an http(s) URL"
            )
        receivers[name] = receiver.model_copy(update={"url": SecretStr(url)})
    for i, route in enumerate(notifications.routes):
        for name in route.receivers:
            if name not in receivers:
                raise ConfigError(
                    f"{source}: notifications.routes.{i}.receivers: {name!r} is not defined "
                    f"under notifications.receivers (defined: {', '.join(receivers) or 'none'})"
                )
        for model_id in route.models or []:
            if model_id not in config.models:
                raise ConfigError(
                    f"{source}: notifications.routes.{i}.models: {model_id!r} is not a "
                    "configured model"
                )
    notifications = notifications.model_copy(update={"receivers": receivers})
    return config.model_copy(update={"notifications": notifications})


def _describe(source: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def _kind(value: object) -> str:
    return "nothing (empty file)" if value is None else type(value).__name__
