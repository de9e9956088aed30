"""Champion and challenger: how often the decision is made, and after how many shared labels.

Seeded shadow traffic of a binary classifier: per label, the champion is right with its
accuracy and the challenger with its own, independently. The comparison (the worker's
``VersionComparison``, fed labels in batches of 250) looks at every window of shared labels;
a decision is its ``comparison`` alert firing. On equal versions every decision is a false one,
and their share over the seeds should stay below 1 - confidence however many windows it looks
at; on a better challenger the share decided and the median labels to the decision are the
power.

Production-shaped traffic (``--traffic``): ``correlated``, the two versions' errors share a
latent difficulty (a Gaussian copula with correlation 0.8: both versions tend to miss the
same hard cases); ``heavy-tailed``, a regression whose errors are Student t with 2.5 degrees
of freedom (finite variance, no fourth moment) and the same shared part, the challenger's
errors scaled by its share of the champion's MAE.

Usage: ``.venv/bin/python bench/comparison.py`` (``--seeds 200 --labels 4000``,
``--traffic correlated``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from scipy import stats

from driftline.config import ComparisonSettings
from driftline.monitoring.comparison import VersionComparison
from driftline.monitoring.join import Joined
from tests.unit.monitoring.test_comparison import FIRST_SEEN, T0, shadow_pairs

SHARED = 0.8  # the correlation of the two versions' latent errors, production-shaped traffic

SCENARIOS = (  # champion accuracy, challenger accuracy, margin
    (0.85, 0.85, 0.0),
    (0.85, 0.85, 0.01),
    (0.85, 0.86, 0.0),
    (0.85, 0.87, 0.0),
    (0.85, 0.87, 0.01),
    (0.85, 0.90, 0.0),
    (0.85, 0.90, 0.02),
)


REGRESSION_SCENARIOS = (  # champion MAE 1, challenger's MAE as a share of it, margin
    (1.0, 1.0, 0.0),
    (1.0, 1.0, 0.02),
    (1.0, 0.97, 0.0),
    (1.0, 0.95, 0.0),
    (1.0, 0.9, 0.0),
    (1.0, 0.9, 0.05),
)


def latent_errors(rng: np.random.Generator, n: int, heavy: bool) -> tuple[np.ndarray, ...]:
    """Two versions' latent errors per label, correlated ``SHARED``; normal or Student t."""
    draw = (lambda size: rng.standard_t(2.5, size)) if heavy else rng.standard_normal
    common = draw(n)
    return tuple(np.sqrt(SHARED) * common + np.sqrt(1 - SHARED) * draw(n) for _ in range(2))


def pairs_of(predictions: tuple[np.ndarray, np.ndarray], labels: np.ndarray) -> list[Joined]:
    """The join's pairs (challenger "2" first, as a shadow's may be)."""
    out = []
    for i, label in enumerate(labels.tolist()):
        t = T0 + i
        for version, predicted in (("2", predictions[1][i]), ("1", predictions[0][i])):
            out.append(Joined(f"p{i}", t, version, predicted.item(), None, label, t + 60))
    return out


def correlated_pairs(rng: np.random.Generator, n: int, accuracies: tuple[float, float]) -> list:
    """A classifier's pairs: each version right where its latent error is below its quantile."""
    labels = rng.integers(0, 2, n)
    errors = latent_errors(rng, n, heavy=False)
    right = [stats.norm.cdf(e) < a for e, a in zip(errors, accuracies, strict=True)]
    return pairs_of(
        (np.where(right[0], labels, 1 - labels), np.where(right[1], labels, 1 - labels)), labels
    )


def heavy_tailed_pairs(rng: np.random.Generator, n: int, scales: tuple[float, float]) -> list:
    """A regression's pairs: prediction = label + scale x a Student t error."""
    labels = rng.normal(30.0, 5.0, n)
    errors = latent_errors(rng, n, heavy=True)
    return pairs_of((labels + scales[0] * errors[0], labels + scales[1] * errors[1]), labels)


def decided_at(
    pairs: list, settings: ComparisonSettings, window: int, task: str = "binary"
) -> int | None:
    """The shared labels at the first decision, or None."""
    comparison, state = VersionComparison("m", task, settings, window), {}
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
    parser.add_argument(
        "--traffic", choices=("independent", "correlated", "heavy-tailed"), default="independent"
    )
    args = parser.parse_args()
    print(
        f"{args.seeds} seeds, {args.labels:,} shared labels, windows of {args.window}, "
        f"confidence {args.confidence}, {args.traffic} errors\n"
    )
    print("| champion | challenger | margin | decided | median labels to decision |")
    print("|---|---|---|---|---|")
    heavy = args.traffic == "heavy-tailed"
    for champion, challenger, margin in REGRESSION_SCENARIOS if heavy else SCENARIOS:
        settings = ComparisonSettings(margin=margin, confidence=args.confidence)
        at = []
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            if heavy:
                pairs = heavy_tailed_pairs(rng, args.labels, (champion, challenger))
            elif args.traffic == "correlated":
                pairs = correlated_pairs(rng, args.labels, (champion, challenger))
            else:
                pairs = shadow_pairs(rng, args.labels, champion, challenger)
            found = decided_at(pairs, settings, args.window, "regression" if heavy else "binary")
            if found is not None:
                at.append(found)
        median = f"{np.median(at):,.0f}" if at else "-"
        share = len(at) / args.seeds
        print(f"| {champion} | {challenger} | {margin} | {share:.1%} | {median} |")


if __name__ == "__main__":
    main()
