"""Data quality on the real broker: each pipeline break gives one data-quality alert naming
the feature and the cause, a clean stream of the same length gives none, and
``driftline replay`` over the same messages reports the same alerts.

One worker serves six models (one per failure mode, and a clean one) so the broker, the
worker start and the replay are paid once; each failure mode is still its own test.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from driftline.events.records import Alert
from driftline.observability.metrics import scrape_total
from kafka import KafkaProducer
from tests.conftest import WorkerProcess, read_topic
from tests.streams import batch_message, broken, events, model_config, write_profile
from tests.unit.monitoring.test_alerting import comparable

pytestmark = pytest.mark.kafka

AT, N = 3_000, 6_000
MODES = {  # model id -> (break, the (feature, check) the alert must name)
    "null": ("null", {("x2", "missing")}),
    "scaled": ("scaled", {("x1", "out_of_range")}),
    "newcat": ("new_category", {("color", "unseen_category")}),
    "renamed": ("renamed", {("x2", "missing"), ("x2_value", "unexpected_field")}),
    "version": ("version", {("model_version", "model_version")}),
}


@pytest.fixture(scope="module")
def outcome(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> Iterator[tuple[dict[str, list[Alert]], dict[str, list[Alert]]]]:
    tmp = tmp_path_factory.mktemp("quality")
    profile = write_profile(tmp / "m1.json")
    models = ["clean", *MODES]
    worker = WorkerProcess(tmp, kafka_bootstrap, {m: model_config(profile) for m in models})
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    sent: list[bytes] = []
    worker.start()
    try:
        for model in models:
            rows = events(N, np.random.default_rng(3))
            if model != "clean":
                rows = broken(rows, MODES[model][0], AT)
            for start in range(0, N, 250):
                value = batch_message(model, rows[start : start + 250])
                producer.send(worker.topic("predictions"), key=model.encode(), value=value)
                sent.append(value)
        producer.flush()
        producer.close()
        worker.wait_processed(N * len(models))
        made = int(scrape_total(worker.metrics_port, "driftline_alerts_total"))
        topic = worker.topic("alerts")
        alerts = [
            Alert.from_json(m.value)
            for m in read_topic(kafka_bootstrap, topic, min_messages=made, wait=60)
        ]
        assert len(alerts) == made >= len(MODES)
    finally:
        worker.stop()
    events_file = tmp / "events.jsonl"
    events_file.write_bytes(b"\n".join(sent) + b"\n")
    out = tmp / "replayed.jsonl"
    subprocess.run(
        [
            *(sys.executable, "-m", "driftline", "replay", "--config", str(worker.path)),
            *("--events", str(events_file), "--out", str(out)),
        ],
        capture_output=True,
        timeout=180,
        check=True,
    )
    replayed = [Alert.from_json(line) for line in out.read_bytes().splitlines()]

    def by_model(records: list[Alert]) -> dict[str, list[Alert]]:
        return {m: [a for a in records if a.model_id == m] for m in models}

    yield by_model(alerts), by_model(replayed)


@pytest.mark.parametrize("model", sorted(MODES))
def test_a_break_gives_one_data_quality_alert(
    outcome: tuple[dict[str, list[Alert]], dict[str, list[Alert]]], model: str
) -> None:
    alerts, replayed = outcome
    firing = [a for a in alerts[model] if a.kind == "data_quality" and a.status == "firing"]
    assert len(firing) == 1, [a.message for a in alerts[model]]
    (alert,) = firing
    named = {(f.feature, f.detector) for f in alert.features}
    assert MODES[model][1] <= named, alert.message
    assert (alert.features[0].feature, alert.features[0].detector) in MODES[model][1]
    if model == "version":  # reported as version 2 arrives, counted in its own events
        assert alert.window_start_event == 0 and alert.model_version == "2"
    else:
        assert AT < alert.window_start_event <= AT + 130  # within the budget's delay
    assert alert.features[0].feature in alert.message
    # replay over the same messages says exactly what the worker said for this model
    assert [comparable(a) for a in replayed[model]] == [comparable(a) for a in alerts[model]]


def test_a_clean_stream_of_the_same_length_gives_none(
    outcome: tuple[dict[str, list[Alert]], dict[str, list[Alert]]],
) -> None:
    alerts, replayed = outcome
    assert alerts["clean"] == [] and replayed["clean"] == []
