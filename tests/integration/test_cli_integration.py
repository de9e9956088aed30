"""The commands against the real broker: the demo, publishing a profile, a worker started from
a fresh directory."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from driftline.cli.demo.scenario import FEATURES
from tests.browser import Dom, dump_dom
from tests.conftest import free_port
from tests.unit.cli.test_cli import cli


@pytest.mark.kafka
def test_baseline_publishes_to_a_compacted_topic(tmp_path: Path, kafka_bootstrap: str) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    from kafka import KafkaAdminClient
    from tests.conftest import read_topic

    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(f'{{"a": {i % 7}, "prediction": {i}}}' for i in range(200)))
    prefix = f"pub-{os.getpid()}."
    config = tmp_path / "c.yaml"
    config.write_text(
        f"kafka: {{bootstrap_servers: '{kafka_bootstrap}'}}\n"
        f"topics: {{prefix: '{prefix}'}}\n"
        "models:\n  m:\n    task: regression\n    reference: m.json\n"
        "    features: {a: numeric}\n"
    )
    out = cli(
        "baseline",
        "--config",
        str(config),
        "--model",
        "m",
        "--data",
        str(data),
        "--model-version",
        "4",
        "--publish",
    )
    assert out.returncode == 0, out.stderr
    messages = read_topic(kafka_bootstrap, f"{prefix}profiles", min_messages=1)
    assert [m.key for m in messages] == [b"m/4"]
    assert messages[0].value == (tmp_path / "m.json").read_bytes()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, f"{prefix}profiles")
        described = admin.describe_configs([resource])
    finally:
        admin.close()
    assert described["topic"][f"{prefix}profiles"]["cleanup.policy"]["value"] == "compact"


def _demo_example(markdown: str) -> str:
    """The demo output shown under "What the demo shows"."""
    section = markdown.split("## What the demo shows", 1)[1]
    return section.split("```\n", 2)[1]


def _comparable(output: str) -> tuple[list[str], list[str]]:
    """A demo output's alert lines (sorted: they print as they arrive) and the rest from the
    summary on, without what depends on timing or on the run's names."""
    lines = [re.sub(r"demo-[0-9a-f]{8}", "demo-RUN", line) for line in output.splitlines()]
    # the metrics port is the test's; the status page's is 8900 unless that is taken
    lines = [re.sub(r"127\.0\.0\.1:\d+/", "127.0.0.1:PORT/", x) for x in lines]
    alerts = sorted(x for x in lines if x.startswith("  ["))
    summary = lines[lines.index("Summary") :]
    # the retraining loop's steps: when the request comes and what its sample holds depend
    # on timing (the request waits seconds of critical drift); their wording does not
    summary = [re.sub(r"\d[\d,.]*", "N", x) if re.match(r"  \d ", x) else x for x in summary]
    return alerts, [x for x in summary if not x.startswith("  run time")]


@pytest.mark.kafka
def test_the_demo_prints_the_readmes_example(kafka_bootstrap: str) -> None:
    """`driftline demo` as a user runs it: the outage, both drifts and the performance drops
    found and nothing else, and every line of the README's example that does not depend on
    timing printed as it is there."""
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)
    out = cli("demo", "--metrics-port", str(free_port()), env=env, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    root = Path(__file__).parents[2]
    readme = _demo_example((root / "README.md").read_text())
    assert _demo_example((root / "docs" / "getting-started.md").read_text()) == readme
    alerts, summary = _comparable(text)
    assert (alerts, summary) == _comparable(readme), text
    # what the example shows, said in words (so a new example cannot quietly lose it):
    # one grouped alert names both drifted features, and reaches the Slack stand-in
    assert text.count("[FIRING  ] Drift on eta: 2 features") == 1, text
    # the courier_load outage is one data-quality alert, apart from drift, that resolves
    assert text.count("[FIRING  ] Data quality on eta: courier_load missing in 100%") == 1
    assert re.search(r"data_quality alert \w+ at event 12,\d{3}: courier_load missing", text)
    assert "(the outage began at 12,000); resolved at event" in text
    # Slack got the data-quality firing and resolved messages, the two models' drift alerts
    # (eta's features, the late model's input), the update when the late model's predictions
    # follow its input, and the performance alerts (the late model's estimate among them)
    assert "Slack messages       10" in text
    assert text.count("[FIRING  ] Drift on late: 1 feature (eta_min)") == 1
    assert text.count("[UPDATE  ] Drift on late (update 1: also _prediction)") == 1
    # performance: the ETA's MAE worse than its baseline after the drift, the late model's
    # realised accuracy below its baseline and the estimate before labels
    perf = re.search(
        r"eta +version 3 MAE over its last 500 labels ([\d.]+) min \(baseline ([\d.]+)\)", text
    )
    assert perf and float(perf[1]) > 1.25 * float(perf[2]), text
    late = re.search(
        r"late +accuracy over the last 500 labels ([\d.]+) \(baseline ([\d.]+)\); "
        r"estimated from the scores of the latest predictions ([\d.]+)",
        text,
    )
    assert late and 0.5 < float(late[1]) < float(late[2]) and 0.5 < float(late[3]) <= 1, text
    # labels of each version's last 3,000 predictions are not due yet, 1 in 10 never comes:
    # (57,000 + 17,000) x 0.9
    assert "labels joined 66,600 (both versions)" in text
    for model in ("eta", "late"):
        assert text.count(f"performance alert on {model} at labelled event") == 1
    # the estimate sees the late model's input move toward its boundary before labels do
    assert re.search(r"performance alert on late at event 3\d,\d{3}: estimated_accuracy cbpe", text)
    assert "false alarm" not in text and "missed" not in text
    assert re.search(r"distance_km +30,\d{3} +\d+\n", text), text
    assert "events processed     80,000 (SDK sent 80,000, dropped 0)" in text
    # the loop: the drift asks for retraining with a sample, driftline retrain trains version
    # 4 on it and publishes its profile, version 4 serves the rest, version 3's episodes
    # resolve (the drift's when retrained, the performance one when version 3 retires), and
    # version 4 raises nothing, its errors back near its own baseline
    request = re.search(r"  1 request at event ([\d,]+) for the drift alert at event 30,177; "
                        r"sample ([\d,]+) events \(([\d,]+) labelled\)", text)  # fmt: skip
    assert request, text
    assert 30_177 < int(request[1].replace(",", "")) < 60_000
    assert 0 < int(request[3].replace(",", "")) <= int(request[2].replace(",", "")) <= 5_000
    assert "  2 driftline retrain: accepted, running, succeeded as version 4" in text
    assert "  3 version 4 served events 60,000 to 79,999" in text
    assert re.search(
        r"version 3's drift episode resolved at event [\d,]+: retrained as version 4", text
    )
    assert re.search(
        r"version 3's performance episode resolved at event [\d,]+: version 3 retired", text
    )
    new = re.search(r"  5 version 4: no alert; MAE over its last 500 labels ([\d.]+) min", text)
    assert new and float(new[1]) < float(perf[1]), text
    assert "  6 live versions of eta (Grafana's Live versions panel): 4; the status page" in text
    assert "dead-lettered        3" in text
    # clean in a log: no terminal control codes when stdout is not a terminal
    assert "\x1b" not in text and "\r" not in text
    # a quiet worker: nothing at ERROR level, no stack dumps on start or stop
    log = (root / ".driftline" / "demo" / "worker.log").read_text()
    assert "[ERROR]" not in log and "Traceback" not in log and "TRACEBACK" not in log, log
    # the report and the status page as it stood, opened in a browser
    pages = root / ".driftline" / "demo" / "report"
    assert "report            .driftline/demo/report/: eta.html, late.html, status.html" in text
    assert re.search(r"status page       http://127\.0\.0\.1:\d+/ while the demo ran", text)
    status = Dom(dump_dom((pages / "status.html").as_uri(), root / ".driftline" / "chromium-s"))
    rows = {e.attrs["data-model"]: e.attrs["data-state"] for e in status.find("tr") if
            "data-model" in e.attrs}  # fmt: skip
    assert rows == {"eta": "healthy", "late": "drifting"}  # eta: version 4, retrained
    versions = {e.attrs["data-model"]: e.attrs["data-version"] for e in status.find("tr") if
                "data-model" in e.attrs}  # fmt: skip
    assert versions == {"eta": "4", "late": "1"}
    drift = re.search(r"critical drift alert (\w+) at event", text)
    assert drift
    report = Dom(dump_dom((pages / "eta.html").as_uri(), root / ".driftline" / "chromium-r"))
    assert drift[1] in {e.attrs.get("data-alert-id") for e in report.find("tr")}
    shown = {e.attrs["data-feature"] for e in report.elements if "data-feature" in e.attrs}
    assert shown - {"_prediction"} == set(FEATURES)
    # the report follows version 4: its profile (published by the retraining) and its events
    (about,) = [e for e in report.find("tr") if e.text.startswith("model version shown")]
    assert about.text == "model version shown4 (the episodes also name 3)"
    (profile,) = [e for e in report.find("tr") if e.text.startswith("reference profile")]
    assert profile.text.endswith("model version 4")
    # version 3's episodes are in the table, not shaded on version 4's charts (their event
    # positions are version 3's)
    assert not [e for e in report.find("rect") if "episode" in e.attrs.get("class", "")]


@pytest.mark.kafka
def test_demo_profile_and_produce_feed_the_compose_stacks_worker(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    import orjson
    import yaml

    from driftline.config import load_config
    from driftline.detectors.profile import ReferenceProfile
    from driftline.runtime.localkafka import PROJECT_ROOT
    from tests.conftest import read_topic

    out = cli("demo", "profile", "--out-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    profile = ReferenceProfile.from_json((tmp_path / "eta.profile.json").read_bytes())
    assert profile.model_id == "eta" and profile.prediction is not None
    assert set(profile.performance) == {"mae", "rmse", "mape", "abs_error_p90"}
    late = ReferenceProfile.from_json((tmp_path / "late.profile.json").read_bytes())
    assert late.calibration and late.performance["accuracy"] > 0.8
    # the compose stack's config, pointed at the test broker and a topic prefix of its own
    raw = yaml.safe_load((PROJECT_ROOT / "deploy/compose/driftline.yaml").read_text())
    raw["kafka"]["bootstrap_servers"] = kafka_bootstrap
    raw["topics"]["prefix"] = f"dltest-produce-{free_port()}."
    for model in ("eta", "late"):
        raw["models"][model]["reference"] = str(tmp_path / f"{model}.profile.json")
    path = tmp_path / "driftline.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = cli("demo", "produce", "--config", str(path), "--events", "1500", "--rate", "20000")
    assert out.returncode == 0, out.stdout + out.stderr
    topics = load_config(path).topics
    messages = read_topic(kafka_bootstrap, topics.predictions, min_messages=6)
    docs = [orjson.loads(m.value) for m in messages]
    assert {d["model_id"] for d in docs} == {"eta", "late"}
    eta = [d for d in docs if d["model_id"] == "eta"]
    ids = [i for d in eta for i in d["columns"]["prediction_id"]]
    assert len(ids) == len(set(ids)) == 1500
    assert set(eta[0]["columns"]["features"]) == set(profile.features)
    # labels trail the predictions by LABEL_LAG (3,000): none within 1,500 events
    assert read_topic(kafka_bootstrap, topics.labels, timeout_ms=1000) == []


@pytest.mark.kafka
def test_worker_starts_from_a_fresh_directory_with_the_default_data_dir(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """No data_dir in the config: the default (.driftline/worker, relative to where the worker
    runs) is created, parents and all."""
    from tests.conftest import WorkerProcess
    from tests.streams import model_config, write_profile

    profile = write_profile(tmp_path / "m1.json")
    worker = WorkerProcess(tmp_path, kafka_bootstrap, {"m1": model_config(profile)})
    del worker.config["worker"]["data_dir"]
    import yaml

    worker.path.write_text(yaml.safe_dump(worker.config))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    cwd = os.getcwd()
    os.chdir(fresh)  # the worker process starts here
    try:
        worker.start()
    finally:
        os.chdir(cwd)
        worker.stop()
    assert (fresh / ".driftline" / "worker").is_dir()


@pytest.mark.kafka
def test_the_demo_waits_for_the_worker_and_says_what_it_did_not_finish(
    kafka_bootstrap: str,
) -> None:
    """The demo's wait reads the worker group's committed offsets: messages it has not
    processed are named, per topic, once the timeout is over; committed, they are done."""
    import subprocess
    import sys

    from driftline.cli.demo.run import AlertLog, _wait_until_done
    from driftline.cli.demo.slack_sink import SlackSink
    from driftline.config import config_from_dict
    from driftline.runtime.topics import ensure_topics
    from kafka import KafkaConsumer, KafkaProducer

    prefix = f"wait-{os.getpid()}."
    config = config_from_dict(
        {
            "kafka": {"bootstrap_servers": kafka_bootstrap},
            "topics": {"prefix": prefix, "partitions": 2},
            "worker": {"app_id": f"wait-{os.getpid()}"},
            "models": {"m": {"task": "regression", "features": {"a": "numeric"}}},
        },
        source="test",
    )
    ensure_topics(config)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(10):
        producer.send(config.topics.predictions, key=str(i).encode(), value=b"{}")
    producer.send(config.topics.labels, key=b"m", value=b"{}")
    producer.flush()
    producer.close()
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with SlackSink(lambda message: None) as slack:
            missing = _wait_until_done(config, worker, AlertLog(), slack, timeout=1.0)
            assert missing == [
                f"10 messages on {prefix}predictions not processed",
                f"1 messages on {prefix}labels not processed",
            ]
            # the worker's group reads and commits them all: nothing is missing
            group = KafkaConsumer(
                config.topics.predictions,
                config.topics.labels,
                bootstrap_servers=kafka_bootstrap,
                group_id=config.worker.app_id,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                consumer_timeout_ms=2000,
            )
            assert len(list(group)) == 11
            group.commit()
            group.close()
            assert _wait_until_done(config, worker, AlertLog(), slack, timeout=10.0) == []
    finally:
        worker.kill()
        worker.wait()
    assert _wait_until_done(config, worker, AlertLog(), slack, timeout=10.0) == [
        "the worker exited (code -9)"
    ]
