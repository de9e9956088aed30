"""Whether a reference sample is large enough for the changes the default detectors watch.

A reference is a sample, and the detectors widen their idea of "no drift" by its error (three
standard errors), so that a small reference does not raise false alarms. The price is
sensitivity: a change smaller than the reference's own error cannot be told from it. These
rules say when that price hides changes the detectors are set to catch, and how many rows
would avoid it.

- numeric: the smallest mean shift watched is 0.25 sd, and the normal-score CUSUM gives up a
  shift of d when the reference's error 3/sqrt(n) reaches d/2, so n must be at least
  (3 / 0.125)^2 = 576 rows.
- categorical: a category's frequency is known to within 3 standard errors; with more than
  0.05 (five points of frequency) a change of that size in any category goes unseen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from driftline.detectors.profile import CategoricalProfile, FeatureProfile, ReferenceProfile

Z = 3.0  # standard errors the detectors allow the reference
SMALLEST_MEAN_SHIFT = 0.25  # sd: the smallest shift of the normal-score CUSUM's bank
FREQUENCY_CHANGE = 0.05  # the smallest change in a category's frequency worth catching


@dataclass(frozen=True)
class SmallReference:
    feature: str
    rows: int
    needed: int
    why: str

    def __str__(self) -> str:
        return (
            f"feature {self.feature}: {self.rows} reference rows are too few: {self.why}; "
            f"{self.needed} rows would do"
        )


def rows_needed(profile: FeatureProfile) -> tuple[int, str]:
    """Rows the feature's reference needs, and what its own rows leave uncaught."""
    rows = round(profile.count * (1 - profile.missing_rate))
    if isinstance(profile, CategoricalProfile):
        spread = max(p * (1 - p) for p in profile.probs)
        needed = math.ceil(Z * Z * spread / FREQUENCY_CHANGE**2)
        error = Z * math.sqrt(spread / max(rows, 1))
        return needed, f"category frequencies known to within +-{error:.3f}"
    needed = math.ceil((Z / (SMALLEST_MEAN_SHIFT / 2)) ** 2)
    error = Z / math.sqrt(max(rows, 1))
    return needed, f"mean shifts below {2 * error:.2f} sd are not caught"


def small_references(profile: ReferenceProfile) -> list[SmallReference]:
    """The features (and the prediction) whose reference is too small, as in the rules above."""
    found = []
    watched = dict(profile.features)
    if profile.prediction is not None:
        watched["_prediction"] = profile.prediction
    for name, feature in watched.items():
        rows = round(feature.count * (1 - feature.missing_rate))
        needed, why = rows_needed(feature)
        if rows < needed:
            found.append(SmallReference(name, rows, needed, why))
    return found
