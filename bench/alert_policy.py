"""What the alert policy costs: the in-process pipeline on a quiet stream and during an episode.

While nothing drifts a batch is one detector run per feature; while an episode is open (or a
signal appears) the monitor cuts each batch at the policy windows (500 events) and fire
points, so that alerts do not depend on batch boundaries. This measures that cost side by
side, in one process: 25 numeric features, columnar messages of 500 events.

    .venv/bin/python bench/alert_policy.py [--events N]
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
from driftline.pipeline import Pipeline

WIDTH = 25


def pipeline(tmp: Path) -> Pipeline:
    rng = np.random.default_rng(100)
    names = [f"f{i:02d}" for i in range(WIDTH)]
    kinds = dict.fromkeys(names, "numeric")
    profile = build_profile("b", "1", {n: rng.normal(0, 1, 20_000) for n in names}, kinds)
    (tmp / "b.json").write_bytes(profile.to_json())
    model = {"task": "regression", "features": kinds, "reference": str(tmp / "b.json")}
    return Pipeline.from_config(config_from_dict({"models": {"b": model}}))


def messages(n: int, shift: float, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n, 500):
        cols = {f"f{i:02d}": (rng.normal(shift, 1.0, 500)).tolist() for i in range(WIDTH)}
        out.append(
            orjson.dumps(
                {
                    "model_id": "b",
                    "model_version": "1",
                    "columns": {
                        "prediction_id": list(range(start, start + 500)),
                        "timestamp": [1.7e9 + start + i for i in range(500)],
                        "prediction": [0.0] * 500,
                        "features": cols,
                    },
                }
            )
        )
    return out


def rate(p: Pipeline, msgs: list[bytes], take: int = 200) -> tuple[float, int]:
    state: dict[str, bytes] = {}
    alerts = 0
    t0 = time.perf_counter()
    for i in range(0, len(msgs), take):
        alerts += len(p.process_messages(msgs[i : i + take], state).alerts)
    return len(msgs) * 500 / (time.perf_counter() - t0), alerts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    quiet, drifting = messages(args.events, 0.0), messages(args.events, 1.0)
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for label, msgs in [("quiet stream", quiet), ("episode open (1 sd shift)", drifting)]:
            rate(pipeline(Path(tmp)), msgs[:40])  # warm up
            events_per_s, alerts = rate(pipeline(Path(tmp)), msgs)
            rows.append((label, events_per_s, alerts))
    base = rows[0][1]
    print(f"{'stream':<28} {'events/s':>10} {'vs quiet':>9} {'alerts':>7}")
    for label, events_per_s, alerts in rows:
        print(f"{label:<28} {events_per_s:>10,.0f} {events_per_s / base:>9.2f} {alerts:>7}")


if __name__ == "__main__":
    main()
