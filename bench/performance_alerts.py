"""Performance alerts and estimates for binary, multiclass and regression models, with bars
from the reference data and with the old fixed tolerance, side by side.

Each task's reference (20,000 labelled rows) goes through ``driftline baseline``'s own code
(``profile_from_file`` on a CSV file) twice: as written (the metrics' spreads over reference
windows set the bars: "data") and without the spreads (the fixed 0.05 tolerance of an older
profile: "fixed"). Both run the same pipeline on the same streams, each label right after its
prediction, windows of 500, 30,000 events per stream, the change at event 10,000:

- binary: P(y = 1 | x) = sigmoid(6x), x ~ N(0, 1), scored exactly (accuracy about 0.91);
  concept: 3.2% of labels flipped (a lasting drop to about 0.885 that only labels show);
  covariate: x squeezed toward the boundary (x * 0.6; the scores see it); big concept drift:
  35% of labels flipped;
- multiclass: three classes along x ~ N(0, 1.5) (P(class | x) a softmax of (-3x, 0, 3x)),
  scored overconfidently (logits 1.5 times the true ones: the calibration learns that away);
  concept: 5% of labels moved to another class; covariate: x * 0.6;
- regression: prediction 2x, truth 2x + (0.5 + |x|) Student t3 noise (errors grow away
  from 0); concept: the noise 1.2 times larger (the predictions do not show it); covariate:
  x * 1.5 (larger errors, which the loss model can see).

Table 1, per scenario and bars: performance episodes per stream (firing records with update
0), how many began before the change, and the median position (events after the change) of
the first realised (labels) and estimated (before labels) episode. Table 2, per scenario and
watched metric ("data" bars): the realised and estimated value over the windows after the
change (all windows with no change), the estimate's mean absolute error per window, and how
often the window's realised value fell inside the estimate's band.

    .venv/bin/python bench/performance_alerts.py [--seeds 5] [--budget 1e6]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from driftline.config import ModelConfig, config_from_dict
from driftline.monitoring.baseline import profile_from_file
from tests.streams import batch_message, counted

FEATURES = {"x": "numeric"}
CLASSES = ["a", "b", "c"]
CHANGE_AT = 10_000
N = 30_000
WINDOW = 500
T0 = 1_700_000_000.0
WATCHED = {
    "binary": ("accuracy", "roc_auc"),
    "multiclass": ("accuracy", "roc_auc"),
    "regression": ("mae", "rmse"),
}
SCENARIOS = {
    "binary": ["no change", "concept", "covariate", "big concept drift"],
    "multiclass": ["no change", "concept", "covariate"],
    "regression": ["no change", "concept", "covariate"],
}


@dataclass
class Stream:
    """A task's events: the feature, the prediction, the truth and the scores (None: none)."""

    x: np.ndarray
    prediction: list[Any]
    truth: list[Any]
    scores: list[dict[str, float]] | None


def world(task: str, rng: np.random.Generator, n: int, scenario: str = "no change") -> Stream:
    if task == "binary":
        x = rng.normal(0, 1, n) * (0.6 if scenario == "covariate" else 1.0)
        p = 1 / (1 + np.exp(-6 * x))
        y = (rng.random(n) < p).astype(int)
        flip = {"concept": 0.032, "big concept drift": 0.35}.get(scenario, 0.0)
        y = np.where(rng.random(n) < flip, 1 - y, y)
        pred = (p >= 0.5).astype(int)
        return Stream(x, pred.tolist(), y.tolist(), [{"1": float(s)} for s in p])
    if task == "multiclass":
        x = rng.normal(0, 1.5, n) * (0.6 if scenario == "covariate" else 1.0)
        logits = np.column_stack([-3 * x, np.zeros(n), 3 * x])
        truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = (rng.random(n)[:, None] > truth.cumsum(axis=1)).sum(axis=1)
        moved = rng.random(n) < (0.05 if scenario == "concept" else 0.0)
        y = np.where(moved, (y + rng.integers(1, 3, n)) % 3, y)
        scores = np.exp(1.5 * logits) / np.exp(1.5 * logits).sum(axis=1, keepdims=True)
        return Stream(
            x,
            [CLASSES[i] for i in scores.argmax(axis=1)],
            [CLASSES[i] for i in y],
            [dict(zip(CLASSES, row, strict=True)) for row in scores.tolist()],
        )
    x = rng.normal(0, 1, n) * (1.5 if scenario == "covariate" else 1.0)
    scale = 1.2 if scenario == "concept" else 1.0
    noise = scale * (0.5 + np.abs(x)) * rng.standard_t(3, n)
    return Stream(x, (2 * x).tolist(), (2 * x + noise).tolist(), None)


def reference_file(tmp: Path, task: str) -> Path:
    """20,000 labelled reference rows as the CSV file ``driftline baseline`` reads."""
    ref = world(task, np.random.default_rng(0), 20_000)
    path = tmp / f"{task}.csv"
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        names = ["x", "prediction", "label"]
        if task == "binary":
            names.append("score")
        elif task == "multiclass":
            names += [f"score_{c}" for c in CLASSES]
        out.writerow(names)
        for i in range(len(ref.x)):
            row = [ref.x[i], ref.prediction[i], ref.truth[i]]
            if ref.scores is not None:
                row += [ref.scores[i][c] for c in (["1"] if task == "binary" else CLASSES)]
            out.writerow(row)
    return path


def model_config(task: str, reference: str = "") -> dict[str, Any]:
    model: dict[str, Any] = {
        "task": task,
        "features": FEATURES,
        "performance": {"enabled": True, "window_labels": WINDOW},
    }
    return model | ({"reference": reference} if reference else {})


def profiles(tmp: Path, task: str) -> dict[str, Path]:
    """The task's reference profile with spreads ("data") and without ("fixed")."""
    data = reference_file(tmp, task)
    profile, _ = profile_from_file("m", ModelConfig(**model_config(task)), data, "1")
    out = {}
    for name, spread in (("data", profile.performance_spread), ("fixed", {})):
        path = tmp / f"{task}-{name}.json"
        path.write_bytes(replace(profile, performance_spread=spread).to_json())
        out[name] = path
    return out


@dataclass
class Run:
    fired: list[Any]  # performance episodes (firing records with update 0)
    windows: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))


def run(path: Path, task: str, s: Stream, budget: float) -> Run:
    model = model_config(task, str(path)) | {"false_alarm_budget": budget}
    p = counted(config_from_dict({"models": {"m": model}, "alerts": {"window_events": WINDOW}}))
    state: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    alerts: list[Any] = []
    out = Run([])
    for start in range(0, len(s.x), WINDOW):
        rows, labels = [], []
        for i in range(start, min(start + WINDOW, len(s.x))):
            row: dict[str, Any] = {
                "prediction_id": f"e{i}",
                "timestamp": T0 + i,
                "features": {"x": float(s.x[i])},
                "prediction": s.prediction[i],
            }
            if s.scores is not None:
                row["scores"] = s.scores[i]
            rows.append(row)
            labels.append({"prediction_id": f"e{i}", "timestamp": T0 + i, "label": s.truth[i]})
        result = p.process_messages([batch_message("m", rows)], state, joins=joins)
        message = orjson.dumps({"model_id": "m", "events": labels})
        labelled = p.process_labels([message], state, joins)
        alerts += result.alerts + labelled.alerts
        for window in result.performance_windows + labelled.performance_windows:
            out.windows[window.source].append(window)
    out.fired = [a for a in alerts if a.kind == "performance" and a.update == 0]
    return out


def stream(task: str, scenario: str, rng: np.random.Generator) -> Stream:
    change = N - CHANGE_AT if scenario != "no change" else 0
    before, after = world(task, rng, N - change), world(task, rng, change, scenario)
    scores = None
    if before.scores is not None and after.scores is not None:
        scores = before.scores + after.scores
    return Stream(
        np.concatenate([before.x, after.x]),
        before.prediction + after.prediction,
        before.truth + after.truth,
        scores,
    )


@dataclass
class Tally:
    """Realised against estimated, window by window, over the streams of one scenario."""

    realised: list[float] = field(default_factory=list)
    estimated: list[float] = field(default_factory=list)
    inside: int = 0

    def add(self, real: Any, estimated: Any, metric: str) -> None:
        value = real.metrics.get(metric)
        (check,) = [c for c in estimated.checks if c.metric == metric]
        if value is None or check.value is None:
            return
        self.realised.append(value)
        self.estimated.append(check.value)
        self.inside += check.low is not None and check.low <= value <= check.high

    def row(self) -> str:
        if not self.realised:
            return f"{'-':>8} {'-':>9} {'-':>7} {'-':>7}"
        real, est = np.array(self.realised), np.array(self.estimated)
        return (
            f"{real.mean():>8.3f} {est.mean():>9.3f} {np.abs(est - real).mean():>7.3f} "
            f"{self.inside / real.size:>7.0%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--budget", type=float, default=1e6, help="the model's false_alarm_budget (default 1e6)"
    )
    args = parser.parse_args()
    print(
        f"{N:,} events per stream, change at event {CHANGE_AT:,}, {args.seeds} seeds each, "
        f"false_alarm_budget {args.budget:g}"
    )
    alerts_table, estimate_table = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for task, scenarios in SCENARIOS.items():
            paths = profiles(Path(tmp), task)
            for scenario in scenarios:
                tallies = {metric: Tally() for metric in WATCHED[task]}
                for bars in ("data", "fixed"):
                    episodes, early, realised, estimated = 0, 0, [], []
                    for seed in range(args.seeds):
                        rng = np.random.default_rng([seed, len(scenario), len(task)])
                        result = run(paths[bars], task, stream(task, scenario, rng), args.budget)
                        episodes += len(result.fired)
                        after = scenario != "no change"
                        early += sum(
                            after and a.first_event_time < T0 + CHANGE_AT for a in result.fired
                        )
                        for alert in result.fired:
                            at = int(alert.first_event_time - T0) - CHANGE_AT
                            if after and at >= 0:
                                (estimated if alert.detector == "cbpe" else realised).append(at)
                        if bars == "data":
                            pairs = zip(
                                result.windows["realised"],
                                result.windows["estimated"],
                                strict=False,
                            )
                            for real, est in pairs:
                                if after and real.window_end_event <= CHANGE_AT:
                                    continue
                                for metric, tally in tallies.items():
                                    tally.add(real, est, metric)
                    alerts_table.append(
                        f"{task:<10} {scenario:<18} {bars:<6} {episodes / args.seeds:>8.1f} "
                        f"{early:>6} {_median(realised):>14} {_median(estimated):>15}"
                    )
                for metric, tally in tallies.items():
                    estimate_table.append(f"{task:<10} {scenario:<18} {metric:<8} {tally.row()}")
    print("\nepisodes: mean per stream; before: episodes that began before the change (all")
    print("streams); first: median events after the change to the first realised (labels) /")
    print("estimated (before labels) episode, '-' if none")
    print(
        f"{'task':<10} {'scenario':<18} {'bars':<6} {'episodes':>8} {'before':>6}"
        f" {'first realised':>14} {'first estimated':>15}"
    )
    print("\n".join(alerts_table))
    print("\nper window of 500 after the change (every window with no change), data bars:")
    print("realised and estimated means, the estimate's mean absolute error, and how often")
    print("the realised value fell inside the estimate's 95% band")
    print(
        f"{'task':<10} {'scenario':<18} {'metric':<8} {'realised':>8} {'estimated':>9}"
        f" {'error':>7} {'in band':>7}"
    )
    print("\n".join(estimate_table))


def _median(values: list[int]) -> str:
    return f"{int(np.median(values)):,}" if values else "-"


if __name__ == "__main__":
    main()
