"""The JSON Schemas for producers in other languages match what we read and write."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import orjson
import pytest

from driftline.events.records import Alert, RetrainingRequest
from tests.streams import batch_message, events
from tests.unit.monitoring.test_monitor import pipeline, run


def schema(name: str) -> dict:
    text = resources.files("driftline.events.schemas").joinpath(f"{name}.schema.json").read_text()
    doc = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


def test_prediction_forms_validate() -> None:
    s = schema("prediction")
    rows = events(3, np.random.default_rng(0))
    jsonschema.validate(orjson.loads(batch_message("m1", rows)), s)
    jsonschema.validate({"model_id": "m1", "model_version": "1", **rows[0]}, s)
    columnar = {
        "model_id": "m1",
        "model_version": "1",
        "columns": {
            "prediction_id": ["a"],
            "timestamp": ["2026-01-01T00:00:00Z"],
            "prediction": [1.5],
            "features": {"x1": [None]},
        },
    }
    jsonschema.validate(columnar, s)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"model_id": "m1", "model_version": "1", "prediction_id": "a"}, s)


def test_label_forms_validate() -> None:
    s = schema("label")
    jsonschema.validate({"model_id": "m", "prediction_id": "p", "timestamp": 1, "label": 0}, s)
    jsonschema.validate(
        {"model_id": "m", "events": [{"prediction_id": "p", "timestamp": 1, "label": "cat"}]}, s
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"model_id": "m", "prediction_id": "p", "timestamp": 1}, s)


def test_alerts_we_publish_validate(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = events(3_000, rng) + events(1_000, rng, 3_000, x1_shift=1.0)
    alerts = run(pipeline(tmp_path), rows, {})
    assert alerts
    for alert in alerts:
        doc = orjson.loads(alert.to_json())
        jsonschema.validate(doc, schema("alert"))
        assert Alert.from_json(alert.to_json()) == alert


def test_retraining_requests_we_publish_validate(tmp_path: Path) -> None:
    from tests.unit.monitoring.test_alerting import make_pipeline, run, stream

    p = make_pipeline(tmp_path, model={"retraining": {"after_critical_seconds": 60}})
    _, requests = run(p, stream(6_000, 5, [(2_000, 6_000, 2.0, 2)]))
    assert requests
    for request in requests:
        jsonschema.validate(orjson.loads(request.to_json()), schema("retraining-request"))
        assert RetrainingRequest.from_json(request.to_json()) == request


def test_feature_windows_we_publish_validate(tmp_path: Path) -> None:
    from driftline.events.records import FeatureWindow
    from tests.streams import classifier_events
    from tests.unit.monitoring.test_performance import classifier_pipeline, label_message

    p = classifier_pipeline(tmp_path)
    predictions, labels = classifier_events(12_000, np.random.default_rng(4))
    state: dict[str, bytes] = {}
    joins: dict[str, bytes] = {}
    history: list[FeatureWindow] = []
    for start in range(0, 12_000, 1_000):  # each thousand predictions, then their labels
        part = predictions[start : start + 1_000]
        history += p.process_messages(
            [batch_message("clf", part)], state, joins=joins
        ).feature_windows
        p.process_labels([label_message(labels[start : start + 1_000])], state, joins)
    assert [w.window_end_event for w in history] == [5_000, 10_000]
    assert [w.labels.joined for w in history if w.labels] == [4_000, 5_000]
    for window in history:
        doc = orjson.loads(window.to_json())
        jsonschema.validate(doc, schema("feature-window"))
        assert FeatureWindow.from_json(window.to_json()) == window


def test_comparison_windows_and_their_alerts_validate() -> None:
    from driftline.config import ComparisonSettings
    from driftline.events.records import ComparisonWindow, performance_topic_record
    from driftline.monitoring.comparison import VersionComparison
    from tests.unit.monitoring.test_comparison import FIRST_SEEN, shadow_pairs

    pairs = shadow_pairs(np.random.default_rng(2), 2_000, 0.80, 0.90)
    compared = VersionComparison("m", "binary", ComparisonSettings(), 500).process(
        pairs, FIRST_SEEN, {}, 0
    )
    assert len(compared.windows) == 4 and [a.kind for a in compared.alerts] == ["comparison"]
    for window in compared.windows:
        jsonschema.validate(orjson.loads(window.to_json()), schema("comparison-window"))
        assert performance_topic_record(window.to_json()) == window
    with pytest.raises(jsonschema.ValidationError):  # the schema is not a performance window's
        jsonschema.validate(
            orjson.loads(compared.windows[0].to_json()), schema("performance-window")
        )
    for alert in compared.alerts:
        jsonschema.validate(orjson.loads(alert.to_json()), schema("alert"))
        assert Alert.from_json(alert.to_json()) == alert
    assert isinstance(performance_topic_record(compared.windows[0].to_json()), ComparisonWindow)
