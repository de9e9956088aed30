"""ModelMonitor on its own: a profile built in memory, batches decoded from hand-built columns,
state in a dict. No pipeline, no config file, no profile file."""

from __future__ import annotations

import numpy as np
import orjson

from driftline.config import AlertSettings, ModelConfig
from driftline.detectors.profile import build_profile
from driftline.events.codec import BatchDecoder, PredictionBatch
from driftline.monitoring.alerting import AlertPolicy
from driftline.monitoring.monitor import ModelMonitor

FEATURES = {"x": "numeric", "c": "categorical"}
T0 = 1_700_000_000.0


def monitor() -> ModelMonitor:
    rng = np.random.default_rng(11)
    columns = {"x": rng.normal(0.0, 1.0, 20_000), "c": rng.choice(["a", "b", "c"], 20_000)}
    profile = build_profile("m", "1", columns, FEATURES)
    config = ModelConfig(task="regression", features=dict(FEATURES))
    return ModelMonitor("m", config, profile, AlertPolicy(AlertSettings(window_events=500)))


def batches(
    m: ModelMonitor, n: int, size: int, shift_from: int | None = None, seed: int = 3
) -> list[PredictionBatch]:
    """``n`` events in batches of ``size``; x moves up 2 sd from event ``shift_from`` on."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    if shift_from is not None:
        x[shift_from:] += 2.0
    c = rng.choice(["a", "b", "c"], n)
    decoder = BatchDecoder({"m": m.schema})
    out = []
    for s in range(0, n, size):
        cols = {
            "prediction_id": [f"p{i}" for i in range(s, min(n, s + size))],
            "timestamp": [T0 + i for i in range(s, min(n, s + size))],
            "prediction": [1.0] * len(range(s, min(n, s + size))),
            "features": {"x": x[s : s + size].tolist(), "c": c[s : s + size].tolist()},
        }
        message = orjson.dumps({"model_id": "m", "model_version": "1", "columns": cols})
        decoded = decoder.decode_predictions(message)
        assert decoded.batch is not None and not decoded.dead_letters
        out.append(decoded.batch)
    return out


def run(m: ModelMonitor, feed: list[PredictionBatch]) -> tuple[list, dict[str, bytes]]:
    state: dict[str, bytes] = {}
    alerts = []
    for batch in feed:
        alerts += m.process(batch, state).alerts
    return alerts, state


def test_a_stable_stream_raises_nothing_and_counts_every_event() -> None:
    m = monitor()
    alerts, state = run(m, batches(m, 6_000, 500))
    assert alerts == []
    assert m.events_seen(state) == 6_000


def test_a_shift_fires_one_drift_alert_naming_the_feature_after_it_starts() -> None:
    m = monitor()
    alerts, _ = run(m, batches(m, 6_000, 500, shift_from=3_000))
    (firing,) = [a for a in alerts if a.status == "firing"]
    assert firing.kind == "drift" and firing.feature == "x"
    assert [f.feature for f in firing.features] == ["x"]
    assert 3_000 < firing.features[0].events_seen < 3_200  # within a few hundred events


def test_the_alerts_do_not_depend_on_how_the_stream_was_batched() -> None:
    m = monitor()
    one, _ = run(m, batches(m, 6_000, 6_000, shift_from=3_000))
    many, _ = run(m, batches(m, 6_000, 137, shift_from=3_000))
    strip = [(a.alert_id, a.status, a.window_start_event, a.features) for a in one]
    assert strip == [(a.alert_id, a.status, a.window_start_event, a.features) for a in many]
    assert strip  # the shift was found
