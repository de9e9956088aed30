"""Performance alerts: bars from the reference data against a fixed tolerance, side by side.

A binary classifier whose true P(y = 1 | x) is sigmoid(6x), x ~ N(0, 1), scores it exactly
(accuracy about 0.91). Its reference profile (20,000 labelled rows) is built twice: with the
metrics' spreads over reference windows (what ``driftline baseline`` writes, so the bars come
from the data) and without them (what an older profile gives: the fixed 0.05 tolerance). Both
run the same pipeline on the same streams, each label right after its prediction, windows of
500:

- no change: 30,000 events like the reference (false performance episodes);
- lasting drop, concept: from event 10,000, 3.2% of labels flipped (accuracy 0.91 -> 0.885 for
  good, the scores unchanged: only labels show it);
- lasting drop, covariate: from event 10,000, x squeezed toward the boundary (x * 0.6): the
  accuracy falls by about as much, and the estimate (CBPE) can see it before labels;
- big concept drift: from event 10,000, 35% of labels flipped.

A regression's MAE (prediction 2x, truth 2x + Student t3 noise) runs the same way: no change
and a lasting 20% rise in the errors' scale. Per scenario: performance episodes (firing records
with update 0), the first one's position (events after the change), and the first estimate
alert's. Seeds average over ``--seeds`` streams.

    .venv/bin/python bench/performance_alerts.py [--seeds 5] [--budget 1e6]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from driftline.config import ModelConfig, config_from_dict
from driftline.detectors.performance import ScoreCalibration, regression_metrics
from driftline.detectors.profile import build_profile
from driftline.monitoring.performance import (
    baseline_performance,
    estimated_baseline,
    performance_spread,
)
from tests.streams import batch_message, counted

FEATURES = {"x": "numeric"}
CHANGE_AT = 10_000
N = 30_000
T0 = 1_700_000_000.0


def classifier(
    rng: np.random.Generator, n: int, squeeze: float = 1.0, flip: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rng.normal(0, 1, n) * squeeze
    p = 1 / (1 + np.exp(-6 * x))
    y = (rng.random(n) < p).astype(int)
    flipped = rng.random(n) < flip
    return x, p, np.where(flipped, 1 - y, y)


def regression(rng: np.random.Generator, n: int, scale: float = 1.0) -> tuple[np.ndarray, ...]:
    x = rng.normal(0, 1, n)
    return x, 2 * x, 2 * x + scale * rng.standard_t(3, n)


def profiles(tmp: Path, task: str) -> dict[str, Path]:
    """The reference profile with spreads ("data") and without ("fixed")."""
    rng = np.random.default_rng(0)
    config = ModelConfig(task=task, features=FEATURES, performance={"enabled": True})
    if task == "binary":
        x, p, y = classifier(rng, 20_000)
        pred = (p >= 0.5).astype(int).astype(str).astype(object)
        label = y.astype(str).astype(object)
        profile = build_profile("m", "1", {"x": x}, FEATURES, pred, "categorical", label)
        scores = [{"1": float(s)} for s in p]
        perf = baseline_performance(config, profile, list(pred), list(label), scores)
        fitted = ScoreCalibration.fit(p, y == 1)
        calibration = {"edges": list(fitted.edges), "rates": list(fitted.rates)}
        spread = performance_spread(config, profile, list(pred), list(label), scores, fitted)
        perf |= estimated_baseline(config, profile, list(pred), scores, fitted)
        profile = replace(profile, performance=perf, calibration=calibration)
    else:
        x, pred, truth = regression(rng, 20_000)
        profile = build_profile("m", "1", {"x": x}, FEATURES, pred, "numeric", truth)
        spread = performance_spread(config, profile, list(pred), list(truth))
        profile = replace(profile, performance=regression_metrics(truth, pred))
    out = {}
    for name, with_spread in (("data", spread), ("fixed", {})):
        path = tmp / f"{task}-{name}.json"
        path.write_bytes(replace(profile, performance_spread=with_spread).to_json())
        out[name] = path
    return out


def run(
    path: Path, task: str, x: np.ndarray, pred: Any, truth: Any, score: Any, budget: float
) -> list[Any]:
    model = {
        "false_alarm_budget": budget,
        "task": task,
        "features": FEATURES,
        "reference": str(path),
        "performance": {"enabled": True, "window_labels": 500},
    }
    # only performance is under test here: no drift detectors on x
    p = counted(config_from_dict({"models": {"m": model}, "alerts": {"window_events": 500}}))
    state: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    alerts: list[Any] = []
    for start in range(0, len(x), 500):
        rows, labels = [], []
        for i in range(start, min(start + 500, len(x))):
            row: dict[str, Any] = {
                "prediction_id": f"e{i}",
                "timestamp": T0 + i,
                "features": {"x": float(x[i])},
                "prediction": pred[i].item(),
            }
            if score is not None:
                row["scores"] = {"1": float(score[i])}
            rows.append(row)
            labels.append({"prediction_id": f"e{i}", "timestamp": T0 + i, "label": truth[i].item()})
        result = p.process_messages([batch_message("m", rows)], state, joins=joins)
        alerts += result.alerts
        message = orjson.dumps({"model_id": "m", "events": labels})
        alerts += p.process_labels([message], state, joins).alerts
    return [a for a in alerts if a.kind == "performance" and a.update == 0]


def stream(task: str, scenario: str, rng: np.random.Generator) -> tuple[Any, ...]:
    change = N - CHANGE_AT if scenario != "no change" else 0
    if task == "binary":
        before = classifier(rng, N - change)
        squeeze = 0.6 if scenario == "lasting drop, covariate" else 1.0
        flip = {"lasting drop, concept": 0.032, "big concept drift": 0.35}.get(scenario, 0.0)
        after = classifier(rng, change, squeeze, flip)
        x, p, y = (np.concatenate(pair) for pair in zip(before, after, strict=True))
        return x, (p >= 0.5).astype(int), y, p
    before = regression(rng, N - change)
    after = regression(rng, change, 1.2)
    x, pred, truth = (np.concatenate(pair) for pair in zip(before, after, strict=True))
    return x, pred, truth, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--budget", type=float, default=1e6, help="the model's false_alarm_budget (default 1e6)"
    )
    args = parser.parse_args()
    scenarios = [
        ("binary", "no change"),
        ("binary", "lasting drop, concept"),
        ("binary", "lasting drop, covariate"),
        ("binary", "big concept drift"),
        ("regression", "no change"),
        ("regression", "errors' scale x1.2"),
    ]
    print(
        f"{N:,} events per stream, change at event {CHANGE_AT:,}, {args.seeds} seeds each, "
        f"false_alarm_budget {args.budget:g};"
    )
    print("episodes: mean per stream; first: median events after the change to the first")
    print("realised (labels) / estimated (scores) episode, '-' if none")
    head = f"{'task':<10} {'scenario':<25} {'bars':<6} {'episodes':>8} {'before':>6}"
    print(head + f" {'first realised':>14} {'first estimated':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {task: profiles(Path(tmp), task) for task in ("binary", "regression")}
        for task, scenario in scenarios:
            for bars in ("data", "fixed"):
                episodes, early, realised, estimated = 0, 0, [], []
                for seed in range(args.seeds):
                    rng = np.random.default_rng([seed, len(scenario)])
                    x, pred, truth, score = stream(task, scenario, rng)
                    fired = run(paths[task][bars], task, x, pred, truth, score, args.budget)
                    episodes += len(fired)
                    after = scenario != "no change"
                    early += sum(after and a.first_event_time < T0 + CHANGE_AT for a in fired)
                    for alert, found in ((a, a.detector == "cbpe") for a in fired):
                        at = int(alert.first_event_time - T0) - CHANGE_AT
                        if after and at >= 0:
                            (estimated if found else realised).append(at)
                print(
                    f"{task:<10} {scenario:<25} {bars:<6} {episodes / args.seeds:>8.1f} "
                    f"{early:>6} {_median(realised):>14} {_median(estimated):>15}"
                )


def _median(values: list[int]) -> str:
    return f"{int(np.median(values)):,}" if values else "-"


if __name__ == "__main__":
    main()
