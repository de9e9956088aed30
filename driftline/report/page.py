"""``driftline report``: one self-contained HTML file per model, from the records the worker
publishes and ``driftline replay`` writes (alerts, performance windows), the model's config
and reference profile, and the recent events themselves.

The file holds no script and loads nothing: its charts are inline SVG (charts.py), its style
is inline, and every string that came from data is escaped, so it opens offline and what a
producer sends (feature names, category values) stays text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from driftline.config import Config, ModelConfig
from driftline.detectors.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from driftline.events.codec import BatchDecoder, PredictionBatch
from driftline.events.records import Alert, ComparisonWindow, FeatureWindow, PerformanceWindow
from driftline.report.charts import Series, distribution_pair, time_chart

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


@dataclass
class Episode:
    """An alert episode: its records (firing, updates, resolved) under one alert id."""

    alert_id: str
    records: list[Alert]

    @property
    def first(self) -> Alert:
        return self.records[0]

    @property
    def last(self) -> Alert:
        return self.records[-1]

    @property
    def open(self) -> bool:
        return self.last.status != "resolved"

    @property
    def severity(self) -> str:
        return min((r.severity for r in self.records), key=lambda s: SEVERITY_RANK.get(s, 9))

    def examples(self) -> list[str]:
        """Values the episode's data-quality evidence quoted (clipped by the worker)."""
        seen: dict[str, None] = {}
        for record in self.records:
            for f in record.features:
                seen.update(dict.fromkeys(f.examples))
        return list(seen)[:5]

    def features(self) -> list[str]:
        names: dict[str, None] = {}
        for record in self.records:
            names.update(dict.fromkeys(f.feature for f in record.features))
        return list(names)


def episodes(alerts: Iterable[Alert]) -> list[Episode]:
    """The alerts grouped by episode, ranked: open before resolved, then by severity, then
    the latest first."""
    grouped: dict[str, list[Alert]] = {}
    for alert in alerts:
        grouped.setdefault(alert.alert_id, []).append(alert)
    out = [Episode(k, v) for k, v in grouped.items()]  # records in the order they came
    return sorted(
        out,
        key=lambda e: (
            not e.open,
            SEVERITY_RANK.get(e.severity, 9),
            -e.first.events_seen,
        ),
    )


@dataclass
class RecentData:
    """The last events of one model version: feature values and predictions."""

    version: str = ""  # the model version of the newest events
    events: int = 0
    numeric: dict[str, list[np.ndarray]] = field(default_factory=dict)
    categorical: dict[str, list[np.ndarray]] = field(default_factory=dict)
    predictions: list[Any] = field(default_factory=list)

    def add(self, batch: PredictionBatch) -> None:
        self.version = batch.model_version
        self.events += len(batch)
        for name, values in batch.numeric.items():
            self.numeric.setdefault(name, []).append(values)
        for name, values in batch.categorical.items():
            self.categorical.setdefault(name, []).append(values)
        self.predictions.extend(batch.predictions)


def recent_events(
    config: Config, decoder: BatchDecoder, newest_first: Iterable[bytes], keep: int
) -> dict[str, RecentData]:
    """Each model's last ``keep`` prediction events of its newest version (or a little more:
    whole messages), decoded as the worker decodes them, from the messages newest first;
    label and bad messages and older versions' events are skipped, and reading stops once
    every model has its share."""
    batches: dict[str, list[PredictionBatch]] = {m: [] for m in config.models}
    counts = dict.fromkeys(config.models, 0)
    for value in newest_first:
        batch = decoder.decode_predictions(value).batch
        if not isinstance(batch, PredictionBatch) or batch.model_id not in counts:
            continue
        newest = batches[batch.model_id]
        if newest and batch.model_version != newest[0].model_version:
            continue
        if counts[batch.model_id] >= keep:
            if all(n >= keep for n in counts.values()):
                break
            continue
        batches[batch.model_id].append(batch)
        counts[batch.model_id] += len(batch)
    out = {}
    for model_id, newest in batches.items():
        data = RecentData()
        for batch in reversed(newest):
            data.add(batch)
        out[model_id] = data
    return out


def lines_from_end(path: Path, chunk: int = 1 << 20) -> Iterator[bytes]:
    """A JSON-lines file's non-blank lines, last first: the recent events of a large file
    without reading all of it."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        position, rest = handle.tell(), b""
        while position > 0:
            step = min(chunk, position)
            position -= step
            handle.seek(position)
            block = handle.read(step) + rest
            lines = block.split(b"\n")
            rest = lines[0]  # may start before this block
            for line in reversed(lines[1:]):
                if line.strip():
                    yield line.strip()
        if rest.strip():
            yield rest.strip()


@dataclass
class ModelReport:
    model_id: str
    config: ModelConfig
    profile: ReferenceProfile | None
    alerts: list[Alert]
    windows: list[PerformanceWindow]
    recent: RecentData | None
    budget: float
    history: list[FeatureWindow] = field(default_factory=list)
    # the model version the charts follow (None: not known, all records)
    version: str | None = None
    # champion and challenger windows, every pair's (they are about two versions)
    comparisons: list[ComparisonWindow] = field(default_factory=list)


def render(report: ModelReport) -> str:
    """The model's report as one HTML document."""
    found = episodes(report.alerts)
    parts = [
        _head(report.model_id),
        f"<h1>driftline report: {escape(report.model_id)}</h1>",
        _about(report),
        _summary(found),
        _features(report, found),
        _predictions(report),
        _performance(report),
        _comparisons(report),
        _labels(report),
        _config(report),
        "</body></html>",
    ]
    return "\n".join(parts)


def _head(model_id: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        # no network: nothing may load from anywhere, not even from this file's folder
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>driftline: {escape(model_id)}</title><style>{STYLE}</style></head><body>"
    )


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1120px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}.num{text-align:right}
.critical{color:#b52b27;font-weight:600}.warning{color:#a86200;font-weight:600}
.open{font-weight:600}.feature{display:inline-block;margin:8px 12px 8px 0;vertical-align:top}
.feature h3{font-size:15px;margin:4px 0}.muted{color:#777}pre{background:#f7f7f7;padding:8px;
overflow:auto;font-size:12px}tr.linked td{background:#fff4c2}
"""


def _about(report: ModelReport) -> str:
    profile = report.profile
    rows = [
        ("task", report.config.task),
        ("features", f"{len(report.config.features)}"),
        ("false-alarm budget", f"one per {report.budget:,.0f} events"),
    ]
    if report.version is not None:
        others = sorted({a.model_version for a in report.alerts} - {report.version})
        earlier = f" (the episodes also name {', '.join(others)})" if others else ""
        rows.append(("model version shown", f"{report.version}{earlier}"))
    if profile is not None:
        rows += [
            (
                "reference profile",
                f"version {profile.version}, model version {profile.model_version}",
            ),
            ("reference rows", f"{profile.n_rows:,}"),
        ]
    else:
        rows.append(("reference profile", "none: drift is not checked"))
    if report.recent is not None:
        rows.append(("recent events shown", f"{report.recent.events:,}"))
    return _table(("", ""), rows, header=False)


def _summary(found: list[Episode]) -> str:
    if not found:
        return "<h2>Alert episodes</h2><p>No alert in these records.</p>"
    head = (
        "severity",
        "kind",
        "state",
        "fired at event",
        "model version",
        "subjects",
        "examples",
        "latest",
        "alert id",
    )
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for e in found:
        state = "open" if e.open else f"resolved at event {e.last.events_seen:,}"
        cells = (
            f'<span class="{escape(e.severity)}">{escape(e.severity)}</span>',
            escape(e.first.kind),
            f'<span class="{"open" if e.open else ""}">{escape(state)}</span>',
            f"{e.first.events_seen:,}",
            escape(e.first.model_version),
            escape(", ".join(e.features())),
            escape(", ".join(repr(x) for x in e.examples())),
            escape(e.last.message),
            f"<code>{escape(e.alert_id)}</code>",
        )
        rows.append(
            f'<tr data-alert-id="{escape(e.alert_id)}">'
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
    return '<h2>Alert episodes</h2><table class="episodes">' + "".join(rows) + "</table>"


def _features(report: ModelReport, found: list[Episode]) -> str:
    out = ["<h2>Features: reference against recent</h2>"]
    profile = report.profile
    for name, kind in report.config.features.items():
        reference = profile.features.get(name) if profile else None
        recent = report.recent
        values = None
        if recent is not None:
            pieces = (recent.numeric if kind == "numeric" else recent.categorical).get(name)
            values = np.concatenate(pieces) if pieces else None
        chart = _distribution(reference, values, name)
        named = [e for e in found if name in e.features() and _shown(report, e)]
        chart += _history(report, name, named)
        notes = ", ".join(
            f"{e.first.kind} {e.severity} at event {e.first.events_seen:,}" for e in named
        )
        out.append(
            f'<div class="feature" data-feature="{escape(name)}"><h3>{escape(name)} '
            f'<span class="muted">({escape(kind)})</span></h3>{chart}'
            f'<div class="muted">{escape(notes) if notes else "no alert names it"}</div></div>'
        )
    return "".join(out)


def _shown(report: ModelReport, episode: Episode) -> bool:
    """Whether an episode is of the version the charts follow (its event positions are that
    version's)."""
    return report.version is None or episode.first.model_version == report.version


def _history(report: ModelReport, name: str, named: list[Episode]) -> str:
    """The feature's detector share over time (episodes naming it shaded), and its
    data-quality flags per window."""
    if not report.history:
        return ""
    share = [
        (float(w.window_end_event), w.subjects[name].share)
        for w in report.history
        if name in w.subjects
    ]
    end = float(report.history[-1].window_end_event)
    spans = [
        (
            float(e.first.window_start_event or e.first.events_seen),
            float(e.last.events_seen) if not e.open else end,
        )
        for e in named
        if e.first.kind == "drift"
    ]
    out = ""
    if share:
        out += time_chart(
            [Series("statistic / threshold", _thinned(share))],
            f"{name}: detector statistic as a share of its threshold",
            [("threshold", 1.0)],
            spans,
        )
    # the checks that failed on this feature at some point: the others flag a few events
    # now and then by design (a run of equal values, a value near the range's edge)
    failed = {q.check for w in report.history for q in w.quality if q.feature == name and q.failing}
    flags: dict[str, list[tuple[float, float]]] = {check: [] for check in sorted(failed)}
    for w in report.history:  # every window: one with no flag is a zero, not a gap
        flagged = {q.check: q.flagged for q in w.quality if q.feature == name}
        for check, points in flags.items():
            points.append((float(w.window_end_event), flagged.get(check, 0) / max(w.events, 1)))
    if flags:
        series = [Series(f"{check} (share flagged)", _thinned(p)) for check, p in flags.items()]
        out += time_chart(series, f"{name}: data-quality flags per window", from_zero=True)
    return out


MAX_POINTS = 400  # a chart's points at most: more are thinned to the worst in each stretch


def _thinned(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return points
    step = -(-len(points) // MAX_POINTS)
    return [max(points[i : i + step], key=lambda p: p[1]) for i in range(0, len(points), step)]


def _distribution(reference: Any, values: np.ndarray | None, title: str) -> str:
    if isinstance(reference, NumericProfile):
        # the profile's bins: equal shares of the reference between its inner edges, open
        # at both ends
        edges = np.asarray(reference.bin_edges, dtype=np.float64)
        labels = [f"<{edges[0]:.3g}"] + [f"{e:.3g}+" for e in edges]
        recent = None
        if values is not None:
            finite = values[np.isfinite(values)]
            which = np.searchsorted(edges, finite, side="right")
            counts = np.bincount(which, minlength=edges.size + 1)
            recent = list(counts / max(finite.size, 1))
        return distribution_pair(labels, list(reference.bin_probs), recent, title)
    if isinstance(reference, CategoricalProfile):
        labels = [*reference.categories, "other"]
        recent = None
        if values is not None:
            present = [v for v in values.tolist() if v is not None]
            index = {c: i for i, c in enumerate(reference.categories)}
            tally = np.zeros(len(labels))
            for v in present:
                tally[index.get(str(v), len(labels) - 1)] += 1
            recent = list(tally / max(len(present), 1))
        return distribution_pair(labels, list(reference.probs), recent, title)
    return '<p class="muted">no reference for this feature</p>'


def _predictions(report: ModelReport) -> str:
    reference = report.profile.prediction if report.profile else None
    if reference is None:
        return ""
    values = None
    if report.recent is not None and report.recent.predictions:
        if isinstance(reference, NumericProfile):
            values = np.array(
                [
                    float(p) if isinstance(p, int | float) else np.nan
                    for p in report.recent.predictions
                ],
                dtype=np.float64,
            )
        else:
            values = np.array([str(p) for p in report.recent.predictions], dtype=object)
    chart = _distribution(reference, values, "predictions")
    return (
        '<h2>Predictions against the reference</h2><div class="feature" '
        f'data-feature="_prediction">{chart}</div>'
    )


def _performance(report: ModelReport) -> str:
    if not report.windows:
        return ""
    out = ["<h2>Performance per window</h2>"]
    metrics: dict[str, None] = {}
    for w in report.windows:
        metrics.update(dict.fromkeys(c.metric for c in w.checks))
    for metric in metrics:
        series: list[Series] = []
        lines: list[tuple[str, float]] = []
        for source in ("realised", "estimated"):
            points, band = [], []
            for w in report.windows:
                if w.source != source:
                    continue
                for c in w.checks:
                    if c.metric != metric or c.value is None:
                        continue
                    points.append((float(w.window_end_event), float(c.value)))
                    if source == "estimated" and c.low is not None and c.high is not None:
                        band.append((float(w.window_end_event), c.low, c.high))
                    if c.baseline is not None and not lines:
                        lines.append(("baseline", float(c.baseline)))
                        if c.limit is not None:
                            lower = metric not in ("mae", "rmse", "mape", "log_loss")
                            bar = c.baseline - c.limit if lower else c.baseline * (1 + c.limit)
                            lines.append(("bar", bar))
            if points:
                series.append(Series(source, points, band, dashed=source == "estimated"))
        out.append(
            f'<div class="feature" data-metric="{escape(metric)}"><h3>{escape(metric)}</h3>'
            + time_chart(series, metric, lines)
            + "</div>"
        )
    rows = []
    for w in report.windows[-10:]:
        for c in w.checks:
            rows.append(
                (
                    w.source,
                    f"{w.window_end_event:,}",
                    c.metric,
                    "-" if c.value is None else f"{c.value:.4g}",
                    "-" if c.baseline is None else f"{c.baseline:.4g}",
                    "-" if c.limit is None else f"{c.limit:.4g}",
                    c.verdict,
                )
            )
    head = ("source", "window end", "metric", "value", "baseline", "bar", "verdict")
    out.append(_table(head, rows))
    return "".join(out)


def _comparisons(report: ModelReport) -> str:
    """Champion and challenger: each pair's metric per window, the difference with its
    interval, and the decision over every shared label so far."""
    if not report.comparisons:
        return ""
    out = [
        "<h2>Champion and challenger</h2>",
        '<p class="muted">Versions on the same traffic, compared on the labels both met. '
        "Difference: positive when the challenger is better (accuracy as a share, 0.01 is "
        "one point; for a regression, the share of the champion's MAE). The decision uses "
        "every shared label so far.</p>",
    ]
    pairs: dict[tuple[str, str], list[ComparisonWindow]] = {}
    for w in report.comparisons:
        pairs.setdefault((w.champion, w.challenger), []).append(w)
    for (champion, challenger), windows in pairs.items():
        last = windows[-1]
        verdict = (
            "challenger better"
            if last.challenger_better
            else f"not shown better (needs a lower bound above {last.margin:.4g})"
        )
        out.append(
            f'<div data-comparison="{escape(champion)}/{escape(challenger)}">'
            f"<h3>champion {escape(champion)}, challenger {escape(challenger)}: "
            f"{escape(verdict)}</h3>"
        )
        rows = [
            (
                f"{w.window_end_label:,}",
                f"{w.labels:,}",
                f"{w.champion_value:.4g}",
                f"{w.challenger_value:.4g}",
                f"{w.difference:+.4g} [{w.lower:+.4g}, {w.upper:+.4g}]",
                f"{w.total_difference:+.4g}",
                f"{w.total_lower:+.4g}",
                "better" if w.challenger_better else "-",
            )
            for w in windows[-10:]
        ]
        head = (
            "shared labels",
            "in window",
            f"champion {last.metric}",
            f"challenger {last.metric}",
            f"difference [{last.confidence:.0%} interval]",
            "difference so far",
            "lower bound so far",
            "decision",
        )
        out.append(_table(head, rows) + "</div>")
    return "".join(out)


def _labels(report: ModelReport) -> str:
    """The label join per feature window: how late labels came, and what became of them."""
    windows = [w for w in report.history if w.labels is not None]
    if not windows:
        return ""
    delays = [
        Series(
            name, [(float(w.window_end_event), v) for w in windows if (v := pick(w)) is not None]
        )
        for name, pick in (
            ("median delay (s)", lambda w: w.labels.delay_p50 if w.labels else None),
            ("90th percentile (s)", lambda w: w.labels.delay_p90 if w.labels else None),
        )
    ]
    outcomes = ("joined", "waiting", "expired_labels", "expired_predictions", "duplicates")
    counts = [
        Series(name, [(float(w.window_end_event), float(getattr(w.labels, name))) for w in windows])
        for name in outcomes
    ]
    totals = [
        (name, f"{sum(getattr(w.labels, name) for w in windows if w.labels):,}")
        for name in outcomes
    ]
    return (
        "<h2>Labels</h2>"
        '<div class="feature" data-chart="label-delay"><h3>label delay</h3>'
        + time_chart(
            [d for d in delays if d.points], "label delay", x_label="prediction", from_zero=True
        )
        + '</div><div class="feature" data-chart="label-outcomes"><h3>label join outcomes</h3>'
        + time_chart(counts, "label join outcomes per window", x_label="prediction", from_zero=True)
        + "</div>"
        + _table(("outcome", "labels in these windows"), totals)
    )


def _config(report: ModelReport) -> str:
    body = orjson.dumps(report.config.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
    built = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<h2>Configuration</h2><pre>"
        + escape(body.decode())
        + f'</pre><p class="muted">built {built} by driftline report</p>'
    )


def _table(head: tuple[str, ...], rows: Iterable[tuple[str, ...]], header: bool = True) -> str:
    cells = []
    if header:
        cells.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        cells.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>")
    return "<table>" + "".join(cells) + "</table>"
