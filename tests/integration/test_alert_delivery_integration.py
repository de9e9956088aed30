"""The alert path end to end on the real broker: policy, Slack delivery, retraining requests.

A model with 50 features, all shifted by 1 sd for 3,000 events, then stable again. Slack (a
real HTTP server on loopback) is down when the alert fires, the worker is killed while it
retries, Slack comes back answering 429, 500 and a hang before it accepts; the worker is
killed again right after delivering, and the firing alert is put on the topic a second time
(as a monitor replaying its input after a crash would). Through all that: one grouped firing
alert and one resolved alert, each posted to Slack exactly once and in order, and one
retraining request.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftline.events.records import Alert, RetrainingRequest
from kafka import KafkaProducer
from tests.conftest import WorkerProcess, read_topic, scrape
from tests.fake_slack import FakeSlack, fake_slack
from tests.integration.test_worker_integration import produce
from tests.streams import events, model_config, write_profile
from tests.unit.monitoring.test_alerting import make_pipeline, messages, stream
from tests.unit.observability.test_notify import check_block_kit, make_alert

pytestmark = pytest.mark.kafka

WIDTH = 50


def test_one_grouped_alert_delivered_once_through_outage_and_crashes(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    pipeline = make_pipeline(tmp_path, width=WIDTH)  # writes the profile m.json
    assert (tmp_path / "m.json").exists() and pipeline.monitors["m"].profile is not None
    model: dict[str, Any] = {
        "task": "regression",
        "features": {f"f{i:02d}": "numeric" for i in range(WIDTH)},
        "reference": str(tmp_path / "m.json"),
        "retraining": {"after_critical_seconds": 600, "endpoint": "ml-hook"},
    }
    cols = stream(10_000, WIDTH, [(3_000, 6_000, 1.0, WIDTH)])
    with fake_slack() as slack, fake_slack() as hook:
        notifications = {
            "receivers": {
                "oncall": {"type": "slack", "url_env": "TEST_SLACK_URL"},
                "ml-hook": {"type": "webhook", "url_env": "TEST_HOOK_URL"},
            },
            "routes": [{"receivers": ["oncall", "ml-hook"]}],
            "delivery": {
                "timeout_seconds": 0.5,
                "initial_backoff_seconds": 0.2,
                "max_backoff_seconds": 0.5,
                "give_up_after_seconds": 300,
            },
        }
        worker = WorkerProcess(
            tmp_path,
            kafka_bootstrap,
            {"m": model},
            alerts={"window_events": 500, "resolve_after_windows": 3, "cooldown_seconds": 0},
            notifications=notifications,
            env={"TEST_SLACK_URL": slack.url, "TEST_HOOK_URL": hook.url},
            session_timeout_seconds=6,  # the killed worker's partitions come back soon
        )
        slack.outage = True
        worker.start()
        try:
            producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
            for value in messages(cols, list(range(250, 10_000, 250))):
                producer.send(worker.topic("predictions"), key=b"m", value=value)
            producer.flush()
            producer.close()
            worker.wait_processed(10_000)
            deadline = time.monotonic() + 60
            while len(slack.received) < 3 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert len(slack.received) >= 3 and not slack.delivered()  # retrying, not lost

            worker.stop(signal.SIGKILL)  # mid-retry
            slack.script = [(429, 1), 500, ("hang", 1.5)]
            slack.outage = False
            worker.start()
            try:
                delivered = slack.wait_delivered(3, timeout=90)
            except AssertionError:
                notes = [ln for ln in worker._metrics_text().splitlines() if "notif" in ln]
                raise AssertionError(f"{notes}\nhook: {len(hook.received)}") from None
            hook.wait_delivered(4, timeout=30)  # firing, update, resolved, the request
            # Kill once the deliveries are noted: a kill between a receiver's 200 and the note
            # re-sends that record (at-least-once, runtime/delivery.py), and this run once
            # caught the retraining request in that window.
            read_topic(kafka_bootstrap, worker.topic("deliveries"), min_messages=7, wait=30)

            worker.stop(signal.SIGKILL)  # right after delivering
            # What a monitor replaying after a crash does: the same alert on the topic again.
            (first,) = read_topic(kafka_bootstrap, worker.topic("alerts"), min_messages=1)[:1]
            again = KafkaProducer(bootstrap_servers=kafka_bootstrap)
            again.send(worker.topic("alerts"), key=b"m", value=first.value).get(timeout=10)
            again.close()
            worker.start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                duplicates = scrape(
                    worker.metrics_port, "driftline_notifications_total", "duplicate"
                )
                if duplicates >= 2:  # oncall and ml-hook already have it: skipped
                    break
                time.sleep(0.25)
            assert duplicates >= 2, worker.log_tail()
            time.sleep(2.0)
            metrics_text = worker._metrics_text()
        finally:
            worker.stop()
        alerts = [
            Alert.from_json(m.value) for m in read_topic(kafka_bootstrap, worker.topic("alerts"))
        ]
        requests = [
            RetrainingRequest.from_json(m.value)
            for m in read_topic(kafka_bootstrap, worker.topic("retraining-requests"))
        ]
        dead = read_topic(kafka_bootstrap, worker.topic("dead-letter"), timeout_ms=1000)
        final_slack, final_hook = slack.delivered(), hook.delivered()

    # The policy: one episode, not a storm. Its evidence is strong at once (a feature crosses
    # twice), so it fires before the group wait ends; the features that follow within the
    # wait join one update at its end; one resolve.
    episodes = {(a.alert_id, a.status) for a in alerts}
    assert len(episodes) == 2, alerts
    firing = next(a for a in alerts if a.status == "firing" and a.update == 0)
    update = next(a for a in alerts if a.status == "firing" and a.update == 1)
    resolved = next(a for a in alerts if a.status == "resolved")
    assert firing.alert_id == update.alert_id == resolved.alert_id
    assert not [a for a in alerts if a.update > 1]
    assert update.features_drifting >= 45 and len(update.features) == 10
    assert firing.severity == "critical" and 3_000 < firing.events_seen < update.events_seen
    assert update.events_seen < 3_300
    assert resolved.events_seen >= 6_000 + 3 * 500

    # Slack: exactly one message per record (alert id, status, update), in order.
    assert len(final_slack) == 3 and final_slack == delivered
    bodies = [r.json() for r in final_slack]
    for body in bodies:
        check_block_kit(body)
        assert firing.alert_id in body["text"]
    assert "CRITICAL" in bodies[0]["blocks"][0]["text"]["text"]
    assert "(update 1)" in bodies[1]["blocks"][0]["text"]["text"]
    assert "RESOLVED" in bodies[2]["blocks"][0]["text"]["text"]
    answered = [r.answered for r in slack.received]
    assert 429 in answered and 500 in answered and 503 in answered

    # The retraining request: one on its topic, posted once to the orchestrator's hook.
    assert len({r.idempotency_key for r in requests}) == 1
    request = requests[0]
    assert request.alert_ids == [firing.alert_id] and len(request.features) >= 45
    posted = [r.json() for r in final_hook]
    assert [d.get("schema") for d in posted].count("driftline.retraining-request/v1") == 1
    statuses = sorted(d["status"] for d in posted if "status" in d)
    assert statuses == ["firing", "firing", "resolved"]
    assert dead == []  # nothing parked: the outage was shorter than the retry budget

    # The webhook URLs are secrets: not in the worker's log (which has the retries) or metrics.
    log_text = worker.log_path.read_text()
    assert "retrying" in log_text and "oncall" in log_text
    for secret in ("s3cr3t-t0ken", FakeSlack.PATH):
        assert secret not in log_text and secret not in metrics_text


def test_an_alert_slack_refuses_is_parked_on_the_dead_letter_topic(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    profile = write_profile(tmp_path / "m1.json")
    rng = np.random.default_rng(1)
    rows = events(3_000, rng) + events(1_000, rng, start=3_000, x1_shift=1.0)
    with fake_slack() as slack:
        slack.script = [400]  # e.g. a revoked webhook: retrying will not help
        worker = WorkerProcess(
            tmp_path,
            kafka_bootstrap,
            {"m1": model_config(profile)},
            notifications={
                "receivers": {"oncall": {"type": "slack", "url_env": "TEST_SLACK_URL"}},
                "routes": [{"receivers": ["oncall"]}],
            },
            env={"TEST_SLACK_URL": slack.url},
        )
        worker.start()
        try:
            produce(kafka_bootstrap, worker.topic("predictions"), "m1", rows, 250)
            worker.wait_processed(4_000)
            dead = read_topic(kafka_bootstrap, worker.topic("dead-letter"), min_messages=1)
            parked = scrape(worker.metrics_port, "driftline_notifications_total", "parked")
        finally:
            worker.stop()
    assert [r.answered for r in slack.received] == [400]  # one attempt, no retries
    (message,) = dead
    headers = {k: v.decode() for k, v in message.headers}
    assert headers["reason"] == "undeliverable" and headers["receiver"] == "oncall"
    assert headers["source.topic"] == worker.topic("alerts")
    assert "http_4xx" in headers["detail"]
    alert = Alert.from_json(message.value)  # the alert itself, whole, to re-send from there
    assert alert.status == "firing" and alert.feature == "x1"
    assert parked == 1


def test_alerts_wait_out_a_minute_without_slack_and_arrive_in_order_per_model(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """Slack unreachable (port closed) for 60 s while three models each fire, resolve, fire
    again and resolve: every alert waits, then each is posted once, in order per model."""
    models = ["ma", "mb", "mc"]
    configs = {m: model_config(write_profile(tmp_path / f"{m}.json", m)) for m in models}
    with fake_slack() as slack:
        slack.down()
        down_at = time.monotonic()
        worker = WorkerProcess(
            tmp_path,
            kafka_bootstrap,
            configs,
            alerts={"window_events": 500, "resolve_after_windows": 2, "cooldown_seconds": 0},
            notifications={
                "receivers": {"oncall": {"type": "slack", "url_env": "TEST_SLACK_URL"}},
                "routes": [{"receivers": ["oncall"]}],
                # backoff capped low so that delivery resumes soon after Slack is back
                "delivery": {"max_backoff_seconds": 4, "give_up_after_seconds": 300},
            },
            env={"TEST_SLACK_URL": slack.url},
        )
        worker.start()
        try:
            for seed, m in enumerate(models):
                rng = np.random.default_rng(seed)
                rows, start = [], 0
                for n, shift in ((2_000, 0.0), (1_000, 1.5), (3_000, 0.0), (1_000, 1.5)):
                    rows += events(n, rng, start=start, x1_shift=shift)
                    start += n
                rows += events(2_000, rng, start=start)
                produce(kafka_bootstrap, worker.topic("predictions"), m, rows, 250)
            worker.wait_processed(27_000)
            published = read_topic(kafka_bootstrap, worker.topic("alerts"), min_messages=12)
            time.sleep(max(0.0, 60 - (time.monotonic() - down_at)))
            assert slack.received == []  # nothing got through while down
            failed = scrape(worker.metrics_port, "driftline_notification_attempts_total", "error")
            slack.up()
            delivered = slack.wait_delivered(12, timeout=60)
            time.sleep(3)  # anything extra (a duplicate) would arrive by now
            final = slack.delivered()
            dead = read_topic(kafka_bootstrap, worker.topic("dead-letter"), timeout_ms=1000)
        finally:
            worker.stop()

    alerts = [Alert.from_json(m.value) for m in published]
    assert len(alerts) == 12, alerts
    assert failed >= 3  # it kept trying through the outage (at least once per model)
    assert len(final) == len(delivered) == 12 and dead == []
    posted = [r.headers["Idempotency-Key"] for r in final]  # "<alert_id>/<status>"
    assert len(set(posted)) == 12  # each (alert, status) once
    model_of = {a.alert_id: a.model_id for a in alerts}
    for m in models:
        expected = [f"{a.alert_id}/{a.status}" for a in alerts if a.model_id == m]
        assert [a.status for a in alerts if a.model_id == m] == ["firing", "resolved"] * 2
        got = [key for key in posted if model_of[key.rsplit("/", 1)[0]] == m]
        assert got == expected, (m, got, expected)


def test_a_dead_receiver_does_not_delay_a_live_one(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Slack and a webhook that is down (503 to everything) both route every alert: Slack gets
    each alert at once, in order, while the webhook is retried; once it is back, it gets them
    all, in order too."""
    profile = write_profile(tmp_path / "m1.json")
    with fake_slack() as slack, fake_slack() as down:
        down.outage = True
        notifications = {
            "receivers": {
                "oncall": {"type": "slack", "url_env": "TEST_SLACK_URL"},
                "down-hook": {"type": "webhook", "url_env": "TEST_HOOK_URL"},
            },
            "routes": [{"receivers": ["down-hook", "oncall"]}],
            "delivery": {
                "timeout_seconds": 0.5,
                "initial_backoff_seconds": 0.2,
                "max_backoff_seconds": 0.5,
                "give_up_after_seconds": 600,  # the dead receiver holds its lane all test long
            },
        }
        worker = WorkerProcess(
            tmp_path,
            kafka_bootstrap,
            {"m1": model_config(profile)},
            notifications=notifications,
            env={"TEST_SLACK_URL": slack.url, "TEST_HOOK_URL": down.url},
        )
        alerts = [make_alert(alert_id=f"a{i:02d}", model_id="m1") for i in range(3)]
        worker.start()
        try:
            producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
            for alert in alerts:
                producer.send(worker.topic("alerts"), key=b"m1", value=alert.to_json())
            producer.flush()
            producer.close()
            delivered = slack.wait_delivered(3, timeout=60)
            tries_meanwhile = len(down.received)
            assert not down.delivered()
            down.outage = False
            came_back = down.wait_delivered(3, timeout=60)
        finally:
            worker.stop()
    assert tries_meanwhile >= 1  # the dead receiver was being retried all along
    assert [r.headers["Idempotency-Key"] for r in delivered] == [
        f"{a.alert_id}/firing" for a in alerts
    ]
    assert [Alert.from_json(r.body).alert_id for r in came_back] == [a.alert_id for a in alerts]
