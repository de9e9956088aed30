"""``driftline baseline``: read training or validation data, write a reference profile."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from driftline.config import ModelConfig
from driftline.detectors.performance import ScoreCalibration
from driftline.detectors.profile import ReferenceProfile, build_profile
from driftline.monitoring.performance import OutcomeEncoder, baseline_performance


def read_columns(path: Path) -> dict[str, list[Any]]:
    """Columns of a CSV, Parquet or JSON-lines file (chosen by suffix)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return {name: table.column(name).to_pylist() for name in table.column_names}
    if suffix in (".jsonl", ".ndjson", ".json"):
        rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
        if rows and "features" in rows[0]:  # events in the topic format
            rows = [{**r["features"], **{k: r[k] for k in r if k != "features"}} for r in rows]
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row))
        return {name: [row.get(name) for row in rows] for name in names}
    if suffix == ".csv":
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            data: dict[str, list[Any]] = {name: [] for name in reader.fieldnames or []}
            for row in reader:
                for name, value in row.items():
                    data[name].append(None if value == "" else value)
        return data
    raise ValueError(f"{path}: unsupported data file (use .csv, .parquet or .jsonl)")


def _numeric(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def profile_from_file(
    model_id: str,
    model: ModelConfig,
    path: Path,
    model_version: str,
    prediction_column: str | None = "prediction",
    label_column: str | None = "label",
    score_column: str | None = "score",
) -> ReferenceProfile:
    """The reference profile of the data in ``path``.

    With a label column: the label distribution and the baseline performance. A binary
    classifier's ``score_column`` (P(positive class)) also gives the score calibration the
    performance estimate needs.
    """
    columns = read_columns(path)
    missing = [f for f in model.features if f not in columns]
    if missing:
        raise ValueError(f"{path}: no column for feature(s) {', '.join(missing)}")
    arrays: dict[str, np.ndarray] = {}
    for name, kind in model.features.items():
        values = columns[name]
        if kind == "numeric":
            arrays[name] = _numeric(values)
        else:
            arrays[name] = np.array([None if v is None else str(v) for v in values], dtype=object)
    out_type = "numeric" if model.task == "regression" else "categorical"

    def outcome(column: str | None) -> np.ndarray | None:
        if not column or column not in columns:
            return None
        values = columns[column]
        if out_type == "numeric":
            return _numeric(values)
        return np.array([None if v is None else str(v) for v in values], dtype=object)

    prediction, label = outcome(prediction_column), outcome(label_column)
    score = _numeric(columns[score_column]) if score_column in columns else None
    profile = build_profile(
        model_id,
        model_version,
        arrays,
        dict(model.features),
        prediction=prediction,
        prediction_type=out_type,
        label=label,
    )
    if prediction is None or label is None:
        return profile
    positive = model.performance.positive_class
    scores = None if score is None else [{positive: float(s)} for s in score]
    performance = baseline_performance(model, profile, list(prediction), list(label), scores)
    calibration = None
    if model.task == "binary" and score is not None:
        encoder = OutcomeEncoder(model, profile)
        y = encoder.encode(list(label))
        ok = np.isfinite(score) & (y >= 0)
        fitted = ScoreCalibration.fit(score[ok], y[ok] == 1)
        calibration = {"edges": list(fitted.edges), "rates": list(fitted.rates)}
    return replace(profile, performance=performance, calibration=calibration)
