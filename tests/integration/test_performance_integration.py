"""Performance on the real broker: labels joined to predictions across topics and restarts.

A binary classifier's predictions go to the predictions topic, their labels to the labels
topic with random delays (in bursts), some never; the true accuracy drops at a known point
(the concept flips for a third of the events). The worker fires one performance alert after
the drop and none before. A worker killed with SIGKILL between a prediction and its label
still joins the label after its restart, and another worker of the group joins it after the
partition moved there: the waiting prediction came back from the ``label-join`` changelog.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from driftline.events.records import Alert, PerformanceWindow
from kafka import KafkaProducer
from tests.conftest import WorkerProcess, read_topic, scrape
from tests.streams import FEATURES, batch_message, classifier_events, write_classifier_profile
from tests.unit.monitoring.test_performance import T0, drifting_stream

pytestmark = pytest.mark.kafka


def worker_for(tmp: Path, bootstrap: str) -> WorkerProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    profile = write_classifier_profile(tmp / "clf.json")
    model = {
        "task": "binary",
        "features": dict(FEATURES),
        "reference": str(profile),
        "performance": {"enabled": True, "window_labels": 500},
    }
    # a killed worker's partitions come back after the session timeout: keep it short
    return WorkerProcess(tmp, bootstrap, {"clf": model}, session_timeout_seconds=6)


def labels_message(rows: list[dict]) -> bytes:
    return orjson.dumps({"model_id": "clf", "events": rows})


OUTCOMES = ("joined", "waiting", "expired_label", "expired_prediction", "duplicate")


def joined(worker: WorkerProcess) -> float:
    return scrape(worker.metrics_port, "driftline_labels_total", 'outcome="joined"')


def wait_joined(worker: WorkerProcess, n: int, timeout: float = 90) -> dict[str, float]:
    """Wait until ``n`` labels are joined; the label outcomes then (all of them, and what the
    worker was doing, in the message if it never gets there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if joined(worker) >= n:
            break
        time.sleep(0.25)
    port = worker.metrics_port
    outcomes = {o: scrape(port, "driftline_labels_total", f'outcome="{o}"') for o in OUTCOMES}
    if outcomes["joined"] < n:
        lag = scrape(port, "driftline_consumer_lag", worker.topic("labels"))
        replayed = scrape(port, "driftline_replayed_messages_skipped_total")
        raise AssertionError(
            f"joined {outcomes} of {n} (labels lag {lag}, replayed {replayed}): "
            f"{worker.log_tail(150)}"
        )
    return outcomes


def test_a_performance_drop_fires_once_after_it_on_the_broker(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    drop_at = 6_000
    stream = drifting_stream(1, drop_at, 12_000)  # (arrival time, "p" or "l", event), in order
    worker = worker_for(tmp_path, kafka_bootstrap)
    worker.start()
    try:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        # a broken label message and a label without its prediction id: dead letters
        for value in (b"\x00 not json", b'{"model_id": "clf", "events": [{"label": 1}]}'):
            producer.send(worker.topic("labels"), key=b"clf", value=value)
        labels_sent = 0
        pending: list[dict] = []
        kind = ""

        def flush() -> None:
            if not pending:
                return
            topic, value = (
                ("predictions", batch_message("clf", pending))
                if kind == "p"
                else ("labels", labels_message(pending))
            )
            producer.send(worker.topic(topic), key=b"clf", value=value)
            pending.clear()

        for _, topic, event in stream:
            if topic != kind or len(pending) >= 250:
                flush()
                kind = topic
            pending.append(event)
            labels_sent += topic == "l"
        flush()
        producer.flush()
        producer.close()
        worker.wait_processed(12_000)
        wait_joined(worker, labels_sent)
        made = int(scrape(worker.metrics_port, "driftline_alerts_total"))
        alerts = [
            Alert.from_json(m.value)
            for m in read_topic(kafka_bootstrap, worker.topic("alerts"), min_messages=made)
        ]
        dead = read_topic(kafka_bootstrap, worker.topic("dead-letter"), min_messages=2)
        # a record per closed window: realised per 500 labels, estimated per 500 predictions
        closed = labels_sent // 500 + 12_000 // 500
        windows = [
            PerformanceWindow.from_json(m.value)
            for m in read_topic(
                kafka_bootstrap, worker.topic("performance-windows"), min_messages=closed
            )
        ]
    finally:
        worker.stop()
    reasons = sorted(dict(m.headers)["reason"].decode() for m in dead)
    assert len(dead) == 2 and reasons == ["schema", "undecodable"], reasons
    assert {dict(m.headers)["source.topic"].decode() for m in dead} == {worker.topic("labels")}
    firing = [a for a in alerts if a.kind == "performance" and a.update == 0]
    assert len(firing) == 1, [a.message for a in alerts]
    assert T0 + drop_at <= firing[0].first_event_time < T0 + drop_at + 1_500
    assert [a for a in alerts if a.kind == "drift"] == []  # concept drift: the inputs are stable
    realised = [w for w in windows if w.source == "realised"]
    estimated = [w for w in windows if w.source == "estimated"]
    assert [w.window_end_event for w in realised] == [500 * (i + 1) for i in range(len(realised))]
    assert len(realised) == labels_sent // 500 and len(estimated) == 24
    assert {w.model_id for w in windows} == {"clf"}
    # the concept flipped: realised windows after the drop are worse, the estimate is not
    late = [w.checks[0].verdict for w in realised if w.first_event_time > T0 + drop_at + 1_500]
    assert late and set(late) == {"worse"}
    assert "worse" not in {c.verdict for w in estimated for c in w.checks}


def test_replay_of_predictions_and_labels_gives_the_workers_alerts_and_windows(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """The same labelled stream through a real worker and through ``driftline replay`` (one
    file, the messages in the order the worker read them; and two files, merged by time): the
    same alerts, the same performance windows. The predictions are read first, then the
    labels, so the worker's order is the one file's; merged by time, each label comes a minute
    after its prediction, and the join gives the same pairs in the same order."""
    import subprocess
    import sys

    rng = np.random.default_rng(31)
    before = classifier_events(4_000, rng)
    after = classifier_events(6_000, rng, start=4_000, flip=0.35)
    preds, labs = before[0] + after[0], before[1] + after[1]
    labs = [{**e, "timestamp": e["timestamp"] + 60} for e in labs]
    pred_messages = [batch_message("clf", preds[i : i + 250]) for i in range(0, 10_000, 250)]
    label_messages = [labels_message(labs[i : i + 250]) for i in range(0, 10_000, 250)]
    worker = worker_for(tmp_path, kafka_bootstrap)
    worker.start()
    try:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        for value in pred_messages:
            producer.send(worker.topic("predictions"), key=b"clf", value=value)
        producer.flush()
        worker.wait_processed(10_000)
        for value in label_messages:
            producer.send(worker.topic("labels"), key=b"clf", value=value)
        producer.flush()
        producer.close()
        wait_joined(worker, 10_000)
        made = int(scrape(worker.metrics_port, "driftline_alerts_total"))
        alerts = [
            Alert.from_json(m.value)
            for m in read_topic(kafka_bootstrap, worker.topic("alerts"), min_messages=made)
        ]
        windows = [
            PerformanceWindow.from_json(m.value)
            for m in read_topic(
                kafka_bootstrap, worker.topic("performance-windows"), min_messages=40
            )
        ]
    finally:
        worker.stop()

    def key(a: Alert) -> tuple[Any, ...]:
        return (a.alert_id, a.status, a.update, a.severity, a.events_seen, a.message)

    performance = [a for a in alerts if a.kind == "performance"]
    assert performance and len(windows) == 40
    # one file in the worker's order; then the labels in a file of their own, merged by time
    stream, predictions, labels = (tmp_path / f"{n}.jsonl" for n in ("stream", "p", "l"))
    stream.write_bytes(b"\n".join(pred_messages + label_messages) + b"\n")
    predictions.write_bytes(b"\n".join(pred_messages) + b"\n")
    labels.write_bytes(b"\n".join(label_messages) + b"\n")
    for files in (
        ["--events", str(stream)],
        ["--events", str(predictions), "--labels", str(labels)],
    ):
        out, windows_out = tmp_path / "alerts.jsonl", tmp_path / "windows.jsonl"
        command = [sys.executable, "-m", "driftline.cli.main", "replay"]
        command += ["--config", str(worker.path), *files, "--out", str(out)]
        command += ["--performance-windows", str(windows_out)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "80 messages (40 of labels)" in done.stderr, done.stderr
        assert "40 performance windows" in done.stderr
        replayed = [Alert.from_json(line) for line in out.read_bytes().splitlines()]
        replayed_windows = [
            PerformanceWindow.from_json(line) for line in windows_out.read_bytes().splitlines()
        ]
        assert sorted(map(key, alerts)) == sorted(map(key, replayed)), files
        assert sorted(windows, key=repr) == sorted(replayed_windows, key=repr), files


def labels_batch(model: str, rows: list[dict]) -> bytes:
    return orjson.dumps({"model_id": model, "events": rows})


def an_hour_later(labels: list[dict]) -> list[dict]:
    return [{**e, "timestamp": e["timestamp"] + 3_600} for e in labels]


def send(producer: KafkaProducer, topic: str, rows: list[dict], encode: Any) -> None:
    """The rows in messages of 250, keyed by the model as producers do."""
    for start in range(0, len(rows), 250):
        producer.send(topic, key=b"clf", value=encode("clf", rows[start : start + 250]))
    producer.flush()


def predictions_committed(worker: WorkerProcess, producer: KafkaProducer, rows: list[dict]) -> None:
    """Send the predictions; return once the worker processed them and committed their
    offsets (with their join records, in the same transaction)."""
    send(producer, worker.topic("predictions"), rows, batch_message)
    worker.wait_processed(len(rows))
    messages = -(-len(rows) // 250)  # send() puts 250 rows in a message
    wait_committed(worker.bootstrap, worker.app_id, worker.topic("predictions"), messages)


def wait_committed(bootstrap: str, group: str, topic: str, messages: int) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            offsets = admin.list_group_offsets({group: None}).get(group, {})
            done = sum(o.offset for tp, o in offsets.items() if tp.topic == topic)
            if done >= messages:
                return
            time.sleep(0.25)
    finally:
        admin.close()
    raise AssertionError(f"{group} never committed {messages} messages of {topic}")


def test_a_label_joins_its_prediction_across_a_kill_and_restart(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    rng = np.random.default_rng(9)
    predictions, labels = classifier_events(1_000, rng)
    worker = worker_for(tmp_path, kafka_bootstrap)
    worker.start()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        # Kill only once their offsets are committed (with their join records, in the same
        # transaction): after the restart the predictions are not read again, so a label can
        # only find its prediction in the table restored from the changelog.
        predictions_committed(worker, producer, predictions)
        worker.stop(signal.SIGKILL)
        worker.start()
        send(producer, worker.topic("labels"), an_hour_later(labels), labels_batch)
        waiting = wait_joined(worker, 1_000)["waiting"]
        accuracy = scrape(worker.metrics_port, "driftline_performance{", 'metric="accuracy"')
    finally:
        producer.close()
        worker.stop()
    assert waiting == 0  # every label found its prediction: none had to wait for one
    assert 0.7 < accuracy < 0.85  # two windows of 500, at the baseline's 0.78


def test_the_join_moves_with_its_partition_to_another_worker(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """Worker A holds the predictions and stops; worker B of the same group gets the partition
    and the join table's records with it (restored from the changelog), and the labels sent
    then join there."""
    rng = np.random.default_rng(10)
    predictions, labels = classifier_events(1_000, rng)
    a = worker_for(tmp_path / "a", kafka_bootstrap)
    b = a.peer(tmp_path / "b")
    a.start()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        predictions_committed(a, producer, predictions)
        a.stop()  # a clean stop: A leaves the group
        b.start()
        # The labels go once B has restored the table: this test is about the table moving.
        # (One CI run sent them during B's restore and saw 3 of the 4 label messages processed
        # in 90 s; not seen in 9 local runs, 3 of them with the CPUs kept busy.)
        wait_ready(b)
        send(producer, a.topic("labels"), an_hour_later(labels), labels_batch)
        waiting = wait_joined(b, 1_000)["waiting"]
        processed_by_b = b.processed()
    finally:
        producer.close()
        a.stop()
        b.stop()
    assert waiting == 0  # the predictions were in B's restored table, not read again
    assert processed_by_b == 0  # B read no prediction: only labels came after the move


def wait_ready(worker: WorkerProcess, timeout: float = 90) -> None:
    """Until the worker has its partitions and their tables restored (Faust logs it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Recovery]: Worker ready" in worker.log_path.read_text(errors="replace"):
            return
        time.sleep(0.25)
    raise AssertionError(f"never ready: {worker.log_tail()}")
