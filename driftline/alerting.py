"""AlertPolicy: turns detector verdicts into firing and resolved Alert records.

Per (model, feature) an episode starts at the first drift signal and fires one alert; further
signals keep it open; after ``resolve_after_events`` model events without a signal it resolves
with a record that carries the same ``alert_id`` (the dedup id of the episode). State is a small
JSON blob so that the stream layer can keep it in a table beside the detector state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from driftline.detectors.base import Verdict
from driftline.records import Alert, FeatureEvidence, dedup_id


@dataclass
class EpisodeState:
    firing: bool = False
    episode: int = 0
    last_signal_event: int = 0
    alert_id: str = ""
    first_event_time: float = 0.0
    statistic: float = 0.0
    threshold: float = 0.0

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)  # orjson writes dataclasses natively (asdict deep-copies)

    @classmethod
    def from_bytes(cls, data: bytes | None) -> EpisodeState:
        return cls(**orjson.loads(data)) if data else cls()


@dataclass(frozen=True)
class AlertContext:
    """Where a verdict was reached: identifies the alert and carries its evidence."""

    model_id: str
    model_version: str
    feature: str
    detector: str
    kind: str
    reference_version: str
    events_seen: int  # model events processed when the signal came
    first_event_time: float
    last_event_time: float


class AlertPolicy:
    def __init__(self, resolve_after_events: int = 2000) -> None:
        self.resolve_after_events = resolve_after_events

    def observe(
        self, state: EpisodeState, verdict: Verdict, ctx: AlertContext
    ) -> tuple[EpisodeState, Alert | None]:
        """Advance one feature's episode by one verdict; return the new state and any alert."""
        if verdict.drift:
            if state.firing:
                state.last_signal_event = ctx.events_seen
                return state, None
            episode = state.episode + 1
            alert_id = dedup_id(
                ctx.model_id, ctx.model_version, ctx.kind, ctx.feature, ctx.detector, episode
            )
            state = EpisodeState(
                firing=True,
                episode=episode,
                last_signal_event=ctx.events_seen,
                alert_id=alert_id,
                first_event_time=ctx.first_event_time,
                statistic=verdict.peak,
                threshold=verdict.threshold,
            )
            return state, self._alert("firing", state, ctx, verdict)
        if state.firing and ctx.events_seen - state.last_signal_event >= self.resolve_after_events:
            state.firing = False
            return state, self._alert("resolved", state, ctx, verdict)
        return state, None

    def _alert(
        self, status: str, state: EpisodeState, ctx: AlertContext, verdict: Verdict
    ) -> Alert:
        statistic = state.statistic if status == "firing" else verdict.statistic
        if status == "firing":
            message = (
                f"{ctx.kind} on {ctx.model_id}/{ctx.feature}: {ctx.detector} statistic "
                f"{statistic:.1f} crossed {state.threshold:.1f} after {ctx.events_seen} events"
            )
        else:
            message = (
                f"{ctx.kind} on {ctx.model_id}/{ctx.feature} resolved: no signal for "
                f"{ctx.events_seen - state.last_signal_event} events"
            )
        evidence = FeatureEvidence(
            ctx.feature, ctx.detector, statistic, state.threshold, ctx.events_seen
        )
        return Alert(
            alert_id=state.alert_id,
            status=status,  # type: ignore[arg-type]
            severity="critical",
            kind=ctx.kind,  # type: ignore[arg-type]
            model_id=ctx.model_id,
            model_version=ctx.model_version,
            feature=ctx.feature,
            detector=ctx.detector,
            statistic=statistic,
            threshold=state.threshold,
            events_seen=ctx.events_seen,
            first_event_time=state.first_event_time,
            last_event_time=ctx.last_event_time,
            reference_version=ctx.reference_version,
            message=message,
            created_at=time.time(),
            features=[evidence],
        )
