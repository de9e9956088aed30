"""``driftline status``: the fleet's live status page, read-only, fed from the topics every
worker writes (alerts, feature windows, performance windows), so one page covers any number
of workers.

A reader thread consumes the three topics from their beginning (no consumer group: it commits
nothing and moves no worker's partitions) and folds each record into ``report.fleet.Fleet``;
an HTTP server on loopback (by default) draws the pages from it on each request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from driftline.config import Config
from driftline.detectors.profile import ReferenceProfile
from driftline.events.records import (
    Alert,
    FeatureWindow,
    PerformanceWindow,
    performance_topic_record,
)
from driftline.monitoring import validation
from driftline.report.fleet import Fleet, render_fleet, render_model
from driftline.runtime.topics import GroupLag, kafka_client_options

log = logging.getLogger(__name__)

LAG_SECONDS = 5.0  # the workers' lag is asked of the broker at most this often


class StatusPage:
    """The fleet's state, kept up to date from Kafka, and its pages."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.fleet = Fleet(config)
        self.profiles: dict[str, ReferenceProfile | None] = validation.load_profiles(config)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.reader: threading.Thread | None = None  # reading the topics, once started
        self._lag: tuple[float, dict[str, int] | None] = (0.0, None)
        topics = config.topics
        self.readers: dict[str, Callable[[bytes], None]] = {
            topics.alerts: lambda v: self.fleet.add_alert(Alert.from_json(v)),
            topics.feature_windows: lambda v: self.fleet.add_feature_window(
                FeatureWindow.from_json(v)
            ),
            topics.performance_windows: self._performance_record,
            topics.profiles: self._profile_record,
        }
        # profiles published for new versions, by (model, version)
        self.published: dict[tuple[str, str], ReferenceProfile] = {}

    def _profile_record(self, value: bytes) -> None:
        if value:  # a tombstone withdraws nothing shown
            profile = ReferenceProfile.from_json(value)
            self.published[(profile.model_id, profile.model_version)] = profile

    def _performance_record(self, value: bytes) -> None:
        record = performance_topic_record(value)
        if isinstance(record, PerformanceWindow):
            self.fleet.add_performance_window(record)
        else:
            self.fleet.add_comparison_window(record)

    def read(self) -> None:
        """Consume the record topics until ``stopping`` is set (run in a thread)."""
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            **kafka_client_options(self.config.kafka),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",  # the worker writes in transactions
            # a reader creates nothing: the profiles topic must be compacted, as
            # ensure_topics makes it
            allow_auto_create_topics=False,
        )
        consumer.subscribe(list(self.readers))
        try:
            while not self.stopping.is_set():
                batches = consumer.poll(timeout_ms=500)
                with self.lock:
                    for records in batches.values():
                        for record in records:
                            self._fold(record.topic, record.value)
        finally:
            consumer.close()

    def _fold(self, topic: str, value: bytes | None) -> None:
        try:
            self.readers[topic](value or b"")
        except (ValueError, TypeError, KeyError) as exc:  # another release's record, say
            log.warning("status: a record on %s it cannot read (%s)", topic, exc)

    def lag(self) -> dict[str, int] | None:
        """Messages on the inputs the workers have not processed yet (cached briefly)."""
        at, value = self._lag
        if time.monotonic() - at < LAG_SECONDS:
            return value
        try:
            probe = GroupLag(self.config.kafka, self.config.worker.app_id)
            try:
                value = probe.behind([self.config.topics.predictions, self.config.topics.labels])
            finally:
                probe.close()
        except Exception as exc:
            log.warning("status: consumer lag unknown (%s)", exc)
            value = None
        self._lag = (time.monotonic(), value)
        return value

    def page(self, path: str) -> tuple[int, str]:
        parts = urlsplit(path)
        if parts.path in ("", "/"):
            lag = self.lag()
            with self.lock:
                return HTTPStatus.OK, render_fleet(self.fleet, lag)
        if parts.path.startswith("/model/"):
            model_id = unquote(parts.path[len("/model/") :])
            alert = parse_qs(parts.query).get("alert", [None])[0]
            with self.lock:
                if model_id in self.fleet.models:
                    profile = self.profiles.get(model_id)
                    version = self.fleet.models[model_id].version
                    profile = self.published.get((model_id, version or ""), profile)
                    return HTTPStatus.OK, render_model(self.fleet, model_id, profile, alert)
        return HTTPStatus.NOT_FOUND, "<!DOCTYPE html><title>not found</title><p>not found</p>"


def serve(config: Config, host: str, port: int) -> tuple[ThreadingHTTPServer, StatusPage]:
    """Start the reader thread and the HTTP server (``port`` 0: any free one); the caller
    runs ``server.serve_forever()``."""
    status = StatusPage(config)
    status.reader = threading.Thread(target=status.read, name="status-reader", daemon=True)
    status.reader.start()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = status.page(self.path)
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("status: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    return server, status
