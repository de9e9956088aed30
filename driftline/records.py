"""Records driftline publishes: Alert and RetrainingRequest (JSON on Kafka, versioned).

The JSON Schemas in ``driftline/schemas`` describe the same fields for producers and
consumers in other languages; a test checks these classes against them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

ALERT_SCHEMA = "driftline.alert/v1"
RETRAINING_SCHEMA = "driftline.retraining-request/v1"


@dataclass(frozen=True)
class FeatureEvidence:
    feature: str
    detector: str
    statistic: float
    threshold: float
    events_seen: int


@dataclass(frozen=True)
class Alert:
    """One alert event: a problem starts (``firing``) or ends (``resolved``)."""

    alert_id: str  # dedup id: the same for the firing and the resolved record of an episode
    status: Literal["firing", "resolved"]
    severity: Literal["warning", "critical"]
    kind: Literal["drift", "data_quality", "performance"]
    model_id: str
    model_version: str
    feature: str
    detector: str
    statistic: float
    threshold: float
    events_seen: int  # events of this model processed by the worker when the record was made
    first_event_time: float  # epoch seconds of the window the evidence covers
    last_event_time: float
    reference_version: str
    message: str
    created_at: float
    features: list[FeatureEvidence] = field(default_factory=list)
    schema: str = ALERT_SCHEMA

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes | str) -> Alert:
        doc: dict[str, Any] = orjson.loads(data)
        doc["features"] = [FeatureEvidence(**f) for f in doc.get("features", [])]
        return cls(**doc)


@dataclass(frozen=True)
class RetrainingRequest:
    idempotency_key: str
    model_id: str
    model_version: str
    reason: str
    reference_version: str
    alert_ids: list[str]
    features: list[str]
    created_at: float
    schema: str = RETRAINING_SCHEMA

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))


def dedup_id(*parts: object) -> str:
    """A deterministic id from the parts that identify an alert episode."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:20]
