"""Inline SVG charts for the report: a few kilobytes each, drawn without a script or a library.

Every text that reaches a chart (feature names, category values) goes through ``html.escape``:
producers choose those strings, and a page must not run what they send.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 520, 180
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 22, 36
REFERENCE_COLOUR, RECENT_COLOUR = "#8a9bb0", "#d9534f"
LINE_COLOURS = ("#1f6fb2", "#e08a1e", "#3c9a5f", "#8e5ab8")


def _svg(body: list[str], label: str) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {WIDTH} '
        f'{HEIGHT}" width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )


def _number(value: float) -> str:
    if value == 0 or 0.01 <= abs(value) < 10_000:
        return f"{value:.3g}"
    return f"{value:.2e}"


def distribution_pair(
    labels: Sequence[str], reference: Sequence[float], recent: Sequence[float] | None, title: str
) -> str:
    """Bars of the reference's share of each bin beside the recent data's (same bins)."""
    n = max(len(labels), 1)
    top = max([*reference, *(recent or []), 1e-9])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / n
    bar = slot * (0.42 if recent is not None else 0.8)
    body = [_axes(top, plot_h, plot_w, percent=True)]
    for i, label in enumerate(labels):
        x = LEFT + i * slot + slot * 0.1
        for value, colour, offset, name in (
            (reference[i], REFERENCE_COLOUR, 0.0, "reference"),
            (None if recent is None else recent[i], RECENT_COLOUR, bar, "recent"),
        ):
            if value is None:
                continue
            h = plot_h * value / top
            body.append(
                f'<rect class="bar {name}" x="{x + offset:.1f}" y="{TOP + plot_h - h:.1f}" '
                f'width="{bar:.1f}" height="{max(h, 0.5):.1f}" fill="{colour}">'
                f"<title>{escape(label)}: {name} {value:.1%}</title></rect>"
            )
        if n <= 12 or i % math.ceil(n / 12) == 0:
            short = label if len(label) <= 12 else label[:11] + "…"
            body.append(
                f'<text x="{LEFT + (i + 0.5) * slot:.1f}" y="{HEIGHT - BOTTOM + 14}" '
                f'font-size="10" text-anchor="middle">{escape(short)}</text>'
            )
    body.append(_legend([("reference", REFERENCE_COLOUR), ("recent", RECENT_COLOUR)]))
    return _svg(body, title)


@dataclass
class Series:
    """One line of a time chart: its points (x, y), and optionally a band around each."""

    name: str
    points: list[tuple[float, float]]
    band: list[tuple[float, float, float]] = field(default_factory=list)  # (x, low, high)
    dashed: bool = False


def time_chart(
    series: Sequence[Series],
    title: str,
    lines: Sequence[tuple[str, float]] = (),
    shaded: Sequence[tuple[float, float]] = (),
    x_label: str = "event",
    from_zero: bool = False,
) -> str:
    """Lines over the event count, horizontal reference lines (a baseline, a bar) and shaded
    spans (alert episodes)."""
    xs = [x for s in series for x, _ in s.points] + [x for span in shaded for x in span]
    ys = [y for s in series for _, y in s.points] + [y for _, y in lines]
    ys += [v for s in series for _, low, high in s.band for v in (low, high)]
    ys += [0.0] if from_zero else []
    if not xs or not ys:
        return _svg([f'<text x="{LEFT}" y="{HEIGHT / 2}">no data</text>'], title)
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.08 or abs(y1) * 0.05 or 1.0
    y0, y1 = y0 - pad, y1 + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / ((x1 - x0) or 1.0) * plot_w

    def py(y: float) -> float:
        return TOP + (y1 - y) / ((y1 - y0) or 1.0) * plot_h

    body = []
    for a, b in shaded:
        body.append(
            f'<rect class="episode" x="{px(a):.1f}" y="{TOP}" width="{max(px(b) - px(a), 2):.1f}"'
            f' height="{plot_h}" fill="#f6d5d3"><title>alert episode</title></rect>'
        )
    body.append(_axes(y1, plot_h, plot_w, low=y0))
    for name, y in lines:
        body.append(
            f'<line class="rule" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py(y):.1f}" '
            f'y2="{py(y):.1f}" stroke="#666" stroke-dasharray="4 3"><title>{escape(name)} '
            f"{_number(y)}</title></line>"
            f'<text x="{WIDTH - RIGHT - 2}" y="{py(y) - 3:.1f}" font-size="10" '
            f'text-anchor="end">{escape(name)}</text>'
        )
    legend = []
    for i, s in enumerate(series):
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        legend.append((s.name, colour))
        if s.band:
            upper = " ".join(f"{px(x):.1f},{py(high):.1f}" for x, _, high in s.band)
            lower = " ".join(f"{px(x):.1f},{py(low):.1f}" for x, low, _ in reversed(s.band))
            body.append(
                f'<polygon class="band" points="{upper} {lower}" fill="{colour}" '
                'fill-opacity="0.15"/>'
            )
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s.points)
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        body.append(
            f'<polyline class="series" points="{path}" fill="none" stroke="{colour}" '
            f'stroke-width="1.6"{dash}><title>{escape(s.name)}</title></polyline>'
        )
        if s.points:  # the latest value, visible even when it is the only one
            x, y = s.points[-1]
            body.append(
                f'<circle class="latest" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" '
                f'fill="{colour}"><title>{escape(s.name)} {_number(y)}</title></circle>'
            )
    body.append(
        f'<text x="{LEFT}" y="{HEIGHT - 4}" font-size="10">{escape(x_label)} '
        f"{x0:,.0f}</text>"
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 4}" font-size="10" text-anchor="end">'
        f"{x1:,.0f}</text>"
    )
    body.append(_legend(legend))
    return _svg(body, title)


def _axes(top: float, plot_h: float, plot_w: float, percent: bool = False, low: float = 0.0) -> str:
    out = [
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#999"/>',
        f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
        'stroke="#999"/>',
    ]
    for value, y in ((top, TOP), (low, TOP + plot_h)):
        text = f"{value:.0%}" if percent else _number(value)
        out.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{text}</text>'
        )
    return "".join(out)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    out, x = [], LEFT + 8
    for name, colour in items:
        out.append(
            f'<rect x="{x}" y="3" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="12" font-size="10">{escape(name)}</text>'
        )
        x += 24 + 6 * len(name)
    return "".join(out)


def sparkline(points: Sequence[tuple[float, float]], title: str, rule: float = 1.0) -> str:
    """A small line with no axes: a feature's recent statistic / threshold, the threshold a
    dashed rule, the latest value a dot."""
    w, h, pad = 180, 40, 3
    ys = [y for _, y in points] + [rule, 0.0]
    xs = [x for x, _ in points] or [0.0]
    x0, x1, y1 = min(xs), max(xs), max(ys) * 1.05

    def px(x: float) -> float:
        return pad + (x - x0) / ((x1 - x0) or 1.0) * (w - 2 * pad)

    def py(y: float) -> float:
        return pad + (y1 - y) / (y1 or 1.0) * (h - 2 * pad)

    body = [
        f'<line class="rule" x1="{pad}" x2="{w - pad}" y1="{py(rule):.1f}" y2="{py(rule):.1f}" '
        'stroke="#999" stroke-dasharray="3 2"/>'
    ]
    if points:
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        colour = RECENT_COLOUR if points[-1][1] >= rule else LINE_COLOURS[0]
        body.append(
            f'<polyline class="series" points="{path}" fill="none" stroke="{colour}" '
            f'stroke-width="1.5"><title>{escape(title)}</title></polyline>'
            f'<circle class="latest" cx="{px(points[-1][0]):.1f}" cy="{py(points[-1][1]):.1f}" '
            f'r="2.5" fill="{colour}"/>'
        )
    return (
        f'<svg class="sparkline" role="img" aria-label="{escape(title)}" viewBox="0 0 {w} {h}" '
        f'width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )
