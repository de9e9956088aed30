"""Single-event messages through the pipeline in-process: take size x the cycle collector.

Usage: ``python bench/take_size.py [EVENTS]``. Runs the pipeline (no Kafka) over the same
single-event messages in takes of several sizes, with Python's cycle collector paused during a
run (what ``Pipeline.process_messages`` does) and left on, alternating the cases, and prints
the median microseconds per event of five rounds. This is what chose
``worker.micro_batch_messages`` and the pause; bench/throughput.py gives the worker's rate.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.throughput import bench_model, messages
from driftline.config import config_from_dict
from tests.streams import counted

TAKES = (200, 1000, 2000)
ROUNDS = 5


def seconds(
    run: Callable[[list[bytes], dict[str, bytes]], object], msgs: list[bytes], take: int
) -> float:
    state: dict[str, bytes] = {}
    started = time.perf_counter()
    for start in range(0, len(msgs), take):
        run(msgs[start : start + take], state)
    return time.perf_counter() - started


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        model = bench_model(Path(tmp), rng)
        msgs = messages(n, 1, rng)
        pipeline = counted(config_from_dict({"models": {"bench": model}}))
        paused = pipeline.process_messages
        collected = paused.__wrapped__.__get__(pipeline)  # the undecorated method
        seconds(paused, msgs[: n // 10], 200)  # warm-up: imports, caches, first allocations
        times: dict[tuple[int, str], list[float]] = {}
        for _ in range(ROUNDS):
            for take in TAKES:
                for name, run in (("on", collected), ("paused", paused)):
                    times.setdefault((take, name), []).append(seconds(run, msgs, take) / n * 1e6)
    print(f"\nsingle-event messages, {n:,} events, median of {ROUNDS} alternated rounds\n")
    print("| take (messages) | us/event, collector on | us/event, paused | paused/on |")
    print("|---|---|---|---|")
    for take in TAKES:
        on = statistics.median(times[(take, "on")])
        off = statistics.median(times[(take, "paused")])
        print(f"| {take:,} | {on:.1f} | {off:.1f} | {off / on:.2f} |")


if __name__ == "__main__":
    main()
