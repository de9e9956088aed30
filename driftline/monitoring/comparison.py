"""Champion and challenger: versions of a model on the same traffic, compared on the same labels.

A shadow deployment sends the same request to two versions, each prediction with the same
``prediction_id``; the label join gives one pair per version for each label. Labels that met
both versions make paired observations: per label, the champion's loss minus the
challenger's (the 0/1 error of a classifier, the absolute error of a regression), so that the
variance of the difference is that of the disagreements, not of the labels.

- The **champion** is the version that came first (the earliest first event among the live
  versions), the **challenger** any later one.
- Every ``window_labels`` shared labels make a ``ComparisonWindow``: the metric of each
  (accuracy, or MAE for a regression), the difference (positive: the challenger is better;
  a regression's as a share of the champion's MAE) and its t interval at ``confidence``.
- The **decision** is made over every shared label so far, at each window's end: the
  challenger is better when the one-sided lower bound of the difference is above ``margin``.
  Looking again at each window would, for two equal versions, eventually cross any fixed
  bound; so the looks share the error: by the k-th look they have spent
  (1 - confidence) (k / (k + 4))^2 of it, which rises to 1 - confidence over all looks.
  Early looks spend little (a quarter of the error by the fourth), so that a comparison does
  not decide on the luck of its first windows, where the t interval is also at its weakest:
  few labels on which the versions disagree, heavy-tailed errors.
- The decision is an ``info`` alert of kind ``comparison``: it fires once when the challenger
  is found better and resolves when the evidence no longer says so.

State per pair in the pipeline's mapping: ``<model>/_comparison/<champion>/<challenger>``.
"""

from __future__ import annotations

import math
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import orjson
from scipy import stats

from driftline.config import ComparisonSettings, Task
from driftline.events.records import Alert, ComparisonWindow, FeatureEvidence
from driftline.monitoring.join import Joined
from driftline.monitoring.monitor import as_number, class_name

#: How slowly the looks start spending the error: a quarter of it by look 4, half by look 10
EARLY_LOOKS = 4


@dataclass
class _Sums:
    """Paired losses: count, their sums and the sum of squared differences."""

    n: int = 0
    champion: float = 0.0  # sum of the champion's losses
    challenger: float = 0.0
    d: float = 0.0  # sum of (champion's loss - challenger's)
    d2: float = 0.0
    first: float = 0.0  # label times (when n > 0)
    last: float = 0.0

    def add(self, champion: np.ndarray, challenger: np.ndarray, times: np.ndarray) -> None:
        if self.n == 0:
            self.first, self.last = float(times.min()), float(times.max())
        d = champion - challenger
        self.n += len(d)
        self.champion += float(champion.sum())
        self.challenger += float(challenger.sum())
        self.d += float(d.sum())
        self.d2 += float((d * d).sum())
        self.first = min(self.first, float(times.min()))
        self.last = max(self.last, float(times.max()))

    def mean_and_error(self) -> tuple[float, float]:
        """The mean difference and its standard error."""
        mean = self.d / self.n
        variance = max(self.d2 / self.n - mean * mean, 0.0) * self.n / max(self.n - 1, 1)
        return mean, math.sqrt(variance / self.n)


@dataclass
class _PairState:
    window: _Sums = field(default_factory=_Sums)
    total: _Sums = field(default_factory=_Sums)
    looks: int = 0
    alert_id: str = ""  # the open decision's alert, if any

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "window": self.window.__dict__,
                "total": self.total.__dict__,
                "looks": self.looks,
                "alert_id": self.alert_id,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> _PairState:
        doc = orjson.loads(raw)
        return cls(_Sums(**doc["window"]), _Sums(**doc["total"]), doc["looks"], doc["alert_id"])


@dataclass
class Compared:
    windows: list[ComparisonWindow] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


class VersionComparison:
    """One model's champion/challenger comparisons, fed the join's pairs as labels come."""

    def __init__(
        self, model_id: str, task: Task, settings: ComparisonSettings, window_labels: int
    ) -> None:
        self.model_id = model_id
        self.regression = task == "regression"
        self.settings = settings
        self.window_labels = settings.window_labels or window_labels
        self.metric: Literal["accuracy", "mae"] = "mae" if self.regression else "accuracy"

    def process(
        self,
        pairs: Sequence[Joined],
        first_seen: dict[str, float],
        state: MutableMapping[str, bytes],
        events_seen: int,
    ) -> Compared:
        """``pairs`` in the join's order (a label's pairs together); ``first_seen``: each live
        version's first event time, which orders champion before challengers."""
        out = Compared()
        for (champion, challenger), rows in self._paired(pairs, first_seen).items():
            key = f"{self.model_id}/_comparison/{champion}/{challenger}"
            raw = state.get(key)
            pair = _PairState.from_json(raw) if raw else _PairState()
            losses = np.array([r[:2] for r in rows], dtype=np.float64)
            times = np.array([r[2] for r in rows], dtype=np.float64)
            start = 0
            while start < len(rows):
                take = min(self.window_labels - pair.window.n, len(rows) - start)
                part = slice(start, start + take)
                pair.window.add(losses[part, 0], losses[part, 1], times[part])
                pair.total.add(losses[part, 0], losses[part, 1], times[part])
                start += take
                if pair.window.n >= self.window_labels:
                    window = self._close_window(champion, challenger, pair)
                    out.windows.append(window)
                    alert = self._decide(window, pair, events_seen)
                    if alert is not None:
                        out.alerts.append(alert)
            state[key] = pair.to_json()
        return out

    def _paired(
        self, pairs: Sequence[Joined], first_seen: dict[str, float]
    ) -> dict[tuple[str, str], list[tuple[float, float, float]]]:
        """(champion's loss, challenger's loss, label time) per label both versions met."""
        out: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        i = 0
        while i < len(pairs):
            j = i + 1
            while j < len(pairs) and pairs[j].prediction_id == pairs[i].prediction_id:
                j += 1
            if j - i > 1:
                met = sorted(
                    pairs[i:j], key=lambda p: (first_seen.get(p.version, math.inf), p.version)
                )
                champion, champion_loss = met[0].version, self._loss(met[0])
                for other in met[1:]:
                    loss = self._loss(other)
                    if other.version != champion and not (
                        math.isnan(champion_loss) or math.isnan(loss)
                    ):
                        out.setdefault((champion, other.version), []).append(
                            (champion_loss, loss, other.label_time)
                        )
            i = j
        return out

    def _loss(self, pair: Joined) -> float:
        if self.regression:
            return abs(as_number(pair.prediction) - as_number(pair.label))
        if pair.prediction is None or pair.label is None:
            return math.nan
        return float(class_name(pair.prediction) != class_name(pair.label))

    def _close_window(self, champion: str, challenger: str, pair: _PairState) -> ComparisonWindow:
        w, total = pair.window, pair.total
        confidence = self.settings.confidence
        mean, error = w.mean_and_error()
        half = float(stats.t.ppf(0.5 + confidence / 2, max(w.n - 1, 1))) * error
        pair.looks += 1
        spent = error_spent(pair.looks, 1 - confidence)
        t_mean, t_error = total.mean_and_error()
        t_lower = t_mean - float(stats.t.ppf(1 - spent, max(total.n - 1, 1))) * t_error
        champion_value, challenger_value = w.champion / w.n, w.challenger / w.n
        scale = 1.0
        if self.regression:  # as a share of the champion's MAE
            scale = champion_value if champion_value > 0 else 1.0
            t_scale = total.champion / total.n if total.champion > 0 else 1.0
            t_mean, t_lower = t_mean / t_scale, t_lower / t_scale
        else:  # accuracies: 1 - error rates
            champion_value, challenger_value = 1 - champion_value, 1 - challenger_value
        window = ComparisonWindow(
            model_id=self.model_id,
            champion=champion,
            challenger=challenger,
            metric=self.metric,
            window_end_label=total.n,
            labels=w.n,
            first_label_time=w.first,
            last_label_time=w.last,
            champion_value=champion_value,
            challenger_value=challenger_value,
            difference=mean / scale,
            lower=(mean - half) / scale,
            upper=(mean + half) / scale,
            total_difference=t_mean,
            total_lower=t_lower,
            confidence=confidence,
            margin=self.settings.margin,
            challenger_better=t_lower > self.settings.margin,
        )
        pair.window = _Sums()
        return window

    def _decide(self, window: ComparisonWindow, pair: _PairState, events_seen: int) -> Alert | None:
        """The decision's alert: fires when the challenger is found better, resolves when the
        evidence no longer says so."""
        if window.challenger_better == bool(pair.alert_id):
            return None
        if window.challenger_better:
            pair.alert_id = (
                f"{self.model_id}/comparison/{window.champion}/{window.challenger}/"
                f"{window.window_end_label}"
            )
            status: Literal["firing", "resolved"] = "firing"
        else:
            status = "resolved"
        alert = comparison_alert(window, pair.alert_id, status, events_seen)
        if status == "resolved":
            pair.alert_id = ""
        return alert


def error_spent(look: int, error: float) -> float:
    """The share of ``error`` the ``look``-th look (from 1) spends: ``F(k) - F(k - 1)`` of it
    with ``F(k) = (k / (k + EARLY_LOOKS))^2``, which rises to 1 over all looks."""

    def by(k: int) -> float:
        return (k / (k + EARLY_LOOKS)) ** 2

    return error * (by(look) - by(look - 1))


def comparison_alert(
    window: ComparisonWindow, alert_id: str, status: Literal["firing", "resolved"], events: int
) -> Alert:
    unit = "accuracy points" if window.metric == "accuracy" else "of the champion's MAE"
    better = (
        f"challenger {window.challenger} better than champion {window.champion} by "
        f"{_amount(window.total_difference, window.metric)} {unit} over "
        f"{window.window_end_label:,} shared labels (lower bound "
        f"{_amount(window.total_lower, window.metric)}, margin "
        f"{_amount(window.margin, window.metric)}, confidence {window.confidence:.0%}); last "
        f"window {window.metric} {window.challenger_value:.4g} against {window.champion_value:.4g}"
    )
    title = f"Champion and challenger on {window.model_id}"  # as other alerts' messages start
    message = (
        f"{title}: {better}"
        if status == "firing"
        else (
            f"{title} resolved: challenger {window.challenger} no longer shown better than "
            f"champion {window.champion} over {window.window_end_label:,} shared labels (lower "
            f"bound {_amount(window.total_lower, window.metric)})"
        )
    )
    evidence = FeatureEvidence(
        feature=f"{window.challenger} vs {window.champion}",
        detector=window.metric,
        statistic=window.total_lower,
        threshold=window.margin,
        events_seen=events,
        rate=window.challenger_value,
        reference_rate=window.champion_value,
    )
    return Alert(
        alert_id=alert_id,
        status=status,
        severity="info",
        kind="comparison",
        model_id=window.model_id,
        model_version=window.challenger,
        feature=evidence.feature,
        detector=evidence.detector,
        statistic=evidence.statistic,
        threshold=evidence.threshold,
        events_seen=events,
        first_event_time=window.first_label_time,
        last_event_time=window.last_label_time,
        reference_version="",
        message=message,
        created_at=time.time(),
        features=[evidence],
        features_drifting=1,
    )


def _amount(value: float, metric: str) -> str:
    return f"{value * 100:.2f}" if metric == "accuracy" else f"{value:.1%}"
