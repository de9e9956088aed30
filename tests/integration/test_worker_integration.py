"""The worker end to end on the real broker: drift alerts, and state kept across a restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from driftline.events.records import Alert
from driftline.runtime.state import POSITIONS
from kafka import KafkaProducer
from tests.conftest import WorkerProcess, read_topic
from tests.streams import batch_message, events, model_config, scope_of, write_profile

pytestmark = pytest.mark.kafka


def produce(
    bootstrap: str, topic: str, model_id: str, rows: list[dict], size: int = 500
) -> list[bytes]:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    values = []
    for start in range(0, len(rows), size):
        value = batch_message(model_id, rows[start : start + size])
        producer.send(topic, key=model_id.encode(), value=value)
        values.append(value)
    producer.flush()
    producer.close()
    return values


def comparable(alert: Alert) -> tuple:
    return (
        alert.alert_id,
        alert.status,
        alert.feature,
        alert.events_seen,
        round(alert.statistic, 9),  # batch cuts may change the last bits of a float sum
        round(alert.threshold, 9),
        alert.reference_version,
    )


def changelog_state(bootstrap: str, app_id: str) -> dict[str, bytes]:
    """The worker's state keys, from the last record per model on its changelog topic."""
    messages = read_topic(bootstrap, f"{app_id}-detector-state-changelog", wait=5)
    state: dict[str, bytes] = {}
    for m in messages:  # one record per model, holding all its keys (see ModelRecords)
        if m.key and orjson.loads(m.key).startswith(POSITIONS):
            continue  # an input partition's applied offset, not a model's
        record = orjson.loads(m.value)
        state.update({k: v.encode("latin-1") for k, v in record.items()})
    return state


def test_drift_in_one_feature_alerts_for_that_feature_only(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    profile = write_profile(tmp_path / "m1.json")
    worker = WorkerProcess(tmp_path, kafka_bootstrap, {"m1": model_config(profile)})
    rng = np.random.default_rng(1)
    stable = events(8_000, rng)
    drifted = events(3_000, rng, start=8_000, x1_shift=1.0)
    worker.start()
    try:
        sent = produce(kafka_bootstrap, worker.topic("predictions"), "m1", stable + drifted, 250)
        worker.wait_processed(11_000)
        alerts = [
            Alert.from_json(m.value)
            for m in read_topic(kafka_bootstrap, worker.topic("alerts"), min_messages=1)
        ]
    finally:
        worker.stop()
    firing = [a for a in alerts if a.status == "firing"]
    assert [a.feature for a in firing] == ["x1"], alerts
    alert = firing[0]
    assert alert.model_id == "m1" and alert.kind == "drift" and alert.detector == "cusum"
    # A 1 sd shift: CUSUM's yardstick is ln(1e6)/0.5 = 28 events; allow a wide margin.
    assert 8_000 < alert.window_start_event < 8_000 + 200
    # fired at the second crossing (critical), before the group wait (100) ends
    assert alert.window_start_event < alert.events_seen < alert.window_start_event + 100
    assert alert.severity == "critical" and alert.features[0].signals == 2
    assert alert.statistic >= alert.threshold > 0

    # driftline replay over the same messages says exactly what the worker said.
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"\n".join(sent) + b"\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftline",
            "replay",
            "--config",
            str(worker.path),
            "--events",
            str(events_file),
            "--out",
            str(tmp_path / "alerts.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    replayed = [
        Alert.from_json(line) for line in (tmp_path / "alerts.jsonl").read_bytes().splitlines()
    ]
    assert [comparable(a) for a in replayed] == [comparable(a) for a in alerts]
    assert "replayed 44 messages, 11000 events: 1 alerts fired" in out.stderr


def test_restart_keeps_detector_state(tmp_path: Path, kafka_bootstrap: str) -> None:
    profile = write_profile(tmp_path / "m1.json")
    worker = WorkerProcess(tmp_path, kafka_bootstrap, {"m1": model_config(profile)})
    rng = np.random.default_rng(2)
    first, second = events(5_000, rng), events(4_000, rng, start=5_000)
    worker.start()
    try:
        produce(kafka_bootstrap, worker.topic("predictions"), "m1", first)
        worker.wait_processed(5_000)
    finally:
        worker.stop()
    before = changelog_state(kafka_bootstrap, worker.app_id)
    assert before["m1/_model/events"] == b"5000"
    scope = scope_of(profile)  # version 1's state keys
    assert orjson.loads(before[f"{scope}/x1/cusum"])["n"] == 5_000

    worker.start()  # same app id: the table is restored from the changelog
    try:
        produce(kafka_bootstrap, worker.topic("predictions"), "m1", second)
        worker.wait_processed(4_000)  # this process's own counter starts at zero
    finally:
        worker.stop()
    after = changelog_state(kafka_bootstrap, worker.app_id)
    # Not reset to empty, nothing lost, nothing counted twice.
    assert after["m1/_model/events"] == b"9000"
    for feature, detector in [("x1", "cusum"), ("x2", "cusum"), ("color", "categorical_cusum")]:
        assert orjson.loads(after[f"{scope}/{feature}/{detector}"])["n"] == 9_000
