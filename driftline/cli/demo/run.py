"""``driftline demo``: local Kafka, a real worker process, a producer replaying the scenario.

Prints progress while it runs, each alert as it arrives on the alerts topic, and a summary.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from kafka.structs import TopicPartition

from driftline.cli.demo.loop import (
    LoopLog,
    Rollout,
    RolloutTraffic,
    committed_reader,
    start_retrainer,
    wait_for_new_version,
    wait_for_profile,
    watch_loop,
)
from driftline.cli.demo.pages import EventsFile, LiveStatus, status_port, write_pages
from driftline.cli.demo.scenario import (
    DRIFTING,
    FEATURES,
    LABEL_LAG,
    LATE_AFTER_MIN,
    LATE_FEATURES,
    OUTAGE_FEATURE,
    UNLABELLED,
    LateLabels,
    Scenario,
    late_score,
)
from driftline.cli.demo.slack_sink import SlackSink
from driftline.config import Config, ModelConfig, TopicSettings, config_from_dict
from driftline.detectors.performance import (
    ScoreCalibration,
    classification_metrics,
)
from driftline.detectors.profile import ReferenceProfile, build_profile
from driftline.events.records import Alert, PerformanceWindow
from driftline.monitoring.performance import (
    baseline_performance,
    estimated_baseline,
    performance_spread,
)
from driftline.observability.metrics import scrape_total
from driftline.runtime.localkafka import PROJECT_ROOT, LocalKafka
from driftline.runtime.topics import GroupLag, ensure_topics, kafka_client_options
from driftline.sdk.client import LabelLogger, PredictionLogger
from kafka import KafkaProducer

MODEL = "eta"
MODEL_VERSION = "3"
ROLLOUT_EVENTS = 20_000  # served by the retrained version, after the scenario's events
LATE_MODEL = "late"  # a classifier on the ETA: will this delivery be late?
ETA_ONLY, LATE_ONLY = f'model="{MODEL}"', f'model="{LATE_MODEL}"'
SLACK_URL_ENV = "DRIFTLINE_DEMO_SLACK_URL"
BAD_MESSAGES = [
    b"\x00\x01 not json",
    b'{"model_id": "eta", "events": [{"prediction_id": "x"}]}',
    b'{"model_id": "fraud-v9", "prediction_id": "1", "timestamp": 1, "features": {}, '
    b'"prediction": 1}',
]


@dataclass
class AlertLog:
    alerts: list[Alert] = field(default_factory=list)
    read_up_to: dict[TopicPartition, int] = field(default_factory=dict)  # positions, by the watcher
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read_to(self, ends: dict[TopicPartition, int]) -> bool:
        """Whether the watcher has read every partition up to these end offsets."""
        with self.lock:
            return all(self.read_up_to.get(tp, 0) >= end for tp, end in ends.items())


def _say(text: str) -> None:
    # on a terminal, over the progress line; in a log, only the text
    sys.stdout.write(("\r\x1b[2K" if sys.stdout.isatty() else "") + text + "\n")
    sys.stdout.flush()


def _progress(text: str) -> None:
    if sys.stdout.isatty():
        sys.stdout.write("\r\x1b[2K" + text)
        sys.stdout.flush()


def _watch_alerts(bootstrap: str, topic: str, log: AlertLog, stop: threading.Event) -> None:
    consumer = committed_reader(bootstrap, topic)
    try:
        while not stop.is_set():
            for message in consumer:
                alert = Alert.from_json(message.value)
                with log.lock:
                    log.alerts.append(alert)
                mark = {"firing": "FIRING  ", "resolved": "RESOLVED"}[alert.status]
                mark = "UPDATE  " if alert.update else mark
                _say(f"  [{mark}] {alert.message}")
            positions = {tp: consumer.position(tp) for tp in consumer.assignment()}
            with log.lock:
                log.read_up_to.update(positions)
    finally:
        consumer.close()


def run_demo(
    bootstrap: str | None = None,
    n_events: int = 60_000,
    rate: float = 2_000.0,
    workdir: Path | None = None,
    metrics_port: int = 9464,
) -> int:
    scenario = Scenario(
        n_events=n_events, onset=n_events // 2, outage=(n_events // 5, n_events // 5 + 2_000)
    )
    workdir = workdir or PROJECT_ROOT / ".driftline" / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    bootstrap = bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    kafka: LocalKafka | None = None
    started = time.monotonic()
    if bootstrap is None:
        kafka = LocalKafka(name="demo")
        print(f"Starting Apache Kafka (KRaft, one node) on {kafka.bootstrap_servers} ...")
        kafka.start(fresh=True)
        bootstrap = kafka.bootstrap_servers
    try:
        return _run_with_broker(scenario, bootstrap, workdir, run_id, metrics_port, rate, started)
    finally:
        if kafka is not None:
            kafka.stop()


def _run_with_broker(
    scenario: Scenario,
    bootstrap: str,
    workdir: Path,
    run_id: str,
    metrics_port: int,
    rate: float,
    started: float,
) -> int:
    print("Building the reference profiles from the models' validation data ...")
    port = status_port()
    profile_path = workdir / "eta.profile.json"
    profile_path.write_bytes(demo_profile(scenario).to_json())
    late_path = workdir / "late.profile.json"
    late_path.write_bytes(late_profile(scenario).to_json())
    raw_config: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap},
        "topics": {"prefix": f"driftline.demo-{run_id}.", "partitions": 3},
        "worker": {
            "app_id": f"driftline-demo-{run_id}",
            "metrics_port": metrics_port,
            "data_dir": str(workdir / "worker"),
            # a point of each feature's history per 1,000 predictions (the report's charts)
            "history_events": 1_000,
        },
        "models": {
            MODEL: {
                "task": "regression",
                "features": FEATURES,
                "reference": str(profile_path),
                "false_alarm_budget": 1_000_000,
                # the demo's event time is short: ask for retraining after 5 s of critical
                # drift, with one event in 3 sampled so that the sample holds enough rows since
                # the drift began for the new version's reference (its baseline's chance error
                # shrinks with its rows)
                "retraining": {"after_critical_seconds": 5, "sample_every": 3},
                # and retire the old version 5 s after the new one took its traffic
                "versions": {"retire_after_seconds": 5},
                # an MAE a quarter above the baseline's is worth an alert; the ETA's own
                # distribution is watched by the late model (its input), not twice
                "performance": {
                    "enabled": True,
                    "tolerance": 0.25,
                    "label_ttl_seconds": 600,
                    "prediction_drift": False,
                },
            },
            LATE_MODEL: {
                "task": "binary",
                "features": LATE_FEATURES,
                "reference": str(late_path),
                "false_alarm_budget": 1_000_000,
                "performance": {"enabled": True, "label_ttl_seconds": 600},
            },
        },
        "notifications": {
            "receivers": {"demo-slack": {"type": "slack", "url_env": SLACK_URL_ENV}},
            "routes": [{"receivers": ["demo-slack"]}],
            # no Grafana here: Slack messages link to the demo's status page
            "status_url": f"http://127.0.0.1:{port}/",
        },
    }
    with SlackSink(_show_slack) as slack:
        env = {**os.environ, SLACK_URL_ENV: slack.url}
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(raw_config, sort_keys=False))
        config = config_from_dict(raw_config, source=str(config_path), env=env)
        ensure_topics(config)
        status = LiveStatus(config, port)
        print(f"Status page: {status.url} (while the demo runs)")
        try:
            return _run_worker(
                scenario,
                config,
                config_path,
                env,
                bootstrap,
                workdir,
                metrics_port,
                rate,
                started,
                slack,
                status,
            )
        finally:
            status.stop()


def demo_profile(scenario: Scenario | None = None) -> ReferenceProfile:
    """The ETA model's reference profile, from the data it was validated on (with the real
    delivery times: its baseline MAE)."""
    scenario = scenario or Scenario()
    cols, eta = scenario.training()
    actual = scenario.training_actual(cols, eta)
    profile = build_profile(
        MODEL,
        MODEL_VERSION,
        cols,
        FEATURES,
        prediction=eta,
        label=actual,
    )
    model = ModelConfig.model_validate({"task": "regression", "features": FEATURES})
    performance = baseline_performance(model, profile, list(eta), list(actual))
    spread = performance_spread(model, profile, list(eta), list(actual))
    return replace(profile, performance=performance, performance_spread=spread)


def late_profile(scenario: Scenario | None = None) -> ReferenceProfile:
    """The late-delivery classifier's profile: its input (the ETA), its predictions, the
    labels, its baseline performance and the score calibration for the estimate."""
    scenario = scenario or Scenario()
    cols, eta = scenario.training()
    late = scenario.training_actual(cols, eta) > LATE_AFTER_MIN
    score = late_score(eta)
    predicted = (score >= 0.5).astype(int)
    profile = build_profile(
        LATE_MODEL,
        "1",
        {"eta_min": eta},
        LATE_FEATURES,
        prediction=predicted.astype(str).astype(object),
        prediction_type="categorical",
        label=late.astype(int).astype(str).astype(object),
        performance=classification_metrics(late.astype(int), predicted, ["0", "1"], score),
    )
    fitted = ScoreCalibration.fit(score, late)
    model = ModelConfig.model_validate({"task": "binary", "features": LATE_FEATURES})
    scores = [{"1": float(s)} for s in score]
    labels = list(late.astype(int).astype(str))
    spread = performance_spread(model, profile, list(predicted), labels, scores, fitted)
    estimated = estimated_baseline(model, profile, list(predicted), scores, fitted)
    return replace(
        profile,
        performance=profile.performance | estimated,
        performance_spread=spread,
        calibration={"edges": list(fitted.edges), "rates": list(fitted.rates)},
    )


class DemoTraffic:
    """Both models' predictions, and their labels ``LABEL_LAG`` predictions later."""

    def __init__(
        self,
        topics: TopicSettings,
        kafka_options: dict[str, Any],
        record: EventsFile | None = None,
    ) -> None:
        """``kafka_options``: kafka-python client options (servers, and security if any);
        ``record``: a file that keeps a copy of the predictions sent."""
        self.record = record
        options: dict[str, Any] = {**kafka_options, "batch_size": 500}
        self.eta = PredictionLogger(MODEL, MODEL_VERSION, topic=topics.predictions, **options)
        self.late = PredictionLogger(LATE_MODEL, "1", topic=topics.predictions, **options)
        self.eta_labels = LabelLogger(MODEL, topic=topics.labels, **options)
        self.late_labels = LabelLogger(LATE_MODEL, topic=topics.labels, **options)
        self.labels_to_come = LateLabels()

    def send(self, pid: str, event: dict[str, Any]) -> None:
        now = time.time()
        eta = event["prediction"]
        self.eta.log(pid, event["features"], eta, timestamp=now)
        score = float(late_score(eta))
        self.late.log(pid, {"eta_min": eta}, int(score >= 0.5), timestamp=now, scores={"1": score})
        if self.record is not None:
            common = {"prediction_id": pid, "timestamp": now}
            self.record.add(
                MODEL,
                MODEL_VERSION,
                {**common, "features": event["features"], "prediction": eta},
            )
            self.record.add(
                LATE_MODEL,
                "1",
                {
                    **common,
                    "features": {"eta_min": eta},
                    "prediction": int(score >= 0.5),
                    "scores": {"1": score},
                },
            )
        due = self.labels_to_come.add(pid, event["actual"])
        if due is not None:
            done, actual = due
            self.eta_labels.log(done, actual, timestamp=now)
            self.late_labels.log(done, int(actual > LATE_AFTER_MIN), timestamp=now)

    def close(self) -> None:
        for logger in (self.eta, self.late, self.eta_labels, self.late_labels):
            logger.close()


def produce(config: Config, rate: float, n_events: int, loop: bool) -> int:
    """Send the scenario's traffic (both models, and their labels) at about ``rate``/s.

    For the compose stack: each round is stable, has the courier-tracking outage, then drifts;
    with ``loop`` the rounds go on (a new seed each), so the dashboards keep moving.
    """
    ensure_topics(config)  # with the configured partitions, not the broker's default
    # the config's security too: the compose stack's producer may face an authenticating broker
    traffic = DemoTraffic(config.topics, kafka_client_options(config.kafka))
    sent, round_ = 0, 0
    t0 = time.monotonic()
    try:
        while True:
            scenario = Scenario(
                n_events=n_events,
                onset=n_events // 2,
                outage=(n_events // 5, n_events // 5 + n_events // 30),
                seed=42 + round_,
            )
            print(f"round {round_}: {n_events:,} events, drift from event {scenario.onset:,}")
            for i, event in enumerate(scenario.events()):
                traffic.send(f"r{round_}-{i}", event)
                sent += 1
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            round_ += 1
            if not loop:
                return 0
    finally:
        traffic.close()


def _show_slack(message: dict[str, Any]) -> None:
    _say(f"  [slack   ] {message['blocks'][0]['text']['text']}")


def _run_worker(
    scenario: Scenario,
    config: Config,
    config_path: Path,
    env: dict[str, str],
    bootstrap: str,
    workdir: Path,
    metrics_port: int,
    rate: float,
    started: float,
    slack: SlackSink,
    status: LiveStatus,
) -> int:
    print(f"Starting a driftline worker (config {config_path}) ...")
    worker_log = (workdir / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "driftline", "worker", "--config", str(config_path)],
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    alerts, loop = AlertLog(), LoopLog()
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch_alerts, args=(bootstrap, config.topics.alerts, alerts, stop), daemon=True
    )
    watcher.start()
    loop_watcher = threading.Thread(
        target=watch_loop, args=(config, loop, _say, stop), name="loop", daemon=True
    )
    loop_watcher.start()
    retrainer = start_retrainer(config, workdir / "retrain", stop)
    try:
        return _produce_and_report(
            scenario,
            config,
            bootstrap,
            worker,
            alerts,
            loop,
            metrics_port,
            rate,
            started,
            slack,
            status,
            workdir,
        )
    finally:
        stop.set()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        for thread in (watcher, loop_watcher, retrainer):
            thread.join(5)


def _produce_and_report(
    scenario: Scenario,
    config: Config,
    bootstrap: str,
    worker: subprocess.Popen[bytes],
    alerts: AlertLog,
    loop: LoopLog,
    metrics_port: int,
    rate: float,
    started: float,
    slack: SlackSink,
    status: LiveStatus,
    workdir: Path,
) -> int:
    topics = config.topics
    events = scenario.events()
    print(
        f"Replaying {len(events):,} ETA predictions at ~{rate:,.0f}/s: stable, but "
        f"{OUTAGE_FEATURE} arrives null from event {scenario.outage[0]:,} to "
        f"{scenario.outage[1]:,} (a tracking outage);\nfrom event {scenario.onset:,} a new "
        "suburb (distance_km) and a storm (weather).\n"
    )
    # A few broken messages, as real producers send: they go to the dead-letter topic.
    bad = KafkaProducer(bootstrap_servers=bootstrap)
    for value in BAD_MESSAGES:
        bad.send(topics.predictions, key=MODEL.encode(), value=value)
    bad.flush()
    bad.close()

    events_file = EventsFile(workdir / "events.jsonl")
    traffic = DemoTraffic(topics, {"bootstrap_servers": bootstrap}, events_file)
    t0 = time.monotonic()
    step = 500
    for start in range(0, len(events), step):
        for i, event in enumerate(events[start : start + step], start):
            traffic.send(f"p-{i}", event)
        events_file.flush()
        if worker.poll() is not None:
            _say(f"The worker exited (code {worker.returncode}); see .driftline/demo/worker.log")
            return 1
        ahead = (start + step) / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
        processed = scrape_total(metrics_port, "driftline_events_processed_total", ETA_ONLY)
        phase = "stable" if start + step <= scenario.onset else "DRIFTING"
        if scenario.outage[0] < start + step <= scenario.outage[1]:
            phase = "OUTAGE"
        _progress(
            f"  sent {start + step:>7,} / {len(events):,}  processed {processed:>9,.0f}  "
            f"phase {phase:<8}  alerts {len(alerts.alerts)}"
        )
    traffic.close()
    produced_in = time.monotonic() - t0
    timeout = 60.0 + 2 * produced_in  # a slower machine produces slower too
    rollout = _roll_out(scenario, config, worker, loop, events_file, workdir, rate, timeout)
    events_file.close()
    missing = _wait_until_done(config, worker, alerts, slack, timeout)
    if rollout is None:
        missing.append("no retrained version to roll out")
    processed = scrape_total(metrics_port, "driftline_events_processed_total", ETA_ONLY)
    dead = scrape_total(metrics_port, "driftline_dead_letters_total")
    retraining = scrape_total(metrics_port, "driftline_retraining_requests_total")
    delivered = [
        f"  Slack messages       {len(slack.messages)} (to a loopback stand-in for the webhook)",
        f"  retraining requests  {retraining:.0f} (topic {topics.retraining_requests})",
    ]
    if missing:
        print(f"\n\nThe worker did not finish in {timeout:.0f} s: {'; '.join(missing)}.")
        print("The summary below is incomplete; the worker's log is .driftline/demo/worker.log.")
    pages = write_pages(config, workdir, events_file.path, status.page)
    windows = [
        PerformanceWindow.from_json(line)
        for line in (workdir / "performance-windows.jsonl").read_bytes().splitlines()
        if b"driftline.performance-window/" in line
    ]
    folder = pages[0].parent
    shown = folder.relative_to(PROJECT_ROOT) if folder.is_relative_to(PROJECT_ROOT) else folder
    where = [
        f"  report            {shown}/: {', '.join(p.name for p in pages)} (they load nothing)",
        f"  status page       {status.url} while the demo ran (status.html: as it stood)",
    ]
    loggers = [traffic.eta] + ([rollout.logger] if rollout else [])
    sent = (sum(x.stats.sent for x in loggers), sum(x.stats.dropped for x in loggers))
    _report(
        scenario,
        alerts,
        processed,
        dead,
        topics,
        metrics_port,
        started,
        sent,
        delivered,
        where,
        windows,
        rollout,
    )
    return 1 if missing else 0


def _roll_out(
    scenario: Scenario,
    config: Config,
    worker: subprocess.Popen[bytes],
    loop: LoopLog,
    events_file: EventsFile,
    workdir: Path,
    rate: float,
    timeout: float,
) -> Rollout | None:
    """The loop's end: wait for the retraining pipeline's new version of the ETA model, then
    serve it to the storm-time traffic that follows. None if no version came."""
    _say(f"\nWaiting for the retrained version of {MODEL} ...")
    found = wait_for_new_version(loop, MODEL, workdir / "retrain", timeout)
    if found is None:
        _say(f"  no retrained version of {MODEL} (failed, or not within {timeout:.0f} s)")
        return None
    succeeded, model, trained_on = found
    version = succeeded.new_version
    # the worker reads the profile from its topic; make sure before the version's first event
    wait_for_profile(workdir / "worker.log", MODEL, version, timeout=5.0)
    events = scenario.later(ROLLOUT_EVENTS)
    _say(
        f"Rolling out {MODEL} version {version} (its profile published by the retraining "
        f"pipeline): the next {len(events):,} predictions are its own.\n"
    )
    traffic = RolloutTraffic(config, MODEL, version, model, events_file)
    t0, step = time.monotonic(), 500
    try:
        for start in range(0, len(events), step):
            for i, event in enumerate(events[start : start + step], start):
                traffic.send(f"v{version}-{i}", event["features"], event["actual"])
            events_file.flush()
            if worker.poll() is not None:
                break
            ahead = (start + step) / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
            _progress(f"  sent {start + step:>7,} / {len(events):,} of version {version}")
    finally:
        traffic.close()
    request = loop.request(succeeded.idempotency_key)
    return Rollout(
        succeeded, request, trained_on, scenario.n_events, len(events), traffic.predictions
    )


def _wait_until_done(
    config: Config,
    worker: subprocess.Popen[bytes],
    alerts: AlertLog,
    slack: SlackSink,
    timeout: float,
) -> list[str]:
    """Wait until the worker has processed every prediction and label sent (its consumer
    group's lag is zero on both topics), the alerts of that work have been read from their
    topic, and Slack has each of them. What is still missing at ``timeout`` (empty if done)."""
    topics = config.topics
    probe = GroupLag(config.kafka, config.worker.app_id)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if worker.poll() is not None:
                return [f"the worker exited (code {worker.returncode})"]
            lag = probe.behind([topics.predictions, topics.labels])
            missing = [f"{n:,} messages on {t} not processed" for t, n in lag.items() if n]
            if not missing and not alerts.read_to(probe.ends([topics.alerts])):
                missing.append(f"alerts on {topics.alerts} not read yet")
            if not missing:
                with alerts.lock:
                    distinct = {a.delivery_key for a in alerts.alerts}
                if len(slack.messages) < len(distinct):
                    missing.append(f"{len(distinct) - len(slack.messages)} alerts not in Slack")
            if not missing or time.monotonic() > deadline:
                return missing
            _progress("  waiting for the worker: " + "; ".join(missing))
            time.sleep(0.5)
    finally:
        probe.close()


def _last_mae(windows: list[PerformanceWindow], version: str) -> tuple[float, float] | None:
    """The MAE of a version's last realised window, and its baseline."""
    for window in reversed(windows):
        if (window.model_id, window.model_version, window.source) == (MODEL, version, "realised"):
            check = next(c for c in window.checks if c.metric == "mae")
            if check.value is not None and check.baseline is not None:
                return check.value, check.baseline
    return None


def _report_performance(firing: list[Alert], port: int, windows: list[PerformanceWindow]) -> None:
    def metric(name: str, model: str, which: str) -> float:
        return scrape_total(port, name + "{", (f'model="{model}"', f'metric="{which}"'))

    joined = scrape_total(port, "driftline_labels_total", (ETA_ONLY, 'outcome="joined"'))
    print(
        f"  performance (a delivery's real time is known {LABEL_LAG:,} predictions later; "
        f"1 in {UNLABELLED} never)"
    )
    mae = _last_mae(windows, MODEL_VERSION) or (math.nan, math.nan)
    print(
        f"  {MODEL:<5} version {MODEL_VERSION} MAE over its last 500 labels {mae[0]:.1f} min "
        f"(baseline {mae[1]:.1f}); labels joined {joined:,.0f} (both versions)"
    )
    print(
        f"  {LATE_MODEL:<5} accuracy over the last 500 labels "
        f"{metric('driftline_performance', LATE_MODEL, 'accuracy'):.2f} (baseline "
        f"{metric('driftline_performance_baseline', LATE_MODEL, 'accuracy'):.2f}); "
        "estimated from the scores of the latest predictions "
        f"{metric('driftline_performance_estimate', LATE_MODEL, 'accuracy'):.2f}"
    )
    print(
        "        (the estimate follows the inputs' shift, not that deliveries now take longer"
        " than the ETA says: only labels show that)"
    )
    before = [a for a in firing if a.model_id != MODEL or a.model_version == MODEL_VERSION]
    for alert in [a for a in before if a.kind == "performance"]:
        top = alert.features[0]
        # the estimate's episodes count predictions, the others labelled events
        counted = "event" if top.detector == "cbpe" else "labelled event"
        print(
            f"  {alert.severity} performance alert on {alert.model_id} at {counted} "
            f"{alert.events_seen:,}: {top.feature} {top.detector}"
        )
    print()


def _report_loop(
    firing: list[Alert],
    resolved: dict[str, Alert],
    windows: list[PerformanceWindow],
    rollout: Rollout | None,
    port: int,
) -> None:
    """The retraining loop's steps, each at its event of the ETA model."""
    print(f"  the retraining loop ({MODEL}; event positions depend on timing)")
    if rollout is None:
        print("  no retrained version came: see .driftline/demo/retrain/\n")
        return
    request, version = rollout.request, rollout.status.new_version
    if request is not None:
        asked = [a for a in firing if a.alert_id in request.alert_ids]
        why = ", ".join(f"{a.kind} alert at event {a.events_seen:,}" for a in asked)
        sample = request.sample
        rows = f"{sample.events:,} events ({sample.labelled:,} labelled)" if sample else "none"
        print(f"  1 request at event {request.events_seen:,} for the {why}; sample {rows}")
    print(
        f"  2 driftline retrain: accepted, running, succeeded as version {version} (trained "
        f"on {rollout.trained_on:,} labelled rows; its profile published)"
    )
    print(
        f"  3 version {version} served events {rollout.first_event:,} to "
        f"{rollout.first_event + rollout.events - 1:,}"
    )
    since = request.events_seen if request is not None else 0
    closed = sorted(
        (
            a
            for a in resolved.values()
            if (a.model_id, a.model_version) == (MODEL, MODEL_VERSION) and a.events_seen >= since
        ),
        key=lambda a: (a.events_seen, a.kind),
    )
    for alert in closed:
        reason = alert.message.split(": ", 1)[-1]
        print(
            f"  4 version {MODEL_VERSION}'s {alert.kind} episode resolved at event "
            f"{alert.events_seen:,}: {reason}"
        )
    new = [a for a in firing if a.model_id == MODEL and a.model_version == version]
    mae = _last_mae(windows, version)
    said = f"MAE over its last 500 labels {mae[0]:.1f} min (baseline {mae[1]:.1f})" if mae else ""
    alerts = ", ".join(f"{a.kind} at event {a.events_seen:,}" for a in new) or "no alert"
    print(f"  5 version {version}: {alerts}; {said}")
    live = [
        v
        for v in (MODEL_VERSION, version)
        if scrape_total(port, "driftline_live_versions", (ETA_ONLY, f'version="{v}"'))
    ]
    print(
        f"  6 live versions of {MODEL} (Grafana's Live versions panel): {', '.join(live)}; "
        f"the status page and the report follow version {version}\n"
    )


def _report(
    scenario: Scenario,
    alerts: AlertLog,
    processed: float,
    dead: float,
    topics: TopicSettings,
    metrics_port: int,
    started: float,
    sent: tuple[int, int],
    delivered: list[str],
    where: list[str],
    windows: list[PerformanceWindow],
    rollout: Rollout | None,
) -> None:
    with alerts.lock:  # in a fixed order, not the order they arrived in
        firing = sorted(
            (a for a in alerts.alerts if a.status == "firing"),
            key=lambda a: (a.model_id, a.kind, a.window_start_event),
        )
    print("\n\nSummary")
    print(f"  events processed     {processed:,.0f} (SDK sent {sent[0]:,}, dropped {sent[1]})")
    print(f"  dead-lettered        {dead:.0f} messages/rows (reasons in the message headers)")
    print(f"  run time             {time.monotonic() - started:.0f} s")
    with alerts.lock:
        resolved = {a.alert_id: a for a in alerts.alerts if a.status == "resolved"}
    quality = [a for a in firing if a.kind == "data_quality"]
    print("\n  data quality (pipeline breaks, reported apart from drift)")
    for alert in quality:
        top = alert.features[0]
        rate = f", {top.rate:.0%} of events" if top.rate is not None else ""
        end = resolved.get(alert.alert_id)
        print(
            f"  {alert.severity} data_quality alert {alert.alert_id} at event "
            f"{alert.events_seen:,}: {top.feature} {top.detector}{rate} from event "
            f"{top.events_seen:,} (the outage began at {scenario.outage[0]:,}); "
            + (f"resolved at event {end.events_seen:,}" if end else "still open")
        )
    if not quality:
        print(f"  none: the {OUTAGE_FEATURE} outage was missed")
    drift = [
        a
        for a in firing
        if a.kind == "drift" and a.model_id == MODEL and a.model_version == MODEL_VERSION
    ]
    for alert in drift:
        print(
            f"\n  {alert.severity} drift alert {alert.alert_id} at event "
            f"{alert.events_seen:,}: {alert.features_drifting} feature(s), grouped"
        )
    signalled = {f.feature: f.events_seen for a in drift for f in a.features}
    print("\n  feature            first signal at event  detection delay (events)")
    for feature in FEATURES:
        if feature not in signalled:
            if feature in DRIFTING:
                print(f"  {feature:<18} {'-':>21}  missed")
            continue
        first = signalled[feature]
        delay = first - scenario.onset
        verdict = f"{delay:,}" if delay >= 0 else "false alarm (before the drift)"
        if feature not in DRIFTING:
            verdict = "false alarm (feature did not drift)"
        print(f"  {feature:<18} {first:>21,}  {verdict}")
    quiet = [f for f in FEATURES if f not in DRIFTING and f not in signalled]
    print(f"  quiet (no alert, as expected): {', '.join(quiet)}\n")
    _report_performance(firing, metrics_port, windows)
    _report_loop(firing, resolved, windows, rollout, metrics_port)
    print("\n".join(delivered))
    print("\nWhere to look next")
    print(f"  alerts topic      {topics.alerts}  (kcat -C -t <topic> -b <broker>)")
    print(f"  dead letters      {topics.dead_letter}")
    print(f"  metrics           http://127.0.0.1:{metrics_port}/metrics while a worker runs")
    print("  worker log        .driftline/demo/worker.log; config and profile beside it")
    print("\n".join(where))
    print("  your own model    driftline baseline, then driftline worker --config your.yaml")
