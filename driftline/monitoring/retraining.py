"""RetrainingPlanner: sustained trouble on a model becomes one RetrainingRequest.

A model's retraining policy (config ``models.<id>.retraining``) asks for retraining when a
critical drift or performance alert has been firing for ``after_critical_seconds`` of event
time, at most once per episode, never within ``cooldown_seconds`` of the previous request and
at most ``max_per_day`` per UTC day. Data-quality alerts never ask: a broken pipeline is fixed
upstream, retraining on broken data would make it worse. Like the alert policy it counts in
event time, so replay and worker agree.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson

from driftline.config import RetrainingPolicy
from driftline.events.records import RetrainingRequest, dedup_id
from driftline.monitoring.alerting import AlertPolicy, Chunk, Cut, EpisodeState

RETRAINING_KINDS = ("drift", "performance")
MAX_AWAITED = 20  # a model's requests remembered until their status comes back
DAY = 86_400.0


@dataclass
class RetrainingState:
    last_time: float | None = None  # event time of the last request
    day: int = -1  # UTC day (days since the epoch) of the last request
    today: int = 0  # requests made that day

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes | None) -> RetrainingState:
        return cls(**orjson.loads(data)) if data else cls()


class RetrainingRun(Protocol):
    """What a monitor's attempt at a batch keeps of retraining."""

    episode: EpisodeState
    retraining: RetrainingState | None
    requests: list[RetrainingRequest]


class RetrainingPlanner:
    def __init__(self, policy: RetrainingPolicy, alert_policy: AlertPolicy) -> None:
        self.policy = policy
        self.alert_policy = alert_policy

    def wants(self, episode: EpisodeState, kind: str) -> bool:
        """Could this episode ask for retraining at all (cheap check before ``check``)?"""
        return (
            self.policy.enabled
            and kind in RETRAINING_KINDS
            and episode.firing
            and episode.severity == "critical"
            and not episode.retraining_requested
        )

    def step(
        self, run: RetrainingRun, state: MutableMapping[str, bytes], key: str, chunk: Chunk
    ) -> Cut | None:
        """The request due within this chunk, if any, added to ``run.requests`` (its state
        read from ``state[key]`` once per run); the ``Cut`` it needs, if any."""
        if run.retraining is None:
            run.retraining = RetrainingState.from_bytes(state.get(key))
        request = self.check(run.retraining, run.episode, chunk)
        if isinstance(request, Cut):
            return request
        if request is not None:
            run.requests.append(request)
        return None

    def check(
        self, retraining: RetrainingState, episode: EpisodeState, chunk: Chunk
    ) -> RetrainingRequest | Cut | None:
        """The request due within this chunk, if any; updates both states when it is made.

        When it falls due before the chunk's last event, the ``Cut`` there comes back and
        nothing changes (as with the alert policy), so the request's evidence does not depend
        on batch boundaries.
        """
        if not self.wants(episode, chunk.kind):
            return None
        p = self.policy
        earliest = episode.fired_time + p.after_critical_seconds
        if retraining.last_time is not None:
            earliest = max(earliest, retraining.last_time + p.cooldown_seconds)
        times = chunk.times
        due = times >= earliest
        if retraining.today >= p.max_per_day:  # that day's cap is spent: only later days
            due &= np.floor(times / DAY) > retraining.day
        hits = np.flatnonzero(due)
        if hits.size == 0:
            return None
        i = int(hits[0])
        at, now = chunk.start + i + 1, float(times[i])
        if at < chunk.end:  # the evidence must be what was known at that event, no later
            return Cut(at)
        day = int(now // DAY)
        retraining.today = retraining.today + 1 if day == retraining.day else 1
        retraining.day, retraining.last_time = day, now
        episode.retraining_requested = True
        ranked = self.alert_policy.ranked(episode)
        held = now - episode.fired_time
        return RetrainingRequest(
            idempotency_key=dedup_id(
                chunk.model_id, chunk.model_version, "retraining", episode.alert_id
            ),
            model_id=chunk.model_id,
            model_version=chunk.model_version,
            reason=(
                f"critical {chunk.kind} alert {episode.alert_id} firing for {held:.0f} s "
                f"(policy: {p.after_critical_seconds:.0f} s)"
            ),
            reference_version=chunk.reference_version,
            alert_ids=[episode.alert_id],
            features=[name for name, _ in ranked],
            kind=chunk.kind,
            severity=episode.severity,
            window_start_event=episode.start_event,
            events_seen=at,
            first_event_time=episode.start_time,
            last_event_time=now,
            created_at=time.time(),
        )


class RequestBook:
    """A model's retraining requests awaiting their outcome, under
    ``<model>/_retraining/requests``: the latest ``MAX_AWAITED``, with the version and the
    alerts each was made for (what a status record closes)."""

    def __init__(self, model_id: str) -> None:
        self.key = f"{model_id}/_retraining/requests"

    def awaited(self, state: MutableMapping[str, bytes]) -> dict[str, dict[str, Any]]:
        raw = state.get(self.key)
        return orjson.loads(raw) if raw else {}

    def add(self, request: RetrainingRequest, state: MutableMapping[str, bytes]) -> None:
        doc = self.awaited(state)
        doc[request.idempotency_key] = {
            "version": request.model_version,
            "alert_ids": request.alert_ids,
        }
        state[self.key] = orjson.dumps(dict(list(doc.items())[-MAX_AWAITED:]))

    def pop(self, key: str, state: MutableMapping[str, bytes]) -> dict[str, Any] | None:
        doc = self.awaited(state)
        found = doc.pop(key, None)
        if found is not None:
            state[self.key] = orjson.dumps(doc)
        return found
