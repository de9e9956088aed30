"""The client SDK: what an inference service calls per prediction (and per label).

``log()`` never blocks the caller's request path: it appends to a bounded in-memory buffer and
returns. A background thread sends row batches (``batch_size`` events, or whatever arrived
within ``linger_ms``) through kafka-python. When the buffer is full (Kafka down for long), new
events are dropped and counted in ``stats.dropped`` rather than growing memory without bound.
``close()`` flushes what is buffered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kafka import KafkaProducer

log = logging.getLogger(__name__)


# Kafka's codecs; the worker reads every one. lz4 by default: JSON batches shrink several
# times for little CPU on either side.
CODECS = (None, "gzip", "snappy", "lz4", "zstd")
COMPRESSION = "lz4"


@dataclass
class LoggerStats:
    accepted: int = 0  # events taken into the buffer
    sent: int = 0  # events acknowledged by Kafka
    dropped: int = 0  # events refused because the buffer was full or the logger closed
    failed: int = 0  # events in batches Kafka did not acknowledge


class _BatchingLogger:
    """What both loggers share. Options (keywords, with their defaults in the signature):

    - ``topic``: the topic to send to; with a config whose ``topics.prefix`` is not the
      default, the prefix followed by ``predictions`` (or ``labels``).
    - ``bootstrap_servers``: the Kafka brokers, ``host:port`` (a comma-separated string or a
      list).
    - ``batch_size``: events per Kafka message at most.
    - ``linger_ms``: how long a partial batch waits for more events before it is sent.
    - ``max_buffered``: events held while Kafka is slow or down; beyond it ``log()`` drops
      the event, returns False and counts it in ``stats.dropped``.
    - ``compression``: the Kafka codec, one of None, "gzip", "snappy", "lz4", "zstd".
    - ``producer``: a ``kafka.KafkaProducer`` to send with instead of the logger's own.
    - any other keyword goes to ``kafka.KafkaProducer`` (security: pass
      ``**kafka_client_options(load_config(path).kafka)`` from ``driftline.runtime.topics``).

    ``stats`` counts events accepted, sent, dropped and failed (not acknowledged by Kafka).
    """

    def __init__(
        self,
        model_id: str,
        topic: str,
        bootstrap_servers: str | list[str] = "127.0.0.1:19092",
        batch_size: int = 500,
        linger_ms: float = 200.0,
        max_buffered: int = 100_000,
        compression: str | None = COMPRESSION,
        producer: KafkaProducer | None = None,
        **producer_options: Any,
    ) -> None:
        if compression not in CODECS:
            raise ValueError(f"compression: expected one of {CODECS}, got {compression!r}")
        self.model_id = model_id
        self.topic = topic
        self.batch_size = batch_size
        self.linger = linger_ms / 1000.0
        self.max_buffered = max_buffered
        self.stats = LoggerStats()
        self._key = model_id.encode()
        self._buffer: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._in_flight = 0
        self._producer = producer or KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            linger_ms=5,
            compression_type=compression,
            max_request_size=16 * 1024 * 1024,
            **producer_options,
        )
        self._thread = threading.Thread(
            target=self._run, name=f"driftline-logger-{model_id}", daemon=True
        )
        self._thread.start()

    def _envelope(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        return {"model_id": self.model_id, "events": events}

    def _put(self, event: dict[str, Any]) -> bool:
        with self._lock:
            if self._closed or len(self._buffer) >= self.max_buffered:
                self.stats.dropped += 1
                return False
            self._buffer.append(event)
            self.stats.accepted += 1
            size = len(self._buffer)
            if size == 1 or size >= self.batch_size:  # start the linger clock, or send now
                self._wake.notify()
        return True

    def _take(self) -> list[dict[str, Any]]:
        n = min(self.batch_size, len(self._buffer))
        batch = [self._buffer.popleft() for _ in range(n)]
        self._in_flight += len(batch)
        return batch

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._buffer and not self._closed:
                    self._wake.wait()
                if len(self._buffer) < self.batch_size and not self._closed:
                    # linger: give a partial batch a moment to fill up
                    self._wake.wait(self.linger)
                if self._closed and not self._buffer:
                    return
                batch = self._take()
            if batch:
                self._send(batch)

    def _send(self, batch: list[dict[str, Any]]) -> None:
        value = orjson.dumps(self._envelope(batch), option=orjson.OPT_SERIALIZE_NUMPY)
        n = len(batch)

        def ok(_: Any) -> None:
            with self._lock:
                self.stats.sent += n
                self._in_flight -= n

        def failed(exc: BaseException) -> None:
            log.warning("driftline: %d events not delivered to %s: %s", n, self.topic, exc)
            with self._lock:
                self.stats.failed += n
                self._in_flight -= n

        try:
            self._producer.send(self.topic, key=self._key, value=value).add_callback(
                ok
            ).add_errback(failed)
        except Exception as exc:  # buffer full or broker gone: count, never raise to caller
            failed(exc)

    def flush(self, timeout: float = 30.0) -> bool:
        """Send everything buffered; True when all of it was acknowledged or failed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._buffer:
                    break
                self._wake.notify()
            time.sleep(0.01)
        self._producer.flush(timeout=max(deadline - time.monotonic(), 0.1))
        with self._lock:
            return not self._buffer and self._in_flight == 0

    def close(self, timeout: float = 30.0) -> None:
        """Flush, stop the sender thread and close the producer."""
        self.flush(timeout)
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout)
        self._producer.close(timeout=timeout)

    def __enter__(self) -> _BatchingLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PredictionLogger(_BatchingLogger):
    """Log predictions of one model to ``driftline.predictions``.

    ``model_version`` goes on every message; ``columnar`` sends each batch as columns (the
    worker decodes them fastest), False as a list of events. The other options are the
    shared ones above. ``log()`` takes the ``prediction_id`` (its label will name it), the
    features (name -> number, string, boolean or None for missing), the prediction, and
    optionally the timestamp (epoch seconds, default now), ``scores`` (class -> probability)
    and ``segment`` (name -> value to slice performance by).

    >>> # logger = PredictionLogger("eta", model_version="7", bootstrap_servers="broker:9092")
    >>> # logger.log("req-123", {"distance_km": 3.2, "city": "north"}, prediction=24.5)
    """

    def __init__(
        self,
        model_id: str,
        model_version: str,
        topic: str = "driftline.predictions",
        columnar: bool = True,
        **options: Any,
    ) -> None:
        self.model_version = model_version
        self.columnar = columnar
        super().__init__(model_id, topic, **options)

    def _envelope(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        head = {"model_id": self.model_id, "model_version": self.model_version}
        if not self.columnar:
            return {**head, "events": events}
        # Columnar: the worker turns each feature's list into an array in one numpy call.
        # Built here, on the sender thread, not on the caller's request path.
        names: dict[str, None] = {}
        for event in events:
            names.update(dict.fromkeys(event["features"]))
        columns: dict[str, Any] = {
            key: [e[key] for e in events] for key in ("prediction_id", "timestamp", "prediction")
        }
        columns["features"] = {n: [e["features"].get(n) for e in events] for n in names}
        for key in ("scores", "segment"):
            if any(key in e for e in events):
                columns[key] = [e.get(key) for e in events]
        return {**head, "columns": columns}

    def log(
        self,
        prediction_id: str,
        features: Mapping[str, Any],
        prediction: Any,
        timestamp: float | None = None,
        scores: Mapping[str, float] | None = None,
        segment: Mapping[str, str] | None = None,
    ) -> bool:
        """Queue one prediction; False if it had to be dropped (buffer full or closed)."""
        event: dict[str, Any] = {
            "prediction_id": prediction_id,
            "timestamp": time.time() if timestamp is None else timestamp,
            "features": features,
            "prediction": prediction,
        }
        if scores is not None:
            event["scores"] = scores
        if segment is not None:
            event["segment"] = segment
        return self._put(event)


class LabelLogger(_BatchingLogger):
    """Log ground-truth labels of one model to ``driftline.labels``.

    ``log()`` takes the ``prediction_id`` of the prediction the label is the truth for, the
    label (a number or a class), and optionally the timestamp (epoch seconds, default now).
    """

    def __init__(self, model_id: str, topic: str = "driftline.labels", **options: Any) -> None:
        super().__init__(model_id, topic, **options)

    def log(self, prediction_id: str, label: Any, timestamp: float | None = None) -> bool:
        """Queue one label; False if it had to be dropped (buffer full or closed)."""
        event = {
            "prediction_id": prediction_id,
            "timestamp": time.time() if timestamp is None else timestamp,
            "label": label,
        }
        return self._put(event)
