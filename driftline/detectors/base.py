"""The one contract every detector keeps, and the registry the config chooses from.

A detector is fed numpy batches (``update(x)``) and answers with a frozen ``Verdict`` about
the stream so far. Feeding a stream in one batch or value by value gives the same verdicts.
State goes to bytes and back (``state_bytes`` / ``restore``) so the stream layer can keep it
in a Faust table; hyperparameters and the reference are constructor arguments, not state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from driftline.detectors.profile import FeatureProfile


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a detector says after a batch.

    statistic, threshold
        The detector's current statistic and the value past which it signals drift.
    drift
        True if drift was signalled at least once within this batch.
    warning
        True if the statistic ended the batch above the warning level.
    n_seen
        Values the detector has consumed in total.
    alarms
        How many times drift was signalled within this batch (a detector restarts after one).
    first_alarm
        Index in this batch of the first value at which drift was signalled, or -1.
    peak
        With an alarm: the value that crossed the threshold at the first alarm (which
        ``statistic`` no longer shows once the detector restarted); it depends only on the
        stream, not on how it was cut into batches. Without: the largest value reached.
    subject
        With an alarm, for detectors that watch several things at once (``JointDrift``'s
        pairs): which one crossed first. Empty otherwise.
    """

    statistic: float
    threshold: float
    drift: bool
    warning: bool
    n_seen: int
    alarms: int = 0
    first_alarm: int = -1
    peak: float = 0.0
    subject: str = ""

    @property
    def severity_ratio(self) -> float:
        """The statistic as a multiple of its threshold (0 when there is no threshold)."""
        return self.statistic / self.threshold if self.threshold > 0 else 0.0


def in_pieces(update: Callable[[np.ndarray], Verdict], x: np.ndarray, size: int) -> Verdict:
    """``update`` fed ``x`` in pieces of at most ``size`` values, answered as one verdict.

    For detectors whose temporaries grow fast with the batch: since verdicts do not depend on
    how a stream is cut, the pieces' verdicts add up to the one a single call would give.
    """
    if x.size <= size:
        return update(x)
    alarms, first_alarm, peak = 0, -1, float("-inf")
    for start in range(0, x.size, size):
        verdict = update(x[start : start + size])
        if first_alarm < 0:  # the peak is the first alarm's, or else the largest value
            peak = verdict.peak if verdict.alarms else max(peak, verdict.peak)
            if verdict.alarms:
                first_alarm = start + verdict.first_alarm
        alarms += verdict.alarms
    return replace(verdict, drift=alarms > 0, alarms=alarms, first_alarm=first_alarm, peak=peak)


@runtime_checkable
class Detector(Protocol):
    name: ClassVar[str]
    #: what the detector takes: "numeric", "categorical", "any" (either) or "error" (0/1)
    input_kind: ClassVar[str]
    #: True when the threshold comes from the false-alarm budget (``arl``)
    calibrated: ClassVar[bool]

    def update(self, x: np.ndarray) -> Verdict: ...

    def state_bytes(self) -> bytes: ...

    def restore(self, state: bytes) -> None: ...

    def reset(self) -> None: ...


# A factory builds a detector for one feature from its reference profile and the expected
# number of values between false alarms that this one detector may spend (its share of the
# model's budget), plus any overrides from the config.
DetectorFactory = Callable[..., Detector]

_REGISTRY: dict[str, type[Any]] = {}


def register(cls: type[Any]) -> type[Any]:
    """Class decorator: make a detector choosable by its ``name`` in the config."""
    if cls.name in _REGISTRY:
        raise ValueError(f"detector name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[Any]]:
    return dict(_REGISTRY)


def create(name: str, profile: FeatureProfile | None, arl: float, **params: Any) -> Detector:
    """Build the registered detector ``name`` for one feature."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown detector {name!r}; registered: {known}") from None
    return cls.from_reference(profile, arl=arl, **params)
