"""A model's live versions, each monitored on its own against its own reference profile.

Events carry their model version. Each version seen gets its own monitors (drift, data
quality, history, performance), whose state keys start with the version's *scope*:
``<model>/@<version>:<profile version>``. A version is compared with the profile published for
it; one that arrives without a profile is compared with the model's newest profile, reported
once (a data-quality alert that resolves when its own profile arrives) and named as such in
every alert. A new profile for a version gives it a new scope: its detectors start afresh
against the new reference, its open episodes resolve saying why, the old state is dropped.
Versions whose profile did not change keep their state.

At most ``versions.max_live`` versions per model are monitored; events of any other are
counted, not monitored. A version that has had no event for ``versions.retire_after_seconds``
of event time while the model's other versions have is retired: its open episodes resolve
with that reason and its state is dropped, which frees its place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field, replace

import numpy as np
import orjson

from driftline.config import ModelConfig
from driftline.detectors.profile import ReferenceProfile
from driftline.events.codec import PredictionBatch
from driftline.events.records import Alert, FeatureEvidence, dedup_id
from driftline.monitoring.alerting import AlertPolicy, Chunk, EpisodeState
from driftline.monitoring.history import FeatureHistory
from driftline.monitoring.monitor import ModelMonitor
from driftline.monitoring.performance import PerformanceEstimator, PerformanceMonitor

NO_PROFILE_CHECK = "model_version"  # the data-quality check that reports a profile missing


class ProfileBook:
    """Reference profiles by model and version: the config's files, then whatever the
    profiles topic brings. The newest one added per model serves versions without their own."""

    def __init__(self) -> None:
        self.profiles: dict[str, dict[str, ReferenceProfile]] = {}
        self.newest: dict[str, ReferenceProfile] = {}

    def add(self, profile: ReferenceProfile, model_id: str = "") -> bool:
        """Keep ``profile`` for its version of ``model_id`` (default: the model it names;
        a config's reference file serves the model that names it); whether it is new."""
        model_id = model_id or profile.model_id
        versions = self.profiles.setdefault(model_id, {})
        known = versions.get(profile.model_version)
        if known is not None and known.version == profile.version:
            return False
        versions[profile.model_version] = profile
        self.newest[model_id] = profile
        return True

    def own(self, model_id: str, version: str) -> ReferenceProfile | None:
        return self.profiles.get(model_id, {}).get(version)


@dataclass
class Slot:
    """One monitored version: its profile and the monitors that keep its state."""

    version: str
    profile: ReferenceProfile | None
    own: bool  # the profile is this version's own (not the model's newest, standing in)
    scope: str
    monitor: ModelMonitor
    history: FeatureHistory
    estimator: PerformanceEstimator | None = None
    performance: PerformanceMonitor | None = None

    def episodes(self) -> list[tuple[str, AlertPolicy, str]]:
        """Each episode the slot keeps: (state key, its policy, alert kind)."""
        m = self.monitor
        out = [(m.policy_key, m.policy, "drift"), (m.quality_policy_key, m.policy, "data_quality")]
        if self.performance is not None:
            out.append((self.performance.policy_key, self.performance.policy, "performance"))
        if self.estimator is not None:
            out.append((self.estimator.policy_key, self.estimator.policy, "performance"))
        return out


SlotFactory = Callable[[str, ReferenceProfile | None, str], Slot]  # version, profile, scope


@dataclass
class Routed:
    """A batch split by version: each monitored version's rows, and what routing decided."""

    parts: list[tuple[Slot, PredictionBatch]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    unmonitored: int = 0  # events of versions beyond ``max_live``


@dataclass
class _Entry:
    scope: str
    own: bool
    last: float  # event time of the version's latest event
    first: float  # ... and of its first: the newest version is the last to arrive


class ModelVersions:
    """The live versions of one model, kept in the state under ``<model>/_versions``."""

    def __init__(
        self, model_id: str, config: ModelConfig, book: ProfileBook, make_slot: SlotFactory
    ) -> None:
        self.model_id = model_id
        self.settings = config.versions
        self.report_missing = config.data_quality.enabled and config.data_quality.model_version
        self.book = book
        self.make_slot = make_slot
        self.key = f"{model_id}/_versions"
        # the live versions after the last route or retire (what the metrics show)
        self.last_live: frozenset[str] = frozenset()
        self._slots: dict[str, Slot] = {}  # by scope

    def live(self, state: MutableMapping[str, bytes]) -> dict[str, _Entry]:
        raw = state.get(self.key)
        return {v: _Entry(**e) for v, e in orjson.loads(raw).items()} if raw else {}

    def slot(self, version: str, state: MutableMapping[str, bytes]) -> Slot | None:
        """The live slot of ``version``, if it is monitored."""
        entry = self.live(state).get(version)
        return None if entry is None else self._slot(version, entry.scope)

    def newest(self, state: MutableMapping[str, bytes]) -> Slot | None:
        live = self.live(state)
        if not live:
            return None
        version, entry = max(live.items(), key=lambda ve: (ve[1].first, ve[0]))
        return self._slot(version, entry.scope)

    def route(self, batch: PredictionBatch, state: MutableMapping[str, bytes]) -> Routed:
        """Each monitored version's rows of ``batch`` with its slot (oldest version first),
        after replacing and adding versions as the batch and the profiles say."""
        routed = Routed()
        live = self.live(state)
        rows = by_version(batch)
        changed = False
        for version, index in rows.items():
            times = batch.timestamps[index]
            entry = live.get(version)
            if entry is not None:
                wanted = self._wanted(version, entry.scope)
                if self._scope(version, wanted) != entry.scope:
                    reason = (
                        f"version {version} is now compared with reference profile "
                        f"{wanted.version[:12] if wanted else '(none)'}: its detectors start "
                        "again against it"
                    )
                    self._drop(version, entry, state, reason, float(times[0]), routed)
                    entry = None
            if entry is None:
                if version not in live and len(live) >= self.settings.max_live:
                    routed.unmonitored += len(index)
                    continue
                entry = self._add(version, float(times[0]), state, routed)
            entry.last = max(entry.last, float(times[-1]))
            live[version] = entry
            changed = True
        if changed:
            state[self.key] = orjson.dumps({v: e.__dict__ for v, e in live.items()})
        self.last_live = frozenset(live)
        order = sorted(rows, key=lambda v: (live[v].first, v) if v in live else (0.0, v))
        for version in order:
            if version in live:
                slot = self._slot(version, live[version].scope)
                routed.parts.append((slot, batch.rows(rows[version])))
        return routed

    def retire(self, state: MutableMapping[str, bytes], latest: float) -> list[Alert]:
        """Retire the versions without an event for ``retire_after_seconds`` before event time
        ``latest`` (after a run, whose rows of every version were monitored first): their
        open episodes' resolved records."""
        routed = Routed()
        live = self.live(state)
        retired = False
        for version, entry in list(live.items()):
            idle = latest - entry.last
            if idle > self.settings.retire_after_seconds:
                retired = True
                reason = (
                    f"version {version} retired: no events for {idle:.0f} s while other "
                    f"versions had them (versions.retire_after_seconds: "
                    f"{self.settings.retire_after_seconds:.0f})"
                )
                self._drop(version, entry, state, reason, latest, routed)
                del live[version]
        if retired:
            state[self.key] = orjson.dumps({v: e.__dict__ for v, e in live.items()})
        self.last_live = frozenset(live)
        return routed.alerts

    def _add(
        self, version: str, at: float, state: MutableMapping[str, bytes], routed: Routed
    ) -> _Entry:
        own = self.book.own(self.model_id, version)
        profile = own or self.book.newest.get(self.model_id)
        scope = self._scope(version, profile)
        entry = _Entry(scope=scope, own=own is not None, last=at, first=at)
        slot = self._slot(version, scope, profile)
        if profile is not None and own is None and self.report_missing:
            routed.alerts.append(self._missing_profile(slot, "firing", at, state))
        return entry

    def _drop(
        self,
        version: str,
        entry: _Entry,
        state: MutableMapping[str, bytes],
        reason: str,
        at: float,
        routed: Routed,
    ) -> None:
        """Resolve the slot's open episodes for ``reason`` and forget its state."""
        slot = self._slot(version, entry.scope)
        routed.alerts += self._close(slot, state, reason, at)
        if not entry.own and slot.profile is not None and self.report_missing:
            routed.alerts.append(self._missing_profile(slot, "resolved", at, state, reason))
        prefix = f"{entry.scope}/"
        for key in [k for k in state if k.startswith(prefix)]:
            del state[key]
        self._slots.pop(entry.scope, None)

    def close_episodes(
        self, version: str, alert_ids: list[str], reason: str, state: MutableMapping[str, bytes]
    ) -> list[Alert]:
        """Resolve ``version``'s open episodes among ``alert_ids`` for ``reason`` (retrained)."""
        entry = self.live(state).get(version)
        if entry is None:  # retired meanwhile: its episodes closed then
            return []
        slot = self._slot(version, entry.scope)
        return self._close(slot, state, reason, entry.last, set(alert_ids))

    def ask_again(
        self, version: str, alert_ids: list[str], state: MutableMapping[str, bytes]
    ) -> None:
        """Let ``version``'s open episodes among ``alert_ids`` ask for retraining again (their
        request failed), within the policy's cooldown and daily cap."""
        entry = self.live(state).get(version)
        if entry is None:
            return
        for key, _, _ in self._slot(version, entry.scope).episodes():
            episode = EpisodeState.from_bytes(state.get(key))
            if episode.firing and episode.alert_id in alert_ids:
                episode.retraining_requested = False
                state[key] = episode.to_bytes()

    def _close(
        self,
        slot: Slot,
        state: MutableMapping[str, bytes],
        reason: str,
        at: float,
        only: set[str] | None = None,
    ) -> list[Alert]:
        """The resolved records of the slot's open episodes (those of ``only``, if given)."""
        events = slot.monitor.events_seen(state)
        reference = slot.profile.version if slot.profile else ""
        closed = []
        for key, policy, kind in slot.episodes():
            episode = EpisodeState.from_bytes(state.get(key))
            if only is not None and episode.alert_id not in only:
                continue
            chunk = Chunk(self.model_id, slot.version, kind, reference, events, np.array([at]))  # type: ignore[arg-type]
            alert = policy.close(episode, chunk, reason)
            if alert is not None:
                closed.append(alert)
                state[key] = episode.to_bytes()
        return closed

    def _missing_profile(
        self,
        slot: Slot,
        status: str,
        at: float,
        state: MutableMapping[str, bytes],
        reason: str = "",
    ) -> Alert:
        """The data-quality record of a version monitored against another's profile."""
        assert slot.profile is not None
        standing_in = slot.profile.model_version
        if status == "firing":
            message = (
                f"Data quality on {self.model_id}: model_version {slot.version} has no reference "
                f"profile: its events are compared with version {standing_in}'s until it has one "
                f"(driftline baseline --model {self.model_id} --model-version {slot.version} "
                "--publish)"
            )
        else:
            message = f"Data quality on {self.model_id} resolved: {reason}"
        events = slot.monitor.events_seen(state)
        return Alert(
            alert_id=dedup_id(self.model_id, slot.version, "data_quality", "no_profile"),
            status=status,  # type: ignore[arg-type]
            severity="warning",
            kind="data_quality",
            model_id=self.model_id,
            model_version=slot.version,
            feature=NO_PROFILE_CHECK,
            detector=NO_PROFILE_CHECK,
            statistic=0.0,
            threshold=0.0,
            events_seen=events,
            first_event_time=at,
            last_event_time=at,
            reference_version=slot.profile.version,
            message=message,
            created_at=time.time(),
            features=[
                FeatureEvidence(
                    NO_PROFILE_CHECK, NO_PROFILE_CHECK, 0.0, 0.0, events, examples=[slot.version]
                )
            ],
            window_start_event=events,
            features_drifting=1,
        )

    def _scope(self, version: str, profile: ReferenceProfile | None) -> str:
        return f"{self.model_id}/@{version}:{profile.version[:12] if profile else '-'}"

    def _slot(self, version: str, scope: str, profile: ReferenceProfile | None = None) -> Slot:
        slot = self._slots.get(scope)
        if slot is None:
            if profile is None:  # after a restart: the scope names the profile it was built on
                profile = self._profile_of(version, scope)
            slot = self._slots[scope] = self.make_slot(version, profile, scope)
        return slot

    def _wanted(self, version: str, scope: str) -> ReferenceProfile | None:
        """The profile a live version should be compared with now: its own once it has
        one; until then the one it stands on, while it is known, else the model's newest."""
        own = self.book.own(self.model_id, version)
        return own or self._profile_of(version, scope) or self.book.newest.get(self.model_id)

    def _profile_of(self, version: str, scope: str) -> ReferenceProfile | None:
        """The known profile a scope was built on, if any."""
        wanted = scope.rsplit(":", 1)[1]
        for profile in self.book.profiles.get(self.model_id, {}).values():
            if profile.version[:12] == wanted:
                return profile
        return None


def with_standing_in(alert: Alert, slot: Slot) -> Alert:
    """An alert of a version compared with another version's profile says so."""
    if slot.own or slot.profile is None or alert.detector == NO_PROFILE_CHECK:
        return alert
    note = (
        f" (version {slot.version} has no reference profile yet: compared with version "
        f"{slot.profile.model_version}'s)"
    )
    return replace(alert, message=alert.message + note)


def by_version(batch: PredictionBatch) -> dict[str, np.ndarray]:
    """The rows of each version in ``batch``, in the order the versions first appear."""
    versions = batch.versions
    if not versions:
        return {}
    first = versions[0]
    if versions.count(first) == len(versions):  # the usual batch: one version
        return {first: np.arange(len(versions))}
    rows: dict[str, list[int]] = {}
    for i, v in enumerate(versions):
        rows.setdefault(v, []).append(i)
    return {v: np.asarray(r) for v, r in rows.items()}
