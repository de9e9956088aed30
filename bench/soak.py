"""Memory soak: a worker under steady traffic for 10 minutes, its resident memory sampled.

One ``driftline worker`` (default detectors, the throughput bench's model: 20 numeric and 5
categorical features) is fed a steady rate of columnar 500-event messages with fresh values,
ids and timestamps; every tenth 10,000-event stretch has a drifted feature, so alert episodes
open and resolve all along. RSS (VmRSS from /proc) is sampled every 15 s. Memory is "flat"
when the largest RSS after the warm-up (the first 2 minutes) is within 5% of the RSS at the
end of the warm-up. Usage: ``.venv/bin/python bench/soak.py`` (``--minutes 3`` for a short
run). Starts the local Kafka on port 39092 unless KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson

from kafka import KafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throughput import columns, workspace
from tests.conftest import WorkerProcess, scrape

BATCH = 500
WARM_UP_SECONDS = 120.0
SAMPLE_SECONDS = 15.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def message(rng: np.random.Generator, first: int, drifted: bool) -> bytes:
    cols = columns(BATCH, rng)
    if drifted:
        cols["n0"] = cols["n0"] + 2.0  # n0's reference is N(0, 1): a 2 sd shift
    now = time.time()
    table = {
        "prediction_id": [f"s{i}" for i in range(first, first + BATCH)],
        "timestamp": [now] * BATCH,
        "prediction": [1.0] * BATCH,
        "features": {k: v.tolist() for k, v in cols.items()},
    }
    return orjson.dumps({"model_id": "bench", "model_version": "1", "columns": table})


def produce(bootstrap: str, topic: str, rate: float, stop: threading.Event) -> None:
    """``rate`` events/s in 500-event messages until ``stop``."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=4 << 20)
    rng = np.random.default_rng(1)
    sent, started = 0, time.monotonic()
    while not stop.is_set():
        drifted = (sent // 10_000) % 10 == 9
        producer.send(topic, key=b"bench", value=message(rng, sent, drifted))
        sent += BATCH
        ahead = sent / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    producer.flush()
    producer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=5_000.0, help="events per second")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with workspace(rng) as (bootstrap, tmp, model):
        worker = WorkerProcess(tmp, bootstrap, {"bench": model}, alerts={"cooldown_seconds": 0})
        worker.start()
        assert worker.proc is not None
        pid = worker.proc.pid
        stop = threading.Event()
        feeder = threading.Thread(
            target=produce, args=(bootstrap, worker.topic("predictions"), args.rate, stop)
        )
        samples: list[tuple[float, float, float, float]] = []
        started = time.monotonic()
        feeder.start()
        try:
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                time.sleep(SAMPLE_SECONDS)
                elapsed = time.monotonic() - started
                alerts = scrape(worker.metrics_port, "driftline_alerts_total")
                samples.append((elapsed, worker.processed(), alerts, rss_mb(pid)))
                print(
                    f"{elapsed:6.0f} s  {samples[-1][1]:>12,.0f} events  "
                    f"{alerts:>5.0f} alerts  {samples[-1][3]:7.1f} MB",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            stop.set()
            feeder.join()
            worker.stop()

    print(f"\nWorker RSS under {args.rate:,.0f} events/s for {args.minutes:g} min\n")
    print("| minute | events processed | alert records | RSS MB |")
    print("|---|---|---|---|")
    for elapsed, processed, alerts, rss in samples:
        if round(elapsed) % 60 < SAMPLE_SECONDS:  # about one row per minute
            print(f"| {elapsed / 60:.1f} | {processed:,.0f} | {alerts:,.0f} | {rss:.1f} |")
    warm = [s for s in samples if s[0] <= WARM_UP_SECONDS]
    after = [s for s in samples if s[0] > WARM_UP_SECONDS]
    if warm and after:
        base, top, end = warm[-1][3], max(s[3] for s in after), after[-1][3]
        print(
            f"\nRSS after warm-up {base:.1f} MB, largest after {top:.1f} MB "
            f"(+{(top / base - 1) * 100:.1f}%), at the end {end:.1f} MB "
            f"({(end / base - 1) * 100:+.1f}%); target: within 5%"
        )


if __name__ == "__main__":
    main()
