"""Throughput with 1, 2 and 3 worker processes in one consumer group (6 partitions).

Twelve models' batched messages (500 events each, the throughput bench's 25 features), timed
from the first processed event to the last, summed over the workers, two ways:

- scaling out: the messages are produced first, then N workers are launched at once, so the
  rebalances as they join (and Faust's table recovery after each) are part of the time;
- steady: the N workers form the group on the empty topic first (each reports consumer lag
  for its share of the 6 partitions), then the messages are produced.

Usage: ``.venv/bin/python bench/scale_out.py [--quick]``. On a machine with fewer cores than
workers, the workers share the cores: read the ratio against the core count.
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

from bench.throughput import messages, process_cpu, sleep_for_most_of_the_rest, workspace
from tests.conftest import WorkerProcess

MODELS = [f"m{i:02d}" for i in range(12)]


def keyed(batches: list[bytes]) -> list[tuple[bytes, bytes]]:
    """The same events for each model, under its own id, keyed by it."""
    return [
        (m.encode(), batch.replace(b'"model_id":"bench"', b'"model_id":"%s"' % m.encode()))
        for batch in batches
        for m in MODELS
    ]


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20, max_request_size=16 << 20
    )
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def assigned(worker: WorkerProcess) -> int:
    """Predictions partitions this worker reports lag for (its share of the group)."""
    topic = f'topic="{worker.topic("predictions")}"'
    lines = worker._metrics_text().splitlines()
    return sum(ln.startswith("driftline_consumer_lag{") and topic in ln for ln in lines)


def run(tmp: Path, bootstrap: str, model: dict, batches: list[bytes], n: int, k: int,
        steady: bool) -> tuple[float, float]:  # fmt: skip
    workers = [WorkerProcess(tmp / "w0", bootstrap, dict.fromkeys(MODELS, model), partitions=6)]
    workers += [workers[0].peer(tmp / f"w{i}") for i in range(1, k)]
    records = keyed(batches)
    if not steady:
        produce(bootstrap, workers[0].topic("predictions"), records)
    for w in workers:
        w.launch()
    try:
        for w in workers:
            w.wait_up()
        if steady:  # every worker holds partitions, all 6 are held: the group has formed
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                shares = [assigned(w) for w in workers]
                if sum(shares) == 6 and min(shares) > 0:
                    break
                time.sleep(0.5)
            else:
                raise RuntimeError(f"the group did not form: {shares}")
            produce(bootstrap, workers[0].topic("predictions"), records)

        def processed() -> float:
            return sum(w.processed() for w in workers)

        def cpu() -> float:
            return sum(process_cpu(w.proc.pid) for w in workers if w.proc is not None)

        while processed() == 0:
            time.sleep(0.01)
        t0, first, cpu0 = time.perf_counter(), processed(), cpu()
        deadline = time.monotonic() + 600
        while (done := processed()) < n and time.monotonic() < deadline:
            sleep_for_most_of_the_rest(t0, first, done, n)
        elapsed = time.perf_counter() - t0
        return (processed() - first) / elapsed, (cpu() - cpu0) / elapsed
    finally:
        for w in workers:
            w.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    per_model_events = 10_000 if args.quick else 40_000
    # sent 3 times: at about 300,000 events/s a worker would otherwise be timed for 1.5 s
    repeats = 1 if args.quick else 3
    rng = np.random.default_rng(0)
    with workspace(rng) as (bootstrap, tmp, model):
        batches = messages(per_model_events, 500, rng, columnar=True) * repeats  # "bench"
        n = per_model_events * repeats * len(MODELS)
        rates: dict[tuple[int, bool], tuple[float, float]] = {}
        for k in (1, 2, 3):
            for steady in (False, True):
                run_dir = tmp / f"k{k}-{'steady' if steady else 'join'}"
                run_dir.mkdir()
                (run_dir / "w0").mkdir()
                rates[k, steady] = run(run_dir, bootstrap, model, batches, n, k, steady)
                how = "steady" if steady else "scaling out"
                print(f"{k} worker(s), {how}: {rates[k, steady][0]:,.0f} events/s", flush=True)
    print(f"\n{len(MODELS)} models, 6 partitions, {n:,} events, {os.cpu_count()} CPUs")
    print("(cores busy: the workers' CPU seconds per second of the run)\n")
    head = "| workers | scaling out: events/s | vs 1 | cores busy | steady: events/s | vs 1 |"
    print(head + " cores busy |")
    print("|---|---|---|---|---|---|---|")
    for k in (1, 2, 3):
        (join, join_cores), (steady, steady_cores) = rates[k, False], rates[k, True]
        print(
            f"| {k} | {join:,.0f} | {join / rates[1, False][0]:.2f} | {join_cores:.2f} | "
            f"{steady:,.0f} | {steady / rates[1, True][0]:.2f} | {steady_cores:.2f} |"
        )


if __name__ == "__main__":
    main()
