"""Throughput with 1, 2 and 3 worker processes in one consumer group (6 partitions).

Twelve models' batched messages (500 events each, the throughput bench's 25 features) are
produced first; then N workers are launched at once and timed from the first processed event
to the last, summed over the workers. Rebalances as the workers join are part of the time, as
in a deployment that scales out. Usage: ``.venv/bin/python bench/scale_out.py [--quick]``.
On a machine with fewer cores than workers, the workers share the cores: read the ratio
against the core count.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from kafka import KafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throughput import messages, workspace
from tests.conftest import WorkerProcess

MODELS = [f"m{i:02d}" for i in range(12)]


def run(tmp: Path, bootstrap: str, model: dict, batches: list[bytes], n: int, k: int) -> float:
    workers = [WorkerProcess(tmp / "w0", bootstrap, dict.fromkeys(MODELS, model), partitions=6)]
    workers += [workers[0].peer(tmp / f"w{i}") for i in range(1, k)]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20, max_request_size=16 << 20
    )
    for batch in batches:
        for m in MODELS:  # the same events for each model, under its own id
            value = batch.replace(b'"model_id":"bench"', b'"model_id":"%s"' % m.encode())
            producer.send(workers[0].topic("predictions"), key=m.encode(), value=value)
    producer.flush()
    producer.close()
    for w in workers:
        w.launch()
    try:
        for w in workers:
            w.wait_up()

        def processed() -> float:
            return sum(w.processed() for w in workers)

        while processed() == 0:
            time.sleep(0.01)
        t0, first = time.perf_counter(), processed()
        deadline = time.monotonic() + 600
        while processed() < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return (processed() - first) / (time.perf_counter() - t0)
    finally:
        for w in workers:
            w.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    per_model_events = 10_000 if args.quick else 40_000
    rng = np.random.default_rng(0)
    with workspace(rng) as (bootstrap, tmp, model):
        batches = messages(per_model_events, 500, rng, columnar=True)  # model "bench"
        n = per_model_events * len(MODELS)
        rates = {}
        for k in (1, 2, 3):
            run_dir = tmp / f"k{k}"
            run_dir.mkdir()
            (run_dir / "w0").mkdir()
            rates[k] = run(run_dir, bootstrap, model, batches, n, k)
            print(f"{k} worker(s): {rates[k]:,.0f} events/s", flush=True)
    print(f"\n{len(MODELS)} models, 6 partitions, {n:,} events, {os.cpu_count()} CPUs\n")
    print("| workers | events/s | vs 1 worker |")
    print("|---|---|---|")
    for k, rate in rates.items():
        print(f"| {k} | {rate:,.0f} | {rate / rates[1]:.2f} |")


if __name__ == "__main__":
    main()
