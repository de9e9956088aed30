"""AlertPolicy on hand-built chunks and signals: no detectors, profiles or pipeline."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from driftline.config import AlertSettings
from driftline.events.records import Alert
from driftline.monitoring.alerting import AlertPolicy, Chunk, Cut, EpisodeState, Signal

T0 = 1_700_000_000.0
SETTINGS = AlertSettings(
    window_events=100,
    fire_after_windows=1,
    resolve_after_windows=2,
    group_wait_events=10,
    cooldown_seconds=1_000,
    critical_ratio=2.0,
)


def chunk(start: int, end: int) -> Chunk:
    """Events start+1..end of model m, one second apart."""
    return Chunk("m", "1", "drift", "ref1", start, T0 + np.arange(start + 1, end + 1, dtype=float))


def signal(subject: str, at: int, peak: float = 10.5, count: int = 1) -> Signal:
    return Signal(subject, "cusum", at, count, peak, threshold=10.0)


def windows(policy: AlertPolicy, state: EpisodeState, start: int, n: int) -> list[Alert]:
    """``n`` quiet windows from event ``start`` on, one chunk each."""
    out: list[Alert] = []
    for w in range(n):
        out += policy.step(state, chunk(start + 100 * w, start + 100 * (w + 1)), [])
    return out


def test_a_signal_fires_one_alert_after_the_group_wait_and_resolves_after_clean_windows() -> None:
    policy, state = AlertPolicy(SETTINGS), EpisodeState()
    # the signal at event 90: the alert is due at 100, after this chunk (events 1-95)
    assert policy.step(state, chunk(0, 95), [signal("x", 90)]) == []
    assert state.pending_at == 100 and not state.firing
    (firing,) = policy.step(state, chunk(95, 100), [signal("y", 97, peak=12.0)])
    assert firing.status == "firing" and firing.severity == "warning"  # one signal each
    assert [f.feature for f in firing.features] == ["y", "x"]  # grouped, strongest first
    assert firing.window_start_event == 90  # the episode starts at its first signal
    # window 1 is the first clean one, window 2 the second: resolved as window 3 starts
    assert windows(policy, state, 100, 2) == []
    (resolved,) = windows(policy, state, 300, 1)
    assert resolved.status == "resolved" and resolved.alert_id == firing.alert_id
    assert state.cooldown_until == T0 + 301 + SETTINGS.cooldown_seconds


def test_an_alert_due_inside_the_chunk_asks_for_a_cut_there_and_changes_nothing() -> None:
    policy, state = AlertPolicy(SETTINGS), EpisodeState()
    assert policy.step(state, chunk(0, 100), [signal("x", 40)]) == Cut(50)  # plus the wait
    assert state == EpisodeState()  # the chunk runs again cut there: nothing half-changed
    # run again cut there, as the callers do: the alert fires at the cut, in that chunk
    state = EpisodeState()
    (firing,) = policy.step(state, chunk(0, 50), [signal("x", 40)])
    assert firing.status == "firing" and state.firing
    assert policy.step(state, chunk(50, 100), []) == []


def test_strong_evidence_fires_before_the_group_wait_and_followers_join_one_update() -> None:
    """A second crossing (the excess at critical_ratio) is evidence enough: the alert fires
    there; features that signal within what was its group wait make one update at its end."""
    policy, state = (
        AlertPolicy(SETTINGS.model_copy(update={"group_wait_events": 50})),
        EpisodeState(),
    )
    assert policy.step(state, chunk(0, 20), [signal("x", 10)]) == []
    assert state.pending_at == 60  # the group wait: 50
    assert policy.step(state, chunk(20, 40), [signal("x", 30)]) == Cut(30)
    (firing,) = policy.step(state, chunk(20, 30), [signal("x", 30)])
    assert firing.events_seen == 30 and firing.severity == "critical"
    assert [f.feature for f in firing.features] == ["x"]
    assert policy.step(state, chunk(30, 45), [signal("y", 35), signal("z", 44)]) == []
    assert state.update_at == 60  # not 35 + 50: the followers are grouped
    (update,) = policy.step(state, chunk(45, 60), [])
    assert update.update == 1 and update.new_features == ["y", "z"]
    # a later feature is news of its own, after its own group wait
    policy.step(state, chunk(60, 80), [signal("w", 70)])
    assert state.update_at == 120


def test_two_crossings_in_one_chunk_cut_at_the_first_to_find_the_second() -> None:
    policy, state = (
        AlertPolicy(SETTINGS.model_copy(update={"group_wait_events": 50})),
        EpisodeState(),
    )
    assert policy.step(state, chunk(0, 40), [signal("x", 10, count=2)]) == Cut(10)
    assert state == EpisodeState()


def test_a_weak_signal_is_a_warning() -> None:
    policy, state = AlertPolicy(SETTINGS), EpisodeState()
    policy.step(state, chunk(0, 95), [signal("x", 90, peak=12.0)])
    (firing,) = policy.step(state, chunk(95, 100), [])
    assert firing.severity == "warning"  # 12 / 10 and one signal: under the critical ratio


def test_no_new_episode_fires_within_the_cooldown() -> None:
    policy, state = AlertPolicy(SETTINGS), EpisodeState()
    policy.step(state, chunk(0, 95), [signal("x", 90)])
    policy.step(state, chunk(95, 100), [])
    windows(policy, state, 100, 3)  # resolved as window 3 starts (event 301)
    assert not state.firing
    # a signal 200 events (200 s) later is within the 1,000 s cooldown
    assert policy.step(state, chunk(400, 495), [signal("x", 450)]) == []
    assert state.pending_at < 0
    # one past it fires again, as a new episode with a new id
    later = 301 + int(SETTINGS.cooldown_seconds) + 10
    start = (later // 100) * 100
    policy.step(state, chunk(start, start + 95), [signal("x", start + 90)])
    (again,) = policy.step(state, chunk(start + 95, start + 100), [])
    assert again.status == "firing" and state.episode == 2


def test_the_state_round_trips_through_bytes_mid_episode() -> None:
    policy, state = AlertPolicy(SETTINGS), EpisodeState()
    policy.step(state, chunk(0, 95), [signal("x", 90)])
    restored = EpisodeState.from_bytes(state.to_bytes())
    assert restored == state
    (a,) = policy.step(state, chunk(95, 100), [])
    (b,) = policy.step(restored, chunk(95, 100), [])
    assert replace(a, created_at=0.0) == replace(b, created_at=0.0)  # created_at: wall clock
