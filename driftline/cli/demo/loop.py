"""The demo's retraining loop: the request the drift makes, ``driftline retrain`` running the
demo's training job on its sample, and the new version served to the rest of the traffic.

The retraining pipeline here is the example consumer (``driftline/runtime/retrainer.py``) in a
thread, its command ``python -m driftline.cli.demo.train``. Once it has published the new
version's profile and ``succeeded``, the demo serves that version's model to the storm-time
traffic that follows (the ETA model's only: the late model keeps its version).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.cli.demo.pages import EventsFile
from driftline.cli.demo.scenario import LateLabels
from driftline.cli.demo.train import EtaModel
from driftline.config import Config
from driftline.events.records import RetrainingRequest, RetrainingStatus
from driftline.runtime.retrainer import Retrainer
from driftline.sdk.client import LabelLogger, PredictionLogger
from kafka import KafkaConsumer

TRAIN_COMMAND = [sys.executable, "-m", "driftline.cli.demo.train"]


@dataclass
class LoopLog:
    """The retraining requests and statuses on their topics, as a watcher read them."""

    requests: list[RetrainingRequest] = field(default_factory=list)
    statuses: list[RetrainingStatus] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finished(self, model_id: str) -> RetrainingStatus | None:
        """The model's first retraining that ended (``succeeded`` or ``failed``), if any."""
        with self.lock:
            ended = ("succeeded", "failed")
            done = [s for s in self.statuses if s.model_id == model_id and s.status in ended]
        return done[0] if done else None

    def request(self, key: str) -> RetrainingRequest | None:
        with self.lock:
            return next((r for r in self.requests if r.idempotency_key == key), None)


def committed_reader(bootstrap: str, *topics: str) -> KafkaConsumer:
    """A consumer of ``topics`` from their start, whose iteration ends after half a second
    without a message. The worker writes in transactions: it reads those committed, and past
    their markers, so that a position can reach a topic's end offset."""
    return KafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
        isolation_level="read_committed",
    )


def watch_loop(
    config: Config, log: LoopLog, say: Callable[[str], None], stop: threading.Event
) -> None:
    """Read the requests and statuses topics into ``log``, saying each as it comes."""
    topics = config.topics
    consumer = committed_reader(
        config.kafka.bootstrap_servers, topics.retraining_requests, topics.retraining_status
    )
    try:
        while not stop.is_set():
            for message in consumer:
                if message.topic == topics.retraining_requests:
                    request = RetrainingRequest.from_json(message.value)
                    with log.lock:
                        log.requests.append(request)
                    sample = request.sample
                    rows = f", a sample of {sample.events:,} events" if sample else ""
                    say(
                        f"  >> retraining request for {request.model_id} version "
                        f"{request.model_version} at event {request.events_seen:,}{rows}"
                    )
                else:
                    status = RetrainingStatus.from_json(message.value)
                    with log.lock:
                        log.statuses.append(status)
                    said = f" as version {status.new_version}" if status.new_version else ""
                    said += f" ({status.detail})" if status.detail else ""
                    say(f"  >> retraining of {status.model_id}: {status.status}{said}")
    finally:
        consumer.close()


def start_retrainer(config: Config, work_dir: Path, stop: threading.Event) -> threading.Thread:
    """``driftline retrain`` with the demo's training job, in a thread until ``stop``."""

    # the watcher says each step; the group's start-up chatter is not news here
    logging.getLogger("driftline.runtime.retrainer").setLevel(logging.WARNING)
    logging.getLogger("kafka.coordinator").setLevel(logging.ERROR)

    def run() -> None:
        retrainer = Retrainer(config, TRAIN_COMMAND, work_dir)
        try:
            retrainer.run(stop=stop.is_set)
        finally:
            retrainer.close()

    thread = threading.Thread(target=run, name="retrainer", daemon=True)
    thread.start()
    return thread


@dataclass
class Rollout:
    """The new version as the demo served it."""

    status: RetrainingStatus  # the retraining's ``succeeded``
    request: RetrainingRequest | None
    trained_on: int  # labelled rows of the sample the training job used
    first_event: int  # the model's events before the new version's traffic began
    events: int
    logger: PredictionLogger


def wait_for_new_version(
    log: LoopLog, model_id: str, work_dir: Path, timeout: float
) -> tuple[RetrainingStatus, EtaModel, int] | None:
    """The ``succeeded`` status of ``model_id``'s retraining, the model it trained and the rows
    it trained on; None if it failed, or did not end within ``timeout``."""
    deadline = time.monotonic() + timeout
    while (status := log.finished(model_id)) is None:
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)
    if status.status == "failed":
        return None
    output = work_dir / status.idempotency_key / "output"
    model = EtaModel.from_json((output / "model.json").read_text())
    with (output / "reference.jsonl").open() as reference:
        rows = sum(1 for _ in reference)
    return status, model, rows


def wait_for_profile(worker_log: Path, model_id: str, version: str, timeout: float) -> bool:
    """Whether the worker has read the new version's profile from the topic (its log says so
    at the take that picks it up), within ``timeout``."""
    said = f"of {model_id} version {version} now in use"
    deadline = time.monotonic() + timeout
    while said not in worker_log.read_text():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


class RolloutTraffic:
    """The ETA model's new version on the traffic that follows: its predictions, and the real
    times as late as the scenario's (``LateLabels``)."""

    def __init__(
        self,
        config: Config,
        model_id: str,
        version: str,
        model: EtaModel,
        record: EventsFile,
    ) -> None:
        options: dict[str, Any] = {
            "bootstrap_servers": config.kafka.bootstrap_servers,
            "batch_size": 500,
        }
        topics = config.topics
        self.model_id, self.version, self.model = model_id, version, model
        self.predictions = PredictionLogger(model_id, version, topic=topics.predictions, **options)
        self.labels = LabelLogger(model_id, topic=topics.labels, **options)
        self.record = record
        self.labels_to_come = LateLabels()

    def send(self, pid: str, features: dict, actual: float) -> None:
        now = time.time()
        eta = self.model.predict(features)
        self.predictions.log(pid, features, eta, timestamp=now)
        event = {"prediction_id": pid, "timestamp": now, "features": features, "prediction": eta}
        self.record.add(self.model_id, self.version, event)
        due = self.labels_to_come.add(pid, actual)
        if due is not None:
            self.labels.log(*due, timestamp=now)

    def close(self) -> None:
        self.predictions.close()
        self.labels.close()
