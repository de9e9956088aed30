"""``driftline baseline``: read training or validation data, write a reference profile."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from driftline.config import InputError, ModelConfig
from driftline.detectors.performance import ClassCalibration, LossModel, ScoreCalibration
from driftline.detectors.profile import ReferenceProfile, build_profile, dependence
from driftline.detectors.seasonal import cyclic_features, seasonal_section, slot_of
from driftline.monitoring.performance import (
    Estimation,
    OutcomeEncoder,
    baseline_performance,
    estimated_baseline,
    estimation_doc,
    performance_spread,
)

SUFFIXES = (".csv", ".parquet", ".jsonl", ".ndjson", ".json")


@dataclass
class DataFile:
    """A data file's columns, and where each row came from (to name it in an error)."""

    path: Path
    columns: dict[str, list[Any]]
    lines: list[int] | None = None  # the file line of each row; None: rows are numbered

    def where(self, row: int) -> str:
        return f"line {self.lines[row]}" if self.lines is not None else f"row {row + 1}"

    def numeric(self, name: str, why: str) -> np.ndarray:
        """Column ``name`` as floats (missing: NaN); an InputError names the first value
        that is not a number and ``why`` it must be one."""
        values = self.columns[name]
        out = np.empty(len(values), dtype=np.float64)
        for row, value in enumerate(values):
            try:
                out[row] = np.nan if value is None else float(value)
            except (TypeError, ValueError):
                raise InputError(
                    f"{self.path}, {self.where(row)}, column {name}: {value!r} is not a number "
                    f"({why}); fix the value, or leave it empty where it is missing"
                ) from None
        return out

    def times(self, name: str) -> np.ndarray:
        """Column ``name`` as epoch seconds, from numbers or RFC 3339 strings (missing: NaN)."""
        values = self.columns[name]
        out = np.empty(len(values), dtype=np.float64)
        for row, value in enumerate(values):
            if value is None:
                out[row] = np.nan
                continue
            try:
                out[row] = float(value)
                continue
            except (TypeError, ValueError):
                pass
            try:
                stamp = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise InputError(
                    f"{self.path}, {self.where(row)}, column {name}: {value!r} is not a "
                    "timestamp (epoch seconds or RFC 3339)"
                ) from None
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.UTC)
            out[row] = stamp.timestamp()
        return out

    def text(self, name: str) -> np.ndarray:
        return np.array([None if v is None else str(v) for v in self.columns[name]], dtype=object)


def read_columns(path: Path) -> DataFile:
    """Columns of a CSV, Parquet or JSON-lines file (chosen by suffix)."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(
            f"{path}: unsupported data file type {suffix or '(none)'}; use .csv, .parquet or .jsonl"
        )
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return DataFile(path, {n: table.column(n).to_pylist() for n in table.column_names})
    if suffix == ".csv":
        return _read_csv(path)
    rows, lines = [], []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{path}, line {number}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}, line {number}: not a JSON object (one key per column)")
        if isinstance(row.get("features"), dict):  # an event in the topic format
            row = {**row["features"], **{k: row[k] for k in row if k != "features"}}
        rows.append(row)
        lines.append(number)
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return DataFile(path, {name: [row.get(name) for row in rows] for name in names}, lines)


def _read_csv(path: Path) -> DataFile:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        data: dict[str, list[Any]] = {name: [] for name in reader.fieldnames or []}
        lines = []
        for row in reader:
            if None in row:  # more fields than the header names
                raise InputError(
                    f"{path}, line {reader.line_num}: more fields than the header's "
                    f"{len(data)}; quote values that hold a comma"
                )
            lines.append(reader.line_num)
            for name, value in row.items():
                data[name].append(None if value == "" else value)
    return DataFile(path, data, lines)


@dataclass(frozen=True)
class OutcomeColumns:
    """The data file's prediction, label and score columns. A column the user named must be
    there; one left at its default may be absent (the profile then lacks what it gives)."""

    prediction: str = "prediction"
    label: str = "label"
    # binary classifiers: P(positive class); multiclass: the prefix of a column per class
    # (<score>_<class>); for the estimate
    score: str = "score"
    timestamp: str = "timestamp"  # when each row happened: cycles, seasonal references
    named: frozenset[str] = field(default_factory=frozenset)  # "prediction", "label", "score"


def profile_from_file(
    model_id: str,
    model: ModelConfig,
    path: Path,
    model_version: str,
    outcome_columns: OutcomeColumns | None = None,
) -> tuple[ReferenceProfile, list[str]]:
    """The reference profile of the data in ``path``, and notes on what it lacks.

    With prediction and label columns: the label distribution and the baseline performance.
    A classifier's scores (binary: P(positive class) in the score column; multiclass: a column
    ``<score>_<class>`` per class) also give the score calibration the performance estimate
    needs; a regression's errors give its loss model (the expected error by predicted value).
    """
    spec = outcome_columns or OutcomeColumns()
    data = read_columns(path)
    columns = data.columns
    missing = [f for f in model.features if f not in columns]
    if missing:
        raise InputError(
            f"{path}: no column for feature(s) {', '.join(missing)} (its columns: "
            f"{', '.join(columns) or 'none'}); rename them in the file or in "
            f"models.{model_id}.features"
        )
    arrays: dict[str, np.ndarray] = {}
    for name, kind in model.features.items():
        if kind == "numeric":
            arrays[name] = data.numeric(name, f"models.{model_id}.features.{name} is numeric")
        else:
            arrays[name] = data.text(name)
    out_type = "numeric" if model.task == "regression" else "categorical"
    notes: list[str] = []

    def column(role: str, lacks: str) -> str | None:
        name = str(getattr(spec, role))
        if name in columns:
            return name
        option = f"--{role}-column"
        if role in spec.named:
            raise InputError(
                f"{path}: no column {name!r} ({option}); its columns: {', '.join(columns)}"
            )
        notes.append(f"no {role} column {name!r} in {path}: {lacks} (name it with {option})")
        return None

    def outcome(name: str | None) -> np.ndarray | None:
        if name is None:
            return None
        if out_type == "numeric":
            return data.numeric(name, f"models.{model_id} is a regression")
        return data.text(name)

    lacks = "no baseline performance, so realised performance is not compared"
    prediction = outcome(column("prediction", "no prediction distribution and " + lacks))
    label = outcome(column("label", "no label distribution and " + lacks))
    profile = build_profile(
        model_id,
        model_version,
        arrays,
        dict(model.features),
        prediction=prediction,
        prediction_type=out_type,
        label=label,
        dependence_features=model.joint_features(),
    )
    profile = _with_time(profile, model, model_id, data, spec, arrays, notes)
    encoder = OutcomeEncoder(model, profile)
    lacking = "no calibration, so performance is not estimated before labels"
    score = _class_scores(data, spec, encoder, notes, lacking, column)
    if prediction is None or label is None:
        return profile, notes
    scores = None if score is None else _score_dicts(score, encoder)
    performance = baseline_performance(model, profile, list(prediction), list(label), scores)
    fitted: Estimation | None = None
    y = encoder.encode(list(label))
    if model.task == "binary" and score is not None:
        ok = np.isfinite(score) & (y >= 0)
        fitted = ScoreCalibration.fit(score[ok], y[ok] == 1)
    elif model.task == "multiclass" and score is not None:
        ok = np.isfinite(score).all(axis=1) & (y >= 0) & (y < score.shape[1])
        fitted = ClassCalibration.fit(encoder.classes[:-1], score[ok], y[ok])
    elif model.task == "regression":
        ok = np.isfinite(prediction) & np.isfinite(label)
        fitted = LossModel.fit(prediction[ok], label[ok])
    calibration = None if fitted is None else estimation_doc(fitted)
    spread = performance_spread(
        model, profile, list(prediction), list(label), scores, calibration=fitted
    )
    if fitted is not None:
        performance |= estimated_baseline(model, profile, list(prediction), scores, fitted)
    return replace(
        profile, performance=performance, calibration=calibration, performance_spread=spread
    ), notes


def _class_scores(
    data: DataFile,
    spec: OutcomeColumns,
    encoder: OutcomeEncoder,
    notes: list[str],
    lacking: str,
    column: Callable[[str, str], str | None],
) -> np.ndarray | None:
    """A classifier's scores: P(positive) per row (binary), or a row of scores per class in
    the encoder's order (multiclass, from the columns ``<score>_<class>``)."""
    if encoder.task == "binary":
        found = column("score", lacking)
        return data.numeric(found, "a score is P(positive class)") if found else None
    if encoder.task != "multiclass":
        if "score" in spec.named:
            raise InputError(
                f"--score-column: a regression has no scores (its estimate learns from the "
                f"predictions and labels of {data.path})"
            )
        return None
    classes = encoder.classes[:-1]
    names = {c: f"{spec.score}_{c}" for c in classes}
    absent = [name for name in names.values() if name not in data.columns]
    if len(absent) == len(names) and "score" not in spec.named:
        notes.append(
            f"no score columns {spec.score}_<class> in {data.path}: {lacking} (name their "
            "prefix with --score-column)"
        )
        return None
    if absent:
        raise InputError(
            f"{data.path}: no column {', '.join(absent)}; a multiclass model's scores need a "
            f"column {spec.score}_<class> for each of its classes ({', '.join(classes)}); its "
            f"columns: {', '.join(data.columns)}"
        )
    why = "a score is the class's probability"
    return np.column_stack([data.numeric(name, why) for name in names.values()])


def _score_dicts(score: np.ndarray, encoder: OutcomeEncoder) -> list[dict[str, float]]:
    """Scores as events send them: {class: probability}."""
    if score.ndim == 1:
        return [{encoder.positive: float(s)} for s in score]
    classes = encoder.classes[:-1]
    return [dict(zip(classes, row, strict=True)) for row in score.tolist()]


def _with_time(
    profile: ReferenceProfile,
    model: ModelConfig,
    model_id: str,
    data: DataFile,
    spec: OutcomeColumns,
    arrays: dict[str, np.ndarray],
    notes: list[str],
) -> ReferenceProfile:
    """The profile with what the data's timestamps tell: the features that follow the clock,
    and the seasonal section when the model is configured with one."""
    name = spec.timestamp
    seasonal = model.seasonal_features()
    if name not in data.columns:
        if "timestamp" in spec.named or seasonal:
            why = (
                f"models.{model_id}.seasonality needs when each row happened; " if seasonal else ""
            )
            raise InputError(
                f"{data.path}: no column {name!r} (--timestamp-column); {why}its columns: "
                f"{', '.join(data.columns)}"
            )
        return profile
    times = data.times(name)
    numeric = [f for f, kind in model.features.items() if kind == "numeric"]
    cyclic = cyclic_features(arrays, times, numeric)
    section = None
    if model.seasonality is not None and seasonal:
        settings = model.seasonality
        try:
            section = seasonal_section(
                arrays, times, seasonal, settings.period, settings.slot_count()
            )
        except ValueError as exc:
            raise InputError(f"{data.path}: {exc}") from None
    for feature, cycle in cyclic.items():
        if feature not in seasonal:
            notes.append(
                f"feature {feature} follows a {cycle} cycle in {data.path}: alerts will say so; "
                f"set models.{model_id}.seasonality: {{period: {cycle}}} to compare each value "
                "with its own time slot"
            )
    pairs = profile.dependence["features"] if profile.dependence else []
    # the dependence within each hour of the day, as the joint detector sees it on the stream
    local = dependence(arrays, profile.features, pairs, slot_of(times, "daily", 24))
    return replace(profile, cyclic=cyclic, seasonal=section, dependence=local)
