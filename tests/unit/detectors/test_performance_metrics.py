"""Performance metrics equal scikit-learn's on the same data; CBPE tracks the real accuracy
under covariate shift and, as documented, not under concept drift."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from driftline.detectors.performance import (
    ScoreCalibration,
    calibration_error,
    classification_metrics,
    expected_accuracy,
    expected_roc_auc,
    regression_metrics,
    roc_auc,
)


def close(a: float, b: float) -> bool:
    return bool(np.isclose(a, b, rtol=1e-9, atol=1e-12))


@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 2_000))
    y = (rng.random(n) < rng.uniform(0.1, 0.9)).astype(int)
    proba = np.clip(0.5 * y + rng.random(n) * 0.6 - 0.05, 0, 1)
    proba = np.round(proba, 2)  # ties, as real scores have
    pred = (proba >= 0.5).astype(int)
    got = classification_metrics(y, pred, ["0", "1"], proba)
    assert close(got["accuracy"], skm.accuracy_score(y, pred))
    assert close(got["precision"], skm.precision_score(y, pred, zero_division=0))
    assert close(got["recall"], skm.recall_score(y, pred, zero_division=0))
    assert close(got["f1"], skm.f1_score(y, pred, zero_division=0))
    assert close(got["roc_auc"], skm.roc_auc_score(y, proba))
    assert close(got["log_loss"], skm.log_loss(y, proba))


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_metrics_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    k, n = int(rng.integers(3, 6)), int(rng.integers(50, 2_000))
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += rng.uniform(0.5, 2.0)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    classes = [f"c{i}" for i in range(k)]
    got = classification_metrics(y, pred, classes, proba)
    labels = list(range(k))
    assert close(got["accuracy"], skm.accuracy_score(y, pred))
    for name, fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        assert close(got[name], fn(y, pred, average="macro", zero_division=0)), name
    assert close(got["roc_auc"], skm.roc_auc_score(y, proba, multi_class="ovr", labels=labels))
    assert close(got["log_loss"], skm.log_loss(y, proba, labels=labels))


def test_regression_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(7)
    y = rng.gamma(2.0, 10.0, 1_000) + 1.0
    pred = y + rng.normal(0, 3, y.size)
    got = regression_metrics(y, pred)
    assert close(got["mae"], skm.mean_absolute_error(y, pred))
    assert close(got["rmse"], np.sqrt(skm.mean_squared_error(y, pred)))
    assert close(got["mape"], skm.mean_absolute_percentage_error(y, pred))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 20)), min_size=2, max_size=60).filter(
        lambda rows: len({r[0] for r in rows}) == 2
    )
)
def test_roc_auc_equals_sklearn_with_any_ties(rows: list[tuple[bool, int]]) -> None:
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows], dtype=float)
    assert close(roc_auc(y, s), skm.roc_auc_score(y, s))


def test_calibration_error_equals_the_loop_formula() -> None:
    rng = np.random.default_rng(3)
    conf = rng.random(5_000)
    correct = rng.random(5_000) < conf**1.5  # overconfident
    total = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        inside = (conf >= lo) & ((conf < hi) if b < 9 else (conf <= hi))
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    assert close(calibration_error(correct, conf), total)
    assert calibration_error(correct, conf) > 0.05  # it does see the overconfidence


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def test_expected_roc_auc_of_calibrated_scores_matches_the_realised_one() -> None:
    rng = np.random.default_rng(5)
    p = sigmoid(rng.normal(0, 2, 50_000))
    y = rng.random(p.size) < p  # labels drawn from the calibrated probability
    assert abs(expected_roc_auc(p, p) - roc_auc(y, p)) < 0.01
    assert abs(expected_accuracy(p, p >= 0.5) - np.mean((p >= 0.5) == y)) < 0.01


def test_cbpe_tracks_accuracy_under_covariate_shift_but_not_concept_drift() -> None:
    """A calibrated classifier: P(y=1 | x) = sigmoid(2x), scores sigmoid(2x) with a bias the
    calibration learns away. The inputs move toward the decision boundary (x from N(1.5, 1)
    to N(0.3, 1)): the real accuracy falls and the estimate follows. Then the concept
    flips for x > 1 (labels inverted): the real accuracy falls, the estimate cannot see it."""
    rng = np.random.default_rng(11)

    def world(x: np.ndarray, flipped: bool = False) -> tuple[np.ndarray, np.ndarray]:
        p_true = sigmoid(2 * x)
        y = rng.random(x.size) < p_true
        if flipped:
            y = np.where(x > 1, ~y, y)
        return sigmoid(2 * x + 0.7), y  # the model's scores are biased upward

    ref_x = rng.normal(1.5, 1, 20_000)
    ref_s, ref_y = world(ref_x)
    cal = ScoreCalibration.fit(ref_s, ref_y)

    def estimate_and_truth(x: np.ndarray, flipped: bool = False) -> tuple[float, float]:
        s, y = world(x, flipped)
        pred = s >= 0.5
        return expected_accuracy(cal.probability(s), pred), float(np.mean(pred == y))

    rows = [estimate_and_truth(rng.normal(mu, 1, 5_000)) for mu in (1.5, 1.0, 0.6, 0.3)]
    for estimated, realised in rows:
        assert abs(estimated - realised) < 0.03, rows
    assert rows[0][1] - rows[-1][1] > 0.1  # the shift did lower the real accuracy
    estimated, realised = estimate_and_truth(rng.normal(1.5, 1, 5_000), flipped=True)
    assert realised < rows[0][1] - 0.3 and estimated > realised + 0.3  # blind to the concept


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_accumulator_fed_in_pieces_gives_the_window_metrics(task: str) -> None:
    from driftline.detectors.performance import MetricAccumulator

    rng = np.random.default_rng(21)
    n = 3_000
    if task == "regression":
        y = rng.gamma(2.0, 10.0, n) + 1
        pred, proba, k = y + rng.normal(0, 3, n), None, 0
        exact = regression_metrics(y, pred)
    else:
        k = 2 if task == "binary" else 4
        y = rng.integers(0, k, n)
        logits = rng.normal(size=(n, k))
        logits[np.arange(n), y] += 1.0
        full = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        proba = full[:, 1] if k == 2 else full
        pred = full.argmax(axis=1)
        exact = classification_metrics(y, pred, [str(i) for i in range(k)], proba)
    acc = MetricAccumulator(task, k)
    for start in range(0, n, 700):  # in pieces, through its stored form
        part = slice(start, start + 700)
        acc.add(y[part], pred[part], None if proba is None else proba[part])
        acc = MetricAccumulator.from_doc(task, k, acc.to_doc())
    got = acc.metrics()
    for name, value in exact.items():
        if name == "roc_auc":
            if task == "binary":
                assert abs(got[name] - value) < 0.005  # binned scores
            continue
        assert close(got[name], value), name
