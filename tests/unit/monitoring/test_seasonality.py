"""A feature on a daily cycle: baseline finds the cycle, a seasonal reference keeps a stable
cyclic stream quiet and still catches a change on top of it; without one, the alert says what
to configure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from driftline.config import InputError, config_from_dict
from driftline.events.records import Alert
from driftline.monitoring.baseline import profile_from_file
from tests.streams import counted

DAY_EVENTS = 5_000
T0 = 1_800_000_000.0 - 1_800_000_000.0 % 86_400  # a midnight, UTC


def stream(days: float, seed: int, shift_at: int | None = None) -> dict[str, np.ndarray]:
    """``load`` and ``echo`` follow the hour of day (mean +-2 over a day) with unit noise of
    their own (over a day they correlate through the cycle alone); ``other`` is unit noise.
    From ``shift_at``, ``load`` rises by 1 (one sd of its noise)."""
    rng = np.random.default_rng(seed)
    n = int(days * DAY_EVENTS)
    t = T0 + np.arange(n) * 86_400 / DAY_EVENTS
    hour = (t % 86_400) / 3_600
    load = 2 * np.sin(2 * np.pi * hour / 24) + rng.normal(0, 1, n)
    if shift_at is not None:
        load[shift_at:] += 1.0
    echo = 2 * np.sin(2 * np.pi * hour / 24) + rng.normal(0, 1, n)
    return {"timestamp": t, "load": load, "echo": echo, "other": rng.normal(0, 1, n)}


FEATURES = ("load", "echo", "other")
MODEL = {"task": "regression", "features": dict.fromkeys(FEATURES, "numeric")}


def baseline(tmp_path: Path, model: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    data = stream(6, seed=100)
    path = tmp_path / "train.jsonl"
    path.write_bytes(
        b"\n".join(
            orjson.dumps({k: float(v[i]) for k, v in data.items()})
            for i in range(len(data["load"]))
        )
    )
    config = config_from_dict({"models": {"m": model}})
    profile, notes = profile_from_file("m", config.models["m"], path, "1")
    ref = tmp_path / "m.json"
    ref.write_bytes(profile.to_json())
    return {**model, "reference": str(ref)}, notes


def alerts(model: dict[str, Any], cols: dict[str, np.ndarray]) -> list[Alert]:
    pipeline = counted(config_from_dict({"models": {"m": model}}))
    state: dict[str, bytes] = {}
    out: list[Alert] = []
    n = len(cols["load"])
    for a in range(0, n, 500):
        b = min(a + 500, n)
        message = {
            "model_id": "m",
            "model_version": "1",
            "columns": {
                "prediction_id": [f"p{i}" for i in range(a, b)],
                "timestamp": cols["timestamp"][a:b].tolist(),
                "prediction": [0.0] * (b - a),
                "features": {k: cols[k][a:b].tolist() for k in FEATURES},
            },
        }
        out += pipeline.process_messages([orjson.dumps(message)], state).alerts
    return [a for a in out if a.kind == "drift"]


def test_without_seasonality_the_cycle_is_noted_and_its_alert_says_what_to_configure(
    tmp_path: Path,
) -> None:
    model, notes = baseline(tmp_path, MODEL)
    cyclic = [n for n in notes if "cycle" in n]
    assert [n.split()[1] for n in cyclic] == ["load", "echo"]
    assert cyclic[0].startswith("feature load follows a daily cycle in ")
    assert cyclic[0].endswith(
        "set models.m.seasonality: {period: daily} to compare each value with its own time slot"
    )
    firing = [a for a in alerts(model, stream(1, seed=1)) if a.status == "firing"]
    assert {f.feature for f in firing[0].features} <= {"load", "echo"}
    named = ", ".join(f.feature for f in firing[0].features)
    assert firing[0].message.endswith(
        f"({named} follow{'s' if ',' not in named else ''} a daily cycle in the training data: "
        "set models.m.seasonality: {period: daily} and rebuild the baseline with its "
        "timestamps, to compare each value with its own time slot)"
    )
    # the pair, correlated over a day through the cycle alone, is not joint drift: baseline
    # measured the dependence within each hour, as the stream shows it
    assert not any(f.detector == "joint" for a in firing for f in a.features)


def test_a_seasonal_reference_keeps_a_stable_cycle_quiet_and_catches_a_change_on_it(
    tmp_path: Path,
) -> None:
    model, notes = baseline(tmp_path, {**MODEL, "seasonality": {"period": "daily"}})
    assert not any("cycle" in note for note in notes)
    assert alerts(model, stream(2, seed=2)) == []
    onset = DAY_EVENTS + DAY_EVENTS // 3
    (firing,) = [
        a for a in alerts(model, stream(2, seed=3, shift_at=onset)) if a.status == "firing"
    ]
    assert firing.feature == "load" and onset < firing.window_start_event < onset + 300
    assert "cycle" not in firing.message


def test_seasonality_needs_the_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("load,echo,other\n" + "\n".join(f"{i % 7},{i % 3},{i % 5}" for i in range(200)))
    config = config_from_dict({"models": {"m": {**MODEL, "seasonality": {"period": "daily"}}}})
    with pytest.raises(
        InputError,
        match=r"no column 'timestamp' \(--timestamp-column\); "
        r"models.m.seasonality needs when each row happened; its columns: load, echo, other",
    ):
        profile_from_file("m", config.models["m"], path, "1")
