"""Data-quality checks: is the pipeline still feeding the model what it was validated on?

Most incidents that look like drift are broken pipelines: a feature that arrives null, a unit
change that puts values far outside the reference range, a category from an upstream release,
a renamed field, another model version. Each check turns a column into one 0/1 indicator per
event (missing, outside the range, unseen category, wrong type, undeclared field, other model
version) and watches the indicator's rate with a Bernoulli CUSUM: the log-likelihood ratio of
a rate ``p1`` (the reference rate plus the configured tolerance) against ``p0`` (the reference
rate, raised by three standard errors of its estimate as the drift detectors allow their
references, and floored), with Lorden's threshold ``h = ln(ARL)``. A feature that goes wholly
missing alarms within a handful of events; a rise smaller than the tolerance does not alarm at
the budget. Like the drift detectors, a check restarts after each alarm, so a large problem
shows as repeated signals.

A constant feature (every value the same, where the reference had spread) is a run-length
check: under the reference, ``L`` equal values in a row happen with probability about
``q ** (L - 1)``, ``q`` the largest share one value had, so ``L`` follows from the budget.

Everything is pure numpy over one chunk of a feature's column, with the state carried between
chunks, so that feeding a stream whole or in pieces gives the same alarms at the same events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.detectors.kernels import constant_runs
from driftline.detectors.profile import CategoricalProfile, FeatureProfile, NumericProfile
from driftline.detectors.reference_size import Z as REFERENCE_Z

# What a check reports as its cause: the ``detector`` of an alert's evidence.
MISSING = "missing"
TYPE_ERROR = "type_error"
OUT_OF_RANGE = "out_of_range"
UNSEEN_CATEGORY = "unseen_category"
CONSTANT = "constant"
UNEXPECTED_FIELD = "unexpected_field"
MODEL_VERSION = "model_version"
FEATURE_CHECKS = (MISSING, TYPE_ERROR, OUT_OF_RANGE, UNSEEN_CATEGORY, CONSTANT)
ALL_CHECKS = (*FEATURE_CHECKS, UNEXPECTED_FIELD, MODEL_VERSION)

MAX_EXAMPLES = 16  # distinct example values a check keeps (the first seen, with counts)
REPORTED_EXAMPLES = 5
EXAMPLE_CHARS = 40  # example values are clipped: evidence never carries whole payloads


@dataclass(frozen=True)
class CheckResult:
    """What one check saw in one chunk."""

    alarms: int  # signals in the chunk (the check restarts after each)
    first: int  # index in the chunk of the value at the first signal, -1 without one
    peak: float  # the statistic at the first signal (the largest reached without one)
    threshold: float
    flagged_at: int  # the check's flagged events in the whole stream up to the first signal
    examples: tuple[str, ...] = ()  # most frequent flagged values before the first signal
    consumed: int = -1  # values taken, when the check stopped at its first signal


@dataclass
class RunState:
    """A check's state between chunks."""

    s: float = 0.0  # the statistic (the constant check: the current run's length)
    flagged: int = 0  # flagged events so far (the constant check: values equal to the last)
    # flagged values since the statistic was last zero, the first MAX_EXAMPLES distinct ones
    examples: dict[str, int] = field(default_factory=dict)
    last: Any = None  # the last value seen (the constant check)

    def to_doc(self) -> list[Any]:
        return [self.s, self.flagged, self.examples, self.last]

    @classmethod
    def from_doc(cls, doc: list[Any] | None) -> RunState:
        if not doc:
            return cls()
        s, flagged, examples, last = doc
        return cls(float(s), int(flagged), dict(examples), last)


class RateCheck:
    """Bernoulli CUSUM for a rise in the rate of flagged events.

    Examples
    --------
    >>> import numpy as np
    >>> check = RateCheck(reference_rate=0.01, reference_count=10_000, arl=1e8)
    >>> round(check.p0, 4), round(check.p1, 4), round(check.threshold, 1)
    (0.013, 0.063, 18.4)
    >>> state = RunState()
    >>> rng = np.random.default_rng(0)
    >>> check.update(state, rng.random(20_000) < 0.01).alarms  # as in the reference
    0
    >>> r = check.update(state, np.ones(100, dtype=bool))  # the feature went missing
    >>> r.alarms, r.first < 12
    (8, True)
    """

    def __init__(
        self,
        reference_rate: float,
        reference_count: int,
        arl: float,
        tolerance: float = 0.05,
        floor: float = 0.001,
        reference_z: float = REFERENCE_Z,
    ) -> None:
        self.reference_rate = float(reference_rate)
        # The reference rate is an estimate: testing against its upper bound keeps the
        # false-alarm bound when the reference sample was small (a robust CUSUM). Its error
        # is drawn once and lasts as long as the reference, so the bound is as wide as the
        # drift detectors' (``REFERENCE_Z`` standard errors).
        r = min(max(self.reference_rate, 0.0), 1.0)
        upper = r + reference_z * math.sqrt(r * (1.0 - r) / max(reference_count, 1))
        self.p0 = min(max(upper, floor), 0.98)
        self.p1 = min(self.p0 + tolerance, 0.99)
        self.up = math.log(self.p1 / self.p0)
        self.down = math.log((1.0 - self.p1) / (1.0 - self.p0))
        self.threshold = math.log(arl)

    def quiet(self, state: RunState, n: int) -> CheckResult:
        """Feed ``n`` values none of which is flagged (the usual case): the statistic falls."""
        state.s = max(0.0, state.s + n * self.down)
        if state.s == 0.0:
            state.examples = {}
        return CheckResult(0, -1, state.s, self.threshold, state.flagged)

    def update(
        self,
        state: RunState,
        flagged: np.ndarray,
        values: np.ndarray | None = None,
        stop_at_signal: bool = False,
    ) -> CheckResult:
        """Feed one chunk of indicators (``values``: the chunk's raw values, for examples).

        With ``stop_at_signal`` the check takes values only up to its first signal and says
        how many in ``consumed``: for a caller that changes what it flags after a signal.
        """
        n = flagged.size
        if n == 0 or not flagged.any():
            return self.quiet(state, n)
        before = state.flagged
        increments = np.where(flagged, self.up, self.down)
        alarms, first, peak, flagged_at = 0, -1, 0.0, before
        examples: tuple[str, ...] = ()
        pos, block = 0, n
        while pos < n:
            end = min(n, pos + block)
            running = np.cumsum(increments[pos:end]) + state.s
            floor = np.minimum.accumulate(running)
            np.minimum(floor, 0.0, out=floor)
            running -= floor  # the statistic after each value
            over = np.flatnonzero(running > self.threshold)
            stop = pos + (int(over[0]) if over.size else end - pos - 1)  # last value taken
            if values is not None:
                zeros = np.flatnonzero(running[: stop - pos + 1] <= 0.0)
                start = pos
                if zeros.size:  # keep examples from after the statistic was last zero
                    state.examples = {}
                    start = pos + int(zeros[-1]) + 1
                rows = start + np.flatnonzero(flagged[start : stop + 1])
                _count_examples(state.examples, values[rows])
            state.flagged += int(np.count_nonzero(flagged[pos : stop + 1]))
            if not over.size:
                state.s = float(running[-1])
                pos, block = end, block * 2
                continue
            alarms += 1
            if first < 0:
                first, peak, flagged_at = stop, float(running[stop - pos]), state.flagged
                examples = _top_examples(state.examples)
            state.s, state.examples = 0.0, {}
            pos, block = stop + 1, 128  # short blocks while it keeps alarming
            if stop_at_signal:
                return CheckResult(1, first, peak, self.threshold, flagged_at, examples, pos)
        if first < 0:
            peak = state.s
        return CheckResult(alarms, first, peak, self.threshold, flagged_at, examples)


class ConstantCheck:
    """Signals when ``run_length`` present values in a row are all the same.

    Examples
    --------
    >>> import numpy as np
    >>> check = ConstantCheck(largest_share=0.1, arl=1e8, min_run=100)
    >>> check.run_length
    100
    >>> state = RunState()
    >>> check.update(state, np.arange(500.0)).alarms
    0
    >>> r = check.update(state, np.full(250, 7.0))
    >>> r.alarms, r.first
    (2, 99)
    """

    def __init__(self, largest_share: float, arl: float, min_run: int = 100) -> None:
        q = min(max(largest_share, 0.1), 0.999)
        self.reference_rate = q  # how often a value repeats the one before, at most
        self.run_length = max(min_run, 1 + math.ceil(math.log(arl) / -math.log(q)))
        self.threshold = float(self.run_length)

    def update(
        self, state: RunState, values: np.ndarray, keys: np.ndarray | None = None
    ) -> CheckResult:
        """Feed the chunk's present values; ``keys``, if given, are equal exactly where the
        values are (category codes: comparing them is cheaper than comparing strings)."""
        n = values.size
        before = state.flagged
        if n == 0:
            return CheckResult(0, -1, state.s, self.threshold, before)
        same = np.empty(n, dtype=bool)  # equal to the value before
        same[0] = state.last is not None and bool(values[0] == state.last)
        if n > 1:
            pairs = values if keys is None else keys
            same[1:] = pairs[1:] == pairs[:-1]
        alarms, first, run = constant_runs(same, int(state.s), self.run_length)
        flagged_at = before + int(np.count_nonzero(same[: first + 1])) if first >= 0 else before
        state.s, state.last = float(run), _plain(values[-1])
        state.flagged = before + int(np.count_nonzero(same))
        peak = self.threshold if alarms else float(run)
        return CheckResult(alarms, first, peak, self.threshold, flagged_at)


def largest_share(profile: FeatureProfile) -> float:
    """The largest share of the reference one value had (how often equal values repeat)."""
    if isinstance(profile, CategoricalProfile):
        return max(profile.probs[:-1], default=1.0)
    q = np.asarray(profile.quantiles)
    # equal neighbouring quantiles mark an atom; its mass is about its width on the grid
    ties = np.diff(q) == 0
    longest = 0
    run = 0
    for tie in ties.tolist():
        run = run + 1 if tie else 0
        longest = max(longest, run)
    return (longest + 1) / (q.size - 1)


def has_spread(profile: FeatureProfile) -> bool:
    if isinstance(profile, NumericProfile):
        return profile.std > 0
    return sum(p > 0 for p in profile.probs) > 1


def reference_range(profile: NumericProfile, margin: float) -> tuple[float, float]:
    """What the reference makes plausible: its range widened by ``margin`` of its width on
    each side, and no negative values for a feature whose reference had none.

    Wide on purpose: values in a widened tail of the same kind of distribution (a variance
    that doubled, a mean that moved a few sds) are drift, for the drift detectors; this
    check is for values no such change explains (a unit change, a sentinel such as -999, a
    sign error)."""
    width = profile.max - profile.min
    pad = margin * width if width > 0 else margin * max(abs(profile.max), 1.0)
    low = profile.min - pad
    if profile.min >= 0:  # a count, a price, a distance: below zero is broken, not drift
        low = max(low, 0.0)
    return low, profile.max + pad


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _count_examples(examples: dict[str, int], values: np.ndarray) -> None:
    """Count flagged values; the first MAX_EXAMPLES distinct ones keep a slot."""
    for value in values.tolist():
        key = (f"{value:.6g}" if isinstance(value, float) else str(value))[:EXAMPLE_CHARS]
        if key in examples:
            examples[key] += 1
        elif len(examples) < MAX_EXAMPLES:
            examples[key] = 1


def _top_examples(examples: dict[str, int]) -> tuple[str, ...]:
    ranked = sorted(examples.items(), key=lambda kv: -kv[1])  # stable: first seen first
    return tuple(k for k, _ in ranked[:REPORTED_EXAMPLES])
