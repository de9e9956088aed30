"""Champion and challenger: how often the decision is made, and after how many shared labels.

Seeded shadow traffic of a binary classifier: per label, the champion is right with its
accuracy and the challenger with its own, independently. The comparison (the worker's
``VersionComparison``, fed labels in batches of 250) looks at every window of shared labels;
a decision is its ``comparison`` alert firing. On equal versions every decision is a false one,
and their share over the seeds should stay below 1 - confidence however many windows it looks
at; on a better challenger the share decided and the median labels to the decision are the
power.

Usage: ``.venv/bin/python bench/comparison.py`` (``--seeds 200 --labels 4000``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from driftline.config import ComparisonSettings
from driftline.monitoring.comparison import VersionComparison
from tests.unit.monitoring.test_comparison import FIRST_SEEN, shadow_pairs

SCENARIOS = (  # champion accuracy, challenger accuracy, margin
    (0.85, 0.85, 0.0),
    (0.85, 0.85, 0.01),
    (0.85, 0.86, 0.0),
    (0.85, 0.87, 0.0),
    (0.85, 0.87, 0.01),
    (0.85, 0.90, 0.0),
    (0.85, 0.90, 0.02),
)


def decided_at(pairs: list, settings: ComparisonSettings, window: int) -> int | None:
    """The shared labels at the first decision, or None."""
    comparison, state = VersionComparison("m", "binary", settings, window), {}
    for start in range(0, len(pairs), 500):  # 250 labels, two pairs each
        for alert in comparison.process(pairs[start : start + 500], FIRST_SEEN, state, 0).alerts:
            if alert.status == "firing":
                return int(alert.alert_id.rsplit("/", 1)[1])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--labels", type=int, default=4_000)
    parser.add_argument("--window", type=int, default=200, help="window_labels")
    parser.add_argument("--confidence", type=float, default=0.95)
    args = parser.parse_args()
    print(
        f"{args.seeds} seeds, {args.labels:,} shared labels, windows of {args.window}, "
        f"confidence {args.confidence}\n"
    )
    print("| champion | challenger | margin | decided | median labels to decision |")
    print("|---|---|---|---|---|")
    for champion, challenger, margin in SCENARIOS:
        settings = ComparisonSettings(margin=margin, confidence=args.confidence)
        at = []
        for seed in range(args.seeds):
            pairs = shadow_pairs(np.random.default_rng(seed), args.labels, champion, challenger)
            found = decided_at(pairs, settings, args.window)
            if found is not None:
                at.append(found)
        median = f"{np.median(at):,.0f}" if at else "-"
        share = len(at) / args.seeds
        print(f"| {champion} | {challenger} | {margin} | {share:.1%} | {median} |")


if __name__ == "__main__":
    main()
