"""How well the performance estimate (CBPE) tracks the realised accuracy, and where it does not.

A binary classifier whose true P(y = 1 | x) is sigmoid(2x) scores sigmoid(2x + 0.7) (biased: the
reference calibration learns that away). Reference data: x ~ N(1.5, 1), 20,000 labelled events.
Production windows of 5,000 events, each run through driftline's pipeline with performance on
(the worker's estimator, its windows of 500 predictions averaged over the window):

- covariate shift: x moves toward the decision boundary (mean 1.5 -> 0.0) or widens; P(y | x)
  stays, so the estimate should follow the realised accuracy;
- concept drift: the labels of events with x > 1 flip with probability 0.3 (or 0.6); the
  scores do not change, so the estimate cannot see it (the realised accuracy shows it).

Prints realised accuracy (from the labels), estimated accuracy and ROC AUC, and the error.

    .venv/bin/python bench/performance_estimate.py
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from driftline.config import ModelConfig, config_from_dict
from driftline.detectors.performance import ScoreCalibration, roc_auc
from driftline.detectors.profile import build_profile
from driftline.monitoring.performance import baseline_performance
from tests.streams import batch_message, counted

FEATURES = {"x": "numeric"}
N = 5_000


def world(
    x: np.ndarray, rng: np.random.Generator, flip: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    p_true = 1 / (1 + np.exp(-2 * x))
    y = rng.random(x.size) < p_true
    flipped = (x > 1) & (rng.random(x.size) < flip)
    return 1 / (1 + np.exp(-(2 * x + 0.7))), np.where(flipped, ~y, y)


def profile_file(tmp: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(1.5, 1, 20_000)
    score, y = world(x, rng)
    pred = (score >= 0.5).astype(int).astype(str).astype(object)
    label = y.astype(int).astype(str).astype(object)
    profile = build_profile("m", "1", {"x": x}, FEATURES, pred, "categorical", label)
    config = ModelConfig(task="binary", features=FEATURES)
    scores = [{"1": float(s)} for s in score]
    perf = baseline_performance(config, profile, list(pred), list(label), scores)
    fitted = ScoreCalibration.fit(score, y)
    calibration = {"edges": list(fitted.edges), "rates": list(fitted.rates)}
    path = tmp / "m.json"
    path.write_bytes(replace(profile, performance=perf, calibration=calibration).to_json())
    return path


def estimate(path: Path, score: np.ndarray) -> tuple[float, float]:
    model = {
        "task": "binary",
        "features": FEATURES,
        "reference": str(path),
        "performance": {"enabled": True, "window_labels": 500},
    }
    p = counted(config_from_dict({"models": {"m": model}}))
    rows = [
        {
            "prediction_id": f"e{i}",
            "timestamp": 1_700_000_000.0 + i,
            "features": {"x": 0.0},
            "prediction": int(s >= 0.5),
            "scores": {"1": float(s)},
        }
        for i, s in enumerate(score)
    ]
    state: dict[str, bytes] = {}
    accuracies, aucs = [], []
    for start in range(0, len(rows), 500):
        result = p.process_messages([batch_message("m", rows[start : start + 500])], state)
        for outcome in result.performance:
            if outcome.estimate:
                accuracies.append(outcome.estimate["accuracy"])
                aucs.append(outcome.estimate["roc_auc"])
    return float(np.mean(accuracies)), float(np.mean(aucs))


def main() -> None:
    rng = np.random.default_rng(1)
    scenarios = [
        ("reference-like, x ~ N(1.5, 1)", 1.5, 1.0, 0.0),
        ("covariate shift, mean 1.0", 1.0, 1.0, 0.0),
        ("covariate shift, mean 0.5", 0.5, 1.0, 0.0),
        ("covariate shift, mean 0.0", 0.0, 1.0, 0.0),
        ("covariate shift, sd 2", 1.5, 2.0, 0.0),
        ("concept drift, 30% flipped for x > 1", 1.5, 1.0, 0.3),
        ("concept drift, 60% flipped for x > 1", 1.5, 1.0, 0.6),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = profile_file(Path(tmp))
        print(f"{N:,} events per scenario; estimate = mean of the worker's 500-prediction windows")
        header = f"{'scenario':<40} {'realised':>8} {'estimated':>9} {'error':>7}"
        print(header + f" {'AUC real':>8} {'AUC est.':>8} {'error':>7}")
        for name, mean, sd, flip in scenarios:
            x = rng.normal(mean, sd, N)
            score, y = world(x, rng, flip)
            pred = score >= 0.5
            realised, real_auc = float(np.mean(pred == y)), roc_auc(y, score)
            est, est_auc = estimate(path, score)
            print(
                f"{name:<40} {realised:>8.3f} {est:>9.3f} {est - realised:>+7.3f}"
                f" {real_auc:>8.3f} {est_auc:>8.3f} {est_auc - real_auc:>+7.3f}"
            )


if __name__ == "__main__":
    main()
