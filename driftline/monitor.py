"""ModelMonitor: the pure pipeline from a decoded batch to alerts, shared by worker and replay.

State lives in any ``MutableMapping[str, bytes]``: a Faust table in the worker (each key is
written back once per batch, so the changelog records it), a dict in replay and tests. Live
detector objects are cached and rebuilt from the mapping only when its bytes changed under us
(after a restart or a rebalance), so the hot path does not deserialise every batch.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass

import numpy as np

from driftline import detectors
from driftline.alerting import AlertContext, AlertPolicy, EpisodeState
from driftline.config import ConfigError, ModelConfig
from driftline.detectors.base import Detector, Verdict
from driftline.detectors.profile import ReferenceProfile
from driftline.records import Alert
from driftline.stream.codec import ModelSchema, PredictionBatch

log = logging.getLogger(__name__)

DEFAULT_DETECTORS = {"numeric": "cusum", "categorical": "categorical_cusum"}


@dataclass(frozen=True)
class FeatureOutcome:
    feature: str
    detector: str
    verdict: Verdict
    firing: bool


@dataclass(frozen=True)
class BatchOutcome:
    model_id: str
    events: int
    alerts: list[Alert]
    features: list[FeatureOutcome]


@dataclass(frozen=True)
class _FeatureSpec:
    feature: str
    kind: str
    detector: str
    arl: float
    params: dict[str, float]


def _choices(kind: str) -> list[str]:
    return sorted(n for n, c in detectors.registered().items() if c.input_kind in (kind, "any"))


class ModelMonitor:
    """Detectors and alert policy for one model."""

    def __init__(
        self,
        model_id: str,
        config: ModelConfig,
        profile: ReferenceProfile | None,
        policy: AlertPolicy,
    ) -> None:
        self.model_id = model_id
        self.config = config
        self.profile = profile
        self.policy = policy
        self.schema = ModelSchema(
            numeric=tuple(f for f, t in config.features.items() if t == "numeric"),
            categorical=tuple(f for f, t in config.features.items() if t == "categorical"),
        )
        self.specs = self._specs()
        self._live: dict[str, tuple[bytes, Detector]] = {}
        self._episodes: dict[str, tuple[bytes | None, EpisodeState]] = {}

    def _specs(self) -> list[_FeatureSpec]:
        if self.profile is None:
            log.warning("model %s has no reference profile: drift detection is off", self.model_id)
            return []
        features = [f for f in self.config.features if f in self.profile.features]
        missing = set(self.config.features) - set(features)
        if missing:
            log.warning(
                "model %s: no reference for %s; those features are not drift-checked",
                self.model_id,
                ", ".join(sorted(missing)),
            )
        # The model's budget is shared evenly: with F detectors each may raise a false alarm
        # once per F * budget values, so the model as a whole keeps its budget (union bound).
        share = self.config.false_alarm_budget * max(len(features), 1)
        specs = []
        for feature in features:
            kind = self.config.features[feature]
            override = self.config.detectors.get(feature)
            name = (override.detector if override else None) or DEFAULT_DETECTORS[kind]
            accepts = detectors.registered().get(name)
            if accepts is None or accepts.input_kind not in (kind, "any"):
                what = (
                    "is not a registered detector"
                    if accepts is None
                    else (f"takes {accepts.input_kind} input, the feature is {kind}")
                )
                raise ConfigError(
                    f"models.{self.model_id}.detectors.{feature}.detector: {name!r} {what}; "
                    f"for {kind} features use one of: {', '.join(_choices(kind))}"
                )
            arl = (override.false_alarm_budget if override else None) or share
            params = dict(override.params) if override else {}
            specs.append(_FeatureSpec(feature, kind, name, arl, params))
        return specs

    def key(self, feature: str, part: str) -> str:
        return f"{self.model_id}/{feature}/{part}"

    def _detector(self, spec: _FeatureSpec, state: MutableMapping[str, bytes]) -> Detector:
        key = self.key(spec.feature, spec.detector)
        stored = state.get(key)
        cached = self._live.get(key)
        if cached is not None and stored is cached[0]:
            return cached[1]
        assert self.profile is not None
        detector = detectors.create(
            spec.detector, self.profile.features[spec.feature], arl=spec.arl, **spec.params
        )
        if stored is not None:
            detector.restore(stored)
        return detector

    def _episode(self, key: str, state: MutableMapping[str, bytes]) -> EpisodeState:
        stored = state.get(key)
        cached = self._episodes.get(key)
        if cached is not None and stored is cached[0]:
            return cached[1]
        episode = EpisodeState.from_bytes(stored)
        self._episodes[key] = (stored, episode)
        return episode

    def events_seen(self, state: MutableMapping[str, bytes]) -> int:
        raw = state.get(self.key("_model", "events"))
        return int(raw) if raw else 0

    def process(self, batch: PredictionBatch, state: MutableMapping[str, bytes]) -> BatchOutcome:
        before = self.events_seen(state)
        n = len(batch)
        alerts: list[Alert] = []
        outcomes: list[FeatureOutcome] = []
        reference_version = self.profile.version if self.profile else ""
        for spec in self.specs:
            if spec.kind == "numeric":
                column = batch.numeric[spec.feature]
                present = ~np.isnan(column)
            else:
                column = batch.categorical[spec.feature]
                present = column != None  # noqa: E711  (elementwise on an object array)
            rows = np.flatnonzero(present)
            detector = self._detector(spec, state)
            verdict = detector.update(column[rows])
            key = self.key(spec.feature, spec.detector)
            blob = detector.state_bytes()
            state[key] = blob  # assigned back: Faust records only assignments
            self._live[key] = (blob, detector)
            at = before + (int(rows[verdict.first_alarm]) + 1 if verdict.drift else n)
            ctx = AlertContext(
                model_id=self.model_id,
                model_version=batch.model_version,
                feature=spec.feature,
                detector=spec.detector,
                kind="drift",
                reference_version=reference_version,
                events_seen=at,
                first_event_time=float(batch.timestamps[0]),
                last_event_time=float(batch.timestamps[-1]),
            )
            policy_key = self.key(spec.feature, "policy")
            episode = self._episode(policy_key, state)
            if verdict.drift or episode.firing:  # otherwise the policy has nothing to change
                was = episode.to_bytes()
                episode, alert = self.policy.observe(episode, verdict, ctx)
                now = episode.to_bytes()
                if now != was:
                    state[policy_key] = now
                    self._episodes[policy_key] = (now, episode)
            else:
                alert = None
            if alert is not None:
                alerts.append(alert)
            outcomes.append(FeatureOutcome(spec.feature, spec.detector, verdict, episode.firing))
        state[self.key("_model", "events")] = str(before + n).encode()
        return BatchOutcome(model_id=self.model_id, events=n, alerts=alerts, features=outcomes)
