"""The retraining loop on the real broker: a drift held long enough asks for retraining with a
bounded sample of recent events and labels; ``driftline retrain`` runs a training command on
that sample, publishes the new version's profile and its status; ``succeeded`` closes the
episode that asked."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from driftline.config import load_config
from driftline.events.records import Alert, RetrainingRequest, RetrainingStatus
from driftline.runtime.retrainer import read_sample
from kafka import KafkaProducer
from tests.conftest import WorkerProcess, read_topic, scrape
from tests.streams import FEATURES, batch_message, classifier_events, write_classifier_profile
from tests.unit.cli.test_cli import cli

pytestmark = pytest.mark.kafka

SAMPLE = 400

# A stand-in for a training job: "trains" version 2 on the sample (here it keeps the sample's
# own predictions) and hands back the data its reference is built from.
TRAIN = """
import json, os, pathlib
rows = [json.loads(line) for line in open(os.environ["DRIFTLINE_SAMPLE"])]
out = pathlib.Path(os.environ["DRIFTLINE_OUTPUT"])
labelled = [r for r in rows if r["label"] is not None]
with open(out / "reference.jsonl", "w") as f:
    for r in labelled:
        row = {**r["features"], "prediction": r["prediction"], "label": r["label"]}
        f.write(json.dumps(row) + "\\n")
(out / "version").write_text("2")
print(f"trained on {len(labelled)} labelled events of {len(rows)}")
"""


def test_a_request_with_its_sample_is_retrained_and_its_status_closes_the_episode(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    profile = write_classifier_profile(tmp_path / "clf.json")
    model = {
        "task": "binary",
        "features": dict(FEATURES),
        "reference": str(profile),
        "performance": {"enabled": True},
        "retraining": {"after_critical_seconds": 60, "sample_events": SAMPLE},
    }
    worker = WorkerProcess(tmp_path, kafka_bootstrap, {"clf": model})
    rng = np.random.default_rng(3)
    stable = classifier_events(3_000, rng)
    moved = classifier_events(4_000, rng, start=3_000, x1_shift=2.0)
    predictions, labels = stable[0] + moved[0], stable[1] + moved[1]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    worker.start()
    try:
        # each slice's labels joined before the next slice's predictions: labels that keep
        # up (a sample at request time holds the labels known by then)
        for start in range(0, len(predictions), 500):
            part = slice(start, start + 500)
            producer.send(worker.topic("predictions"), key=b"clf",
                          value=batch_message("clf", predictions[part]))  # fmt: skip
            value = orjson.dumps({"model_id": "clf", "events": labels[part]})
            producer.send(worker.topic("labels"), key=b"clf", value=value)
            producer.flush()
            joined_by = time.monotonic() + 30
            while scrape(worker.metrics_port, "driftline_labels_total", 'outcome="joined"') < (
                start + 500
            ):
                assert time.monotonic() < joined_by, worker.log_tail()
                time.sleep(0.1)
        worker.wait_processed(len(predictions))
        (record,) = read_topic(
            kafka_bootstrap, worker.topic("retraining-requests"), min_messages=1,
            isolation_level="read_committed",
        )  # fmt: skip
        request = RetrainingRequest.from_json(record.value)
        config = load_config(worker.path)
        assert request.sample is not None
        # about one in ten of the ~3,400 events before the request, at most SAMPLE
        assert 100 < request.sample.events <= SAMPLE and request.sample.labelled > 0
        rows = read_sample(config, request.sample)
        assert len(rows) == request.sample.events
        assert sum(r["label"] is not None for r in rows) == request.sample.labelled
        # the example consumer, with the stand-in as its command
        script = tmp_path / "train.py"
        script.write_text(TRAIN)
        done = cli("retrain", "--config", str(worker.path), "--once",
                   "--command", f"{sys.executable} {script}",
                   "--work-dir", str(tmp_path / "retrain"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        statuses = [
            RetrainingStatus.from_json(m.value)
            for m in read_topic(kafka_bootstrap, worker.topic("retraining-status"), min_messages=3)
        ]
        assert [(s.status, s.new_version) for s in statuses] == [
            ("accepted", ""),
            ("running", ""),
            ("succeeded", "2"),
        ], [s.detail for s in statuses]
        assert {s.idempotency_key for s in statuses} == {request.idempotency_key}
        profiles = read_topic(kafka_bootstrap, worker.topic("profiles"), min_messages=1)
        assert [m.key for m in profiles] == [b"clf/2"]
        deadline = time.monotonic() + 30
        while True:
            alerts = [
                Alert.from_json(m.value)
                for m in read_topic(kafka_bootstrap, worker.topic("alerts"), wait=2)
            ]
            closed = [
                a for a in alerts if a.alert_id in request.alert_ids and a.status == "resolved"
            ]
            if closed or time.monotonic() > deadline:
                break
        assert closed, (worker.log_tail(), [a.message for a in alerts])
        assert f"retrained as version 2 (retraining request {request.idempotency_key})" in (
            closed[0].message
        )
    finally:
        producer.close()
        worker.stop()
