"""The status page's view of the fleet: every model's records folded into its state (healthy,
drifting, broken, degraded, since when and why), and the pages drawn from it.

Pure: the records come from Kafka through runtime/status.py, which serves these pages.
Memory is bounded: the last ``HISTORY`` feature and performance windows per model, the last
``EPISODES`` episodes per model, the last ``LATEST`` alert records of the fleet.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from urllib.parse import quote

from driftline.config import Config
from driftline.detectors.profile import ReferenceProfile
from driftline.events.records import Alert, ComparisonWindow, FeatureWindow, PerformanceWindow
from driftline.report.charts import sparkline
from driftline.report.page import STYLE, Episode, ModelReport, episodes, render

HISTORY = 400
EPISODES = 100
LATEST = 20
TOP_FEATURES = 3
# the state a model is in, worst first: which open episode kind makes it
STATES = (("broken", "data_quality"), ("drifting", "drift"), ("degraded", "performance"))


@dataclass
class ModelState:
    alerts: dict[str, list[Alert]] = field(default_factory=dict)  # by alert id, in order
    history: deque[FeatureWindow] = field(default_factory=lambda: deque(maxlen=HISTORY))
    windows: deque[PerformanceWindow] = field(default_factory=lambda: deque(maxlen=HISTORY))
    comparisons: deque[ComparisonWindow] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def episodes(self) -> list[Episode]:
        return episodes(a for records in self.alerts.values() for a in records)

    @property
    def version(self) -> str | None:
        """The model version of the newest feature window: the one the charts follow."""
        return self.history[-1].model_version if self.history else None

    def current(self) -> list[FeatureWindow]:
        """The feature windows of the current version."""
        return [w for w in self.history if w.model_version == self.version]


@dataclass
class Fleet:
    """Every configured model's state from the records seen so far."""

    config: Config
    models: dict[str, ModelState] = field(default_factory=dict)
    latest: deque[Alert] = field(default_factory=lambda: deque(maxlen=LATEST))
    records: int = 0

    def __post_init__(self) -> None:
        for model_id in self.config.models:
            self.models.setdefault(model_id, ModelState())

    def add_alert(self, alert: Alert) -> None:
        state = self.models.setdefault(alert.model_id, ModelState())
        state.alerts.setdefault(alert.alert_id, []).append(alert)
        while len(state.alerts) > EPISODES:  # the oldest episode goes
            del state.alerts[next(iter(state.alerts))]
        self.latest.append(alert)
        self.records += 1

    def add_feature_window(self, window: FeatureWindow) -> None:
        self.models.setdefault(window.model_id, ModelState()).history.append(window)
        self.records += 1

    def add_performance_window(self, window: PerformanceWindow) -> None:
        self.models.setdefault(window.model_id, ModelState()).windows.append(window)
        self.records += 1

    def add_comparison_window(self, window: ComparisonWindow) -> None:
        self.models.setdefault(window.model_id, ModelState()).comparisons.append(window)
        self.records += 1

    def health(self, model_id: str) -> tuple[str, Episode | None]:
        """The model's state and the open episode that makes it (the oldest of that kind)."""
        open_ = [e for e in self.models[model_id].episodes() if e.open]
        for name, kind in STATES:
            mine = [e for e in open_ if e.first.kind == kind]
            if mine:
                return name, min(mine, key=lambda e: e.first.created_at)
        return "healthy", None


def render_fleet(
    fleet: Fleet,
    lag: dict[str, int] | None,
    refresh: int | None = 10,
    link: Callable[[str], str] | None = None,
) -> str:
    """The fleet page: a row per model, worst first, with its top features' recent history;
    the latest alerts; the workers' lag. ``refresh``: seconds between reloads (None: a
    snapshot); ``link``: where a model's name leads (default: its page on the server)."""
    rank = {name: i for i, (name, _) in enumerate(STATES)}
    order = sorted(fleet.models, key=lambda m: (rank.get(fleet.health(m)[0], 9), m))
    rows = []
    for model_id in order:
        state, episode = fleet.health(model_id)
        since = why = ""
        if episode is not None:
            since = f"{_time(episode.first.created_at)} (event {episode.first.events_seen:,})"
            why = episode.last.message
        href = link(model_id) if link else f"model/{quote(model_id, safe='')}"
        version = fleet.models[model_id].version
        shown = f' <span class="muted">version {escape(version)}</span>' if version else ""
        rows.append(
            f'<tr data-model="{escape(model_id)}" data-state="{state}" '
            f'data-version="{escape(version or "")}">'
            f'<td><a href="{escape(href)}">{escape(model_id)}</a>{shown}</td>'
            f'<td class="{state}">{state}</td><td>{escape(since)}</td>'
            f"<td>{escape(why)}</td><td>{_sparks(fleet.models[model_id])}</td></tr>"
        )
    when = f"refreshes every {refresh} s" if refresh else f"as it stood at {_time(time.time())}"
    latest = [
        f'<tr data-alert-id="{escape(a.alert_id)}"><td>{_time(a.created_at)}</td>'
        f'<td>{escape(a.model_id)} <span class="muted">{escape(a.model_version)}</span></td>'
        f"<td>{escape(a.kind)}</td><td>{escape(a.status)}"
        f"{' (update ' + str(a.update) + ')' if a.update else ''}</td>"
        f"<td>{escape(a.severity)}</td><td>{a.events_seen:,}</td><td>{escape(a.message)}</td>"
        f"<td><code>{escape(a.alert_id)}</code></td></tr>"
        for a in reversed(fleet.latest)
    ]
    lag_rows = "".join(
        f'<tr><td>{escape(topic)}</td><td class="num" data-lag="{escape(topic)}">{n:,}</td></tr>'
        for topic, n in (lag or {}).items()
    )
    return (
        _head("driftline status", refresh)
        + "<h1>driftline status</h1>"
        + f'<p class="muted">{fleet.records:,} records read; {when}</p>'
        + "<h2>Models</h2><table><tr><th>model</th><th>state</th><th>since</th><th>why</th>"
        + "<th>top features (statistic / threshold)</th></tr>"
        + "".join(rows)
        + "</table><h2>Latest alerts</h2>"
        + (
            "<table><tr><th>created</th><th>model, version</th><th>kind</th><th>status</th>"
            "<th>severity</th><th>at event</th><th>message</th><th>alert id</th></tr>"
            + "".join(latest)
            + "</table>"
            if latest
            else "<p>No alert yet.</p>"
        )
        + "<h2>Consumer lag</h2>"
        + (
            "<table><tr><th>topic</th><th>messages not processed</th></tr>" + lag_rows + "</table>"
            if lag is not None
            else '<p class="muted">unknown (the broker did not answer)</p>'
        )
        + "</body></html>"
    )


def render_model(
    fleet: Fleet, model_id: str, profile: ReferenceProfile | None, alert_id: str | None
) -> str:
    """A model's page: the report's, from the records on the topics (no recent events),
    following the current version (``profile``: that version's, if known)."""
    state = fleet.models[model_id]
    alerts = [a for records in state.alerts.values() for a in records]
    version = state.version
    report = ModelReport(
        model_id,
        fleet.config.models[model_id],
        profile,
        alerts,
        [w for w in state.windows if version in (None, w.model_version)],
        None,
        fleet.config.models[model_id].false_alarm_budget,
        state.current(),
        version,
        list(state.comparisons),
    )
    html = render(report)
    if alert_id is not None:  # the alert a link pointed at: marked in the summary
        marker = f'<tr data-alert-id="{escape(alert_id)}">'
        html = html.replace(marker, marker[:-1] + ' class="linked">', 1)
    return html


def _sparks(state: ModelState) -> str:
    """The features closest to their thresholds lately, each a small line."""
    if not state.history:
        return '<span class="muted">no history yet</span>'
    history = state.current()  # a new version's detectors start again: its own line
    latest = history[-1].subjects
    top = sorted(latest, key=lambda name: -latest[name].share)[:TOP_FEATURES]
    out = []
    for name in top:
        points = [
            (float(w.window_end_event), w.subjects[name].share)
            for w in history
            if name in w.subjects
        ]
        chart = sparkline(points, f"{name}: statistic / threshold")
        out.append(
            f'<div class="spark" data-feature="{escape(name)}"><div>{escape(name)} '
            f"{latest[name].share:.2f}</div>{chart}</div>"
        )
    return "".join(out)


def _head(title: str, refresh: int | None) -> str:
    reload = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        + reload
        + '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)}</title><style>{STYLE}{FLEET_STYLE}</style></head><body>"
    )


FLEET_STYLE = """
.healthy{color:#2e7d32;font-weight:600}.drifting{color:#b52b27;font-weight:600}
.broken{color:#6a1b9a;font-weight:600}.degraded{color:#a86200;font-weight:600}
.spark{display:inline-block;width:184px;margin-right:6px;font-size:12px}
"""


def _time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
