"""The retraining loop in the pure pipeline: a request carries a bounded sample of recent
events with their labels, and a status record closes (or reopens) the episode behind it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from driftline.config import config_from_dict
from driftline.events.codec import Reason
from driftline.events.records import RetrainingRequest, RetrainingStatus
from driftline.monitoring.join import Joined
from driftline.monitoring.pipeline import Pipeline
from driftline.monitoring.sample import PENDING, RecentSample
from tests.streams import batch_message, counted, events, model_config, write_profile


@pytest.mark.parametrize("every", [10, 3])
def test_the_sample_stays_bounded_recent_and_labelled(every: int) -> None:
    sample = RecentSample(size=200, every=every, seed=1)
    total = 20_000
    for start in range(0, total, 1_000):
        sample.add(to_columns(start))
        assert len(sample) < PENDING * 200 + 1_000  # kept ones waiting, labelled ones
    rows = sample.rows()
    assert len(rows) == 200
    times = [r["timestamp"] - 1_700_000_000.0 for r in rows]
    # about the last every x 200 events, each as likely as another: spread over them
    assert total - 2 * every * 200 < min(times) < total - every * 200 / 2
    assert np.median(times) < total - every * 200 / 4
    assert times == sorted(times) and len({r["prediction_id"] for r in rows}) == 200
    assert set(rows[0]["features"]) == {"x1", "x2", "color"} and rows[0]["label"] is None
    pairs = [
        Joined(
            r["prediction_id"], r["timestamp"], "1", r["prediction"], None, 1, r["timestamp"] + 5
        )
        for r in rows[:50]
    ]
    sample.add_labels(pairs)
    assert sum(r["label"] == 1 for r in sample.rows()) == 50


def to_columns(start: int):  # type: ignore[no-untyped-def]
    """1,000 events from ``start`` as the pipeline's columns."""
    from driftline.events.codec import BatchDecoder, ModelSchema, PredictionBatch, ValidRows

    schema = ModelSchema(numeric=("x1", "x2"), categorical=("color",))
    decoder = BatchDecoder({"m1": schema})
    rows = events(1_000, np.random.default_rng(start), start)
    batch = decoder.decode_prediction_rows(batch_message("m1", rows)).batch
    if isinstance(batch, ValidRows):
        batch = decoder.columns_of([batch])
    assert isinstance(batch, PredictionBatch)
    return batch


def pipeline(tmp_path: Path, sample_events: int = 300, sample_every: int = 10) -> Pipeline:
    profile = write_profile(tmp_path / "m1.json")
    retraining = {
        "after_critical_seconds": 60,
        "sample_events": sample_events,
        "sample_every": sample_every,
    }
    config = config_from_dict(
        {
            "alerts": {"window_events": 250, "resolve_after_windows": 4},
            "models": {"m1": model_config(profile, retraining=retraining)},
        }
    )
    return counted(config)


def drifted(p: Pipeline, state: dict) -> tuple[list, RetrainingRequest, list[dict]]:
    """A drift on x1 held long enough to ask for retraining."""
    rng = np.random.default_rng(1)
    rows = events(3_000, rng) + events(3_000, rng, 3_000, x1_shift=2.0)
    alerts, requests, samples = [], [], {}
    for start in range(0, len(rows), 250):
        result = p.process_messages([batch_message("m1", rows[start : start + 250])], state)
        alerts += result.alerts
        requests += result.retraining_requests
        samples.update(result.samples)
    (request,) = requests
    return alerts, request, samples[request.idempotency_key]


def status(request: RetrainingRequest, what: str, **extra: str) -> bytes:
    return RetrainingStatus(
        request.idempotency_key, request.model_id, what, request.model_version,  # type: ignore[arg-type]
        created_at=time.time(), **extra,
    ).to_json()  # fmt: skip


@pytest.mark.parametrize("every", [10, 4])
def test_a_request_carries_a_bounded_sample_of_recent_events(tmp_path: Path, every: int) -> None:
    state: dict = {}
    _, request, rows = drifted(pipeline(tmp_path, sample_events=200, sample_every=every), state)
    assert len(rows) == 200
    assert all(r["model_version"] == "1" for r in rows)
    last = request.last_event_time
    # the sample as it stood at the end of the run (250 events) that made the request
    assert last - 250 < max(r["timestamp"] for r in rows) <= last + 250
    # one event in ``every``: the 200 rows reach about every x 200 events back
    assert last - 2 * every * 200 <= min(r["timestamp"] for r in rows) <= last - every * 200 / 2


def test_succeeded_closes_the_episode_and_names_the_new_version(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    state: dict = {}
    alerts, request, _ = drifted(p, state)
    (firing,) = [a for a in alerts if a.status == "firing" and a.update == 0]
    assert request.alert_ids == [firing.alert_id]
    accepted = p.process_status([status(request, "accepted")], state)
    assert accepted.alerts == []
    done = p.process_status([status(request, "succeeded", new_version="2")], state)
    (resolved,) = done.alerts
    assert resolved.alert_id == firing.alert_id and resolved.status == "resolved"
    assert f"retrained as version 2 (retraining request {request.idempotency_key})" in (
        resolved.message
    )
    again = p.process_status([status(request, "succeeded", new_version="2")], state)
    assert again.alerts == []  # a status sent twice closes nothing twice
    # until the new version takes the traffic, the old one goes on drifting: the alert
    # policy's cooldown holds after a close as after a resolve (500 events, 500 s < 600 s)
    more = events(500, np.random.default_rng(2), 6_000, x1_shift=2.0)
    for start in range(0, len(more), 250):
        rows = more[start : start + 250]
        assert p.process_messages([batch_message("m1", rows)], state).alerts == []
    reg = p.metrics.registry
    labels = {"model": "m1", "status": "succeeded"}
    assert reg.get_sample_value("driftline_retraining_status_total", labels) == 2


def test_failed_keeps_the_episode_open_and_lets_it_ask_again(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    state: dict = {}
    _, request, _ = drifted(p, state)
    failed = p.process_status([status(request, "failed", detail="OOM")], state)
    assert failed.alerts == []
    slot = p.versions["m1"].slot("1", state)
    assert slot is not None
    from driftline.monitoring.alerting import EpisodeState

    episode = EpisodeState.from_bytes(state[slot.monitor.policy_key])
    assert episode.firing and not episode.retraining_requested


def test_bad_status_records_are_dead_letters(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    unknown = RetrainingStatus("k", "nope", "succeeded").to_json()
    result = p.process_status([b"{", b'{"schema": "x"}', unknown], {})
    assert [d.reason for _, d in result.dead_letters] == [
        Reason.SCHEMA,
        Reason.SCHEMA,
        Reason.UNKNOWN_MODEL,
    ]
