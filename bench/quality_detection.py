"""Data-quality detection: delay per pipeline break, and false alarms on clean traffic.

The in-process pipeline (decode, detectors, alert policy: what the worker and replay run) on
the test model (two numeric features and one categorical, reference of 20,000 rows, default
budget of one false alarm per million events for the whole model), messages of 250 events.
Each break starts at event 3,000 (tests/streams.py, ``broken``); the clean stream is long.

    .venv/bin/python bench/quality_detection.py [--clean-events N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.streams import BREAKS, broken, events
from tests.unit.monitoring.test_quality import AT, pipeline, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clean-events", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"{'break (from event 3,000)':<26} {'cause named':<34} {'first signal':>12}"
            f" {'delay':>6} {'alert at':>9} {'severity':>9}"
        )
        for mode in BREAKS:
            rows = broken(events(6_000, np.random.default_rng(3)), mode, AT)
            alerts, _ = run(pipeline(Path(tmp)), rows)
            firing = [a for a in alerts if a.kind == "data_quality" and a.status == "firing"]
            for a in firing:
                causes = ", ".join(f"{f.feature} {f.detector}" for f in a.features)
                print(
                    f"{mode:<26} {causes:<34} {a.window_start_event:>12,}"
                    f" {a.window_start_event - AT:>6} {a.events_seen:>9,} {a.severity:>9}"
                )
            if not firing:
                print(f"{mode:<26} {'MISSED':<34}")
        clean = events(args.clean_events, np.random.default_rng(4))
        alerts, _ = run(pipeline(Path(tmp)), clean)
        quality = sum(a.kind == "data_quality" and a.status == "firing" for a in alerts)
        drift = sum(a.kind == "drift" and a.status == "firing" for a in alerts)
        print(
            f"\nclean stream of {args.clean_events:,} events: {quality} data-quality alerts, "
            f"{drift} drift alerts"
        )


if __name__ == "__main__":
    main()
