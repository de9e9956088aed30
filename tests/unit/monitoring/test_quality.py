"""Data-quality checks: one alert per pipeline break, naming the feature and the cause."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.config import config_from_dict
from driftline.detectors.quality import ConstantCheck, RateCheck, RunState
from driftline.events.records import Alert, RetrainingRequest
from driftline.monitoring.pipeline import Pipeline
from tests.streams import batch_message, broken, counted, events, model_config, write_profile
from tests.unit.monitoring.test_alerting import comparable

AT = 3_000  # the event at which each break starts
N = 6_000
# Where each break must show: (feature, check) in the data-quality alert.
CAUSES = {
    "null": {("x2", "missing")},
    "scaled": {("x1", "out_of_range")},
    "new_category": {("color", "unseen_category")},
    "renamed": {("x2", "missing"), ("x2_value", "unexpected_field")},
    "version": {("model_version", "model_version")},
    "type_error": {("x1", "type_error")},
    "constant": {("x2", "constant")},
}


def pipeline(tmp_path: Path, **model: Any) -> Pipeline:
    profile = write_profile(tmp_path / "m1.json")
    config = config_from_dict({"models": {"m1": model_config(profile, **model)}})
    return counted(config)


def run(
    p: Pipeline, rows: list[dict[str, Any]], cuts: list[int] | None = None
) -> tuple[list[Alert], list[RetrainingRequest]]:
    """Rows through the pipeline as batch messages cut at ``cuts`` (every 250 by default)."""
    bounds = [0, *sorted(set(cuts if cuts is not None else range(250, len(rows), 250))), len(rows)]
    state: dict[str, bytes] = {}
    alerts: list[Alert] = []
    requests: list[RetrainingRequest] = []
    for a, b in itertools.pairwise(bounds):
        if a < b:
            result = p.process_messages([batch_message("m1", rows[a:b])], state)
            alerts += result.alerts
            requests += result.retraining_requests
    return alerts, requests


def stream(mode: str | None, n: int = N, seed: int = 3) -> list[dict[str, Any]]:
    rows = events(n, np.random.default_rng(seed))
    return rows if mode is None else broken(rows, mode, AT)


def test_a_clean_stream_raises_nothing(tmp_path: Path) -> None:
    alerts, _ = run(pipeline(tmp_path), stream(None, n=30_000))
    assert alerts == []


@pytest.mark.parametrize("mode", sorted(CAUSES))
def test_each_break_gives_one_data_quality_alert_naming_feature_and_cause(
    tmp_path: Path, mode: str
) -> None:
    alerts, _ = run(pipeline(tmp_path), stream(mode))
    quality = [a for a in alerts if a.kind == "data_quality" and a.status == "firing"]
    assert len(quality) == 1, [a.message for a in alerts]
    (alert,) = quality
    causes = {(f.feature, f.detector) for f in alert.features}
    assert CAUSES[mode] <= causes, alert.message
    assert causes <= CAUSES[mode] | {("x1", "missing")}, alert.message  # type errors are apart
    # Within the budget's delay: a rate check needs ln(ARL) / ln(p1 / p0) flagged events
    # (about 5 at 100%, about 25 at 20%); the constant check a run of 100 equal values.
    top = alert.features[0]
    assert (top.feature, top.detector) in CAUSES[mode]
    if mode == "version":  # a version without a profile: reported once, as it arrives,
        # counted in its own events (monitoring/versions.py)
        assert top.rate is None and top.examples == ["2"]
        assert alert.window_start_event == alert.events_seen == 0 and alert.severity == "warning"
        assert alert.model_version == "2" and "compared with version 1's" in alert.message
        return
    assert AT < alert.window_start_event <= AT + 130, alert.message
    # after the group wait (100 events), or sooner once the check crossed twice (critical)
    assert alert.window_start_event < alert.events_seen <= alert.window_start_event + 100
    assert alert.events_seen == alert.window_start_event + 100 or alert.severity == "critical"
    expected_rate = 0.2 if mode == "new_category" else 1.0
    assert top.rate is not None and abs(top.rate - expected_rate) < 0.12, alert.message
    assert alert.severity == "critical"  # a break keeps signalling
    assert alert.message.startswith(f"Data quality on m1: {top.feature} ")


def test_evidence_carries_clipped_examples_never_whole_events(tmp_path: Path) -> None:
    rows = stream("new_category")
    alerts, _ = run(pipeline(tmp_path), rows)
    (alert,) = [a for a in alerts if a.kind == "data_quality"]
    assert alert.features[0].examples == ["ultraviolet"]
    assert "'ultraviolet'" in alert.message
    version, _ = run(pipeline(tmp_path), stream("version"))
    assert version[0].features[0].examples == ["2"]
    long_name = "u" * 500
    for row in rows[AT:]:
        if row["features"]["color"] == "ultraviolet":
            row["features"]["color"] = long_name
    alerts, _ = run(pipeline(tmp_path), rows)
    assert alerts[0].features[0].examples == ["u" * 40]


def test_a_scaled_feature_is_a_data_quality_alert_before_its_drift_alert(tmp_path: Path) -> None:
    retraining = {"after_critical_seconds": 60, "cooldown_seconds": 0}
    alerts, requests = run(pipeline(tmp_path, retraining=retraining), stream("scaled"))
    firing = [(a.kind, a.feature) for a in alerts if a.status == "firing"]
    assert firing == [("data_quality", "x1"), ("drift", "x1")]
    drift = next(a for a in alerts if a.kind == "drift")
    assert drift.data_quality == ["x1: out_of_range"]
    assert "data-quality problem open on x1: out_of_range" in drift.message
    # Retraining does not mend a broken pipeline: no request while the break is open.
    assert requests == []


def test_a_break_that_ends_resolves(tmp_path: Path) -> None:
    rows = stream("null", n=9_000)
    rows[5_000:] = events(4_000, np.random.default_rng(9), start=5_000)
    alerts, _ = run(pipeline(tmp_path), rows)
    assert [(a.kind, a.status) for a in alerts] == [
        ("data_quality", "firing"),
        ("data_quality", "resolved"),
    ]
    assert alerts[0].alert_id == alerts[1].alert_id
    assert 5_000 + 4 * 500 <= alerts[1].events_seen <= 5_000 + 5 * 500


def test_skipped_checks_and_ignored_fields_stay_quiet(tmp_path: Path) -> None:
    quality = {"skip": {"x2": ["constant"]}, "ignore_fields": ["x2_value"], "model_version": False}
    p = pipeline(tmp_path, data_quality=quality)
    for mode in ("constant", "version"):
        alerts, _ = run(p, stream(mode))
        # (a stuck x2 is still a change of its distribution: the drift detector says so)
        assert [a for a in alerts if a.kind == "data_quality"] == [], mode
    alerts, _ = run(p, stream("renamed"))
    (alert,) = [a for a in alerts if a.kind == "data_quality"]
    assert {(f.feature, f.detector) for f in alert.features} == {("x2", "missing")}


@pytest.mark.parametrize("mode", ["renamed", "new_category", "version"])
def test_alerts_do_not_depend_on_batch_cuts(tmp_path: Path, mode: str) -> None:
    rows = stream(mode)
    p = pipeline(tmp_path)
    reference, _ = run(p, rows)
    rng = np.random.default_rng(11)
    for _ in range(3):
        cuts = sorted(rng.choice(np.arange(1, N), 25, replace=False).tolist())
        alerts, _ = run(pipeline(tmp_path), rows, cuts)
        assert [comparable(a) for a in alerts] == [comparable(a) for a in reference]


def test_quality_metrics_have_bounded_labels(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    rows = stream("renamed")
    for i, row in enumerate(rows[AT:]):
        row["features"][f"junk_{i}"] = 1.0  # thousands of distinct undeclared names
    run(p, rows)
    samples = [
        s
        for m in p.metrics.registry.collect()
        if m.name.startswith("driftline_data_quality")
        for s in m.samples
    ]
    assert {s.labels["feature"] for s in samples} == {"x1", "x2", "color", "_schema"}
    flagged = {
        (s.labels["feature"], s.labels["check"]): s.value
        for s in samples
        if s.name == "driftline_data_quality_flagged_events_total"
    }
    assert flagged[("x2", "missing")] == N - AT
    assert flagged[("_schema", "unexpected_field")] > 0


# -- the checks themselves: any cut of a stream gives the same signals --------------------


def _whole_and_cut(
    check: RateCheck | ConstantCheck, data: np.ndarray, cuts: list[int]
) -> tuple[tuple[int, int], tuple[int, int], RunState, RunState]:
    """(alarms, first alarm) fed whole and fed in pieces cut at ``cuts``, and both states."""
    whole, split = RunState(), RunState()
    one = check.update(whole, data)
    alarms, first = 0, -1
    for a, b in zip([0, *cuts], [*cuts, data.size], strict=True):
        r = check.update(split, data[a:b])
        if r.alarms and first < 0:
            first = a + r.first
        alarms += r.alarms
    return (one.alarms, one.first), (alarms, first), whole, split


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    cuts=st.lists(st.integers(1, 1_999), max_size=12, unique=True).map(sorted),
    seed=st.integers(0, 10_000),
)
def test_rate_check_is_cut_independent(rate: float, cuts: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    flags = np.concatenate([rng.random(1_000) < 0.001, rng.random(1_000) < rate])
    one, pieces, whole, split = _whole_and_cut(RateCheck(0.001, 10_000, arl=1e6), flags, cuts)
    assert pieces == one
    assert (split.s, split.flagged) == pytest.approx((whole.s, whole.flagged))


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 1_499), max_size=12, unique=True).map(sorted),
    seed=st.integers(0, 10_000),
)
def test_the_constant_check_is_cut_independent(cuts: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.integers(0, 10, 500), np.full(700, 4), rng.integers(0, 10, 300)])
    check = ConstantCheck(0.1, arl=1e6, min_run=50)
    one, pieces, whole, split = _whole_and_cut(check, values.astype(float), cuts)
    assert pieces == one and one[0] > 0  # the stream does alarm
    assert split.to_doc() == whole.to_doc()


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 1_499), max_size=12, unique=True).map(sorted),
    seed=st.integers(0, 10_000),
)
def test_constant_check_on_category_codes_is_the_check_on_strings(
    cuts: list[int], seed: int
) -> None:
    """The codes the worker compares instead of strings give the same runs and state."""
    rng = np.random.default_rng(seed)
    codes = np.concatenate([rng.integers(0, 3, 500), np.full(700, 2), rng.integers(0, 3, 300)])
    names = np.array(["a", "b", "c"], dtype=object)[codes]
    check = ConstantCheck(0.4, arl=1e6, min_run=50)
    on_names, on_codes = RunState(), RunState()
    alarms = 0
    for a, b in zip([0, *cuts], [*cuts, codes.size], strict=True):
        want = check.update(on_names, names[a:b])
        assert check.update(on_codes, names[a:b], codes[a:b]) == want
        alarms += want.alarms
    assert on_codes.to_doc() == on_names.to_doc()
    assert alarms > 0  # the run of 700 does signal


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_widened_tail_is_drift_not_a_broken_pipeline(tmp_path: Path, seed: int) -> None:
    """From AT x1's spread doubles around its mean and x2's scale doubles: the same kind of
    distribution, wider. That is drift (a drift alert), not out_of_range."""
    rows = stream(None, seed=seed)
    for row in rows[AT:]:
        f = row["features"]
        f["x1"] = 5.0 + 2.0 * (f["x1"] - 5.0)
        f["x2"] = 2.0 * f["x2"]
    alerts, _ = run(pipeline(tmp_path), rows)
    firing = [(a.kind, a.update) for a in alerts if a.status == "firing"]
    assert ("drift", 0) in firing and all(kind == "drift" for kind, _ in firing), firing
    drift = next(a for a in alerts if a.kind == "drift")
    assert drift.data_quality == [] and "pipeline" not in drift.message


def test_a_negative_value_of_a_feature_that_never_was_negative_is_out_of_range(
    tmp_path: Path,
) -> None:
    rows = stream(None)
    for i, row in enumerate(rows[AT:]):
        if i % 5 == 0:  # a sign error in 20% of events, values well inside the range's width
            row["features"]["x2"] = -row["features"]["x2"]
    alerts, _ = run(pipeline(tmp_path), rows)
    quality = [a for a in alerts if a.kind == "data_quality" and a.status == "firing"]
    assert [(f.feature, f.detector) for f in quality[0].features][:1] == [("x2", "out_of_range")]
    assert AT < quality[0].window_start_event <= AT + 130
