"""Seeded synthetic streams for tests: a model with two numeric and one categorical feature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson

from driftline.detectors.profile import build_profile

FEATURES = {"x1": "numeric", "x2": "numeric", "color": "categorical"}
COLORS = np.array(["red", "green", "blue", "black"], dtype=object)
STABLE_P = [0.4, 0.3, 0.2, 0.1]


def columns(n: int, rng: np.random.Generator, x1_shift: float = 0.0) -> dict[str, np.ndarray]:
    return {
        "x1": rng.normal(5.0 + x1_shift * 2.0, 2.0, n),  # shift in reference sds
        "x2": rng.gamma(2.0, 1.5, n),
        "color": rng.choice(COLORS, n, p=STABLE_P),
    }


def write_profile(path: Path, model_id: str = "m1", seed: int = 100) -> Path:
    rng = np.random.default_rng(seed)
    cols = columns(20_000, rng)
    profile = build_profile(model_id, "1", cols, FEATURES, prediction=cols["x1"] * 2)
    path.write_bytes(profile.to_json())
    return path


def model_config(profile: Path, **extra: Any) -> dict[str, Any]:
    return {"task": "regression", "features": dict(FEATURES), "reference": str(profile), **extra}


def events(
    n: int, rng: np.random.Generator, start: int = 0, x1_shift: float = 0.0
) -> list[dict[str, Any]]:
    cols = columns(n, rng, x1_shift)
    out = []
    for i in range(n):
        features = {
            "x1": float(cols["x1"][i]),
            "x2": float(cols["x2"][i]),
            "color": str(cols["color"][i]),
        }
        out.append(
            {
                "prediction_id": f"p{start + i}",
                "timestamp": 1_700_000_000.0 + start + i,
                "features": features,
                "prediction": features["x1"] * 2,
            }
        )
    return out


def batch_message(model_id: str, rows: list[dict[str, Any]], version: str = "1") -> bytes:
    return orjson.dumps({"model_id": model_id, "model_version": version, "events": rows})


BREAKS = ("null", "scaled", "new_category", "renamed", "version", "type_error", "constant")


def broken(rows: list[dict[str, Any]], mode: str, at: int, seed: int = 7) -> list[dict[str, Any]]:
    """The events with one pipeline break from index ``at`` on (a copy; the rows before stay).

    null: x2 arrives null; scaled: x1 in other units (x 1000); new_category: a colour the
    reference never saw in 20% of events; renamed: x2 arrives as "x2_value"; version: the
    events come from model version 2; type_error: x1 arrives as a string; constant: x2 is
    stuck at one value.
    """
    rng = np.random.default_rng(seed)
    out = []
    for i, row in enumerate(rows):
        row = {**row, "features": dict(row["features"])}
        f = row["features"]
        if i >= at:
            if mode == "null":
                f["x2"] = None
            elif mode == "scaled":
                f["x1"] = f["x1"] * 1000.0
            elif mode == "new_category":
                if rng.random() < 0.2:
                    f["color"] = "ultraviolet"
            elif mode == "renamed":
                f["x2_value"] = f.pop("x2")
            elif mode == "version":
                row["model_version"] = "2"
            elif mode == "type_error":
                f["x1"] = f"{f['x1']:.2f}"
            elif mode == "constant":
                f["x2"] = 3.0
            else:
                raise ValueError(f"unknown break {mode!r}; one of {BREAKS}")
        out.append(row)
    return out


# A binary classifier on the same features: P(y = 1 | x) = sigmoid(x1 - 5), its score is that
# probability (calibrated), its prediction the score over 0.5. ``flip`` inverts that share of
# the labels (concept drift: the inputs and scores do not move, the accuracy falls).
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def classifier_columns(
    n: int, rng: np.random.Generator, x1_shift: float = 0.0, flip: float = 0.0
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    cols = columns(n, rng, x1_shift)
    score = _sigmoid(cols["x1"] - 5.0)
    label = rng.random(n) < score
    label = np.where(rng.random(n) < flip, ~label, label)
    return cols, score, label.astype(int)


def write_classifier_profile(path: Path, model_id: str = "clf", seed: int = 200) -> Path:
    from dataclasses import replace

    from driftline.config import ModelConfig
    from driftline.detectors.performance import ScoreCalibration
    from driftline.monitoring.performance import (
        baseline_performance,
        estimated_baseline,
        performance_spread,
    )

    rng = np.random.default_rng(seed)
    cols, score, label = classifier_columns(20_000, rng)
    prediction = (score >= 0.5).astype(int).astype(str).astype(object)
    profile = build_profile(
        model_id,
        "1",
        cols,
        FEATURES,
        prediction=prediction,
        prediction_type="categorical",
        label=label.astype(str).astype(object),
    )
    config = ModelConfig(task="binary", features=dict(FEATURES))
    scores = [{"1": float(s)} for s in score]
    performance = baseline_performance(config, profile, list(prediction), list(label), scores)
    fitted = ScoreCalibration.fit(score, label == 1)
    calibration = {"edges": list(fitted.edges), "rates": list(fitted.rates)}
    spread = performance_spread(config, profile, list(prediction), list(label), scores, fitted)
    performance |= estimated_baseline(config, profile, list(prediction), scores, fitted)
    profile = replace(
        profile, performance=performance, calibration=calibration, performance_spread=spread
    )
    path.write_bytes(profile.to_json())
    return path


def classifier_events(
    n: int,
    rng: np.random.Generator,
    start: int = 0,
    x1_shift: float = 0.0,
    flip: float = 0.0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Prediction events (with scores) and their label events (same ids and times)."""
    cols, score, label = classifier_columns(n, rng, x1_shift, flip)
    predictions, labels = [], []
    for i in range(n):
        pid, ts = f"c{start + i}", 1_700_000_000.0 + start + i
        predictions.append(
            {
                "prediction_id": pid,
                "timestamp": ts,
                "features": {
                    "x1": float(cols["x1"][i]),
                    "x2": float(cols["x2"][i]),
                    "color": str(cols["color"][i]),
                },
                "prediction": int(score[i] >= 0.5),
                "scores": {"0": float(1 - score[i]), "1": float(score[i])},
            }
        )
        labels.append({"prediction_id": pid, "timestamp": ts, "label": int(label[i])})
    return predictions, labels


def counted(config: Any) -> Any:
    """``Pipeline.from_config`` counting into Prometheus metrics, as in the worker (tests read
    them; benches keep the worker's cost)."""
    from driftline.monitoring.pipeline import Pipeline
    from driftline.observability.metrics import WorkerMetrics

    return Pipeline.from_config(config, WorkerMetrics(config))


def scope_of(profile: Path, model_id: str = "m1", version: str = "1") -> str:
    """The state-key prefix of a model version monitored against the profile file ``profile``
    (monitoring/versions.py)."""
    from driftline.detectors.profile import ReferenceProfile

    return f"{model_id}/@{version}:{ReferenceProfile.from_json(profile.read_bytes()).version[:12]}"
