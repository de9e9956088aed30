"""Seasonal references: a feature on a daily or weekly cycle compared with its own time slot.

A feature that follows the hour of day has no single "normal" distribution: traffic at 3 a.m.
compared with a reference pooled over whole days reads as drift all night. With a seasonal
reference, ``driftline baseline`` keeps quantiles per time slot (the hour of day, or the day
of week), and each live value is carried to the pooled reference through its own slot: a
value at its slot's p-th percentile becomes the pooled reference's p-th percentile. Without
drift the carried values follow the pooled reference whatever the hour, so the feature's usual
detectors apply unchanged; a change on top of the cycle moves the percentiles and is caught.

Without a seasonal configuration, ``cyclic_features`` tells from the training data's
timestamps which features follow the clock, so that an alert on one can say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

PERIODS = {"daily": 86_400.0, "weekly": 7 * 86_400.0}
DEFAULT_SLOTS = {"daily": 24, "weekly": 7}
SLOT_QUANTILES = 51  # every 2%: a slot holds a share of the rows, fewer quantiles suffice
MIN_SLOT_ROWS = 30
# Share of a feature's variance the slot means explain above which it is said to be cyclic
# (and at least five times what slot means of a feature without a cycle explain by chance).
CYCLIC_SHARE = 0.05


def slot_of(timestamps: np.ndarray, period: str, slots: int) -> np.ndarray:
    """Each timestamp's slot (UTC): the hour of the day for 24 daily slots, and so on."""
    seconds = PERIODS[period]
    # The epoch began on a Thursday; weekly slots start on Monday 00:00 UTC.
    offset = 3 * 86_400.0 if period == "weekly" else 0.0
    phase = np.mod(np.asarray(timestamps, dtype=np.float64) + offset, seconds) / seconds
    return np.minimum((phase * slots).astype(np.intp), slots - 1)


@dataclass(frozen=True)
class SeasonalMap:
    """Carries values through their slot's quantiles to the pooled reference's."""

    slot_quantiles: np.ndarray  # (slots, SLOT_QUANTILES)
    slot_rows: np.ndarray  # rows per slot in the reference
    pooled_quantiles: np.ndarray
    # the probability levels of both grids, built once rather than per batch
    levels: np.ndarray = field(init=False, repr=False)
    pooled_levels: np.ndarray = field(init=False, repr=False)

    @classmethod
    def from_section(cls, section: dict[str, Any], feature: str, pooled: np.ndarray) -> SeasonalMap:
        doc = section["features"][feature]
        return cls(
            np.asarray(doc["quantiles"], dtype=np.float64),
            np.asarray(doc["rows"], dtype=np.float64),
            np.asarray(pooled, dtype=np.float64),
        )

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", np.linspace(0.0, 1.0, self.slot_quantiles.shape[1]))
        object.__setattr__(self, "pooled_levels", np.linspace(0.0, 1.0, self.pooled_quantiles.size))

    def __call__(self, x: np.ndarray, slots: np.ndarray) -> np.ndarray:
        out = np.empty(x.size, dtype=np.float64)
        levels, pooled_levels = self.levels, self.pooled_levels
        for slot in np.unique(slots):
            at = slots == slot
            n = self.slot_rows[slot]
            # plotting positions k/(n+1), as the normal scores use: a slot is a small sample
            u = np.interp(x[at], self.slot_quantiles[slot], levels)
            u = u * (n - 1) / (n + 1) + 1 / (n + 1)
            out[at] = np.interp(u, pooled_levels, self.pooled_quantiles)
        out[np.isnan(x)] = np.nan
        return out


def seasonal_section(
    columns: dict[str, np.ndarray],
    timestamps: np.ndarray,
    names: list[str],
    period: str,
    slots: int,
) -> dict[str, Any]:
    """The profile's seasonal section for the numeric features ``names``; a ``ValueError``
    names the slots that hold too few rows, with how many each has."""
    slot = slot_of(timestamps, period, slots)
    counts = np.bincount(slot, minlength=slots)
    thin = [f"{s} ({counts[s]} rows)" for s in range(slots) if counts[s] < MIN_SLOT_ROWS]
    if thin:
        raise ValueError(
            f"a {period} reference in {slots} slots needs {MIN_SLOT_ROWS} rows in every slot; "
            f"too few in slot(s) {', '.join(thin)}: use fewer slots or more data"
        )
    features = {}
    levels = np.linspace(0.0, 1.0, SLOT_QUANTILES)
    for name in names:
        values = np.asarray(columns[name], dtype=np.float64)
        per_slot, rows = [], []
        for s in range(slots):
            mine = values[(slot == s) & np.isfinite(values)]
            if mine.size < 2:
                raise ValueError(f"feature {name}: fewer than two values in {period} slot {s}")
            per_slot.append([float(q) for q in np.quantile(mine, levels)])
            rows.append(int(mine.size))
        features[name] = {"quantiles": per_slot, "rows": rows}
    return {"period": period, "slots": slots, "features": features}


def cyclic_features(
    columns: dict[str, np.ndarray], timestamps: np.ndarray, names: list[str]
) -> dict[str, str]:
    """The numeric features whose hourly (daily cycle) or daily (weekly cycle) means explain
    more than ``CYCLIC_SHARE`` of their variance, with the period; needs a whole cycle."""
    t = np.asarray(timestamps, dtype=np.float64)
    ok = np.isfinite(t)
    found: dict[str, str] = {}
    if not ok.any():
        return found
    span = float(t[ok].max() - t[ok].min())
    for period in ("daily", "weekly"):
        if span < PERIODS[period]:
            continue
        slot = slot_of(t, period, DEFAULT_SLOTS[period] if period == "weekly" else 24)
        for name in names:
            if name in found:
                continue
            x = np.asarray(columns[name], dtype=np.float64)
            keep = ok & np.isfinite(x)
            if keep.sum() < 100:
                continue
            x, s = x[keep], slot[keep]
            sums = np.bincount(s, weights=x)
            counts = np.bincount(s)
            means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
            between = float(np.sum(counts * (means - x.mean()) ** 2)) / x.size
            chance = 5.0 * (counts.size - 1) / x.size
            if x.var() > 0 and between / x.var() > max(CYCLIC_SHARE, chance):
                found[name] = period
    return found
