"""QualityMonitor: one model's data-quality checks, run chunk by chunk beside its detectors.

Per declared feature (with a reference profile): its missing rate, values of the wrong type,
values outside the reference range (numeric), categories the reference never saw
(categorical) and a constant run where the reference had spread. Per model (schema drift):
fields the config does not declare (a model version without a profile of its own is
reported by monitoring/versions.py). Each is a subject of the model's ``data_quality``
episode in the alert policy, keyed ``<feature>/<check>``; undeclared fields are tracked
under their (clipped) name, at most ``MAX_TRACKED_FIELDS`` at a time, so a producer sending
random names cannot grow the state.

The checks' state is one record per model (``<model>/_quality/checks``), written once per
batch like the detectors'.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, replace

import numpy as np
import orjson

from driftline.config import ModelConfig
from driftline.detectors.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from driftline.detectors.quality import (
    CONSTANT,
    MISSING,
    MODEL_VERSION,
    OUT_OF_RANGE,
    TYPE_ERROR,
    UNEXPECTED_FIELD,
    UNSEEN_CATEGORY,
    CheckResult,
    ConstantCheck,
    RateCheck,
    RunState,
    has_spread,
    largest_share,
    reference_range,
)
from driftline.events.codec import PredictionBatch
from driftline.monitoring.alerting import Signal

log = logging.getLogger(__name__)

MAX_TRACKED_FIELDS = 8
FIELD_CHARS = 64
SCHEMA = "_schema"  # the feature label of model-level checks in metrics


@dataclass(frozen=True)
class _Spec:
    subject: str  # "<feature>/<check>"
    feature: str
    check: str
    rate: RateCheck | None
    constant: ConstantCheck | None = None
    low: float = -np.inf
    high: float = np.inf
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class QualityCount:
    """A check's flagged events in one batch (for metrics)."""

    feature: str  # a declared feature, or SCHEMA
    check: str
    flagged: int


class QualityMonitor:
    """The data-quality checks of one model."""

    def __init__(
        self,
        model_id: str,
        config: ModelConfig,
        profile: ReferenceProfile | None,
        checks_in_budget: int,
        scope: str = "",
    ) -> None:
        self.model_id = model_id
        self.settings = config.data_quality
        self.features = config.features
        self.profile = profile
        self.specs: list[_Spec] = []
        self.key = f"{scope or model_id}/_quality/checks"
        self._arl = config.false_alarm_budget * max(checks_in_budget, 1)
        self.field_check = self._rate(0.0, 0)
        self._cache: tuple[bytes | None, dict[str, RunState]] | None = None
        if self.settings.enabled:
            self.specs = self._specs()

    @staticmethod
    def count(config: ModelConfig, profile: ReferenceProfile | None) -> int:
        """How many checks share the model's budget (undeclared fields count as their cap)."""
        if not config.data_quality.enabled:
            return 0
        per_feature = 5 if profile is not None else 1
        return len(config.features) * per_feature + MAX_TRACKED_FIELDS + 1

    def _rate(self, reference_rate: float, count: int) -> RateCheck:
        return RateCheck(reference_rate, count, self._arl, tolerance=self.settings.tolerance)

    def _specs(self) -> list[_Spec]:
        specs = []
        for feature in self.features:
            ref = self.profile.features.get(feature) if self.profile is not None else None
            specs.append(_Spec(f"{feature}/{TYPE_ERROR}", feature, TYPE_ERROR, self._rate(0, 0)))
            if ref is None:  # without a reference there is no rate to compare with
                continue
            missing = self._rate(ref.missing_rate, ref.count)
            specs.append(_Spec(f"{feature}/{MISSING}", feature, MISSING, missing))
            if isinstance(ref, NumericProfile):
                low, high = reference_range(ref, self.settings.range_margin)
                outside = self._rate(0.0, ref.count)
                specs.append(
                    _Spec(
                        f"{feature}/{OUT_OF_RANGE}", feature, OUT_OF_RANGE, outside, None, low, high
                    )
                )
            elif isinstance(ref, CategoricalProfile):
                unseen = self._rate(ref.probs[-1], ref.count)
                names = tuple(ref.categories)
                specs.append(
                    _Spec(
                        f"{feature}/{UNSEEN_CATEGORY}",
                        feature,
                        UNSEEN_CATEGORY,
                        unseen,
                        categories=names,
                    )
                )
            if has_spread(ref):
                run = ConstantCheck(largest_share(ref), self._arl, self.settings.constant_min_run)
                names = tuple(ref.categories) if isinstance(ref, CategoricalProfile) else ()
                specs.append(
                    _Spec(f"{feature}/{CONSTANT}", feature, CONSTANT, None, run, categories=names)
                )
        return [s for s in specs if s.check not in self.settings.skip.get(s.feature, ())]

    # -- state -------------------------------------------------------------------------------

    def load(self, state: MutableMapping[str, bytes], fresh: bool) -> dict[str, RunState]:
        stored = state.get(self.key)
        cached = self._cache
        if not fresh and cached is not None and stored is cached[0]:
            return cached[1]
        docs = orjson.loads(stored) if stored else {}
        return {k: RunState.from_doc(v) for k, v in docs.items()}

    def save(self, state: MutableMapping[str, bytes], runs: dict[str, RunState]) -> None:
        blob = orjson.dumps({k: v.to_doc() for k, v in runs.items()})
        state[self.key] = blob
        self._cache = (state.get(self.key), runs)

    # -- one chunk ---------------------------------------------------------------------------

    def step(
        self,
        batch: PredictionBatch,
        pos: int,
        end: int,
        count: int,
        runs: dict[str, RunState],
        tracked: set[str],
        counts: dict[tuple[str, str], int],
    ) -> list[Signal]:
        """Run every check over rows ``pos:end`` of the batch (``count`` events before them).

        ``tracked`` names the subjects the policy's episode holds: an undeclared field's slot
        is never taken from one of those. ``counts`` gathers flagged events for metrics.
        """
        if not self.settings.enabled:
            return []
        signals: list[Signal] = []
        note = functools.partial(self._note, signals, counts, count)
        self._feature_checks(batch, pos, end, runs, note)
        self._field_checks(batch, pos, end, runs, tracked, note)
        return signals

    def _feature_checks(
        self,
        batch: PredictionBatch,
        pos: int,
        end: int,
        runs: dict[str, RunState],
        note: Callable[..., None],
    ) -> None:
        """The checks of each declared feature: rates (missing, type, range, unseen) and runs
        of a constant."""
        n = end - pos
        columns: dict[str, _Column] = {}  # each feature's column and masks, once per chunk
        for spec in self.specs:
            state = runs.setdefault(spec.subject, RunState())
            before = state.flagged
            column = columns.get(spec.feature) or columns.setdefault(
                spec.feature, self._column(batch, spec.feature, pos, end)
            )
            if spec.constant is not None:
                keys = self._keys(spec, batch, pos, end)
                if not column.any_missing:
                    result = spec.constant.update(state, column.values, keys)
                else:
                    kept = ~column.missing
                    keys = None if keys is None else keys[kept]
                    result = spec.constant.update(state, column.values[kept], keys)
                    if result.alarms:  # from the index among present values to the row
                        rows = np.flatnonzero(kept)
                        result = replace(result, first=int(rows[result.first]))
                reference = spec.constant.reference_rate
            else:
                assert spec.rate is not None
                flagged, values = self._flagged(spec, column, batch, pos, end)
                if flagged is None:
                    result = spec.rate.quiet(state, n)
                else:
                    result = spec.rate.update(state, flagged, values)
                reference = spec.rate.reference_rate
            note(
                spec.subject,
                spec.feature,
                spec.check,
                result,
                reference,
                state.flagged - before,
            )

    def _field_checks(
        self,
        batch: PredictionBatch,
        pos: int,
        end: int,
        runs: dict[str, RunState],
        tracked: set[str],
        note: Callable[..., None],
    ) -> None:
        """Undeclared fields the events carry (a bounded number of them, never one the
        episode tracks taken from it)."""
        n = end - pos
        ignored = set(self.settings.ignore_fields)
        present = {
            name[:FIELD_CHARS]: mask
            for name, mask in batch.unknown_fields.items()
            if name not in ignored
        }
        for name, mask in present.items():
            subject = f"{name}/{UNEXPECTED_FIELD}"
            if subject not in runs and not self._free_slot(runs, tracked):
                continue
            state = runs.setdefault(subject, RunState())
            before = state.flagged
            result = self.field_check.update(state, mask[pos:end])
            note(
                subject,
                name,
                UNEXPECTED_FIELD,
                result,
                0.0,
                state.flagged - before,
            )
        for subject, state in runs.items():  # tracked fields this chunk did not carry
            if _field_of(subject) not in (None, *present):
                self.field_check.update(state, np.zeros(n, dtype=bool))

    def _note(
        self,
        signals: list[Signal],
        counts: dict[tuple[str, str], int],
        count: int,
        subject: str,
        feature: str,
        check: str,
        result: CheckResult,
        reference_rate: float,
        flagged: int,
    ) -> None:
        label = self.label(feature, check)
        counts[(label, check)] = counts.get((label, check), 0) + flagged
        if result.alarms:
            signals.append(
                Signal(
                    subject,
                    check,
                    count + result.first + 1,
                    result.alarms,
                    result.peak,
                    result.threshold,
                    feature=feature,
                    reference_rate=reference_rate,
                    flagged_at=result.flagged_at,
                    examples=result.examples,
                )
            )

    def series(self) -> list[tuple[str, str]]:
        """Every (feature label, check) this monitor can report: its metric series."""
        if not self.settings.enabled:
            return []
        out = [(spec.feature, spec.check) for spec in self.specs]
        out.append((SCHEMA, UNEXPECTED_FIELD))
        return out

    def label(self, feature: str, check: str) -> str:
        """The metric label of a check's feature: bounded to the declared ones."""
        if check in (UNEXPECTED_FIELD, MODEL_VERSION) or feature not in self.features:
            return SCHEMA
        return feature

    @staticmethod
    def _free_slot(runs: dict[str, RunState], tracked: set[str]) -> bool:
        """Make room for one more undeclared field if one is idle; False when all are busy."""
        slots = [k for k in runs if _field_of(k) is not None]
        if len(slots) < MAX_TRACKED_FIELDS:
            return True
        idle = [k for k in slots if runs[k].s == 0.0 and k not in tracked]
        if not idle:
            return False
        del runs[min(idle)]
        return True

    def _column(self, batch: PredictionBatch, feature: str, pos: int, end: int) -> _Column:
        if self.features[feature] == "numeric":
            values = batch.numeric[feature][pos:end]
        else:
            values = batch.categorical[feature][pos:end]
        missing = batch.missing(feature)[pos:end]
        wrong = None
        rows = batch.type_errors.get(feature)
        if rows is not None:
            wrong = np.zeros(end - pos, dtype=bool)
            wrong[rows[(rows >= pos) & (rows < end)] - pos] = True
        return _Column(values, missing, bool(missing.any()), wrong)

    @staticmethod
    def _keys(spec: _Spec, batch: PredictionBatch, pos: int, end: int) -> np.ndarray | None:
        """A categorical chunk's codes when they tell its values apart: no value in the
        others' bucket (which holds every unseen value, and the missing ones)."""
        if not spec.categories:
            return None
        codes = batch.codes(spec.feature, spec.categories)[pos:end]
        return None if (codes == len(spec.categories)).any() else codes

    def _flagged(
        self, spec: _Spec, column: _Column, batch: PredictionBatch, pos: int, end: int
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The check's flags over the chunk and the values for examples; None: no flags."""
        if spec.check == TYPE_ERROR:
            return column.wrong_type, None
        if spec.check == MISSING:  # wrong types are missing values too, but named apart
            if not column.any_missing:
                return None, None
            if column.wrong_type is None:
                return column.missing, None
            return column.missing & ~column.wrong_type, None
        values = column.values
        if spec.check == OUT_OF_RANGE:
            return (values < spec.low) | (values > spec.high), values
        # unseen category: in the bucket of the others (where missing values go too)
        codes = batch.codes(spec.feature, spec.categories)[pos:end]
        return (codes == len(spec.categories)) & ~column.missing, values


@dataclass(frozen=True)
class _Column:
    """One feature's values in a chunk, with its missing and wrong-typed rows."""

    values: np.ndarray
    missing: np.ndarray
    any_missing: bool
    wrong_type: np.ndarray | None  # None when no value had the wrong type


def _field_of(subject: str) -> str | None:
    """The undeclared field a subject tracks, or None for the other checks."""
    suffix = f"/{UNEXPECTED_FIELD}"
    return subject[: -len(suffix)] if subject.endswith(suffix) else None
