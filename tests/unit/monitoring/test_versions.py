"""Each live model version is monitored on its own, against its own reference profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from driftline.config import config_from_dict
from driftline.detectors.profile import ReferenceProfile, build_profile
from driftline.events.records import Alert
from driftline.monitoring.pipeline import Pipeline
from tests.streams import FEATURES, batch_message, columns, counted, events, model_config

RETIRE = 600.0  # seconds; the streams have one event per second


def version_profile(version: str, x1_shift: float = 0.0, seed: int = 100) -> ReferenceProfile:
    """A profile of model m1's ``version``, whose x1 sits ``x1_shift`` sds from version 1's."""
    cols = columns(20_000, np.random.default_rng(seed), x1_shift)
    return build_profile("m1", version, cols, FEATURES, prediction=cols["x1"] * 2)


def pipeline(tmp_path: Path, **versions: Any) -> Pipeline:
    path = tmp_path / "m1.json"
    path.write_bytes(version_profile("1").to_json())
    settings = {"retire_after_seconds": RETIRE, **versions}
    config = config_from_dict(
        {
            "alerts": {"window_events": 250, "resolve_after_windows": 4},
            "models": {"m1": model_config(path, versions=settings)},
        }
    )
    return counted(config)


def mixed(
    n: int,
    start: int,
    share_new: float,
    new: str,
    old: str,
    rng: np.random.Generator,
    new_shift: float = 0.0,
    old_shift: float = 0.0,
) -> list[tuple[str, dict[str, Any]]]:
    """``n`` events from ``start``, a ``share_new`` of them from version ``new``."""
    old_rows = events(n, rng, start, x1_shift=old_shift)
    new_rows = events(n, rng, start, x1_shift=new_shift)
    pick = rng.random(n) < share_new
    return [(new, b) if p else (old, a) for a, b, p in zip(old_rows, new_rows, pick, strict=True)]


def run(p: Pipeline, tagged: list[tuple[str, dict[str, Any]]], state: dict) -> list[Alert]:
    """Messages of up to 50 events, each of one version, in stream order."""
    alerts: list[Alert] = []
    start = 0
    while start < len(tagged):
        version = tagged[start][0]
        end = start
        while end < len(tagged) and end - start < 50 and tagged[end][0] == version:
            end += 1
        rows = [row for _, row in tagged[start:end]]
        alerts += p.process_messages([batch_message("m1", rows, version)], state).alerts
        start = end
    return alerts


def firing(alerts: list[Alert], kind: str) -> list[Alert]:
    return [a for a in alerts if a.kind == kind and a.status == "firing" and a.update == 0]


def test_a_rollout_with_profiles_raises_nothing_and_retires_the_old_version(
    tmp_path: Path,
) -> None:
    """Version 2 sees x1 a whole sd higher (a new market, say), and its profile says so."""
    p = pipeline(tmp_path)
    p.add_profile(version_profile("2", x1_shift=1.0, seed=101))
    rng = np.random.default_rng(1)
    state: dict = {}
    stream = mixed(4_000, 0, 0.0, "2", "1", rng)  # version 1 alone
    stream += mixed(4_000, 4_000, 0.1, "2", "1", rng, new_shift=1.0)  # a 10% canary
    stream += mixed(3_000, 8_000, 0.5, "2", "1", rng, new_shift=1.0)  # half and half
    stream += mixed(4_000, 11_000, 1.0, "2", "1", rng, new_shift=1.0)  # version 2 alone
    alerts = run(p, stream, state)
    assert alerts == [], [a.message for a in alerts]  # mixed into one reference, x1 fires
    assert set(p.versions["m1"].live(state)) == {"2"}  # 1 retired after 600 s without events
    assert not [k for k in state if k.startswith("m1/@1:")]  # and its state dropped
    slot = p.versions["m1"].slot("2", state)
    assert slot is not None and slot.own and slot.profile is not None
    assert slot.profile.model_version == "2"
    # the live-versions gauge follows: version 2's series, version 1's removed
    registry = p.metrics.registry  # type: ignore[attr-defined]
    live = {
        s.labels["version"]: s.value
        for m in registry.collect()
        if m.name == "driftline_live_versions"
        for s in m.samples
    }
    assert live == {"2": 1.0}


def test_the_old_versions_open_episode_resolves_when_its_traffic_stops(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    p.add_profile(version_profile("2", seed=101))
    rng = np.random.default_rng(2)
    state: dict = {}
    stream = mixed(3_000, 0, 0.0, "2", "1", rng)
    stream += mixed(3_000, 3_000, 0.0, "2", "1", rng, old_shift=1.0)  # version 1 drifts
    stream += mixed(3_000, 6_000, 1.0, "2", "1", rng)  # then version 2 takes all traffic
    alerts = run(p, stream, state)
    drift = [a for a in alerts if a.kind == "drift"]
    assert [(a.status, a.model_version) for a in drift] == [("firing", "1"), ("resolved", "1")]
    opened, closed = drift
    assert closed.alert_id == opened.alert_id
    assert "version 1 retired: no events for 6" in closed.message
    assert closed.last_event_time >= 6_000 + RETIRE + 1_700_000_000


def test_a_version_without_a_profile_is_reported_once_and_named_in_its_alerts(
    tmp_path: Path,
) -> None:
    p = pipeline(tmp_path)
    rng = np.random.default_rng(3)
    state: dict = {}
    stream = mixed(2_000, 0, 0.0, "2", "1", rng)
    stream += mixed(4_000, 2_000, 1.0, "2", "1", rng, new_shift=1.0)  # version 2, no profile
    alerts = run(p, stream, state)
    (missing,) = firing(alerts, "data_quality")
    assert missing.model_version == "2" and missing.features[0].examples == ["2"]
    assert "--model-version 2 --publish" in missing.message
    (drift,) = firing(alerts, "drift")  # against version 1's reference, x1 moved
    assert drift.model_version == "2" and drift.feature == "x1"
    assert "version 2 has no reference profile yet: compared with version 1's" in drift.message
    # its own profile arrives (published while running): both episodes close, saying why,
    # and its detectors start again against it: nothing more fires
    assert p.add_profile(version_profile("2", x1_shift=1.0, seed=101))
    later = run(p, mixed(4_000, 6_000, 1.0, "2", "1", rng, new_shift=1.0), state)
    resolved = {a.alert_id: a.message for a in later if a.status == "resolved"}
    assert set(resolved) == {missing.alert_id, drift.alert_id}, [a.message for a in later]
    assert all("now compared with reference profile" in m for m in resolved.values())
    assert not [a for a in later if a.status == "firing"]
    slot = p.versions["m1"].slot("2", state)
    assert slot is not None and slot.own


def test_versions_past_the_limit_are_counted_not_monitored(tmp_path: Path) -> None:
    p = pipeline(tmp_path, max_live=2, retire_after_seconds=100_000)
    rng = np.random.default_rng(4)
    state: dict = {}
    tagged = [(str(1 + i % 3), row) for i, row in enumerate(events(3_000, rng))]
    run(p, tagged, state)
    assert set(p.versions["m1"].live(state)) == {"1", "2"}
    reg = p.metrics.registry
    assert reg.get_sample_value("driftline_unmonitored_events_total", {"model": "m1"}) == 1_000
    assert reg.get_sample_value("driftline_events_processed_total", {"model": "m1"}) == 2_000


def test_a_new_profile_restarts_only_its_own_version(tmp_path: Path) -> None:
    p = pipeline(tmp_path, retire_after_seconds=100_000)
    p.add_profile(version_profile("2", seed=101))
    rng = np.random.default_rng(5)
    state: dict = {}
    run(p, mixed(2_000, 0, 0.5, "2", "1", rng), state)
    versions = p.versions["m1"]
    seen = {v: versions.slot(v, state).monitor.events_seen(state) for v in ("1", "2")}  # type: ignore[union-attr]
    assert p.add_profile(version_profile("2", seed=102))  # version 2's profile rebuilt
    assert not p.add_profile(version_profile("2", seed=102))  # the same again: nothing new
    run(p, mixed(200, 2_000, 0.5, "2", "1", rng), state)
    after = {v: versions.slot(v, state).monitor.events_seen(state) for v in ("1", "2")}  # type: ignore[union-attr]
    assert after["1"] > seen["1"]  # version 1 went on counting
    assert after["2"] < 200 < seen["2"]  # version 2 started again


def test_retirement_does_not_wait_for_a_later_batch(tmp_path: Path) -> None:
    """The whole rollout in one run (a worker's take after a lag): version 1 still retires."""
    p = pipeline(tmp_path)
    p.add_profile(version_profile("2", seed=101))
    rng = np.random.default_rng(6)
    stream = mixed(3_000, 0, 0.0, "2", "1", rng, old_shift=1.0)  # version 1 drifting
    stream += mixed(3_000, 3_000, 1.0, "2", "1", rng)
    messages = [batch_message("m1", [row], version) for version, row in stream]
    state: dict = {}
    alerts = p.process_messages(messages[:2_500], state).alerts  # the drift opens
    # one run: version 1's last 500 events, then 3,000 s of version 2 alone
    alerts += p.process_messages(messages[2_500:], state).alerts
    assert [(a.status, a.model_version) for a in alerts if a.kind == "drift"] == [
        ("firing", "1"),
        ("resolved", "1"),
    ]
    assert set(p.versions["m1"].live(state)) == {"2"}


def test_a_reference_file_serves_the_model_that_names_it(tmp_path: Path) -> None:
    """One profile file (built for m1) named by another model's config: it is that model's."""
    path = tmp_path / "m1.json"
    path.write_bytes(version_profile("1").to_json())
    config = config_from_dict({"models": {"other": model_config(path)}})
    p = counted(config)
    state: dict = {}
    p.process_messages([batch_message("other", events(10, np.random.default_rng(0)))], state)
    slot = p.versions["other"].slot("1", state)
    assert slot is not None and slot.own and slot.monitor.specs
