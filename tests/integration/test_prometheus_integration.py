"""A real Prometheus scrapes a real worker on a drifting stream: every PromQL expression of every
dashboard panel, annotation, variable and alert rule returns data through Prometheus's HTTP API.

The stream has what on-call would see on a bad day, for a binary classifier with scores and
labels: clean traffic, a data-quality break (x2 arrives null), then drift (x1 moves by one sd),
labels arriving a few minutes late (joined, so the performance panels have data), a few
undecodable messages, and a Slack receiver (a loopback HTTP server) the alerts go to.
Prometheus (the Debian package) runs on loopback with a generated config that scrapes the
worker every second and evaluates driftline's alert rules.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml

from driftline.observability import dashboards
from driftline.runtime.localkafka import PROJECT_ROOT
from kafka import KafkaProducer
from tests.conftest import WorkerProcess, free_port
from tests.fake_slack import fake_slack
from tests.streams import (
    FEATURES,
    batch_message,
    broken,
    classifier_events,
    write_classifier_profile,
)

pytestmark = pytest.mark.kafka

RULES = PROJECT_ROOT / "deploy" / "prometheus" / "alert-rules.yml"
MODEL = "clf"
# What Grafana puts in place of its variables (the scrape interval here is 1 s)
SUBSTITUTE = {
    "$model": MODEL,
    "$__rate_interval": "30s",
    "$__range": "5m",
    "$__interval": "1s",
}


class Prometheus:
    def __init__(self, tmp: Path, worker_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.copy(RULES, tmp / "alert-rules.yml")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alert-rules.yml"],
            "scrape_configs": [
                {
                    "job_name": "driftline",  # as in deploy/prometheus/prometheus.yml
                    "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}],
                }
            ],
        }
        self.config = tmp / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={self.config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def wait_until(self, expr: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "prometheus exited: see prometheus.log"
            try:
                if self.api("query", query=expr)["result"]:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"no data for {expr} after {timeout} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def grafana_expr(expr: str) -> str:
    for variable, value in SUBSTITUTE.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


def rule_expr(expr: str) -> str:
    """A rule's condition as a 0/1 per series: ``x > 5`` becomes ``x > bool 5``.

    The condition itself is true only on a bad day of its own kind (a worker down has no
    events); what must never be empty is the series it watches.
    """
    converted, count = re.subn(
        r"\s*(==|!=|>=|<=|>|<)\s*([0-9.]+)\s*$", r" \1 bool \2", expr.strip()
    )
    assert count == 1, f"no final comparison in {expr!r}"
    return converted


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Any]:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed: run scripts/system-deps.sh (make setup)")
    tmp = tmp_path_factory.mktemp("prometheus")
    profile = write_classifier_profile(tmp / "clf.json")
    model = {
        "task": "binary",
        "features": dict(FEATURES),
        "reference": str(profile),
        "retraining": {"after_critical_seconds": 5},
        "performance": {"enabled": True, "window_labels": 500},
    }
    with fake_slack() as slack:
        worker = WorkerProcess(
            tmp,
            kafka_bootstrap,
            {MODEL: model},
            alerts={"window_events": 250, "resolve_after_windows": 4},
            notifications={
                "receivers": {"slack": {"type": "slack", "url_env": "DLTEST_SLACK_URL"}},
                "routes": [{"receivers": ["slack"]}],
            },
            env={"DLTEST_SLACK_URL": slack.url},
        )
        worker.start()
        prometheus = Prometheus(tmp, worker.metrics_port)
        try:
            prometheus.wait_until('up{job="driftline"} == 1')
            started = time.time()
            rng = np.random.default_rng(11)
            first, first_labels = classifier_events(3_000, rng)
            rows = broken(first, "null", 2_000)  # x2 null from 2,000
            clean, clean_labels = classifier_events(3_000, rng, 3_000)
            drifted, drifted_labels = classifier_events(4_000, rng, 6_000, x1_shift=1.0)
            rows += clean + drifted
            labels = first_labels + clean_labels + drifted_labels
            producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
            topic = worker.topic("predictions")
            for value in (b"not json", b'{"model_id": "clf", "events": [{}]}'):
                producer.send(topic, key=MODEL.encode(), value=value)
            for start in range(0, len(rows), 250):  # paced: the counters grow over scrapes
                value = batch_message(MODEL, rows[start : start + 250])
                producer.send(topic, key=MODEL.encode(), value=value)
                if start >= 500:  # the labels of two messages ago, 500 s after the prediction
                    late = [
                        {**e, "timestamp": e["timestamp"] + 500}
                        for e in labels[start - 500 : start - 250]
                    ]
                    value = orjson.dumps({"model_id": MODEL, "events": late})
                    producer.send(worker.topic("labels"), key=MODEL.encode(), value=value)
                producer.flush()
                time.sleep(0.15)
                if start + 250 == 3_000:
                    # The break holds until Prometheus has scraped it and evaluated the rules
                    # a few times: a worker catching up could otherwise take the broken and
                    # the clean messages in one go, and the gauge would be 1 between scrapes.
                    prometheus.wait_until(
                        f'driftline_data_quality_failing{{model="{MODEL}", feature="x2", '
                        'check="missing"} == 1'
                    )
                    time.sleep(3)
            producer.close()
            worker.wait_processed(len(rows))
            prometheus.wait_until(
                f'driftline_events_processed_total{{model="{MODEL}"}} >= {len(rows)}'
            )
            prometheus.wait_until('driftline_notifications_total{outcome="delivered"} > 0')
            time.sleep(6)  # a few more scrapes, and a consumer-lag report (every 5 s)
            yield prometheus, started, worker
        finally:
            prometheus.stop()
            worker.stop()


def returns_data(prometheus: Prometheus, expr: str, start: float) -> bool:
    data = prometheus.api("query_range", query=expr, start=start, end=time.time(), step=1)
    return any(series["values"] for series in data["result"])


def test_every_dashboard_query_returns_data(scraped: Any) -> None:
    prometheus, started, _ = scraped
    empty = []
    checked = 0
    for name in dashboards.DASHBOARDS:
        doc = json.loads((PROJECT_ROOT / "dashboards" / name).read_text())
        for where, expr in dashboards.queries(doc):
            checked += 1
            if not returns_data(prometheus, grafana_expr(expr), started):
                empty.append(f"{name} {where}: {expr}")
    assert checked > 40
    assert empty == [], "\n".join(empty)


def test_the_model_variable_lists_the_configured_model(scraped: Any) -> None:
    prometheus, _, _ = scraped
    values = prometheus.api("label/model/values", **{"match[]": "driftline_events_processed_total"})
    assert values == [MODEL]


def test_every_alert_rule_watches_series_that_exist(scraped: Any) -> None:
    prometheus, started, _ = scraped
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    empty = [
        f"{r['alert']}: {r['expr']}"
        for r in rules
        if not returns_data(prometheus, rule_expr(r["expr"]), started)
    ]
    assert len(rules) >= 9 and empty == [], "\n".join(empty)


def test_the_rules_fire_for_the_drift_and_the_data_quality_break(scraped: Any) -> None:
    prometheus, started, _ = scraped
    for alert, labels in (
        ("DriftlineFeaturesDrifting", f'model="{MODEL}"'),
        ("DriftlineDataQualityFailing", f'model="{MODEL}", feature="x2", check="missing"'),
    ):
        # pending or firing: DriftlineFeaturesDrifting waits 1 min before it fires
        expr = f'ALERTS{{alertname="{alert}", {labels}}}'
        assert returns_data(prometheus, expr, started), expr


def test_the_annotation_marks_the_alerts_the_worker_published(scraped: Any) -> None:
    prometheus, started, _ = scraped
    doc = json.loads((PROJECT_ROOT / "dashboards" / "driftline-model.json").read_text())
    (annotation,) = doc["annotations"]["list"]
    data = prometheus.api(
        "query_range",
        query=grafana_expr(annotation["expr"]),
        start=started,
        end=time.time(),
        step=1,
    )
    kinds = {(s["metric"]["kind"], s["metric"]["status"]) for s in data["result"]}
    assert ("drift", "firing") in kinds and ("data_quality", "firing") in kinds
