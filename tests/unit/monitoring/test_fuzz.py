"""Fuzzed input through the worker's pipeline: it never raises, and nothing goes missing.

Hypothesis generates messages of every kind a broken or hostile producer sends: random bytes,
random JSON (deep, wide, wrong types), huge strings, valid events with one field replaced by
junk, batches mixing good and junk rows. For each run of messages: every message is either
accepted whole, or dead-lettered whole, or (a batch) split into accepted rows and one dead
letter per bad row; the run's counts add up to that; the metrics series do not grow with the
junk. The same pipeline object runs in the worker (runtime/app.py), so this covers it without
the broker; tests/integration/test_dead_letters_integration.py checks the topic side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.events.codec import PredictionBatch, Reason
from driftline.monitoring.pipeline import Pipeline
from tests.streams import batch_message, events
from tests.unit.monitoring.test_monitor import pipeline

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=30,
)
FIELDS = ["model_id", "model_version", "prediction_id", "timestamp", "features", "prediction"]


def dumps(doc: Any) -> bytes:
    # the standard library's encoder: it writes what orjson refuses to (integers beyond
    # 64 bits), which a producer in another language may well send
    return json.dumps(doc).encode()


def good_event(i: int) -> dict[str, Any]:
    return events(1, np.random.default_rng(i), start=i)[0]


@st.composite
def junk_event(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with one field replaced, dropped or a feature made junk."""
    event: dict[str, Any] = {"model_id": "m1", **good_event(draw(st.integers(0, 10_000)))}
    field = draw(st.sampled_from([*FIELDS, "x1", "color"]))
    how = draw(st.sampled_from(["replace", "drop", "huge"]))
    target = event["features"] if field in ("x1", "color") else event
    if how == "drop":
        target.pop(field, None)
    elif how == "huge":
        target[field] = "x" * draw(st.integers(10_000, 300_000))
    else:
        target[field] = draw(JSON)
    return event


MESSAGES = st.one_of(
    st.binary(max_size=500),
    JSON.map(dumps),
    st.integers(1, 5_000).map(lambda depth: b"[" * depth + b"]" * depth),  # deep nesting
    junk_event().map(dumps),
    st.lists(
        st.one_of(junk_event(), st.integers(0, 10_000).map(good_event), JSON), max_size=20
    ).map(lambda rows: dumps({"model_id": "m1", "model_version": "1", "events": rows})),
    st.integers(0, 10_000).map(lambda i: batch_message("m1", [good_event(i)])),
)


def series(p: Pipeline) -> int:
    return sum(len(m.samples) for m in p.metrics.registry.collect())


def label_values(p: Pipeline, name: str) -> set[str]:
    return {
        s.labels[name] for m in p.metrics.registry.collect() for s in m.samples if name in s.labels
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MESSAGES, min_size=1, max_size=12))
def test_fuzzed_messages_are_accepted_or_dead_lettered_never_lost(
    tmp_path_factory: Any, values: list[bytes]
) -> None:
    p = fuzz_pipeline(tmp_path_factory.getbasetemp())
    accepted = dead = 0
    for value in values:
        decoded = p.decoder.decode_predictions(value)
        rows = len(decoded.batch) if isinstance(decoded.batch, PredictionBatch) else 0
        whole = [d for d in decoded.dead_letters if d.row is None]
        if whole:  # dead-lettered whole: nothing of it accepted, one dead letter
            assert rows == 0 and len(decoded.dead_letters) == 1
        else:
            sent = json.loads(value)  # decodable, since not dead-lettered whole
            sent_rows = len(sent["events"]) if "events" in sent else 1
            assert rows + len(decoded.dead_letters) == sent_rows  # each row one way or other
        accepted += rows
        dead += len(decoded.dead_letters)
    result = p.process_messages(values, {})
    assert result.events == accepted and len(result.dead_letters) == dead
    assert {i for i, _ in result.dead_letters} <= set(range(len(values)))
    assert all(d.reason and d.payload is not None for _, d in result.dead_letters)
    # junk names never become label values: only the config's, and fixed lists
    assert label_values(p, "model") <= {"m1", "_unknown"}
    assert label_values(p, "feature") <= {"x1", "x2", "color", "_prediction", "_schema", "_joint"}
    assert label_values(p, "reason") <= set(Reason.ALL)


def test_ten_thousand_unknown_models_are_dead_letters_and_no_series(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    row = good_event(1)
    p.process_messages([batch_message("m1", [row])], {})
    before = series(p)
    state: dict[str, bytes] = {}
    values = [batch_message(f"intruder-{i}", [row]) for i in range(10_000)]
    result = p.process_messages(values, state)
    assert [d.reason for _, d in result.dead_letters] == ["unknown_model"] * 10_000
    assert result.events == 0 and state == {}  # no state kept for them either
    assert series(p) == before


_PIPELINES: dict[Path, Pipeline] = {}


def fuzz_pipeline(base: Path) -> Pipeline:
    """One pipeline for all examples (building one writes a profile and takes a while)."""
    if base not in _PIPELINES:
        (base / "fuzz").mkdir(exist_ok=True)
        _PIPELINES[base] = pipeline(base / "fuzz")
    return _PIPELINES[base]
