"""The demo's training job: ``driftline retrain`` runs it for the ETA model's retraining request.

It fits a small model (least squares on the numeric features, the distance squared and the
categories one-hot) to the request's sample: the labelled rows from the drift's evidence
window on, the traffic the new version will serve (all labelled rows if those are too few).
It writes what ``driftline retrain`` expects in ``$DRIFTLINE_OUTPUT``: ``version`` (the
drifted version's number plus one), ``reference.jsonl`` (the rows' features, out-of-fold
predictions and the labels: the new version's reference), and ``model.json``, the model the
demo then serves as that version (fitted on all the rows).

The reference's predictions are out of fold (each row's by a model fitted without it): the
new version's baseline errors are then errors on traffic it has not seen, as its live errors
will be. In-sample predictions would make the baseline look better than the model is, and
the new version's performance monitors would alert on its honest errors.

Run as ``python -m driftline.cli.demo.train`` with the variables ``driftline retrain`` sets.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from driftline.cli.demo.scenario import FEATURES

MIN_ROWS = 200  # fewer labelled rows since the drift began: train on every labelled row
FOLDS = 5  # for the reference's out-of-fold predictions


@dataclass(frozen=True)
class EtaModel:
    """Minutes to delivery, linear in the features (and the distance squared)."""

    numeric: tuple[str, ...]
    levels: dict[str, tuple[str, ...]]  # per categorical feature, the levels one-hot coded
    coefficients: tuple[float, ...]

    @classmethod
    def fit(cls, rows: list[dict[str, Any]]) -> EtaModel:
        numeric = tuple(name for name, kind in FEATURES.items() if kind == "numeric")
        levels = {
            name: tuple(sorted({str(r["features"][name]) for r in rows})[1:])
            for name, kind in FEATURES.items()
            if kind == "categorical"
        }
        model = cls(numeric, levels, ())
        x = np.array([model._design(r["features"]) for r in rows])
        y = np.array([float(r["label"]) for r in rows])
        solution, *_ = np.linalg.lstsq(x, y, rcond=None)
        return cls(numeric, levels, tuple(float(c) for c in solution))

    def _design(self, features: dict[str, Any]) -> list[float]:
        values = [float(features[name] or 0.0) for name in self.numeric]
        distance = float(features["distance_km"] or 0.0)
        coded = [
            float(str(features[name]) == level)
            for name, names in self.levels.items()
            for level in names
        ]
        return [1.0, *values, distance * distance, *coded]

    def predict(self, features: dict[str, Any]) -> float:
        minutes = float(np.dot(self._design(features), self.coefficients))
        return round(max(minutes, 5.0), 1)

    def to_json(self) -> str:
        return json.dumps(
            {"numeric": self.numeric, "levels": self.levels, "coefficients": self.coefficients}
        )

    @classmethod
    def from_json(cls, text: str) -> EtaModel:
        doc = json.loads(text)
        levels = {name: tuple(names) for name, names in doc["levels"].items()}
        return cls(tuple(doc["numeric"]), levels, tuple(doc["coefficients"]))


def training_rows(rows: list[dict[str, Any]], since: float) -> list[dict[str, Any]]:
    """The labelled rows with every feature present, from ``since`` (event time) on if there
    are enough of them."""
    labelled = [
        r
        for r in rows
        if r["label"] is not None and all(r["features"].get(f) is not None for f in FEATURES)
    ]
    recent = [r for r in labelled if r["timestamp"] >= since]
    return recent if len(recent) >= MIN_ROWS else labelled


def out_of_fold(rows: list[dict[str, Any]]) -> list[float]:
    """Each row's prediction by a model fitted on the other folds (row i is in fold i % FOLDS)."""
    predictions = [0.0] * len(rows)
    for k in range(FOLDS):
        model = EtaModel.fit([r for i, r in enumerate(rows) if i % FOLDS != k])
        for i in range(k, len(rows), FOLDS):
            predictions[i] = model.predict(rows[i]["features"])
    return predictions


def main() -> int:
    request = json.loads(Path(os.environ["DRIFTLINE_REQUEST"]).read_text())
    sample = Path(os.environ["DRIFTLINE_SAMPLE"]).read_text().splitlines()
    out = Path(os.environ["DRIFTLINE_OUTPUT"])
    rows = training_rows([json.loads(line) for line in sample], request["first_event_time"])
    if len(rows) < MIN_ROWS:
        print(f"{len(rows)} labelled rows in the sample: too few to train on")
        return 1
    model = EtaModel.fit(rows)
    with (out / "reference.jsonl").open("w") as reference:
        for r, predicted in zip(rows, out_of_fold(rows), strict=True):
            row = {**r["features"], "prediction": predicted, "label": r["label"]}
            reference.write(json.dumps(row) + "\n")
    (out / "model.json").write_text(model.to_json())
    (out / "version").write_text(str(int(os.environ["DRIFTLINE_MODEL_VERSION"]) + 1))
    print(f"trained on {len(rows)} labelled rows of {len(sample)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
