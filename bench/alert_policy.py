"""What the alert policy costs: the in-process pipeline on a quiet stream and during an episode.

While nothing drifts a batch is one detector run per feature; while an episode is open (or a
signal appears) the monitor cuts each batch at the policy windows (500 events) and fire
points, so that alerts do not depend on batch boundaries. This measures that cost side by
side, in one process: 25 numeric features, columnar messages of 500 events, takes of 200
messages (the worker's defaults). The streams are the ones tests/unit/monitoring/test_alerting.py
uses.

    .venv/bin/python bench/alert_policy.py [--events N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from driftline.monitoring.pipeline import Pipeline
from tests.unit.monitoring.test_alerting import make_pipeline, messages, stream

WIDTH = 25


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
    n, cuts = args.events, list(range(500, args.events, 500))
    quiet = messages(stream(n, WIDTH, []), cuts)
    drifting = messages(stream(n, WIDTH, [(0, n, 1.0, WIDTH)]), cuts)
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for label, msgs in [("quiet stream", quiet), ("episode open (1 sd shift)", drifting)]:
            rate(make_pipeline(Path(tmp), width=WIDTH), msgs[:40])  # warm up
            events_per_s, alerts = rate(make_pipeline(Path(tmp), width=WIDTH), msgs)
            rows.append((label, events_per_s, alerts))
    base = rows[0][1]
    print(f"{'stream':<28} {'events/s':>10} {'vs quiet':>9} {'alerts':>7}")
    for label, events_per_s, alerts in rows:
        print(f"{label:<28} {events_per_s:>10,.0f} {events_per_s / base:>9.2f} {alerts:>7}")


if __name__ == "__main__":
    main()
