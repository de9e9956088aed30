"""Prometheus metrics of the worker, on an injectable registry.

Label values come only from the configuration (models, features, detectors) and from fixed
code lists (dead-letter reasons), never from message contents: a producer that sends random
model ids or feature names cannot grow the number of series. Unknown models are counted under
the single label value ``model="_unknown"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from driftline.config import Config
from driftline.events.codec import Reason

UNKNOWN_MODEL = "_unknown"
ALERT_KINDS = ("drift", "data_quality", "performance")
LABEL_OUTCOMES = ("joined", "waiting", "expired_label", "expired_prediction", "duplicate")
ALERT_STATUSES = ("firing", "update", "resolved")  # Alert.counted_as


class WorkerMetrics:
    def __init__(self, config: Config, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._models = set(config.models)
        self._features = {m: set(c.features) for m, c in config.models.items()}
        self._series: dict[tuple[Any, tuple[str, ...]], Any] = {}
        r = self.registry
        if registry is None:  # CPU, memory, open files of the worker (service health)
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        self._stream_metrics(r)
        self._detector_metrics(r)
        self._performance_metrics(r)
        self._delivery_metrics(r, list(config.notifications.receivers))
        self._series_from_the_start(config)

    def _stream_metrics(self, r: CollectorRegistry) -> None:
        """What the worker read and did with it: events, messages, dead letters, lag."""
        self.events = Counter(
            "driftline_events_processed", "Prediction events processed", ["model"], registry=r
        )
        self.batches = Counter(
            "driftline_batches_processed", "Kafka messages processed", ["model"], registry=r
        )
        self.dead_letters = Counter(
            "driftline_dead_letters",
            "Messages or rows sent to the dead-letter topic",
            ["model", "reason"],
            registry=r,
        )
        self.unmonitored = Counter(
            "driftline_unmonitored_events",
            "Prediction events of model versions beyond versions.max_live: counted, not monitored",
            ["model"],
            registry=r,
        )
        # versions come and go: set and removed as they do, not through the series cache
        self.live_versions = Gauge(
            "driftline_live_versions",
            "1 for each version of the model monitored now (at most versions.max_live); a "
            "retired version's series is removed",
            ["model", "version"],
            registry=r,
        )
        self.retraining_status = Counter(
            "driftline_retraining_status",
            "Retraining status records read, by status (accepted, running, succeeded, failed)",
            ["model", "status"],
            registry=r,
        )
        self.replayed = Counter(
            "driftline_replayed_messages_skipped",
            "Messages delivered again after a restart or rebalance, already applied",
            ["model"],
            registry=r,
        )
        self.type_errors = Counter(
            "driftline_feature_type_errors",
            "Feature values of the wrong type (kept as missing)",
            ["model", "feature"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "driftline_consumer_lag",
            "Messages on the partition not yet processed by this worker (end offset minus the "
            "next offset to process), per assigned partition of the predictions and labels "
            "topics",
            ["topic", "partition"],
            registry=r,
        )
        self.predictions = Counter(
            "driftline_predictions",
            "Predictions by bucket of the reference profile (its bins for a numeric prediction, "
            "its classes and _other for a class)",
            ["model", "bucket"],
            registry=r,
        )
        self.reference_prediction_share = Gauge(
            "driftline_reference_prediction_share",
            "Share of the reference profile's predictions in each bucket",
            ["model", "bucket"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "driftline_batch_processing_seconds",
            "Time to decode and run detectors on one message",
            ["model"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )

    def _detector_metrics(self, r: CollectorRegistry) -> None:
        """Detector statistics and thresholds, drifting features, alerts, data-quality checks."""
        self.statistic = Gauge(
            "driftline_detector_statistic",
            "Current detector statistic",
            ["model", "feature", "detector"],
            registry=r,
        )
        self.threshold = Gauge(
            "driftline_detector_threshold",
            "Detector threshold (drift past it)",
            ["model", "feature", "detector"],
            registry=r,
        )
        self.drifting = Gauge(
            "driftline_feature_drifting",
            "1 while the feature signalled drift within the alert policy's resolve windows",
            ["model", "feature"],
            registry=r,
        )
        self.alerts = Counter(
            "driftline_alerts",
            "Alert records published",
            ["model", "kind", "status"],
            registry=r,
        )
        self.quality_flagged = Counter(
            "driftline_data_quality_flagged_events",
            "Events a data-quality check flagged (missing, wrong type, out of range, unseen "
            "category, repeating a constant, undeclared field, other model version); feature "
            '"_schema" for the model-level checks',
            ["model", "feature", "check"],
            registry=r,
        )
        self.quality_failing = Gauge(
            "driftline_data_quality_failing",
            "1 while the check signalled within the alert policy's resolve windows",
            ["model", "feature", "check"],
            registry=r,
        )

    def _performance_metrics(self, r: CollectorRegistry) -> None:
        """The label join, label delay, realised and estimated performance, retraining requests."""
        self.labels = Counter(
            "driftline_labels",
            "Label events by what the join did with them (joined to their prediction, waiting "
            "for it, expired without one, duplicate), and predictions expired without a label",
            ["model", "outcome"],
            registry=r,
        )
        self.label_delay = Histogram(
            "driftline_label_delay_seconds",
            "Event time from a prediction to its label, for joined labels",
            ["model"],
            buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400),
            registry=r,
        )
        self.performance = Gauge(
            "driftline_performance",
            "A performance metric over the last complete window of labelled events",
            ["model", "metric"],
            registry=r,
        )
        self.performance_by_time = Gauge(
            "driftline_performance_by_time",
            "A performance metric over the last closed time window of labels "
            "(performance.window_seconds), for the model (slice all), per model version "
            "(version=...) and per value of each configured segment (<segment>=...); at most 8 "
            "versions and 20 values per segment have their own slice, the rest share _other",
            ["model", "metric", "slice"],
            registry=r,
        )
        self.performance_estimate = Gauge(
            "driftline_performance_estimate",
            "A performance metric estimated from scores (CBPE) over the last window of "
            "predictions, before their labels arrive",
            ["model", "metric"],
            registry=r,
        )
        self.performance_baseline = Gauge(
            "driftline_performance_baseline",
            "A performance metric on the reference data (the reference profile)",
            ["model", "metric"],
            registry=r,
        )
        self.retraining_requests = Counter(
            "driftline_retraining_requests",
            "RetrainingRequest records published",
            ["model", "kind"],
            registry=r,
        )

    def _delivery_metrics(self, r: CollectorRegistry, receivers: list[str]) -> None:
        """Deliveries to each receiver, and their HTTP attempts."""
        self.notifications = Counter(
            "driftline_notifications",
            "Alert and retraining records handed to a receiver, by final outcome "
            "(delivered, parked on the dead-letter topic, or skipped as already delivered)",
            ["receiver", "outcome"],
            registry=r,
        )
        self.notification_attempts = Counter(
            "driftline_notification_attempts",
            "HTTP attempts to deliver to a receiver, by result",
            ["receiver", "result"],
            registry=r,
        )
        for receiver in receivers:
            for outcome in ("delivered", "parked", "duplicate"):
                self.notifications.labels(receiver, outcome)

    def _series_from_the_start(self, config: Config) -> None:
        """Every bounded series created at start, so that dashboards are not empty."""
        for model in self._models:  # series exist from the start, so dashboards are not empty
            self.events.labels(model)
            self.batches.labels(model)
            self.replayed.labels(model)
            self.retraining_requests.labels(model, "drift")
            for reason in Reason.ALL:
                self.dead_letters.labels(model, reason)
            for kind in ALERT_KINDS:
                for status in ALERT_STATUSES:
                    self.alerts.labels(model, kind, status)
            for feature in self._features[model]:
                self.drifting.labels(model, feature)
            if config.models[model].performance.enabled:
                for outcome in LABEL_OUTCOMES:
                    self.labels.labels(model, outcome)
        for reason in Reason.ALL:
            self.dead_letters.labels(UNKNOWN_MODEL, reason)

    def series(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once: a batch updates a few hundred series,
        and ``labels()`` takes a lock and checks its arguments each time (a tenth of the
        pipeline's time at 250 checks per model). The label values are bounded as for
        ``labels()`` (declared models and features), so this map is too."""
        key = (metric, labels)
        child = self._series.get(key)
        if child is None:
            child = self._series[key] = metric.labels(*labels)
        return child

    def observe_label_delays(self, model_id: str, delays: np.ndarray) -> None:
        observe_many(self.label_delay.labels(model_id), delays)

    def model_label(self, model_id: str | None) -> str:
        return model_id if model_id in self._models else UNKNOWN_MODEL

    def feature_known(self, model_id: str, feature: str) -> bool:
        return feature in self._features.get(model_id, ())


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for each of ``values``, in one pass: a labelled histogram
    child's buckets and sum incremented once per batch instead of once per value.

    Uses prometheus-client's per-child fields (``_upper_bounds``, ``_buckets``, ``_sum``), as
    ``Histogram.observe`` does; tests/unit/observability/test_metrics.py checks both give the same
    samples.
    """
    if len(values) == 0:
        return
    # observe() puts a value in the first bucket whose upper bound is >= it
    index = np.searchsorted(np.asarray(histogram._upper_bounds), values, side="left")
    for bucket, count in enumerate(np.bincount(index, minlength=len(histogram._buckets))):
        if count:
            histogram._buckets[bucket].inc(int(count))
    histogram._sum.inc(float(values.sum()))


def scrape_total(
    port: int, name: str, labels: str | tuple[str, ...] = "", host: str = "127.0.0.1"
) -> float:
    """Sum of a metric's samples on a running worker's /metrics (0 when not reachable).

    ``name`` is a sample's full name (``driftline_alerts_total``). ``labels`` keeps only the
    samples whose line contains it, or each of them (e.g. ``('model="eta"', 'metric="mae"')``;
    the exposition orders labels by name). Used by the demo's progress line and by the tests
    and benchmarks that watch a worker.
    """
    wanted = (labels,) if isinstance(labels, str) else labels
    import http.client
    import urllib.parse
    import urllib.request

    # Only the one metric (prometheus-client's name[] filter): a full scrape costs the worker
    # far more CPU, and the benchmarks poll.
    only = urllib.parse.urlencode({"name[]": name.rstrip("{")})
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics?{only}", timeout=2) as resp:
            body = resp.read().decode()
    except (OSError, http.client.HTTPException):  # down, or exiting mid-answer
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(name) and all(w in line for w in wanted)
    )
