"""A delivery-time (ETA) regression model's inputs, as a food-delivery platform would log them.

Stable traffic, then from ``onset`` on two named changes: a new far-out suburb enters the
delivery area (``distance_km`` grows by about a third) and a storm sets in (``weather`` turns
mostly rain and snow). Everything else stays as it was, so any drift alert on it is a false
alarm. Before that, a pipeline break: the courier-tracking service is down for ``outage``
events and ``courier_load`` arrives null (a data-quality problem, not drift).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

FEATURES: dict[str, str] = {
    "distance_km": "numeric",
    "prep_time_min": "numeric",
    "courier_load": "numeric",
    "basket_value": "numeric",
    "hour_of_day": "numeric",
    "weather": "categorical",
    "city_zone": "categorical",
    "vehicle": "categorical",
}
DRIFTING = ("distance_km", "weather")
OUTAGE_FEATURE = "courier_load"
LABEL_LAG = 3_000  # a delivery's real time is known this many predictions later
UNLABELLED = 10  # every tenth delivery never reports its real time
LATE_AFTER_MIN = 40.0  # the second model: will the delivery take longer than this?
LATE_FEATURES: dict[str, str] = {"eta_min": "numeric"}  # it reads the ETA model's output

WEATHER = np.array(["clear", "cloudy", "rain", "snow"], dtype=object)
ZONES = np.array(["centre", "north", "south", "east", "west", "harbour"], dtype=object)
VEHICLES = np.array(["bike", "scooter", "car"], dtype=object)
HOUR_P = np.array([1, 1, 1, 1, 1, 1, 2, 3, 3, 3, 4, 7, 9, 7, 4, 3, 3, 5, 9, 10, 8, 5, 3, 2.0])


@dataclass(frozen=True)
class Scenario:
    n_events: int = 60_000
    onset: int = 30_000
    seed: int = 42
    outage: tuple[int, int] = (12_000, 14_000)  # events with courier_load null

    def columns(self, n: int, drifted: bool, rng: np.random.Generator) -> dict[str, np.ndarray]:
        distance = rng.gamma(2.2, 1.6, n) * (1.35 if drifted else 1.0)
        weather_p = [0.2, 0.15, 0.5, 0.15] if drifted else [0.55, 0.25, 0.17, 0.03]
        return {
            "distance_km": np.round(distance, 2),
            "prep_time_min": np.round(np.clip(rng.normal(12, 4, n), 1, None), 1),
            "courier_load": rng.poisson(1.8, n).astype(np.float64),
            "basket_value": np.round(rng.lognormal(3.2, 0.5, n), 2),
            "hour_of_day": rng.choice(24, n, p=HOUR_P / HOUR_P.sum()).astype(np.float64),
            "weather": rng.choice(WEATHER, n, p=weather_p),
            "city_zone": rng.choice(ZONES, n, p=[0.3, 0.15, 0.15, 0.15, 0.15, 0.1]),
            "vehicle": rng.choice(VEHICLES, n, p=[0.45, 0.4, 0.15]),
        }

    @staticmethod
    def eta(cols: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        weather_delay = np.select(
            [cols["weather"] == "rain", cols["weather"] == "snow"], [4.0, 9.0], 0.0
        )
        minutes = (
            6.0
            + 3.1 * cols["distance_km"]
            + 0.7 * cols["prep_time_min"]
            + 2.2 * cols["courier_load"]
            + weather_delay
            + rng.normal(0, 3, cols["distance_km"].size)
        )
        return np.round(np.clip(minutes, 5, None), 1)

    @staticmethod
    def actual(
        cols: dict[str, np.ndarray], eta: np.ndarray, drifted: bool, rng: np.random.Generator
    ) -> np.ndarray:
        """How long deliveries really took: the ETA's usual error and, once things drift, what
        the model never learnt (storms slow couriers more than rain did, the new suburb's
        roads are slower)."""
        extra: np.ndarray | float = 0.0
        if drifted:
            storm = np.select([cols["weather"] == "rain", cols["weather"] == "snow"], [3.0, 6.0])
            extra = storm + 0.8 * np.maximum(cols["distance_km"] - 6.0, 0.0)
        return np.round(eta + rng.normal(0, 3, eta.size) + extra, 1)

    def training(self, n: int = 20_000) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Reference data: what the model was validated on (stable conditions)."""
        rng = np.random.default_rng(self.seed + 1)
        cols = self.columns(n, drifted=False, rng=rng)
        return cols, self.eta(cols, rng)

    def training_actual(self, cols: dict[str, np.ndarray], eta: np.ndarray) -> np.ndarray:
        return self.actual(cols, eta, False, np.random.default_rng(self.seed + 3))

    def events(self) -> list[dict[str, Any]]:
        """Production events in order (features, the ETA, the real minutes as ``actual``);
        the drift starts at index ``onset``."""
        rng = np.random.default_rng(self.seed)
        parts = [
            (self.columns(self.onset, drifted=False, rng=rng)),
            (self.columns(self.n_events - self.onset, drifted=True, rng=rng)),
        ]
        outcomes = np.random.default_rng(self.seed + 2)  # apart: the features stay as they were
        out: list[dict[str, Any]] = []
        for drifted, cols in enumerate(parts):
            eta = self.eta(cols, rng)
            actual = self.actual(cols, eta, bool(drifted), outcomes).tolist()
            names = list(cols)
            values = [cols[name].tolist() for name in names]
            for i, prediction in enumerate(eta.tolist()):
                features = {name: column[i] for name, column in zip(names, values, strict=True)}
                out.append({"features": features, "prediction": prediction, "actual": actual[i]})
        for event in out[self.outage[0] : self.outage[1]]:
            event["features"][OUTAGE_FEATURE] = None
        return out

    def later(self, n: int) -> list[dict[str, Any]]:
        """``n`` events that follow ``events()``: the same drifted conditions, the real
        minutes as the drift made them (``prediction``: the old model's ETA)."""
        rng = np.random.default_rng(self.seed + 4)
        cols = self.columns(n, drifted=True, rng=rng)
        eta = self.eta(cols, rng)
        actual = self.actual(cols, eta, True, np.random.default_rng(self.seed + 5)).tolist()
        names = list(cols)
        values = [cols[name].tolist() for name in names]
        return [
            {
                "features": {name: column[i] for name, column in zip(names, values, strict=True)},
                "prediction": prediction,
                "actual": actual[i],
            }
            for i, prediction in enumerate(eta.tolist())
        ]


class LateLabels:
    """Deliveries' real times, each known ``LABEL_LAG`` predictions after its own; 1 in
    ``UNLABELLED`` never."""

    def __init__(self) -> None:
        self.waiting: deque[tuple[str, float]] = deque()  # (id, real minutes)
        self.due = 0

    def add(self, pid: str, actual: float) -> tuple[str, float] | None:
        """Note a prediction; the (id, real minutes) whose label comes now, if one does."""
        self.waiting.append((pid, actual))
        if len(self.waiting) <= LABEL_LAG:
            return None
        done = self.waiting.popleft()
        self.due += 1
        return done if self.due % UNLABELLED else None


def late_score(eta: np.ndarray | float) -> np.ndarray:
    """The late-delivery classifier's score: P(over LATE_AFTER_MIN minutes) from the ETA."""
    return np.asarray(1.0 / (1.0 + np.exp(-(np.asarray(eta) - LATE_AFTER_MIN) / 3.0)))
