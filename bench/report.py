"""The report on a large input: how long ``driftline report`` takes and how big its file is.

A model with 50 features (40 numeric, 10 categorical) and ``--events`` events (1,000,000 by
default) in columnar messages of 1,000; three features shift at 60% of the stream. The stream
goes through ``driftline replay``'s code once (its alerts and feature and performance windows
are the report's input), then the report is built from those records and the events file
(its last 5,000 events), and timed alone. Prints the sizes and times.

    .venv/bin/python bench/report.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from driftline.config import config_from_dict
from driftline.detectors.profile import build_profile
from driftline.monitoring.replay import read_messages, replay
from driftline.report.build import build_reports

NUMERIC, CATEGORICAL = 40, 10
CATS = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
P = np.array([0.3, 0.25, 0.2, 0.12, 0.08, 0.05])
MESSAGE = 1_000


def columns(rng: np.random.Generator, n: int, shifted: bool) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for i in range(NUMERIC):
        cols[f"n{i}"] = np.round(rng.normal(1.0 if shifted and i < 2 else 0.0, 1.0, n), 3)
    for i in range(CATEGORICAL):
        p = P[::-1] if shifted and i == 0 else P
        cols[f"c{i}"] = rng.choice(CATS, n, p=p)
    return cols


def write_stream(path: Path, n: int, rng: np.random.Generator) -> None:
    with path.open("wb") as out:
        for start in range(0, n, MESSAGE):
            size = min(MESSAGE, n - start)
            cols = columns(rng, size, shifted=start >= 0.6 * n)
            doc = {
                "model_id": "wide",
                "model_version": "1",
                "columns": {
                    "prediction_id": [f"e{start + i}" for i in range(size)],
                    "timestamp": [1_700_000_000.0 + (start + i) * 0.01 for i in range(size)],
                    "prediction": [0.0] * size,
                    "features": {k: v.tolist() for k, v in cols.items()},
                },
            }
            out.write(orjson.dumps(doc) + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        features = {f"n{i}": "numeric" for i in range(NUMERIC)}
        features |= {f"c{i}": "categorical" for i in range(CATEGORICAL)}
        reference = columns(rng, 20_000, shifted=False)
        profile = build_profile("wide", "1", reference, features)
        (d / "wide.json").write_bytes(profile.to_json())
        config = config_from_dict(
            {
                "models": {
                    "wide": {
                        "task": "regression",
                        "features": features,
                        "reference": str(d / "wide.json"),
                    }
                }
            }
        )
        events = d / "events.jsonl"
        started = time.perf_counter()
        write_stream(events, args.events, rng)
        wrote = time.perf_counter() - started
        started = time.perf_counter()
        with (d / "alerts.jsonl").open("wb") as alerts, (d / "history.jsonl").open("wb") as history:
            summary = replay(config, read_messages(events), alerts, None, None, history)
        replayed = time.perf_counter() - started
        started = time.perf_counter()
        (page,) = build_reports(
            config,
            d / "out",
            alerts=d / "alerts.jsonl",
            events=events,
            history=d / "history.jsonl",
        )
        built = time.perf_counter() - started
        windows = len((d / "history.jsonl").read_bytes().splitlines())
        print(f"{args.events:,} events x {NUMERIC + CATEGORICAL} features, one model")
        print("| step | seconds | size |")
        print("|---|---|---|")
        print(f"| write the events file | {wrote:.1f} | {events.stat().st_size / 1e6:,.0f} MB |")
        print(
            f"| driftline replay (alerts, {windows} feature windows) | {replayed:.1f} | "
            f"{summary.events:,} events, {len(summary.alerts)} alert records |"
        )
        print(f"| driftline report | {built:.2f} | {page.stat().st_size / 1e3:,.0f} KB |")


if __name__ == "__main__":
    main()
