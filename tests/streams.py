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
