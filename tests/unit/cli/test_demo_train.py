"""The demo's training job: it trains on the drift's rows and its model serves them better."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from driftline.cli.demo.scenario import Scenario
from driftline.cli.demo.train import FOLDS, MIN_ROWS, EtaModel, training_rows


def sample_rows(events: list[dict], start: float, labelled: bool = True) -> list[dict]:
    return [
        {
            "prediction_id": f"p{i}",
            "timestamp": start + i,
            "model_version": "3",
            "features": e["features"],
            "prediction": e["prediction"],
            "label": e["actual"] if labelled else None,
            "label_time": start + i + 60 if labelled else None,
        }
        for i, e in enumerate(events)
    ]


def test_it_trains_on_the_rows_since_the_drift_and_beats_the_old_model(tmp_path: Path) -> None:
    scenario = Scenario()
    before = sample_rows(scenario.events()[:2_000], 0.0)
    after = sample_rows(scenario.later(1_500), 10_000.0)
    rows = before + after + sample_rows(scenario.later(100), 20_000.0, labelled=False)
    assert training_rows(rows, since=10_000.0) == after  # labelled, from the drift on
    assert (
        training_rows(after[: MIN_ROWS - 1] + before, since=10_000.0)
        == after[: MIN_ROWS - 1] + before
    )  # too few since: every labelled row
    model = EtaModel.fit(after[:1_000])
    held_out = after[1_000:]
    new = np.mean([abs(model.predict(r["features"]) - r["label"]) for r in held_out])
    old = np.mean([abs(r["prediction"] - r["label"]) for r in held_out])
    assert new < 0.9 * old, (new, old)
    assert EtaModel.from_json(model.to_json()) == model
    # run as driftline retrain runs it: the files it expects
    sample, request, out = tmp_path / "sample.jsonl", tmp_path / "request.json", tmp_path / "out"
    out.mkdir()
    sample.write_text("".join(json.dumps(r) + "\n" for r in rows))
    request.write_text(json.dumps({"first_event_time": 10_000.0}))
    env = {**os.environ, "DRIFTLINE_REQUEST": str(request), "DRIFTLINE_SAMPLE": str(sample),
           "DRIFTLINE_OUTPUT": str(out), "DRIFTLINE_MODEL_VERSION": "3"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "driftline.cli.demo.train"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (out / "version").read_text() == "4"
    reference = [json.loads(line) for line in (out / "reference.jsonl").read_text().splitlines()]
    assert len(reference) == len(after) and set(reference[0]) >= {"prediction", "label", "weather"}
    # it serves the model fitted on every row; the reference's predictions are out of fold
    assert EtaModel.from_json((out / "model.json").read_text()) == EtaModel.fit(after)
    for i in (0, 1, 7):
        without = EtaModel.fit([r for j, r in enumerate(after) if j % FOLDS != i % FOLDS])
        assert reference[i]["prediction"] == without.predict(after[i]["features"])
    errors = [abs(r["prediction"] - r["label"]) for r in reference]
    model_all = EtaModel.fit(after)
    in_sample = [abs(model_all.predict(r["features"]) - r["label"]) for r in after]
    assert np.mean(errors) > np.mean(in_sample)  # the in-sample baseline flatters the model
