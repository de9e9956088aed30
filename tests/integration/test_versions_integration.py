"""Model versions on the real broker: a profile published while the worker runs takes effect
without a restart, and a rollout from version 1 to version 2 raises nothing of its own and
resolves version 1's open episode."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from scipy import stats

from driftline.events.records import Alert
from kafka import KafkaProducer
from tests.conftest import WorkerProcess, read_topic
from tests.streams import batch_message, columns, events, model_config, write_profile
from tests.unit.cli.test_cli import cli

pytestmark = pytest.mark.kafka

T0 = 1_700_000_000.0


SENT: list[bytes] = []  # every message the test sent, in order


def send(bootstrap: str, topic: str, tagged: list[tuple[str, dict[str, Any]]]) -> None:
    """Messages of up to 100 events of one version each, in order."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    start = 0
    while start < len(tagged):
        version, end = tagged[start][0], start
        while end < len(tagged) and end - start < 100 and tagged[end][0] == version:
            end += 1
        rows = [row for _, row in tagged[start:end]]
        value = batch_message("m1", rows, version)
        producer.send(topic, key=b"m1", value=value)
        SENT.append(value)
        start = end
    producer.flush()
    producer.close()


def publish_version_2(tmp_path: Path, config: Path) -> str:
    """``driftline baseline --publish`` of version 2, whose x1 sits 1 sd above version 1's."""
    cols = columns(20_000, np.random.default_rng(101), x1_shift=1.0)
    data = tmp_path / "v2.jsonl"
    lines = [
        orjson.dumps({"x1": x1, "x2": x2, "color": c, "prediction": x1 * 2})
        for x1, x2, c in zip(cols["x1"].tolist(), cols["x2"].tolist(), cols["color"], strict=True)
    ]
    data.write_bytes(b"\n".join(lines))
    out = cli("baseline", "--config", str(config), "--model", "m1", "--data", str(data),
              "--model-version", "2", "--out", str(tmp_path / "v2.json"), "--publish")  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def alerts_of(worker: WorkerProcess, least: int) -> list[Alert]:
    messages = read_topic(worker.bootstrap, worker.topic("alerts"), min_messages=least, wait=20)
    return [Alert.from_json(m.value) for m in messages]


def test_a_published_profile_takes_effect_and_a_rollout_resolves_the_old_version(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    SENT.clear()
    profile = write_profile(tmp_path / "m1.json")
    versions = {"retire_after_seconds": 600}
    worker = WorkerProcess(
        tmp_path, kafka_bootstrap, {"m1": model_config(profile, versions=versions)}
    )
    predictions = worker.topic("predictions")
    rng = np.random.default_rng(7)
    worker.start()
    try:
        # version 1 alone, its x1 drifting from event 2,000: one drift episode opens
        stream = [("1", r) for r in events(2_000, rng)]
        stream += [("1", r) for r in events(2_000, rng, 2_000, x1_shift=1.0)]
        send(kafka_bootstrap, predictions, stream)
        worker.wait_processed(4_000)
        (opened,) = alerts_of(worker, 1)
        assert (opened.status, opened.kind, opened.model_version) == ("firing", "drift", "1")
        # version 2's profile published while the worker runs; a few more events of version 1
        # make a take, which picks it up
        publish_version_2(tmp_path, worker.path)
        deadline = time.monotonic() + 30
        at = 4_000
        while "of m1 version 2 now in use" not in worker.log_path.read_text():
            assert time.monotonic() < deadline, worker.log_tail()
            send(kafka_bootstrap, predictions, [("1", r) for r in events(20, rng, at, 1.0)])
            at += 20
            time.sleep(0.5)
        # the rollout: a 10% canary, then all traffic on version 2 (its x1 as its profile says)
        new = [(float(rng.random()) < 0.1, r) for r in events(2_000, rng, at)]
        shifted = events(2_000, rng, at, x1_shift=1.0)
        stream = [
            ("2", s) if canary else ("1", r) for (canary, r), s in zip(new, shifted, strict=True)
        ]
        stream += [("2", r) for r in events(3_000, rng, at + 2_000, x1_shift=1.0)]
        send(kafka_bootstrap, predictions, stream)
        worker.wait_processed(at + 5_000)
        alerts = alerts_of(worker, 2)
    finally:
        worker.stop()
    assert [(a.status, a.kind, a.model_version) for a in alerts] == [
        ("firing", "drift", "1"),
        ("resolved", "drift", "1"),
    ], [a.message for a in alerts]
    resolved = alerts[1]
    assert resolved.alert_id == opened.alert_id and "version 1 retired" in resolved.message
    # a restarted worker reads version 2's profile from the topic before any event
    worker.start()
    try:
        more = [("2", r) for r in events(1_000, rng, at + 5_000, x1_shift=1.0)]
        send(kafka_bootstrap, predictions, more)
        worker.wait_processed(1_000)
        assert "profiles topic" in worker.log_path.read_text()
        assert "m1: 1, 2" in worker.log_path.read_text()
        after = alerts_of(worker, 2)
    finally:
        worker.stop()
    assert after == alerts, [a.message for a in after[len(alerts) :]]
    # replay over the same messages, given version 2's profile, says the same
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"\n".join(SENT) + b"\n")
    replayed = cli("replay", "--config", str(worker.path), "--events", str(events_file),
                   "--profile", str(tmp_path / "v2.json"))  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    again = [Alert.from_json(line) for line in replayed.stdout.splitlines()]
    assert [(a.alert_id, a.status, a.model_version) for a in again] == [
        (a.alert_id, a.status, a.model_version) for a in alerts
    ]


def test_a_shadow_challengers_comparison_equals_the_offline_one(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """Version 2 answers the same requests as version 1 (same prediction ids), more often
    right; the worker's comparison windows equal the paired computation made here from the
    same events (lz4 messages, labels late), and it says once, in an info alert, that the
    challenger is better."""
    from driftline.events.records import COMPARISON_WINDOW_SCHEMA, performance_topic_record
    from tests.integration.test_performance_integration import labels_message, wait_joined
    from tests.streams import FEATURES, classifier_events, write_classifier_profile

    n, window = 4_000, 500
    rng = np.random.default_rng(61)
    champion, labels = classifier_events(n, rng)
    challenger = []
    for event, label in zip(champion, labels, strict=True):
        predicted = label["label"] if rng.random() < 0.95 else 1 - label["label"]
        score = 0.9 if predicted else 0.1
        scores = {"0": 1 - score, "1": score}
        challenger.append({**event, "prediction": predicted, "scores": scores})
    model = {
        "task": "binary",
        "features": dict(FEATURES),
        "reference": str(write_classifier_profile(tmp_path / "clf.json")),
        "performance": {"enabled": True, "window_labels": window},
    }
    worker = WorkerProcess(tmp_path, kafka_bootstrap, {"clf": model})
    worker.start()
    try:
        # lz4 batches; each block of requests to both versions (the shadow's answer first in
        # every other block), and a block's labels two blocks later, once its predictions
        # are in (a label before its predictions would meet the first version only)
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, compression_type="lz4")
        blocks = list(range(0, n, 250))
        for k, start in enumerate([*blocks, None, None]):
            if start is not None:
                pair = [("1", champion), ("2", challenger)]
                for version, rows in pair if k % 2 == 0 else pair[::-1]:
                    value = batch_message("clf", rows[start : start + 250], version)
                    producer.send(worker.topic("predictions"), key=b"clf", value=value)
            if k >= 2:
                producer.flush()
                worker.wait_processed(2 * min(250 * (k + 1), n))
                late = blocks[k - 2]
                value = labels_message(labels[late : late + 250])
                producer.send(worker.topic("labels"), key=b"clf", value=value)
        producer.flush()
        producer.close()
        wait_joined(worker, n)
        records = read_topic(
            kafka_bootstrap, worker.topic("performance-windows"), min_messages=n // window, wait=30
        )
        alerts = [
            Alert.from_json(m.value) for m in read_topic(kafka_bootstrap, worker.topic("alerts"))
        ]
    finally:
        worker.stop()
    windows = [
        performance_topic_record(m.value)
        for m in records
        if orjson.loads(m.value)["schema"] == COMPARISON_WINDOW_SCHEMA
    ]
    wrong = {
        version: np.array(
            [e["prediction"] != y["label"] for e, y in zip(rows, labels, strict=True)], float
        )
        for version, rows in (("1", champion), ("2", challenger))
    }
    assert [w.window_end_label for w in windows] == [window * (k + 1) for k in range(n // window)]
    for k, w in enumerate(windows):
        part = slice(window * k, window * (k + 1))
        d = wrong["1"][part] - wrong["2"][part]
        half = stats.t.ppf(0.975, window - 1) * d.std(ddof=1) / np.sqrt(window)
        assert (w.model_id, w.champion, w.challenger) == ("clf", "1", "2")
        assert np.isclose(w.champion_value, 1 - wrong["1"][part].mean())
        assert np.isclose(w.challenger_value, 1 - wrong["2"][part].mean())
        assert np.isclose(w.difference, d.mean())
        assert np.isclose(w.lower, d.mean() - half) and np.isclose(w.upper, d.mean() + half)
        total = wrong["1"][: part.stop] - wrong["2"][: part.stop]
        spent = 0.05 * (((k + 1) / (k + 5)) ** 2 - (k / (k + 4)) ** 2)  # at look k + 1
        error = total.std(ddof=1) / np.sqrt(len(total))
        assert np.isclose(
            w.total_lower, total.mean() - stats.t.ppf(1 - spent, len(total) - 1) * error
        )
    decisions = [a for a in alerts if a.kind == "comparison"]
    assert [(a.status, a.severity, a.model_version) for a in decisions] == [
        ("firing", "info", "2")
    ], [a.message for a in alerts]
    assert "challenger 2 better than champion 1" in decisions[0].message
