"""Produce-to-alert latency on the real broker, beyond the detector's own delay.

A worker watches ``--models`` models (10 numeric features each, N(0, 1) references). Traffic
goes at ``--rate`` events/s in messages of 50 events, each event stamped with the wall clock
when it is produced. Model i drifts (every feature +1 sd) from second 10 + 2i on. A consumer
of the alerts topic notes when each firing drift alert arrives; its latency is the arrival
time minus the timestamp of the last event the alert covers (``last_event_time``): the time
the pipeline adds after the detector has seen enough events. One sample per model.

    .venv/bin/python bench/alert_latency.py [--models 20] [--rate 4000]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson

from kafka import KafkaConsumer, KafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throughput import workspace
from driftline.detectors.profile import build_profile
from driftline.events.records import Alert
from tests.conftest import WorkerProcess

WIDTH = 10
PER_MESSAGE = 50
FIRST_DRIFT_S, DRIFT_EVERY_S = 10.0, 2.0


def model_config(tmp: Path) -> dict:
    rng = np.random.default_rng(1)
    names = [f"f{i}" for i in range(WIDTH)]
    kinds = dict.fromkeys(names, "numeric")
    profile = build_profile("m", "1", {n: rng.normal(0, 1, 20_000) for n in names}, kinds)
    (tmp / "ref.json").write_bytes(profile.to_json())
    return {"task": "regression", "features": kinds, "reference": str(tmp / "ref.json")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rate", type=float, default=4_000.0, help="events/s, all models")
    args = parser.parse_args()
    models = [f"m{i:02d}" for i in range(args.models)]
    duration = FIRST_DRIFT_S + DRIFT_EVERY_S * len(models) + 10.0
    rng = np.random.default_rng(0)
    with workspace(rng) as (bootstrap, tmp, _):
        model = model_config(tmp)
        (tmp / "w").mkdir()
        worker = WorkerProcess(tmp / "w", bootstrap, dict.fromkeys(models, model), partitions=4)
        arrivals: dict[str, tuple[float, Alert]] = {}
        stop = threading.Event()

        def watch_alerts() -> None:
            consumer = KafkaConsumer(
                worker.topic("alerts"),
                bootstrap_servers=bootstrap,
                auto_offset_reset="earliest",
                consumer_timeout_ms=500,
            )
            while not stop.is_set():
                for record in consumer:
                    alert = Alert.from_json(record.value)
                    if alert.status == "firing" and alert.kind == "drift":
                        arrivals.setdefault(alert.model_id, (time.time(), alert))
            consumer.close()

        worker.start()
        watcher = threading.Thread(target=watch_alerts)
        watcher.start()
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        sent, t0, seq = 0, time.monotonic(), 0
        try:
            while (elapsed := time.monotonic() - t0) < duration:
                for i, m in enumerate(models):
                    shift = 1.0 if elapsed >= FIRST_DRIFT_S + DRIFT_EVERY_S * i else 0.0
                    now = time.time()
                    cols = {
                        f"f{j}": (rng.normal(shift, 1, PER_MESSAGE)).tolist() for j in range(WIDTH)
                    }
                    doc = {
                        "model_id": m,
                        "model_version": "1",
                        "columns": {
                            "prediction_id": [f"{m}-{seq + k}" for k in range(PER_MESSAGE)],
                            "timestamp": [now] * PER_MESSAGE,
                            "prediction": [0.0] * PER_MESSAGE,
                            "features": cols,
                        },
                    }
                    producer.send(
                        worker.topic("predictions"), key=m.encode(), value=orjson.dumps(doc)
                    )
                    sent += PER_MESSAGE
                seq += PER_MESSAGE
                ahead = sent / args.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            producer.flush()
            time.sleep(5)
        finally:
            producer.close()
            stop.set()
            watcher.join()
            worker.stop()
    latencies = sorted(arrived - alert.last_event_time for arrived, alert in arrivals.values())
    print(
        f"\n{len(models)} models x {WIDTH} features, {args.rate:,.0f} events/s, "
        f"{sent:,} events in {duration:.0f} s; drift alerts: {len(latencies)} of {len(models)}\n"
    )
    if latencies:
        q = np.quantile(latencies, [0.5, 0.9, 0.99])
        print("| alerts | p50 s | p90 s | p99 s | max s |")
        print("|---|---|---|---|---|")
        print(f"| {len(latencies)} | {q[0]:.2f} | {q[1]:.2f} | {q[2]:.2f} | {latencies[-1]:.2f} |")


if __name__ == "__main__":
    main()
