"""What the data-quality checks cost: the in-process pipeline with them on and off.

The same columnar messages (500 events, 20 numeric and 5 categorical features: the throughput
bench's) through the whole pipeline (decode, detectors, alert policy), in one process, with
``data_quality.enabled`` true and false, alternating rounds so that machine noise hits both.
Clean traffic and traffic with one feature null in every event (a check firing throughout).

    .venv/bin/python bench/quality_cost.py [--events N] [--rounds R]
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

from bench.throughput import columns, features, messages
from driftline.config import config_from_dict
from driftline.detectors.profile import build_profile
from driftline.monitoring.pipeline import Pipeline
from tests.streams import counted


def pipeline(profile: Path, enabled: bool) -> Pipeline:
    model = {
        "task": "regression",
        "features": features(),
        "reference": str(profile),
        "data_quality": {"enabled": enabled},
    }
    return counted(config_from_dict({"models": {"bench": model}}))


def null_feature(msgs: list[bytes]) -> list[bytes]:
    out = []
    for value in msgs:
        doc = orjson.loads(value)
        doc["columns"]["features"]["n0"] = [None] * len(doc["columns"]["prediction_id"])
        out.append(orjson.dumps(doc))
    return out


def rate(p: Pipeline, msgs: list[bytes], take: int = 200) -> float:
    state: dict[str, bytes] = {}
    t0 = time.perf_counter()
    for i in range(0, len(msgs), take):
        p.process_messages(msgs[i : i + take], state)
    return len(msgs) * 500 / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "bench.json"
        ref = build_profile("bench", "1", columns(20_000, rng), features())
        profile.write_bytes(ref.to_json())
        clean = messages(args.events, 500, rng, columnar=True)
        streams = {"clean": clean, "n0 null throughout": null_feature(clean)}
        best: dict[tuple[str, bool], float] = {}
        for _ in range(args.rounds):
            for name, msgs in streams.items():
                for enabled in (True, False):
                    r = rate(pipeline(profile, enabled), msgs)
                    best[(name, enabled)] = max(best.get((name, enabled), 0.0), r)
    print(f"{args.events:,} events, best of {args.rounds} rounds, events/s in one process")
    print(f"{'traffic':<22} {'checks on':>12} {'checks off':>12} {'on / off':>9}")
    for name in streams:
        on, off = best[(name, True)], best[(name, False)]
        print(f"{name:<22} {on:>12,.0f} {off:>12,.0f} {on / off:>9.2f}")


if __name__ == "__main__":
    main()
