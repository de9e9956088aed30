"""The label join and performance monitoring: labels per second, and memory per waiting
prediction.

In one process, side by side (alternating rounds, so machine noise hits both):
- the prediction pipeline on a binary classifier's messages (500 events each, with scores)
  with ``performance.enabled`` false, and true (each prediction then waits in the join);
- the labels of those predictions through ``process_labels`` (decode, join, windowed
  metrics, error CUSUM, label drift, alert policy), 500 per message;
- the join alone (``LabelJoin`` on a dict, no metrics).
Memory: tracemalloc's count of what the join store holds per waiting prediction (a dict here;
the worker's ``memory://`` Faust table is a dict too, plus the changelog's write buffers).

    .venv/bin/python bench/label_join.py [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from driftline.config import config_from_dict
from driftline.events.codec import BatchDecoder, ModelSchema
from driftline.monitoring.join import LabelJoin
from driftline.monitoring.pipeline import Pipeline
from tests.streams import (
    FEATURES,
    batch_message,
    classifier_events,
    counted,
    write_classifier_profile,
)

BATCH = 500


def pipeline(profile: Path, enabled: bool) -> Pipeline:
    model = {
        "task": "binary",
        "features": dict(FEATURES),
        "reference": str(profile),
        "performance": {"enabled": enabled, "window_labels": 500},
    }
    return counted(config_from_dict({"models": {"clf": model}}))


def workload(n: int) -> tuple[list[bytes], list[bytes]]:
    preds, labels = classifier_events(n, np.random.default_rng(1))
    later = [{**e, "timestamp": e["timestamp"] + 600} for e in labels]
    p = [batch_message("clf", preds[i : i + BATCH]) for i in range(0, n, BATCH)]
    ls = [
        orjson.dumps({"model_id": "clf", "events": later[i : i + BATCH]})
        for i in range(0, n, BATCH)
    ]
    return p, ls


def timed_round(profile: Path, preds: list[bytes], labels: list[bytes], n: int) -> dict[str, float]:
    out = {}
    off, on = pipeline(profile, False), pipeline(profile, True)
    state: dict[str, bytes] = {}
    t0 = time.perf_counter()
    for value in preds:
        off.process_messages([value], state, joins={})
    out["predictions, performance off"] = n / (time.perf_counter() - t0)
    state, joins = {}, {}
    t0 = time.perf_counter()
    for value in preds:
        on.process_messages([value], state, joins=joins)
    out["predictions, performance on (waiting in the join)"] = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for value in labels:
        on.process_labels([value], state, joins)
    out["labels: decode, join, metrics, alert policy"] = n / (time.perf_counter() - t0)
    # the join alone, on decoded batches
    decoder = BatchDecoder({"clf": ModelSchema(("x1", "x2"), ("color",))})
    pbatches = [decoder.decode_predictions(v).batch for v in preds]
    lbatches = [decoder.decode_labels(v).batch for v in labels]
    join, store = LabelJoin({"clf": 86_400.0}), {}
    t0 = time.perf_counter()
    for b in pbatches:
        join.add_predictions(b, store)  # type: ignore[arg-type]
    for b in lbatches:
        join.add_labels(b, store)  # type: ignore[arg-type]
    out["join alone: predictions in, labels joined"] = n / (time.perf_counter() - t0)
    return out


def memory_per_waiting(preds: list[bytes]) -> float:
    decoder = BatchDecoder({"clf": ModelSchema(("x1", "x2"), ("color",))})
    batches = [decoder.decode_predictions(v).batch for v in preds]
    join, store = LabelJoin({"clf": 86_400.0}), {}
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for b in batches:
        join.add_predictions(b, store)  # type: ignore[arg-type]
    del batches, b  # the decoded batches materialise columns when read: not the join's
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before  # what is still held: the store
    tracemalloc.stop()
    return grown / join.waiting("clf", store)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.events - args.events % BATCH
    preds, labels = workload(n)
    with tempfile.TemporaryDirectory() as tmp:
        profile = write_classifier_profile(Path(tmp) / "clf.json")
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, value in timed_round(profile, preds, labels, n).items():
                best[name] = max(best.get(name, 0.0), value)
    print(f"{n:,} predictions and their {n:,} labels, {BATCH} per message, best of {args.rounds}")
    print(f"{'path':<52} {'events/s':>10}  {'/ perf off':>10}")
    base = best["predictions, performance off"]
    for name, value in best.items():
        print(f"{name:<52} {value:>10,.0f}  {value / base:>10.2f}")
    print(
        f"\nmemory per waiting prediction (the join's dict): {memory_per_waiting(preds):,.0f} bytes"
    )


if __name__ == "__main__":
    main()
