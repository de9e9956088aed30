"""The performance monitor's error test on small references: how often an unchanged model
alarms, and how soon a real rise in errors is found, by reference size and by how many
standard errors of the reference's error rate the test allows (``RateCheck``'s
``reference_z``; the shipped value against the old 2), side by side on the same draws.

A reference is a sample: its error rate (a classifier's) or its 90th percentile of absolute
errors (a regression's, whose exceedances the test counts) is off by chance, once, and the
error then lasts as long as the reference is in use. A retrained version's reference is often
small: the labelled rows of a retraining sample since the drift began, a few hundred.

- regression: absolute errors (0.5 + |x|) |t3|, x ~ N(0, 1) (heavy-tailed, as ETAs' are);
  the change scales them by 1.1 or 1.2;
- retrained: the demo's ETA model retrained as its training job does (least squares, the
  reference's predictions out of fold) on ``rows`` events of its storm-time traffic, then
  serving the events that follow (the errors of a model fitted to the reference's own noise,
  as every retrained version's are); the change scales its errors by 1.1 or 1.2;
- binary: 9% errors; the change flips 1% or 3.2% of the labels (accuracy 0.91 to 0.902 or
  0.884).

Per reference size and allowance: the share of ``--references`` references whose test alarms
on ``--labels`` unchanged labels, and the median labels to the first alarm after a change
(over the references; '-' when fewer than half alarm within ``--labels``). The checks are
``error_checks``'s two CUSUMs at the ARL of one check of the demo's ETA model (its budget of
1e6 spread over its checks), unless ``--arl`` says otherwise.

    .venv/bin/python bench/error_test.py [--references 400] [--labels 20000] [--arl A]
        [--sizes N ...]

``--rises ROWS`` instead: a reference of ``ROWS`` rows whose share of large errors is 10%,
and live shares from 15% to 30% (50 streams each): the median labels to the first alarm, and
how many streams had none within ``--labels``.

``--demo-sample EVERY ...`` instead: the demo's retraining loop in process, ``--references``
times per setting. Its request comes about 10,000 events after the drift began, when the
labels of the first 7,000 are in; the sample keeps one event in ``EVERY`` (9 in 10 labelled);
the training job fits version 4 on those rows with an out-of-fold reference, and version 4
serves the demo's 20,000 rollout events. Printed: the reference's rows, its MAE (percentiles
1, 50, 99), the share of version 4's live errors past the reference's 90th percentile
(percentiles 50, 90, 99, 100; 10% if the reference were exact) and how many runs' error tests
alarm on the first 15,000 of them, by allowance.

``--served DIR ...`` instead: real demo runs' version 4, each a copy of the run's
``.driftline/demo/retrain/<request>`` folder taken after it: the reference's rows, MAE and 90th
percentile of absolute errors, and the share of the trained model's (``output/model.json``)
errors past that percentile on the demo's rollout events.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from driftline.config import AlertSettings, ModelConfig
from driftline.detectors.quality import RateCheck, RunState
from driftline.detectors.reference_size import Z as REFERENCE_Z
from driftline.monitoring.alerting import AlertPolicy
from driftline.monitoring.monitor import ModelMonitor
from driftline.monitoring.performance import LARGE_ERROR_QUANTILE, error_checks

SIZES = (300, 640, 2_000, 20_000)
ALLOWANCES = (2.0, REFERENCE_Z)
ERROR_RATE = 0.09  # the binary model's
CHANGES = {"regression": (1.1, 1.2), "retrained": (1.1, 1.2), "binary": (0.01, 0.032)}


def demo_arl() -> float:
    """One check's ARL in the demo's ETA model: its false-alarm budget over its checks."""
    from driftline.cli.demo.run import demo_profile
    from driftline.cli.demo.scenario import FEATURES, Scenario

    config = ModelConfig(
        task="regression",
        features=FEATURES,
        false_alarm_budget=1_000_000,
        performance={"enabled": True},
    )
    profile = demo_profile(Scenario())
    return ModelMonitor("eta", config, profile, AlertPolicy(AlertSettings())).share


def abs_errors(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    return scale * (0.5 + np.abs(rng.normal(0, 1, n))) * np.abs(rng.standard_t(3, n))


def retrain(sample: list[dict], served: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """The demo's training job on ``sample`` (events with their ``actual``): its reference's
    absolute errors (out of fold) and the fitted model's on ``served``."""
    from driftline.cli.demo.train import EtaModel, out_of_fold

    rows = [{"features": e["features"], "label": e["actual"]} for e in sample]
    truth = np.array([r["label"] for r in rows])
    reference = np.abs(np.array(out_of_fold(rows)) - truth)
    model = EtaModel.fit(rows)
    return reference, served_errors(model, served)


def served_errors(model: Any, served: list[dict]) -> np.ndarray:
    """``model``'s absolute errors on ``served``."""
    predicted = np.array([model.predict(e["features"]) for e in served])
    return np.abs(predicted - np.array([e["actual"] for e in served]))


def retrained(rng: np.random.Generator, rows: int, labels: int) -> tuple[np.ndarray, np.ndarray]:
    """The demo's training job on ``rows`` storm-time events, serving the ``labels`` events
    that follow."""
    from driftline.cli.demo.scenario import Scenario

    events = Scenario(seed=int(rng.integers(2**31))).later(rows + labels)
    return retrain(events[:rows], events[rows:])


def wrong(rng: np.random.Generator, n: int, flip: float = 0.0) -> np.ndarray:
    errors = rng.random(n) < ERROR_RATE
    return errors ^ (rng.random(n) < flip)


def first_alarm(tests: list[RateCheck], flags: np.ndarray) -> int | None:
    """Labels to the first alarm of either CUSUM (1-based), None if neither alarms."""
    found = []
    for test in tests:
        result = test.update(RunState(), flags, stop_at_signal=True)
        if result.alarms:
            found.append(result.first + 1)
    return min(found) if found else None


def median_delay(delays: list[int | None]) -> str:
    if sum(d is None for d in delays) * 2 >= len(delays):
        return "-"
    return f"{int(np.median([math.inf if d is None else d for d in delays])):,}"


def rises(rows: int, labels: int, arl: float, streams: int = 50) -> None:
    rate = 1.0 - LARGE_ERROR_QUANTILE
    print(f"reference of {rows:,} rows at {rate:.0%}, {streams} streams of {labels:,} labels")
    print(f"{'live share':>10} {'z':>4} {'median delay':>13} {'none':>5}")
    for share in (0.15, 0.2, 0.25, 0.3):
        for z in ALLOWANCES:
            tests = error_checks(rate, rows, arl, 0.0, reference_z=z)
            delays = [
                first_alarm(tests, np.random.default_rng(seed).random(labels) < share)
                for seed in range(streams)
            ]
            missed = sum(d is None for d in delays)
            print(f"{share:>10.0%} {z:>4g} {median_delay(delays):>13} {missed:>5}")


def demo_sample(every: int, runs: int, arl: float) -> None:
    from driftline.cli.demo.run import ROLLOUT_EVENTS
    from driftline.cli.demo.scenario import Scenario

    scenario = Scenario()
    drifted = scenario.events()[scenario.onset : scenario.onset + 7_000]
    served = scenario.later(ROLLOUT_EVENTS)
    found: list[tuple[float, ...]] = []
    for run in range(runs):
        kept = np.random.default_rng([run, every]).random(len(drifted)) < (1.0 / every) * 0.9
        sample = [e for e, keep in zip(drifted, kept, strict=True) if keep]
        reference, live = retrain(sample, served)
        large = live > np.quantile(reference, LARGE_ERROR_QUANTILE)
        rate = 1.0 - LARGE_ERROR_QUANTILE
        alarms = [
            first_alarm(error_checks(rate, len(sample), arl, 0.0, reference_z=z), large[:15_000])
            is not None
            for z in ALLOWANCES
        ]
        found.append((len(sample), float(reference.mean()), float(large.mean()), *alarms))
    a = np.array(found)
    mae = np.percentile(a[:, 1], [1, 50, 99])
    share = np.percentile(a[:, 2], [50, 90, 99, 100])
    alarms = ", ".join(f"z={z:g}: {int(a[:, 3 + i].sum())}" for i, z in enumerate(ALLOWANCES))
    print(
        f"1 in {every:<3} rows {np.median(a[:, 0]):>6,.0f}  reference MAE "
        + " ".join(f"{v:.2f}" for v in mae)
        + "  live share past p90 "
        + " ".join(f"{v:.3f}" for v in share)
        + f"  runs alarming of {runs} ({alarms})"
    )


def demo_runs(folders: list[Path]) -> None:
    from driftline.cli.demo.run import ROLLOUT_EVENTS
    from driftline.cli.demo.scenario import Scenario
    from driftline.cli.demo.train import EtaModel

    events = Scenario().later(ROLLOUT_EVENTS)
    print(f"{'run':<24} {'rows':>6} {'MAE':>5} {'p90':>5} {'live share past p90':>20}")
    for folder in folders:
        output = folder / "output"
        rows = [
            orjson.loads(line) for line in (output / "reference.jsonl").read_bytes().splitlines()
        ]
        reference = np.abs(np.array([r["prediction"] - r["label"] for r in rows]))
        large = float(np.quantile(reference, LARGE_ERROR_QUANTILE))
        live = served_errors(EtaModel.from_json((output / "model.json").read_text()), events)
        name = f"{folder.parent.name}/{folder.name[:8]}"
        print(
            f"{name:<24} {len(rows):>6,} {reference.mean():>5.2f} {large:>5.2f} "
            f"{float(np.mean(live > large)):>20.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--references", type=int, default=400)
    parser.add_argument("--labels", type=int, default=20_000)
    parser.add_argument("--arl", type=float, default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--rises", type=int, metavar="ROWS", default=None)
    parser.add_argument("--demo-sample", type=int, nargs="+", metavar="EVERY", default=None)
    parser.add_argument("--served", type=Path, nargs="+", metavar="DIR", default=None)
    args = parser.parse_args()
    if args.served:
        demo_runs(args.served)
        return
    arl = args.arl or demo_arl()
    if args.rises:
        rises(args.rises, args.labels, arl)
        return
    if args.demo_sample:
        for every in args.demo_sample:
            demo_sample(every, args.references, arl)
        return
    print(
        f"{args.references} references per size, {args.labels:,} labels after each, one "
        f"check's ARL {arl:.3g}"
    )
    header = f"{'task':<10} {'rows':>6} {'z':>4} {'false alarms':>12}"
    for task, changes in CHANGES.items():
        names = [f"flip {c:.1%}" if task == "binary" else f"x{c:g}" for c in changes]
        print(f"\n{header}" + "".join(f" {'delay ' + n:>16}" for n in names))
        for rows in args.sizes:
            false: dict[float, int] = dict.fromkeys(ALLOWANCES, 0)
            delays: dict[tuple[float, float], list[int | None]] = {}
            for r in range(args.references):
                rng = np.random.default_rng([r, rows, len(task)])
                if task == "binary":
                    rate = float(wrong(rng, rows).mean())
                    streams = [wrong(rng, args.labels, f) for f in (0.0, *changes)]
                else:
                    if task == "regression":
                        reference = abs_errors(rng, rows)
                        live = [abs_errors(rng, args.labels, s) for s in (1.0, *changes)]
                    else:
                        reference, served = retrained(rng, rows, args.labels)
                        live = [served * s for s in (1.0, *changes)]
                    large = float(np.quantile(reference, LARGE_ERROR_QUANTILE))
                    rate = 1.0 - LARGE_ERROR_QUANTILE
                    streams = [errors > large for errors in live]
                for z in ALLOWANCES:
                    tests = error_checks(rate, rows, arl, 0.0, reference_z=z)
                    false[z] += first_alarm(tests, streams[0]) is not None
                    for change, flags in zip(changes, streams[1:], strict=True):
                        delays.setdefault((z, change), []).append(first_alarm(tests, flags))
            for z in ALLOWANCES:
                cells = "".join(f" {median_delay(delays[z, c]):>16}" for c in changes)
                share = false[z] / args.references
                print(f"{task:<10} {rows:>6,} {z:>4g} {share:>12.1%}{cells}")


if __name__ == "__main__":
    main()
