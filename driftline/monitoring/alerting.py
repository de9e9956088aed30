"""AlertPolicy: turns detector signals into one firing and one resolved Alert per episode.

Per model and kind (drift, data quality, performance) the policy keeps one episode:

- A model's events are cut into windows of ``window_events``. A subject (a feature) that
  signals in ``fire_after_windows`` consecutive windows triggers the episode.
- The alert fires ``group_wait_events`` later and lists every subject that signalled by then,
  ranked by excess (statistic over threshold, or repeated signals): fifty features drifting at
  once make one alert, not fifty.
- It resolves once every subject has had ``resolve_after_windows`` clean windows in a row;
  the resolved record carries the same ``alert_id``.
- While it fires, a subject that was not in its records (or came back after
  ``resolve_after_windows`` clean windows) and signals for ``fire_after_windows`` windows
  makes an update record, ``group_wait_events`` later: the same ``alert_id``, status
  ``firing``, ``update`` counting up and ``new_features`` naming it, so an open episode never
  hides new trouble (drift and data quality; see ``UPDATED_KINDS``). Severity only rises
  within an episode.
- After a resolve, no new episode fires for ``cooldown_seconds`` of event time.

Everything is counted in the model's events and its event timestamps, never in wall-clock
time, so the worker and ``driftline replay`` reach the same alerts at the same events however
the stream was cut into batches (the monitor cuts its chunks at window ends and fire points).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np
import orjson

from driftline.config import AlertSettings
from driftline.events.records import (
    Alert,
    AlertKind,
    AlertStatus,
    FeatureEvidence,
    Severity,
    dedup_id,
)

T = TypeVar("T")

# Kinds whose open episodes are updated when a new subject joins: a drifting feature or a
# broken check is news for on-call. A performance episode's subjects (the windowed metric,
# the error test, the label drift, the estimate) are views of one model's quality, and a
# second view confirming the first is not, unless it makes the episode critical.
UPDATED_KINDS = frozenset({"drift", "data_quality"})


@dataclass
class SubjectTrack:
    """One subject's recent signals, in windows."""

    detector: str
    streak: int = 0  # consecutive windows with a signal, the current one included if it has one
    clean: int = 0  # consecutive closed windows without a signal
    last_window: int = -1  # the last window with a signal
    first_event: int = 0  # event count at the first signal of the current streak
    signals: int = 0  # signals since then
    peak: float = 0.0  # the statistic at that first signal (past the threshold)
    threshold: float = 0.0
    # data-quality subjects (keyed "<feature>/<check>"): the feature, the check's reference
    # rate, its flagged events up to the first signal, and example flagged values
    feature: str = ""
    reference_rate: float | None = None
    flagged_at: int = -1
    examples: list[str] = field(default_factory=list)
    # performance subjects: the metric's value at the first signal (reference_rate: baseline)
    value: float | None = None

    @property
    def excess(self) -> float:
        ratio = self.peak / self.threshold if self.threshold > 0 else 0.0
        return max(ratio, float(self.signals))


@dataclass
class EpisodeState:
    window: int = 0  # the window the subjects' streaks are counted up to
    episode: int = 0
    firing: bool = False
    pending_at: int = -1  # event count at which a triggered alert fires (after the group wait)
    alert_id: str = ""
    severity: Severity = "warning"  # set when the episode fires
    start_event: int = 0  # event count at the episode's first signal
    start_time: float = 0.0
    fired_time: float = 0.0  # event time since when the episode is at its severity
    cooldown_until: float = 0.0  # event time before which no new episode fires
    retraining_requested: bool = False
    subjects: dict[str, SubjectTrack] = field(default_factory=dict)
    update: int = 0  # update records made in the episode
    update_at: int = -1  # event count at which a triggered update is made (after the group wait)
    announced: list[str] = field(default_factory=list)  # subjects the records have named
    group_end: int = -1  # where the group wait of an alert that fired early would have ended

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)  # orjson writes (nested) dataclasses natively

    @classmethod
    def from_bytes(cls, data: bytes | None) -> EpisodeState:
        if not data:
            return cls()
        doc = orjson.loads(data)
        doc["subjects"] = {k: SubjectTrack(**v) for k, v in doc["subjects"].items()}
        return cls(**doc)

    @property
    def quiet(self) -> bool:
        """Nothing to track: a chunk without signals cannot change this state."""
        return not self.subjects and not self.firing and self.pending_at < 0

    @property
    def due(self) -> int:
        """The event count at which a triggered record (alert or update) is made, or -1."""
        return self.pending_at if self.pending_at >= 0 else self.update_at


@dataclass(frozen=True)
class Signal:
    """A subject's detector signalled within a chunk."""

    subject: str
    detector: str
    at: int  # the model's event count at the first signal in the chunk
    count: int  # signals in the chunk
    peak: float  # statistic at the first signal
    threshold: float
    feature: str = ""  # when the subject is not the feature's name (data quality)
    reference_rate: float | None = None
    flagged_at: int = -1  # a rate check's flagged events up to the first signal
    examples: tuple[str, ...] = ()
    value: float | None = None  # a performance metric's value (reference_rate: its baseline)


@dataclass(frozen=True)
class Chunk:
    """A run of one model's events inside one policy window, with where they came from."""

    model_id: str
    model_version: str
    kind: AlertKind
    reference_version: str
    start: int  # the model's event count before the chunk
    times: np.ndarray  # event timestamps (epoch seconds), one per event
    # rate checks' flagged events up to the end of the chunk, by subject (data quality)
    flagged: dict[str, int] = field(default_factory=dict)

    @property
    def end(self) -> int:
        return self.start + len(self.times)

    def time_at(self, count: int) -> float:
        return float(self.times[count - self.start - 1])


@dataclass(frozen=True)
class Cut:
    """A batch must be run again with a chunk ending at event ``at`` (an alert or a retraining
    request falls due there, and what follows must not count in its evidence), or, with
    ``at`` None, with chunks ending at every window end."""

    at: int | None = None


@dataclass(frozen=True)
class Plan:
    """Where an attempt's chunks end besides where the batch does: the cuts asked for so
    far, and whether every window end counts (a monitor skips them while nothing drifts)."""

    cuts: frozenset[int] = frozenset()
    windowed: bool = False

    def after(self, cut: Cut) -> Plan:
        cuts = self.cuts if cut.at is None else self.cuts | {cut.at}
        return Plan(cuts, windowed=True)


def run_in_chunks(attempt: Callable[[Plan], T | Cut]) -> T:
    """``attempt(plan)`` runs a batch chunk by chunk from the stored state and returns its
    outcome, or the ``Cut`` it needs; it is then run again with the plan that cut asks for,
    from the stored state (the attempt that asked is discarded). The chunks end where alerts
    fire, however the stream was batched, so the alerts do not depend on the batching."""
    plan = Plan()
    while True:
        outcome = attempt(plan)
        if not isinstance(outcome, Cut):
            return outcome
        plan = plan.after(outcome)


class AlertPolicy:
    def __init__(self, settings: AlertSettings | None = None) -> None:
        self.settings = settings or AlertSettings()

    def window_end(self, count: int) -> int:
        """The event count at which the window holding event ``count + 1`` ends."""
        w = self.settings.window_events
        return (count // w + 1) * w

    def chunk_end(
        self,
        count: int,
        last: int,
        cuts: frozenset[int],
        pending: tuple[int, ...] = (),
        windowed: bool = True,
    ) -> int:
        """Where the chunk starting after event ``count`` ends, whichever comes first: the
        window's end (when ``windowed``), a cut asked for (``Cut``), an alert pending from
        an earlier chunk, or ``last``."""
        end = min(last, self.window_end(count)) if windowed else last
        later = [at for at in (*cuts, *pending) if count < at < end]
        return min([end, *later])

    def drifting(self, state: EpisodeState) -> set[str]:
        return {s for s, t in state.subjects.items() if t.streak > 0 or _recent(t, self)}

    def step(self, state: EpisodeState, chunk: Chunk, signals: list[Signal]) -> list[Alert] | Cut:
        """Advance the episode over one chunk; return the alerts made in it.

        When an alert would fire before the chunk ends, ``state`` is left as it was and the
        ``Cut`` at that event comes back: the caller runs the chunk again cut there, so that
        the alert's evidence never depends on how the stream was batched.
        """
        if signals and state.due < 0:  # an alert or an update may trigger
            trial = copy.deepcopy(state)
            outcome = self._step(trial, chunk, signals)
            if not isinstance(outcome, Cut):
                state.__dict__.update(trial.__dict__)
            return outcome
        return self._step(state, chunk, signals)

    def _step(self, state: EpisodeState, chunk: Chunk, signals: list[Signal]) -> list[Alert] | Cut:
        s = self.settings
        alerts: list[Alert] = []
        window = chunk.start // s.window_events
        if window > state.window:
            resolved = self._close_windows(state, window, chunk)
            if resolved is not None:
                alerts.append(resolved)
        trigger: tuple[int, str] | None = None
        update: tuple[int, str] | None = None
        early_alert: int | None = None  # where strong evidence makes a record due sooner
        early_update: int | None = None
        was_due = (state.pending_at, state.update_at)
        for sig in sorted(signals, key=lambda g: (g.at, g.subject)):
            track = state.subjects.get(sig.subject) or SubjectTrack(sig.detector)
            new_window = track.last_window != window
            if new_window:
                back = track.streak == 0 and not _recent(track, self)
                if back and sig.subject in state.announced:
                    state.announced.remove(sig.subject)  # it came back: news again
                if track.streak == 0:
                    track.first_event, track.signals, track.peak = sig.at, 0, 0.0
                track.streak += 1
                track.last_window = window
                track.clean = 0
            if track.signals == 0:  # later crossings are not all seen: keep the first one's
                track.peak = sig.peak
                track.feature = sig.feature
                track.reference_rate = sig.reference_rate
                track.flagged_at = sig.flagged_at
                track.examples = list(sig.examples)
                track.value = sig.value
            track.signals += sig.count
            track.threshold = sig.threshold
            state.subjects[sig.subject] = track
            can_fire = not state.firing and state.pending_at < 0 and trigger is None
            if (
                can_fire
                and new_window
                and track.streak >= s.fire_after_windows
                and chunk.time_at(sig.at) >= state.cooldown_until
            ):
                trigger = (sig.at, sig.subject)
            # other kinds' episodes are updated only when a subject makes them critical
            news = chunk.kind in UPDATED_KINDS or (
                state.severity != "critical" and track.excess >= s.critical_ratio
            )
            if (
                state.firing
                and news
                and state.update_at < 0
                and update is None
                and new_window
                and track.streak >= s.fire_after_windows
                and sig.subject not in state.announced
            ):
                update = (sig.at, sig.subject)
            awaited = (
                not state.firing and (state.pending_at >= 0 or trigger is not None),
                state.firing
                and (state.update_at >= 0 or update is not None)
                and sig.subject not in state.announced,
            )
            if any(awaited):
                early = self._early(track, sig)
                if isinstance(early, Cut):
                    return early
                if early is not None and awaited[0]:
                    early_alert = early if early_alert is None else min(early_alert, early)
                elif early is not None:
                    early_update = early if early_update is None else min(early_update, early)
        if update is not None:
            due = update[0] + s.group_wait_events
            if update[0] <= state.group_end:  # it followed an early record within its wait
                due = state.group_end
            state.update_at = due
        grouped = state.update_at == state.group_end  # followers of an early record wait
        if early_update is not None and early_update < state.update_at and not grouped:
            state.group_end, state.update_at = state.update_at, early_update
        if was_due[1] != state.update_at < chunk.end:
            return Cut(state.update_at)
        if trigger is not None:
            state.pending_at = trigger[0] + s.group_wait_events
            state.start_event = min(t.first_event for t in state.subjects.values() if t.streak > 0)
            state.start_time = chunk.time_at(trigger[0])
        if early_alert is not None and early_alert < state.pending_at:
            # who follows within the wait joins one update at its end
            state.group_end, state.pending_at = state.pending_at, early_alert
        if was_due[0] != state.pending_at < chunk.end:
            return Cut(state.pending_at)
        if state.pending_at >= 0 and state.pending_at <= chunk.end:
            alerts.append(self._fire(state, chunk))
        if state.update_at >= 0 and state.update_at <= chunk.end:
            alerts.append(self._update(state, chunk))
        return alerts

    def _early(self, track: SubjectTrack, sig: Signal) -> int | Cut | None:
        """Where a record awaited for ``track``'s subject is due before its group wait ends,
        because its evidence is already strong: the subject's excess has reached
        ``critical_ratio`` (its detector signalled that many times, or crossed that far).
        None if not (yet); a ``Cut`` at the signal when it holds several crossings and the
        one that made the excess is not known.
        """
        ratio = self.settings.critical_ratio
        if track.threshold > 0 and track.peak / track.threshold >= ratio:
            return sig.at
        before = track.signals - sig.count
        if before + sig.count < ratio:
            return None
        if before + 1 >= ratio:
            return sig.at
        return Cut(sig.at)  # cut there: the next chunk's first signal is the next crossing

    def _close_windows(self, state: EpisodeState, window: int, chunk: Chunk) -> Alert | None:
        closed = window - state.window
        for track in state.subjects.values():
            if track.last_window == state.window:  # the first closed window had a signal
                track.clean = closed - 1
                if closed > 1:
                    track.streak = 0
            else:
                track.streak = 0
                track.clean += closed
        state.window = window
        resolved = None
        if state.firing and not self.drifting(state):
            resolved = self._resolve(state, chunk)
        if not state.firing and state.pending_at < 0:
            keep = self.drifting(state)
            state.subjects = {k: v for k, v in state.subjects.items() if k in keep}
        return resolved

    def ranked(self, state: EpisodeState) -> list[tuple[str, SubjectTrack]]:
        active = [(k, t) for k, t in state.subjects.items() if t.signals > 0]
        return sorted(active, key=lambda kt: (-kt[1].excess, kt[1].first_event, kt[0]))

    def _fire(self, state: EpisodeState, chunk: Chunk) -> Alert:
        at = state.pending_at
        ranked = self.ranked(state)
        top_name, top = ranked[0]
        state.episode += 1
        state.firing = True
        state.pending_at = -1
        state.retraining_requested = False
        state.severity = "critical" if top.excess >= self.settings.critical_ratio else "warning"
        state.alert_id = dedup_id(
            chunk.model_id,
            chunk.model_version,
            chunk.kind,
            top_name,
            top.detector,
            state.episode,
            state.start_event,
        )
        state.fired_time = chunk.time_at(at)
        state.update = 0
        state.announced = [name for name, _ in ranked]
        alert = self._alert("firing", state, chunk, ranked, at, "")
        return replace(alert, message=firing_message(alert))

    def _update(self, state: EpisodeState, chunk: Chunk) -> Alert:
        """The open episode's record again, naming the subjects that joined it."""
        at = state.update_at
        ranked = self.ranked(state)
        new = [(name, t) for name, t in ranked if name not in state.announced]
        state.update += 1
        state.update_at = -1
        state.announced = [name for name, _ in ranked]
        if state.severity != "critical" and ranked[0][1].excess >= self.settings.critical_ratio:
            state.severity = "critical"
            state.fired_time = chunk.time_at(at)  # critical from here (retraining counts it)
        alert = self._alert("firing", state, chunk, ranked, at, "")
        names = [t.feature or name for name, t in new]
        alert = replace(alert, update=state.update, new_features=names)
        return replace(alert, message=firing_message(alert))

    def _resolve(self, state: EpisodeState, chunk: Chunk) -> Alert:
        state.firing = False
        state.update_at = -1
        state.group_end = -1
        ranked = self.ranked(state)
        cooldown = self.settings.cooldown_seconds
        state.cooldown_until = float(chunk.times[0]) + cooldown
        message = (
            f"{_KIND_TITLE[chunk.kind]} on {chunk.model_id} resolved: no signal in "
            f"{self.settings.resolve_after_windows} windows of "
            f"{self.settings.window_events} events"
        )
        return self._alert("resolved", state, chunk, ranked, chunk.start, message)

    def close(self, state: EpisodeState, chunk: Chunk, reason: str) -> Alert | None:
        """The open episode's resolved record, for ``reason`` (its version retired, its
        reference replaced): no later chunk will come to resolve it. None when none is open."""
        ranked = self.ranked(state)
        if not state.firing or not ranked:
            return None
        state.firing = False
        state.update_at = state.group_end = state.pending_at = -1
        # as after a resolve: a version retrained but still serving until its successor is
        # rolled out would otherwise fire again at once
        state.cooldown_until = float(chunk.times[-1]) + self.settings.cooldown_seconds
        message = f"{_KIND_TITLE[chunk.kind]} on {chunk.model_id} resolved: {reason}"
        return self._alert("resolved", state, chunk, ranked, chunk.start, message)

    def _alert(
        self,
        status: AlertStatus,
        state: EpisodeState,
        chunk: Chunk,
        ranked: list[tuple[str, SubjectTrack]],
        at: int,
        message: str,
    ) -> Alert:
        evidence = [
            FeatureEvidence(
                feature=t.feature or name,
                detector=t.detector,
                statistic=t.peak,
                threshold=t.threshold,
                events_seen=t.first_event,
                signals=t.signals,
                excess=t.excess,
                rate=t.value
                if t.value is not None
                else (_rate_since(t, chunk, name, at) if status == "firing" else None),
                reference_rate=t.reference_rate,
                examples=list(t.examples),
            )
            for name, t in ranked[: self.settings.top_features]
        ]
        top = evidence[0]
        last_time = chunk.time_at(at) if at > chunk.start else float(chunk.times[0])
        return Alert(
            alert_id=state.alert_id,
            status=status,
            severity=state.severity,
            kind=chunk.kind,
            model_id=chunk.model_id,
            model_version=chunk.model_version,
            feature=top.feature,
            detector=top.detector,
            statistic=top.statistic,
            threshold=top.threshold,
            events_seen=at,
            first_event_time=state.start_time,
            last_event_time=last_time,
            reference_version=chunk.reference_version,
            message=message,
            created_at=time.time(),
            features=evidence,
            window_start_event=state.start_event,
            features_drifting=len(ranked),
        )


_KIND_TITLE = {
    "drift": "Drift",
    "data_quality": "Data quality",
    "performance": "Performance",
    "comparison": "Champion and challenger",
}
_CHECK_TEXT = {  # how a data-quality cause reads after the feature's name
    "missing": "missing",
    "type_error": "of the wrong type",
    "out_of_range": "outside the reference range",
    "unseen_category": "with categories the reference never saw",
    "constant": "repeating one value",
    "unexpected_field": "(not a declared feature) present",
    "model_version": "changed: events from a new model version",
    # label outcomes, not events (monitoring/label_loss.py)
    "expired": "expiring without their prediction (label_ttl_seconds below their delay?)",
}


def firing_message(alert: Alert) -> str:
    """One line for people: what is wrong, where, and how badly."""
    ranked = alert.features
    title = f"{_KIND_TITLE[alert.kind]} on {alert.model_id}"
    if alert.update:
        title += f" (update {alert.update}: also {', '.join(alert.new_features)})"
    top = ranked[0]
    if alert.kind == "data_quality":
        line = f"{title}: {top.feature} {_CHECK_TEXT.get(top.detector, top.detector)}"
        if top.rate is not None:
            unit = "label" if top.detector == "expired" else "event"  # label outcomes counted
            line += f" in {top.rate:.0%} of {unit}s since {unit} {top.events_seen:,}"
            if top.reference_rate:
                line += f" (reference {top.reference_rate:.1%})"
        if top.examples:
            line += f", e.g. {', '.join(repr(e) for e in top.examples[:3])}"
        others = [f"{f.feature} {f.detector}" for f in ranked[1:3]]
        more = alert.features_drifting - 1 - len(others)
        if others:
            line += "; also " + ", ".join(others) + (f" and {more} more" if more > 0 else "")
        return line
    if alert.kind == "performance":
        return f"{title}: " + "; ".join(_performance_text(f) for f in ranked[:2])
    names = ", ".join(f.feature for f in ranked[:3]) + (" …" if alert.features_drifting > 3 else "")
    n = alert.features_drifting
    what = f"{top.feature} {top.detector}"
    if top.detector == "joint":  # a pair whose correlation changed, each alike on its own
        what = f"{top.feature} move together differently (joint)"
    return (
        f"{title}: {n} feature{'s' if n != 1 else ''} ({names}); top: {what} "
        f"{top.statistic:.1f} over threshold {top.threshold:.1f}, "
        f"{top.signals} signal{'s' if top.signals != 1 else ''}"
    )


def _performance_text(f: FeatureEvidence) -> str:
    if f.feature == "errors":
        return (
            f"errors rising from event {f.events_seen:,} ({f.detector} {f.statistic:.1f} over "
            f"{f.threshold:.1f})"
        )
    if f.feature == "_label":
        return (
            f"labels' distribution shifted from event {f.events_seen:,} ({f.detector} "
            f"{f.statistic:.1f} over {f.threshold:.1f})"
        )
    name = f.feature.replace("_", " ")
    if f.rate is None or f.reference_rate is None:
        return f"{name} worse than the baseline"
    return (
        f"{name} {f.rate:.3g} in the window ending at event {f.events_seen:,}, baseline "
        f"{f.reference_rate:.3g} (bar {f.threshold:.3g})"
    )


def _rate_since(track: SubjectTrack, chunk: Chunk, subject: str, at: int) -> float | None:
    """A rate check's share of flagged events from its first signal to the alert."""
    flagged_now = chunk.flagged.get(subject)
    if flagged_now is None or track.flagged_at < 0 or at <= track.first_event:
        return None
    return (flagged_now - track.flagged_at) / (at - track.first_event)


def _recent(track: SubjectTrack, policy: AlertPolicy) -> bool:
    return track.last_window >= 0 and track.clean < policy.settings.resolve_after_windows
