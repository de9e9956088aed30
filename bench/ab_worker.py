"""The worker at another revision against the worker now, alternated on the same messages.

For a change that should not move the worker's speed (a restructuring): each round times
getmany on the topic, then the worker of each side (``git archive REV`` unpacked in a scratch
directory, run from there, so the other side's code is what the worker imports). Columnar
500-event messages, the throughput bench's model. With ``--labels``: a binary classifier with
performance monitoring on instead, its predictions timed, then their labels (the throughput
bench's ``--labels`` run, each side in turn). Usage:

    .venv/bin/python bench/ab_worker.py REV [--events N] [--rounds R] [--labels]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import (  # noqa: E402
    LABEL_EVENTS,
    bare_consumer,
    classifier_messages,
    joined,
    messages,
    prepared_worker,
    produce,
    timed_counter,
    timed_worker,
    workspace,
)
from tests.streams import FEATURES, write_classifier_profile  # noqa: E402


def checkout(rev: str, into: Path) -> Path:
    """``rev``'s driftline package unpacked under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "driftline"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "xf", "-", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rev", help="the other side: a commit, tag or branch")
    parser.add_argument("--events", type=int, default=900_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--labels", action="store_true", help="the label path instead")
    args = parser.parse_args()
    if args.labels:
        labels_ab(args.rev, args.rounds)
        return
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as other_dir, workspace(rng) as (bootstrap, tmp, model):
        sides = [(args.rev, checkout(args.rev, Path(other_dir))), ("now", ROOT)]
        distinct = min(args.events, 300_000)
        msgs = messages(distinct, 500, rng, columnar=True) * (args.events // distinct)
        n = len(msgs) * 500
        print("| code | round | worker ev/s | getmany ev/s | worker / getmany | CPU s per M ev |")
        print("|---|---|---|---|---|---|")
        for r in range(args.rounds):
            for name, tree in sides:
                run_dir = tmp / f"{name}-{r}"
                run_dir.mkdir()
                worker = prepared_worker(run_dir, bootstrap, model, msgs)
                limit = bare_consumer(bootstrap, worker.topic("predictions"), len(msgs), 500)
                here = os.getcwd()
                os.chdir(tree)  # the worker process imports driftline from its cwd
                try:
                    run = timed_worker(worker, n)
                finally:
                    os.chdir(here)
                print(
                    f"| {name} | {r} | {run.rate:,.0f} | {limit.rate:,.0f} | "
                    f"{run.rate / limit.rate:.2f} | {run.cpu_per_million:.1f} |",
                    flush=True,
                )


def labels_ab(rev: str, rounds: int) -> None:
    """Predictions, then their labels, through a worker with performance on, each side."""
    n = LABEL_EVENTS
    rng = np.random.default_rng(1)
    p_msgs, l_msgs = classifier_messages(n, rng)
    with tempfile.TemporaryDirectory() as other_dir, workspace(rng) as (bootstrap, tmp, _):
        sides = [(rev, checkout(rev, Path(other_dir))), ("now", ROOT)]
        profile = write_classifier_profile(tmp / "clf.json")
        model = {
            "task": "binary",
            "features": dict(FEATURES),
            "reference": str(profile),
            "performance": {"enabled": True, "label_ttl_seconds": 2 * n},
        }
        print(f"binary classifier, performance on, {n:,} predictions then their labels")
        print("| code | round | predictions ev/s | labels ev/s | CPU s per M predictions |")
        print("|---|---|---|---|---|")
        for r in range(rounds):
            for name, tree in sides:
                run_dir = tmp / f"{name}-{r}"
                run_dir.mkdir()
                worker = prepared_worker(
                    run_dir, bootstrap, model, p_msgs, model_id="clf", partitions=1
                )
                here = os.getcwd()
                os.chdir(tree)  # the worker process imports driftline from its cwd
                try:
                    worker.start()
                    predictions = timed_counter(worker, n, worker.processed)
                    produce(bootstrap, worker.topic("labels"), b"clf", l_msgs)
                    done = timed_counter(worker, n, joined(worker))
                finally:
                    worker.stop()
                    os.chdir(here)
                print(
                    f"| {name} | {r} | {predictions.rate:,.0f} | {done.rate:,.0f} | "
                    f"{predictions.cpu_per_million:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
