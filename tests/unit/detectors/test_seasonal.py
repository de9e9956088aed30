"""Seasonal references: time slots, the carry to the pooled reference, cycle detection."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from driftline.detectors.profile import numeric_profile
from driftline.detectors.seasonal import (
    SeasonalMap,
    cyclic_features,
    seasonal_section,
    slot_of,
)

DAY = 86_400.0


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def test_slots_are_hours_of_the_utc_day_and_days_of_the_week_from_monday() -> None:
    stamps = np.array(
        [at("2026-12-04T00:00:00"), at("2026-12-04T13:59:59"), at("2026-12-04T23:30:00")]
    )
    assert slot_of(stamps, "daily", 24).tolist() == [0, 13, 23]
    assert slot_of(stamps, "daily", 4).tolist() == [0, 2, 3]
    # 2026-12-07 is a Monday, 2026-12-06 a Sunday
    days = np.array([at("2026-12-07T08:00:00"), at("2026-12-06T23:00:00")])
    assert slot_of(days, "weekly", 7).tolist() == [0, 6]


def cyclic(n: int, rng: np.random.Generator, start: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A value that follows the hour of day (mean +-3 over a day) plus unit noise."""
    t = start + np.sort(rng.uniform(0, 5 * DAY, n))
    hour = (t % DAY) / DAY * 24
    return t, 3 * np.sin(2 * np.pi * hour / 24) + rng.normal(0, 1, n)


def test_a_value_is_carried_to_the_pooled_percentile_of_its_slot() -> None:
    rng = np.random.default_rng(1)
    t, x = cyclic(50_000, rng)
    section = seasonal_section({"x": x}, t, ["x"], "daily", 24)
    carry = SeasonalMap.from_section(section, "x", numeric_profile(x).quantile_array)
    live_t, live = cyclic(50_000, rng, start=10 * DAY)
    carried = carry(live, slot_of(live_t, "daily", 24))
    # without drift the carried values follow the pooled reference at every hour
    pooled = numeric_profile(x).quantile_array
    for hour in (3, 9, 15, 21):
        mine = carried[slot_of(live_t, "daily", 24) == hour]
        centre = np.mean((mine > pooled[50]) & (mine <= pooled[150]))  # between its quartiles
        assert centre == pytest.approx(0.5, abs=0.06), hour
    # whereas raw, 3 a.m. sits almost wholly above the pooled median
    assert np.mean(live[slot_of(live_t, "daily", 24) == 3] > pooled[100]) > 0.9
    nan = carry(np.array([np.nan, 0.0]), np.array([0, 0]))
    assert np.isnan(nan[0]) and np.isfinite(nan[1])


def test_every_slot_needs_rows() -> None:
    rng = np.random.default_rng(2)
    t = rng.uniform(0, DAY / 2, 5_000)  # half a day: slots 12-23 are empty
    with pytest.raises(
        ValueError, match=r"30 rows in every slot; too few in slot\(s\) 12 \(0 rows\)"
    ):
        seasonal_section({"x": rng.normal(0, 1, 5_000)}, t, ["x"], "daily", 24)


def test_the_features_that_follow_the_clock_are_found() -> None:
    rng = np.random.default_rng(3)
    t, x = cyclic(20_000, rng)
    columns = {"load": x, "noise": rng.normal(0, 1, 20_000)}
    assert cyclic_features(columns, t, ["load", "noise"]) == {"load": "daily"}
    # less than a whole day of data says nothing
    assert cyclic_features(columns, t / 10, ["load", "noise"]) == {}
