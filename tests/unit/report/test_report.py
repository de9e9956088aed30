"""``driftline report``, opened in headless Chromium: every model and feature there, charts
drawn, the alert records' numbers shown, nothing loaded from the network, no markup from
the events."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from driftline.events.records import Alert, FeatureWindow
from tests.browser import (
    Dom,
    dump_dom,
    looks_drawn,
    page_requests,
    recording_proxy,
    screenshot,
)
from tests.streams import batch_message, classifier_events, write_classifier_profile
from tests.unit.cli.test_cli import cli

HOSTILE = {
    "category": "<img src=x onerror=alert(1)>",
    "field": "<svg onload=alert(2)>",
    "version": "</td><script>alert(3)</script>",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier whose x1 shifts and whose colours turn hostile at event 6,000, replayed
    with its labels, and its report."""
    d = tmp_path_factory.mktemp("report")
    write_classifier_profile(d / "clf.json")
    (d / "c.yaml").write_text(
        "worker: {history_events: 500}\nmodels:\n  clf:\n    task: binary\n"
        f"    reference: {d / 'clf.json'}\n"
        "    features: {x1: numeric, x2: numeric, color: categorical}\n"
        "    performance: {enabled: true}\n"
    )
    rng = np.random.default_rng(5)
    before = classifier_events(6_000, rng)
    after = classifier_events(6_000, rng, start=6_000, flip=0.3)
    predictions, labels = before[0] + after[0], before[1] + after[1]
    for event in predictions[6_000:]:
        event["features"]["x1"] += 1.0
        event["features"][HOSTILE["field"]] = 1
        if event["features"]["color"] == "red":
            event["features"]["color"] = HOSTILE["category"]
    lines = []
    for start in range(0, 12_000, 250):
        version = "1" if start < 6_000 else HOSTILE["version"]
        lines.append(batch_message("clf", predictions[start : start + 250], version))
        lines.append(orjson.dumps({"model_id": "clf", "events": labels[start : start + 250]}))
    (d / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    files = ["--out", "alerts.jsonl", "--feature-windows", "history.jsonl"]
    files += ["--performance-windows", "windows.jsonl"]
    replay = cli("replay", "--config", str(d / "c.yaml"), "--events", str(d / "events.jsonl"),
                 *[str(d / f) if f.endswith(".jsonl") else f for f in files])  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    report = cli(
        "report",
        "--config", str(d / "c.yaml"),
        "--alerts", str(d / "alerts.jsonl"),
        "--feature-windows", str(d / "history.jsonl"),
        "--performance-windows", str(d / "windows.jsonl"),
        "--events", str(d / "events.jsonl"),
        "--out-dir", str(d / "out"),
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert report.stdout.strip() == f"wrote {d / 'out' / 'clf.html'}"
    return d


def alerts(d: Path) -> list[Alert]:
    return [Alert.from_json(line) for line in (d / "alerts.jsonl").read_bytes().splitlines()]


def test_every_feature_has_its_distributions_and_history_drawn(built: Path, tmp_path: Path) -> None:
    dom = Dom(dump_dom((built / "out" / "clf.html").as_uri(), tmp_path / "profile"))
    assert dom.find("h1")[0].text == "driftline report: clf"
    blocks = {e.attrs["data-feature"] for e in dom.elements if "data-feature" in e.attrs}
    assert blocks == {"x1", "x2", "color", "_prediction"}
    for feature in ("x1", "x2", "color", "_prediction"):
        bars = [
            e
            for e in dom.find("rect")
            if feature in e.parents and "bar" in e.attrs.get("class", "")
        ]
        kinds = Counter(e.attrs.get("class") for e in bars)
        assert kinds["bar reference"] >= 3 and kinds["bar recent"] == kinds["bar reference"]
        assert sum(float(e.attrs["height"]) for e in bars) > 100  # drawn, not flat
    # the recent bars are the last events': x1 moved up a standard deviation at event 6,000
    top = [
        e for e in dom.find("rect") if "x1" in e.parents and "recent" in e.attrs.get("class", "")
    ]
    assert (
        top[-1].text.endswith("%") and float(top[-1].text.split()[-1][:-1]) > 18
    )  # reference: 10%
    history = [FeatureWindow.from_json(x) for x in (built / "history.jsonl").read_bytes().split()]
    assert len(history) == 24
    # the report follows the newest version: the model version from event 6,000 on
    history = [h for h in history if h.model_version == HOSTILE["version"]]
    assert len(history) == 12
    (shown,) = [e for e in dom.find("tr") if e.text.startswith("model version shown")]
    assert shown.text == f"model version shown{HOSTILE['version']}"  # escaped: a cell's text
    for feature in ("x1", "x2", "color"):
        (line,) = [
            e
            for e in dom.find("polyline")
            if feature in e.parents and e.text == "statistic / threshold"
        ]
        assert len(line.attrs["points"].split()) == len(history)
    # the label join per window: the page's totals are the records'
    joined = sum(w.labels.joined for w in history if w.labels is not None)
    (row,) = [e for e in dom.find("tr") if e.text.startswith("joined")]
    assert joined > 5_000 and row.text == f"joined{joined:,}"
    for chart in ("label-delay", "label-outcomes"):
        assert [e for e in dom.find("div") if e.attrs.get("data-chart") == chart]
    # the drift episode is shaded on the features it names, and only on them
    shaded = {
        p for e in dom.find("rect") if "episode" in e.attrs.get("class", "") for p in e.parents
    }
    assert shaded == {"x1", "color"}


def test_the_summary_shows_the_alert_records_numbers(built: Path, tmp_path: Path) -> None:
    dom = Dom(dump_dom((built / "out" / "clf.html").as_uri(), tmp_path / "profile"))
    rows = [e for e in dom.find("tr") if "data-alert-id" in e.attrs]
    firsts: dict[str, Alert] = {}
    lasts: dict[str, Alert] = {}
    for alert in alerts(built):
        firsts.setdefault(alert.alert_id, alert)
        lasts[alert.alert_id] = alert
    # drift, data quality, performance, and the new version without a profile of its own
    assert len(firsts) == 4 and [r.attrs["data-alert-id"] for r in rows] == [
        a.alert_id for a in sorted(firsts.values(), key=lambda a: -a.events_seen)
    ]  # all open: the latest first
    for row in rows:
        alert = firsts[row.attrs["data-alert-id"]]
        assert f"{alert.events_seen:,}" in row.text and alert.alert_id in row.text
        # an update can raise the severity: the page shows the episode's latest
        assert lasts[alert.alert_id].severity in row.text and alert.kind in row.text


def test_the_performance_table_shows_the_window_records(built: Path, tmp_path: Path) -> None:
    from driftline.events.records import PerformanceWindow

    dom = Dom(dump_dom((built / "out" / "clf.html").as_uri(), tmp_path / "profile"))
    windows = [
        PerformanceWindow.from_json(line)
        for line in (built / "windows.jsonl").read_bytes().splitlines()
    ]
    rows = {e.text for e in dom.find("tr")}
    last = windows[-1]
    for check in last.checks:
        assert check.value is not None and check.limit is not None
        shown = f"{last.source}{last.window_end_event:,}{check.metric}{check.value:.4g}"
        assert any(row.startswith(shown) and row.endswith(check.verdict) for row in rows), shown
    # one line per watched metric, as many points as windows of its source
    lines = [e for e in dom.find("polyline") if e.text in ("realised", "estimated")]
    shown = [w for w in windows if w.model_version == HOSTILE["version"]]  # the newest's
    assert 0 < len(shown) < len(windows)
    counts = {s: sum(w.source == s for w in shown) for s in ("realised", "estimated")}
    assert {len(e.attrs["points"].split()) for e in lines} == set(counts.values())


def test_the_report_loads_nothing_and_opens_with_the_network_off(
    built: Path, tmp_path: Path
) -> None:
    page = built / "out" / "clf.html"
    # the check can fail: a page that loads an image is seen by the proxy
    loader = tmp_path / "loads.html"
    loader.write_text('<html><body><img src="http://192.0.2.7/pixel.png"></body></html>')
    with recording_proxy() as (port, seen):
        dump_dom(loader.as_uri(), tmp_path / "control", proxy=port)
        assert "GET http://192.0.2.7/pixel.png" in page_requests(seen)
    with recording_proxy() as (port, seen):
        online = dump_dom(page.as_uri(), tmp_path / "a", proxy=port)
    assert page_requests(seen) == []
    offline = dump_dom(page.as_uri(), tmp_path / "b", offline=True)
    assert offline == online and "driftline report: clf" in offline
    shot = screenshot(page.as_uri(), tmp_path / "report.png", tmp_path / "c", offline=True)
    assert looks_drawn(shot)
    assert page.stat().st_size < 200_000


def test_nothing_the_events_carry_becomes_markup(built: Path, tmp_path: Path) -> None:
    html = dump_dom((built / "out" / "clf.html").as_uri(), tmp_path / "profile")
    dom = Dom(html)
    assert not dom.find("script") and not dom.find("img") and not dom.find("iframe")
    handlers = [(e.tag, k) for e in dom.elements for k in e.attrs if k.startswith("on")]
    assert handlers == []
    text = "".join(e.text for e in dom.find("body"))
    # each reaches the page, as text
    assert [name for name, value in HOSTILE.items() if value in text] == list(HOSTILE)


def test_the_recent_events_are_read_from_the_end_of_the_file(tmp_path: Path) -> None:
    from driftline.report.page import lines_from_end

    lines = [b"{}", b'{"a": 1}', b"", b'{"long": "' + b"x" * 40 + b'"}', b"  ", b'{"z": 2}']
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    expected = [line.strip() for line in reversed(lines) if line.strip()]
    for chunk in (1, 3, 7, 1 << 20):
        assert list(lines_from_end(path, chunk)) == expected


def test_champion_and_challenger_windows_show_as_a_table_per_pair(tmp_path: Path) -> None:
    """The comparison records on the performance-windows topic: each pair's last windows
    with both metrics, the difference and its interval, and the decision so far."""
    from driftline.config import ComparisonSettings
    from driftline.events.records import ComparisonWindow
    from driftline.monitoring.comparison import VersionComparison
    from tests.unit.monitoring.test_comparison import FIRST_SEEN, shadow_pairs

    compared = VersionComparison("clf", "binary", ComparisonSettings(), 500).process(
        shadow_pairs(np.random.default_rng(2), 3_000, 0.80, 0.88), FIRST_SEEN, {}, 0
    )
    windows: list[ComparisonWindow] = compared.windows
    assert len(windows) == 6 and windows[-1].challenger_better
    write_classifier_profile(tmp_path / "clf.json")
    (tmp_path / "c.yaml").write_text(
        f"models:\n  clf:\n    task: binary\n    reference: {tmp_path / 'clf.json'}\n"
        "    features: {x1: numeric, x2: numeric, color: categorical}\n"
    )
    records = tmp_path / "windows.jsonl"
    records.write_bytes(b"\n".join(w.to_json() for w in windows) + b"\n")
    out = tmp_path / "out"
    report = cli("report", "--config", str(tmp_path / "c.yaml"),
                 "--performance-windows", str(records), "--out-dir", str(out))  # fmt: skip
    assert report.returncode == 0, report.stderr
    page = out / "clf.html"
    dom = Dom(dump_dom(page.as_uri(), tmp_path / "profile"))
    (pair,) = [e for e in dom.elements if e.attrs.get("data-comparison") == "1/2"]
    assert pair.tag == "div"
    (title,) = [e for e in dom.find("h3") if e.text.startswith("champion 1, challenger 2")]
    assert title.text.endswith("challenger better")
    rows = [e.text for e in dom.find("tr") if "data-comparison" not in e.attrs]
    for w in windows:
        shown = (
            f"{w.window_end_label:,}{w.labels:,}{w.champion_value:.4g}{w.challenger_value:.4g}"
            f"{w.difference:+.4g} [{w.lower:+.4g}, {w.upper:+.4g}]"
        )
        assert any(row.startswith(shown) for row in rows), shown
    shot = screenshot(page.as_uri(), tmp_path / "comparison.png", tmp_path / "s", (1200, 2200))
    assert looks_drawn(shot)
