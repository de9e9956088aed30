"""``driftline status`` on the real broker, fed by a real worker, opened in headless Chromium:
each configured model with its state, the alert records' numbers, the workers' lag, a model's
page with the linked alert marked; nothing loaded from elsewhere, no markup from the events."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from driftline.events.records import Alert
from kafka import KafkaProducer
from tests.browser import Dom, dump_dom, looks_drawn, page_requests, recording_proxy, screenshot
from tests.conftest import WorkerProcess, free_port, read_topic, scrape
from tests.streams import FEATURES, batch_message, classifier_events, write_classifier_profile

pytestmark = pytest.mark.kafka

HOSTILE = "<img src=x onerror=alert(1)>"


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_the_status_page_shows_the_fleet_from_the_topics(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    profile = write_classifier_profile(tmp_path / "clf.json")
    model = {"task": "binary", "features": dict(FEATURES), "reference": str(profile)}
    models = {"clf": model, "quiet": model}
    worker = WorkerProcess(tmp_path, kafka_bootstrap, models, history_events=500)
    worker.start()
    status = None
    try:
        rng = np.random.default_rng(8)
        stable, _ = classifier_events(4_000, rng)
        shifted, _ = classifier_events(4_000, rng, start=4_000, x1_shift=1.5)
        for event in shifted:
            if event["features"]["color"] == "red":
                event["features"]["color"] = HOSTILE
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        sent = 0
        # in rounds, as live traffic comes: each round a batch of its own, and so a point
        # of the feature history
        for start in range(0, 8_000, 1_000):
            for rows, name in ((stable + shifted, "clf"), (stable, "quiet")):
                if start < len(rows):
                    message = batch_message(name, rows[start : start + 1_000])
                    producer.send(worker.topic("predictions"), key=name.encode(), value=message)
                    sent += len(rows[start : start + 1_000])
            producer.flush()
            worker.wait_processed(sent)
        producer.close()
        made = int(scrape(worker.metrics_port, "driftline_alerts_total"))
        records = [
            Alert.from_json(m.value)
            for m in read_topic(kafka_bootstrap, worker.topic("alerts"), min_messages=made)
        ]
        assert made >= 2 and len(records) == made
        port = free_port()
        status = subprocess.Popen(
            [sys.executable, "-m", "driftline", "status", "--config", str(worker.path),
             "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        page = ""
        while time.monotonic() < deadline:
            try:
                page = get(url)
            except OSError:
                page = ""
            if f'data-alert-id="{records[-1].alert_id}"' in page and "data-lag=" in page:
                break
            time.sleep(0.5)
        assert f'data-alert-id="{records[-1].alert_id}"' in page, page[-2000:]
        with recording_proxy() as (proxy, seen):
            html = dump_dom(url, tmp_path / "browser", proxy=proxy)
        assert page_requests(seen) == []  # the page came from loopback, and nothing else
        dom = Dom(html)
        states = {e.attrs["data-model"]: e.attrs["data-state"] for e in dom.find("tr") if
                  "data-model" in e.attrs}  # fmt: skip
        assert states == {"clf": "broken", "quiet": "healthy"}  # an unseen colour: broken
        shown = [e for e in dom.find("tr") if "data-alert-id" in e.attrs]
        assert len(shown) == len(records)
        for row, record in zip(shown, reversed(records), strict=True):  # the latest first
            assert row.attrs["data-alert-id"] == record.alert_id
            assert f"{record.events_seen:,}" in row.text and record.kind in row.text
        lag = {e.attrs["data-lag"]: e.text for e in dom.find("td") if "data-lag" in e.attrs}
        assert lag == {worker.topic("predictions"): "0", worker.topic("labels"): "0"}
        sparks = [
            e.attrs["data-feature"] for e in dom.find("div") if e.attrs.get("class") == "spark"
        ]
        assert len(sparks) == 6 and "x1" in sparks[:3]  # clf's row first: x1 is among its top
        lines = [e for e in dom.find("polyline") if e.parents and e.parents[-1] in sparks]
        assert len(lines) == 6 and all(len(e.attrs["points"].split()) >= 4 for e in lines)
        assert not dom.find("script") and not dom.find("img")
        assert HOSTILE in "".join(e.text for e in dom.find("body"))
        assert looks_drawn(screenshot(url, tmp_path / "status.png", tmp_path / "shot"))
        # the link a Slack message carries when no Grafana URL is set
        drift = next(r for r in records if r.kind == "drift")
        linked = Dom(dump_dom(f"{url}model/clf?alert={drift.alert_id}", tmp_path / "m"))
        (row,) = [e for e in linked.find("tr") if e.attrs.get("data-alert-id") == drift.alert_id]
        assert row.attrs.get("class") == "linked"
        features = {e.attrs["data-feature"] for e in linked.elements if "data-feature" in e.attrs}
        assert {"x1", "x2", "color"} <= features
        # the report from the same topics
        out = tmp_path / "report"
        made_report = subprocess.run(
            [sys.executable, "-m", "driftline", "report", "--config", str(worker.path),
             "--from-kafka", "--out-dir", str(out)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert made_report.returncode == 0, made_report.stderr
        report = Dom(dump_dom((out / "clf.html").as_uri(), tmp_path / "r"))
        ids = {e.attrs["data-alert-id"] for e in report.find("tr") if "data-alert-id" in e.attrs}
        assert ids == {r.alert_id for r in records if r.model_id == "clf"}
        shaded = [e for e in report.find("rect") if "episode" in e.attrs.get("class", "")]
        assert shaded  # the feature windows came from the topic too
    finally:
        if status is not None:
            status.terminate()
            status.wait(timeout=10)
        worker.stop()
