"""Model performance from joined (prediction, label) pairs, and estimated from scores alone.

Pure numpy. The metric functions compute what scikit-learn's functions of the same names
compute (the tests compare them on the same data); the estimator is confidence-based
performance estimation (CBPE, as in NannyML): calibrate the classifier's scores on reference
data with known labels, then read the expected accuracy and ROC AUC off the calibrated
probabilities of production events that have no label yet.

CBPE holds under covariate shift (the inputs move, P(label | score) stays as on the reference:
events drift toward the decision boundary and the estimate falls with the real accuracy). It
does not hold under concept drift (the same inputs now mean another label): the scores do not
change, so neither does the estimate; only the labels show it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

#: the metric each task is judged on, and whether higher is better
PRIMARY = {"binary": "accuracy", "multiclass": "accuracy", "regression": "mae"}
HIGHER_IS_BETTER = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "log_loss": False,
    "calibration_error": False,
    "mae": False,
    "rmse": False,
    "mape": False,
}
_EPS = float(np.finfo(np.float64).eps)


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney U statistic, ties counted half.

    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    y = np.asarray(y, dtype=bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")  # undefined with one class only
    ranks = _average_ranks(np.asarray(score, dtype=np.float64))
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.arange(1, x.size + 1)
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    mean_rank = (starts + 1 + ends) / 2.0  # the average of ranks start+1 .. end
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood; ``proba`` is P(positive) (1-d) or per class (n x k,
    columns in the order of the integer labels ``y``). Clipped at machine epsilon."""
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y)
    if proba.ndim == 1:
        p = np.clip(proba, _EPS, 1 - _EPS)
        yb = y.astype(bool)
        return float(-np.mean(np.where(yb, np.log(p), np.log1p(-p))))
    p = np.clip(proba / proba.sum(axis=1, keepdims=True), _EPS, 1 - _EPS)
    return float(-np.mean(np.log(p[np.arange(y.size), y.astype(np.int64)])))


def calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: |accuracy - confidence| per equal-width confidence bin,
    weighted by the bin's share of events. For a binary model pass P(positive) as the
    confidence and the label as ``correct`` (the reliability diagram's error)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.size == 0:
        return float("nan")
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    gap = np.abs(
        np.bincount(which, correct, minlength=bins) - np.bincount(which, confidence, minlength=bins)
    )
    return float(gap.sum() / confidence.size)


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: list[str],
    proba: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and, with probabilities, ROC AUC, log loss and
    calibration error.

    ``y_true`` and ``y_pred`` are class indices into ``classes``. Two classes: precision,
    recall and F1 of the positive class (index 1), ``proba`` is P(positive). More: macro
    averages, ROC AUC one-vs-rest macro, ``proba`` has a column per class.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    k = len(classes)
    cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(k), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    out = {"accuracy": float(tp.sum() / max(1, y_true.size))}
    if k == 2:
        out.update(precision=float(precision[1]), recall=float(recall[1]), f1=float(f1[1]))
    else:
        present = actual + predicted > 0  # sklearn's macro average skips absent labels
        out.update(
            precision=float(precision[present].mean()),
            recall=float(recall[present].mean()),
            f1=float(f1[present].mean()),
        )
    if proba is not None and y_true.size:
        proba = np.asarray(proba, dtype=np.float64)
        if k == 2:
            out["roc_auc"] = roc_auc(y_true == 1, proba)
            out["log_loss"] = log_loss(y_true, proba)
            out["calibration_error"] = calibration_error(y_true == 1, proba)
        else:
            aucs = [roc_auc(y_true == c, proba[:, c]) for c in range(k) if actual[c] > 0]
            out["roc_auc"] = float(np.nanmean(aucs)) if aucs else float("nan")
            out["log_loss"] = log_loss(y_true, proba)
            top = proba.argmax(axis=1)
            out["calibration_error"] = calibration_error(top == y_true, proba.max(axis=1))
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and MAPE (as a fraction; events with a true value of 0 left out of MAPE,
    where scikit-learn would divide by machine epsilon instead)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    err = np.asarray(y_pred, dtype=np.float64) - y_true
    nonzero = y_true != 0
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": float(np.mean(np.abs(err[nonzero] / y_true[nonzero])))
        if nonzero.any()
        else float("nan"),
    }


@dataclass(frozen=True)
class ScoreCalibration:
    """P(positive | score) by histogram binning, learnt on reference data with labels.

    Histogram binning (equal-count bins of the reference scores, each the positive rate of
    its events) is monotone enough for CBPE, needs no solver and is a few hundred bytes in
    the reference profile.

    >>> rng = np.random.default_rng(0)
    >>> s = rng.random(20_000)
    >>> cal = ScoreCalibration.fit(s, rng.random(20_000) < s)  # already calibrated scores
    >>> [round(float(p), 2) for p in cal.probability(np.array([0.05, 0.5, 0.95]))]
    [0.06, 0.5, 0.96]
    """

    edges: tuple[float, ...]  # inner bin edges
    rates: tuple[float, ...]  # positive rate per bin (len(edges) + 1)

    @classmethod
    def fit(cls, score: np.ndarray, positive: np.ndarray, bins: int = 50) -> ScoreCalibration:
        score = np.asarray(score, dtype=np.float64)
        positive = np.asarray(positive, dtype=np.float64)
        edges = np.unique(np.quantile(score, np.linspace(0, 1, bins + 1))[1:-1])
        which = np.searchsorted(edges, score, side="right")
        n = np.bincount(which, minlength=edges.size + 1)
        hits = np.bincount(which, positive, minlength=edges.size + 1)
        # a Beta(1, 1) prior keeps empty or tiny bins away from exactly 0 and 1
        rates = (hits + 1) / (n + 2)
        return cls(tuple(float(e) for e in edges), tuple(float(r) for r in rates))

    def probability(self, score: np.ndarray) -> np.ndarray:
        which = np.searchsorted(
            np.asarray(self.edges), np.asarray(score, dtype=np.float64), "right"
        )
        return np.asarray(self.rates)[which]


@dataclass(frozen=True)
class ClassCalibration:
    """Multiclass CBPE's calibration: P(class | its score) per class, one-vs-rest, each by
    the binary histogram binning; an event's calibrated probabilities are scaled to sum to 1
    (as NannyML's multiclass CBPE does), since one-vs-rest fits do not on their own.

    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(0, 2, (20_000, 3))
    >>> proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    >>> y = (rng.random(20_000)[:, None] > proba.cumsum(axis=1)).sum(axis=1)
    >>> cal = ClassCalibration.fit(("a", "b", "c"), proba, y)
    >>> row = cal.probability(np.array([[0.7, 0.2, 0.1]]))[0]
    >>> [round(float(p), 1) for p in row]
    [0.7, 0.2, 0.1]
    """

    classes: tuple[str, ...]
    calibrations: tuple[ScoreCalibration, ...]  # one per class, in the same order

    @classmethod
    def fit(
        cls, classes: Sequence[str], proba: np.ndarray, y: np.ndarray, bins: int = 50
    ) -> ClassCalibration:
        """``proba``: a column of scores per class; ``y``: the true class's index."""
        proba = np.asarray(proba, dtype=np.float64)
        fitted = [ScoreCalibration.fit(proba[:, c], y == c, bins) for c in range(len(classes))]
        return cls(tuple(classes), tuple(fitted))

    def probability(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, a row per event and a column per class."""
        out = np.column_stack(
            [cal.probability(proba[:, c]) for c, cal in enumerate(self.calibrations)]
        )
        return out / out.sum(axis=1, keepdims=True)

    def to_doc(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "edges": [list(c.edges) for c in self.calibrations],
            "rates": [list(c.rates) for c in self.calibrations],
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ClassCalibration:
        pairs = zip(doc["edges"], doc["rates"], strict=True)
        return cls(
            tuple(doc["classes"]), tuple(ScoreCalibration(tuple(e), tuple(r)) for e, r in pairs)
        )


def expected_multiclass(
    proba: np.ndarray, calibrated: np.ndarray, predicted: np.ndarray
) -> dict[str, float]:
    """Multiclass CBPE: the expected accuracy (each event right with the calibrated
    probability of its predicted class) and macro one-vs-rest ROC AUC (each class's expected
    curve from its own score and calibrated probability)."""
    if predicted.size == 0:
        return {}
    right = calibrated[np.arange(predicted.size), predicted]
    aucs = [expected_roc_auc(proba[:, c], calibrated[:, c]) for c in range(proba.shape[1])]
    finite = [a for a in aucs if math.isfinite(a)]
    return {
        "accuracy": float(np.mean(right)),
        "roc_auc": float(np.mean(finite)) if finite else math.nan,
    }


def expected_accuracy(p_positive: np.ndarray, predicted_positive: np.ndarray) -> float:
    """CBPE accuracy: each event is right with its calibrated probability of its prediction."""
    p = np.asarray(p_positive, dtype=np.float64)
    pred = np.asarray(predicted_positive, dtype=bool)
    return float(np.mean(np.where(pred, p, 1 - p))) if p.size else float("nan")


def expected_roc_auc(score: np.ndarray, p_positive: np.ndarray) -> float:
    """CBPE ROC AUC: the ROC curve of expected true and false positives at every threshold.

    At a threshold, each event above it is a true positive with probability p and a false
    positive with 1 - p; sums of those are the expected counts. Tied scores move together.
    """
    score = np.asarray(score, dtype=np.float64)
    p = np.asarray(p_positive, dtype=np.float64)
    if p.size == 0:
        return float("nan")
    order = np.argsort(-score, kind="mergesort")
    s, p = score[order], p[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(p)[last_of_tie]
    fp = np.cumsum(1 - p)[last_of_tie]
    if tp[-1] <= 0 or fp[-1] <= 0:
        return float("nan")
    tpr = np.r_[0.0, tp / tp[-1]]
    fpr = np.r_[0.0, fp / fp[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


@dataclass(frozen=True)
class LossModel:
    """Direct loss estimation for a regression: the expected absolute and squared error of a
    prediction, by equal-count bins of the predicted value, learnt on reference data with
    labels. Like the classifier's binning it needs no solver and is a few hundred bytes in the
    profile; it follows errors that grow or shrink with the predicted value (a long ETA is
    less sure than a short one) when production moves along it, and is blind to a change
    the predictions do not show (the same predictions now further from the truth).

    >>> rng = np.random.default_rng(0)
    >>> pred = rng.uniform(0, 10, 50_000)
    >>> truth = pred + rng.normal(0, 1, 50_000) * pred / 5  # errors grow with the prediction
    >>> model = LossModel.fit(pred, truth)
    >>> small, large = model.expected(np.full(500, 1.0)), model.expected(np.full(500, 9.0))
    >>> round(small["mae"], 2), round(large["mae"], 2)  # E|N(0, s)| = 0.8 s
    (0.19, 1.43)
    """

    edges: tuple[float, ...]  # inner bin edges of the predicted value
    abs_error: tuple[float, ...]  # mean absolute error per bin (len(edges) + 1)
    sq_error: tuple[float, ...]  # mean squared error per bin

    @classmethod
    def fit(cls, predicted: np.ndarray, truth: np.ndarray, bins: int = 20) -> LossModel:
        predicted = np.asarray(predicted, dtype=np.float64)
        error = np.asarray(truth, dtype=np.float64) - predicted
        edges = np.unique(np.quantile(predicted, np.linspace(0, 1, bins + 1))[1:-1])
        which = np.searchsorted(edges, predicted, side="right")
        n = np.maximum(np.bincount(which, minlength=edges.size + 1), 1)
        abs_error = np.bincount(which, np.abs(error), minlength=edges.size + 1) / n
        sq_error = np.bincount(which, error * error, minlength=edges.size + 1) / n
        return cls(
            tuple(float(e) for e in edges),
            tuple(float(a) for a in abs_error),
            tuple(float(q) for q in sq_error),
        )

    def _bins(self, predicted: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.edges), predicted, side="right")

    def expected(self, predicted: np.ndarray) -> dict[str, float]:
        """The expected MAE and RMSE of these predictions."""
        if predicted.size == 0:
            return {}
        which = self._bins(predicted)
        return {
            "mae": float(np.mean(np.asarray(self.abs_error)[which])),
            "rmse": float(np.sqrt(np.mean(np.asarray(self.sq_error)[which]))),
        }

    def mae_spread(self, predicted: np.ndarray) -> float:
        """The standard deviation of the realised MAE around the expected one, if the
        learnt errors hold: each event's absolute error varies on its own."""
        if predicted.size == 0:
            return math.nan
        which = self._bins(predicted)
        variance = np.asarray(self.sq_error)[which] - np.asarray(self.abs_error)[which] ** 2
        return float(np.sqrt(np.sum(np.maximum(variance, 0.0))) / predicted.size)

    def to_doc(self) -> dict[str, list[float]]:
        return {
            "edges": list(self.edges),
            "abs_error": list(self.abs_error),
            "sq_error": list(self.sq_error),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, list[float]]) -> LossModel:
        return cls(tuple(doc["edges"]), tuple(doc["abs_error"]), tuple(doc["sq_error"]))


@dataclass(frozen=True)
class WindowBar:
    """How far a window's metric may stray from the baseline before it is news.

    ``spread`` is the metric's per-row spread on the reference: ``sd``, the standard
    deviation of its value over windows of w rows times sqrt(w), so a window of ``window``
    rows varies by sd / sqrt(window) around the truth and the baseline itself, from
    ``reference_rows``, by sd / sqrt(reference_rows); ``skew``, their skewness times sqrt(w).
    The bar is the one-sided quantile of a per-window false-alarm probability
    ``window / arl`` (one false window per ``arl`` events) times their combined spread, and
    never less than ``minimum`` (the smallest change worth an alert). The quantile is the
    normal one, widened (never narrowed) by the Cornish-Fisher term of a skew toward worse
    values: windows of skewed or heavy-tailed values (absolute errors, an AUC near 1) stray
    further on their bad side than a normal law says. Errors (higher is worse) are compared
    relative to the baseline, as the tolerance is.

    >>> bar = WindowBar.of("accuracy", 0.9, {"sd": 0.3}, window=500, reference_rows=20_000,
    ...                    arl=100_000)
    >>> round(bar.limit, 4)  # z = 2.576 for 1 window in 200; 0.3 * sqrt(1/500 + 1/20000)
    0.035
    >>> skewed = WindowBar.of("accuracy", 0.9, {"sd": 0.3, "skew": -4.0}, window=500,
    ...                       reference_rows=20_000, arl=100_000)
    >>> round(skewed.limit / bar.limit, 3)  # a long tail toward worse: z + (z^2 - 1) g / 6
    1.065
    >>> bar.verdict(0.86), bar.verdict(0.89), bar.verdict(0.94)
    ('worse', 'within', 'better')
    """

    metric: str
    baseline: float
    limit: float  # in the metric's units for scores, relative to the baseline for errors

    @classmethod
    def of(
        cls,
        metric: str,
        baseline: float,
        spread: dict[str, float],
        window: int,
        reference_rows: int,
        arl: float,
        minimum: float = 0.0,
    ) -> WindowBar:
        sd = spread.get("sd")
        if sd is None or not math.isfinite(sd):
            return cls(metric, baseline, max(minimum, FALLBACK_TOLERANCE))
        z = one_sided_z(window / arl)
        # the window's skewness toward worse values (a long low tail, for scores)
        toward_worse = spread.get("skew", 0.0) / math.sqrt(window)
        if HIGHER_IS_BETTER[metric]:
            toward_worse = -toward_worse
        z += (z * z - 1.0) * max(toward_worse, 0.0) / 6.0
        limit = z * sd * math.sqrt(1.0 / window + 1.0 / max(reference_rows, 1))
        if not HIGHER_IS_BETTER[metric]:
            limit = limit / baseline if baseline > 0 else math.inf
        return cls(metric, baseline, max(minimum, limit))

    def excess(self, value: float) -> float:
        """How much worse than the baseline ``value`` is, in the bar's units (negative:
        better)."""
        if HIGHER_IS_BETTER[self.metric]:
            return self.baseline - value
        return (value - self.baseline) / self.baseline if self.baseline > 0 else math.inf

    def verdict(self, value: float) -> str:
        excess = self.excess(value)
        if excess > self.limit:
            return "worse"
        return "better" if -excess > self.limit else "within"

    def band(self, value: float) -> tuple[float, float]:
        """Where a window's metric stays with no change, around ``value``, in its units."""
        width = self.limit if HIGHER_IS_BETTER[self.metric] else self.limit * self.baseline
        return value - width, value + width


# used when a profile carries no spread for the metric (written before driftline baseline
# measured it): the old fixed rule, an absolute 0.05 for scores and 5% for errors
FALLBACK_TOLERANCE = 0.05


def one_sided_z(alpha: float) -> float:
    """The standard normal quantile with ``alpha`` above it (alpha capped to [1e-12, 0.5])."""
    return NormalDist().inv_cdf(1.0 - min(max(alpha, 1e-12), 0.5))


def expected_accuracy_spread(right: np.ndarray) -> float:
    """The standard deviation of the realised accuracy around CBPE's expected accuracy, when
    the calibrated probabilities hold: each event is right or wrong on its own coin, with
    probability ``right``."""
    right = np.asarray(right, dtype=np.float64)
    return float(np.sqrt(np.sum(right * (1 - right))) / right.size) if right.size else math.nan


AUC_BINS = 100  # score resolution of the accumulated ROC AUC


class MetricAccumulator:
    """Metrics of a stream of labelled events kept as sums, in constant space: for windows
    that may hold any number of events (an hour of traffic, a segment over a day).

    Everything but ROC AUC is exact (confusion matrix, log-loss and calibration sums, error
    sums). ROC AUC comes from ``AUC_BINS`` score bins per class, exact when scores fall on
    bin edges and otherwise off by less than the share of pairs inside one bin.

    >>> acc = MetricAccumulator("binary", 2)
    >>> acc.add(np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1]), np.array([0.9, 0.2, 0.4, 0.7]))
    >>> m = acc.metrics()
    >>> m["accuracy"], m["recall"], m["roc_auc"]
    (0.75, 0.6666666666666666, 1.0)
    """

    def __init__(self, task: str, n_classes: int) -> None:
        self.task, self.k = task, n_classes
        self.n = 0
        if task == "regression":
            self.sums = np.zeros(4)  # |e|, e^2, |e / y| (y != 0), count of y != 0
        else:
            self.confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
            self.proba_n = 0
            self.log_loss_sum = 0.0
            self.calib = np.zeros((2, 10))  # confidence sum, correct sum per confidence bin
            self.auc = np.zeros((2, AUC_BINS), dtype=np.int64)  # binary: negatives, positives

    def add(self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None = None) -> None:
        if self.task == "regression":
            ok = np.isfinite(y_true) & np.isfinite(y_pred)
            t, e = y_true[ok], y_pred[ok] - y_true[ok]
            nz = t != 0
            self.sums += [np.abs(e).sum(), (e**2).sum(), np.abs(e[nz] / t[nz]).sum(), nz.sum()]
            self.n += int(ok.sum())
            return
        ok = (y_true >= 0) & (y_pred >= 0)
        t, p = y_true[ok].astype(np.int64), y_pred[ok].astype(np.int64)
        np.add.at(self.confusion, (t, p), 1)
        self.n += int(ok.sum())
        if proba is None:
            return
        pr = np.asarray(proba, dtype=np.float64)[ok]
        usable = np.isfinite(pr) if pr.ndim == 1 else np.isfinite(pr).all(axis=1)
        t, pr = t[usable], pr[usable]
        if t.size == 0:
            return
        self.proba_n += int(t.size)
        if pr.ndim == 1:  # binary: P(positive)
            q = np.clip(pr, _EPS, 1 - _EPS)
            self.log_loss_sum -= float(np.where(t == 1, np.log(q), np.log1p(-q)).sum())
            conf, correct = pr, (t == 1)
            which = np.minimum((pr * AUC_BINS).astype(np.int64), AUC_BINS - 1)
            np.add.at(self.auc, (t, which), 1)
        else:
            q = np.clip(pr / pr.sum(axis=1, keepdims=True), _EPS, 1 - _EPS)
            self.log_loss_sum -= float(np.log(q[np.arange(t.size), t]).sum())
            conf, correct = pr.max(axis=1), pr.argmax(axis=1) == t
        b = np.minimum((conf * 10).astype(np.int64), 9)
        np.add.at(self.calib, (np.zeros_like(b), b), conf)
        np.add.at(self.calib, (np.ones_like(b), b), correct.astype(np.float64))

    def metrics(self) -> dict[str, float]:
        if self.n == 0:
            return {}
        if self.task == "regression":
            abs_e, sq_e, pct, nonzero = self.sums
            return {
                "mae": abs_e / self.n,
                "rmse": float(np.sqrt(sq_e / self.n)),
                "mape": pct / nonzero if nonzero else float("nan"),
            }
        cm = self.confusion
        tp = np.diag(cm).astype(np.float64)
        predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
        precision = np.divide(tp, predicted, out=np.zeros(self.k), where=predicted > 0)
        recall = np.divide(tp, actual, out=np.zeros(self.k), where=actual > 0)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros(self.k), where=denom > 0)
        out = {"accuracy": float(tp.sum() / self.n)}
        if self.k == 2:
            out.update(precision=float(precision[1]), recall=float(recall[1]), f1=float(f1[1]))
        else:
            present = actual + predicted > 0
            out.update(
                precision=float(precision[present].mean()),
                recall=float(recall[present].mean()),
                f1=float(f1[present].mean()),
            )
        if self.proba_n:
            out["log_loss"] = self.log_loss_sum / self.proba_n
            conf, correct = self.calib
            out["calibration_error"] = float(np.abs(correct - conf).sum() / self.proba_n)
            neg, pos = self.auc
            if self.k == 2 and neg.sum() and pos.sum():
                # pairs (positive, negative): the positive's bin above, or the same bin (half)
                below = np.cumsum(neg) - neg
                wins = (pos * below).sum() + 0.5 * (pos * neg).sum()
                out["roc_auc"] = float(wins / (pos.sum() * neg.sum()))
        return out

    def to_doc(self) -> dict[str, Any]:
        if self.task == "regression":
            return {"n": self.n, "sums": self.sums.tolist()}
        return {
            "n": self.n,
            "confusion": self.confusion.tolist(),
            "proba_n": self.proba_n,
            "log_loss": self.log_loss_sum,
            "calib": self.calib.tolist(),
            "auc": self.auc.tolist(),
        }

    @classmethod
    def from_doc(cls, task: str, n_classes: int, doc: dict[str, Any] | None) -> MetricAccumulator:
        acc = cls(task, n_classes)
        if not doc:
            return acc
        acc.n = int(doc["n"])
        if task == "regression":
            acc.sums = np.asarray(doc["sums"], dtype=np.float64)
        else:
            acc.confusion = np.asarray(doc["confusion"], dtype=np.int64)
            acc.proba_n = int(doc["proba_n"])
            acc.log_loss_sum = float(doc["log_loss"])
            acc.calib = np.asarray(doc["calib"], dtype=np.float64)
            acc.auc = np.asarray(doc["auc"], dtype=np.int64)
        return acc
