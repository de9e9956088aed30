"""Read the records and events a report is made of, and write one file per model."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from driftline.config import Config, InputError
from driftline.detectors.profile import ReferenceProfile
from driftline.events.records import (
    Alert,
    ComparisonWindow,
    FeatureWindow,
    PerformanceWindow,
    performance_topic_record,
)
from driftline.monitoring import validation
from driftline.monitoring.pipeline import Pipeline
from driftline.monitoring.replay import read_messages
from driftline.report.page import ModelReport, lines_from_end, recent_events, render

R = TypeVar("R")


def read_records(path: Path | None, parse: Callable[[bytes], R], what: str) -> list[R]:
    """The records of a JSON-lines file (none without a path); an InputError names the first
    line that is not ``what``."""
    if path is None:
        return []
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    out = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(parse(line))
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(f"{path}, line {number}: not {what} ({exc})") from None
    return out


def build_reports(
    config: Config,
    out_dir: Path,
    alerts: Path | None = None,
    windows: Path | None = None,
    events: Path | None = None,
    history: Path | None = None,
    recent: int = 5_000,
    models: list[str] | None = None,
    published: Iterable[ReferenceProfile] = (),
) -> list[Path]:
    """One report per model (``models``, or all configured), written to ``out_dir``.

    A report follows the model's newest version (that of its newest events, else of its
    newest feature window): its charts, performance windows and recent events are that
    version's, beside its profile from ``published`` (those of the profiles topic) or the
    configured file. The episodes table keeps every version's."""
    chosen = models or list(config.models)
    unknown = [m for m in chosen if m not in config.models]
    if unknown:
        raise InputError(
            f"--model {unknown[0]}: not in the config (its models: {', '.join(config.models)})"
        )
    alert_records = read_records(alerts, Alert.from_json, "an alert record")
    topic_records = read_records(windows, performance_topic_record, "a performance-topic record")
    window_records = [r for r in topic_records if isinstance(r, PerformanceWindow)]
    comparisons = [r for r in topic_records if isinstance(r, ComparisonWindow)]
    history_records = read_records(history, FeatureWindow.from_json, "a feature-window record")
    profiles = validation.load_profiles(config)
    pipeline = Pipeline(config, profiles)  # for its decoder: the worker's reading of events
    tails = {}
    if events is not None:
        read_messages(events)  # replay's checks: a file of topic messages
        tails = recent_events(config, pipeline.decoder, lines_from_end(events), recent)
    by_version = {(p.model_id, p.model_version): p for p in published}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for model_id in chosen:
        model = config.models[model_id]
        feature_windows = [h for h in history_records if h.model_id == model_id]
        tail = tails.get(model_id)
        version = tail.version if tail and tail.events else None
        version = version or (feature_windows[-1].model_version if feature_windows else None)
        profile = profiles.get(model_id)
        if version is not None:
            feature_windows = [h for h in feature_windows if h.model_version == version]
            profile = by_version.get((model_id, version), profile)
        report = ModelReport(
            model_id,
            model,
            profile,
            [a for a in alert_records if a.model_id == model_id],
            [
                w
                for w in window_records
                if w.model_id == model_id and version in (None, w.model_version)
            ],
            tail,
            model.false_alarm_budget,
            feature_windows,
            version,
            [c for c in comparisons if c.model_id == model_id],
        )
        path = out_dir / f"{file_name(model_id)}.html"
        path.write_text(render(report), encoding="utf-8")
        written.append(path)
    return written


def file_name(model_id: str) -> str:
    """A model id as a file name: letters, digits, dot, dash and underscore kept."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in model_id) or "model"
