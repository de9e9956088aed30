"""LabelLoss: labels that expire without meeting their prediction, as a data-quality alert.

A label waits for its prediction for ``label_ttl_seconds`` of event time, and a prediction for
its label as long. A label that comes after its prediction expired waits in vain and expires
in turn: with a TTL shorter than the labels' delay, most labels are lost that way, and without
this check only a counter says so. Every label's outcome is one value of a rate check
(joined: 0, expired: 1) on the model's false-alarm budget, in an episode of its own
(``<model>/_policy/labels``, kind ``data_quality``, counted in label outcomes), so the alert
fires, updates and resolves like any other. A throttled log line says the same, with the
longest delay of the labels that did join: what the TTL must exceed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping
from typing import Any

import numpy as np
import orjson

from driftline.config import AlertSettings
from driftline.detectors.quality import RateCheck, RunState
from driftline.events.records import Alert
from driftline.monitoring.alerting import (
    AlertPolicy,
    Chunk,
    Cut,
    EpisodeState,
    Plan,
    Signal,
    run_in_chunks,
)
from driftline.monitoring.join import JoinCounts

log = logging.getLogger(__name__)

SUBJECT = "_labels/expired"
LOG_EVERY_SECONDS = 300.0  # one log line per model this often at most, while labels expire
OUTCOMES_PER_WINDOW = 500  # label outcomes per policy window


class LabelLoss:
    def __init__(
        self, model_id: str, ttl: float, alerts: AlertSettings, arl: float, tolerance: float
    ) -> None:
        self.model_id = model_id
        self.ttl = ttl
        # no label should expire: the check's reference rate is 0 (floored by RateCheck)
        self.check = RateCheck(0.0, 0, arl, tolerance=tolerance)
        self.policy = AlertPolicy(alerts.model_copy(update={"window_events": OUTCOMES_PER_WINDOW}))
        self.state_key = f"{model_id}/_labels/loss"
        self.policy_key = f"{model_id}/_policy/labels"
        self._logged = -LOG_EVERY_SECONDS

    def process(
        self,
        counts: JoinCounts,
        delays: np.ndarray,
        event_time: float,
        version: str,
        state: MutableMapping[str, bytes],
    ) -> list[Alert]:
        """The outcomes of one run of the join: ``counts.joined`` labels met their prediction
        (``delays``: how long after it they came), ``counts.expired_labels`` expired."""
        outcomes = counts.joined + counts.expired_labels
        if outcomes == 0:
            return []
        flagged = np.zeros(outcomes, dtype=bool)
        flagged[counts.joined :] = True
        doc = orjson.loads(state.get(self.state_key) or b"{}")
        longest = max(float(doc.get("longest_delay", 0.0)), float(delays.max(initial=0.0)))
        alerts = run_in_chunks(
            lambda plan: self._process(flagged, event_time, version, doc, state, plan)
        )
        doc["longest_delay"] = longest
        state[self.state_key] = orjson.dumps(doc)
        if counts.expired_labels:
            self._log(counts, longest)
        return alerts

    def _process(
        self,
        flagged: np.ndarray,
        event_time: float,
        version: str,
        doc: dict[str, Any],
        state: MutableMapping[str, bytes],
        plan: Plan,
    ) -> list[Alert] | Cut:
        run = RunState.from_doc(doc.get("check"))
        episode = EpisodeState.from_bytes(state.get(self.policy_key))
        before = int(doc.get("outcomes", 0))
        n, pos, alerts = flagged.size, 0, []
        while pos < n:
            count = before + pos
            end = self.policy.chunk_end(count, before + n, plan.cuts) - before
            r = self.check.update(run, flagged[pos:end])
            signals = []
            if r.alarms:
                signals.append(
                    Signal(
                        SUBJECT,
                        "expired",
                        count + r.first + 1,
                        r.alarms,
                        r.peak,
                        r.threshold,
                        feature="labels",
                        reference_rate=0.0,
                        flagged_at=r.flagged_at,
                    )
                )
            chunk = Chunk(
                self.model_id,
                version,
                "data_quality",
                "",
                count,
                np.full(end - pos, event_time),
                {SUBJECT: run.flagged},
            )
            stepped = self.policy.step(episode, chunk, signals)
            if isinstance(stepped, Cut):
                return stepped
            alerts.extend(stepped)
            pos = end
        doc["outcomes"] = before + n
        doc["check"] = run.to_doc()
        state[self.policy_key] = episode.to_bytes()
        return alerts

    def _log(self, counts: JoinCounts, longest: float) -> None:
        now = time.monotonic()
        if now - self._logged < LOG_EVERY_SECONDS:
            return
        self._logged = now
        joined = (
            f"joined labels came up to {longest:.0f} s after their prediction"
            if longest > 0
            else "no label has joined yet"
        )
        log.warning(
            "model %s: %d labels expired without their prediction (%d joined in the same run); "
            "label_ttl_seconds is %.0f s and %s: a label that comes after its prediction "
            "expired is lost, so the TTL must exceed the labels' delay (docs: Performance)",
            self.model_id,
            counts.expired_labels,
            counts.joined,
            self.ttl,
            joined,
        )
