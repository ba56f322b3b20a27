"""`reports summary --chart FILE.svg`: the DMARC pass rate per day as a hand-written SVG.

No plotting library: an SVG is text, so every value that reaches it is escaped here (a domain or
client name is a user's string, a report's org name an attacker's) and the chart carries its
numbers as data attributes, which is what the tests read back. Each day is drawn at its place in
the period (a day without reports is a gap, never a made-up 100%); the bars behind the line are the
day's message volume. For a PNG, convert the SVG (`rsvg-convert out.svg -o out.png`, Debian's
librsvg2-bin).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from xml.sax.saxutils import escape, quoteattr

from pipeline.reports.summary import Stats, Summary
from pipeline.text.safe import clean

WIDTH, HEIGHT = 880, 420
LEFT, RIGHT, TOP, BOTTOM = 64, 72, 56, 64
BARS = 0.45  # the busiest day's bar reaches this fraction of the height, under the rate line


def _text(value: str) -> str:
    """A user string as SVG text: control and format characters shown as escapes (XML 1.0
    cannot even hold most of them), then &, < and > escaped."""
    return escape(clean(value))


def _attr(value: str) -> str:
    return quoteattr(clean(value))


def _days(since: datetime, until: datetime) -> list[date]:
    first, last = since.date(), (until - timedelta(microseconds=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def svg_chart(summary: Summary) -> str:
    """The chart of `summary`'s per-day pass rates (summary.groups["day"])."""
    per_day: dict[str, Stats] = summary.groups.get("day", {})
    days = _days(summary.since, summary.until) or [summary.since.date()]
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    step = plot_w / len(days)
    most = max((s.messages for s in per_day.values()), default=0)

    def x(index: int) -> float:
        return LEFT + step * (index + 0.5)

    def y(rate: float) -> float:
        return TOP + plot_h * (1 - rate / 100)

    title = (
        f"DMARC pass rate per day: {summary.client} "
        f"({', '.join(summary.domains)}), "
        f"{summary.since:%Y-%m-%d} .. {summary.until:%Y-%m-%d} UTC"
    )
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12" '
        f'data-client={_attr(summary.client)} data-since="{summary.since:%Y-%m-%dT%H:%M:%SZ}" '
        f'data-until="{summary.until:%Y-%m-%dT%H:%M:%SZ}">',
        f"<title>{_text(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{_text(title)}</text>',
    ]
    total = summary.total
    rate = "-" if total.pass_rate is None else f"{total.pass_rate:.2f}%"
    out.append(
        f'<text x="{LEFT}" y="42" fill="#555555">{total.messages} messages, {rate} DMARC pass '
        "(line, left axis); messages per day (bars, right axis)</text>"
    )
    for tick in range(0, 101, 20):
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            'stroke="#e0e0e0"/>'
        )
        out.append(f'<text x="{LEFT - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}%</text>')
    if most:
        for fraction in (0.5, 1.0):
            out.append(
                f'<text x="{WIDTH - RIGHT + 8}" y="{y(100 * BARS * fraction) + 4:.1f}" '
                f'fill="#7a8fa6">{round(most * fraction)}</text>'
            )
    label_every = max(1, len(days) // 10)
    for index, day in enumerate(days):
        if index % label_every == 0:
            out.append(
                f'<text x="{x(index):.1f}" y="{HEIGHT - BOTTOM + 18}" '
                f'text-anchor="middle">{day:%m-%d}</text>'
            )
    points: list[tuple[float, float]] = []
    marks: list[str] = []
    for index, day in enumerate(days):
        stats = per_day.get(day.isoformat())
        if stats is None or not stats.messages:
            continue
        bar_h = plot_h * BARS * stats.messages / most
        out.append(
            f'<rect x="{x(index) - step * 0.35:.1f}" y="{TOP + plot_h - bar_h:.1f}" '
            f'width="{step * 0.7:.1f}" height="{bar_h:.1f}" fill="#dbe4ee"/>'
        )
        day_rate = stats.pass_rate
        assert day_rate is not None
        px, py = x(index), y(day_rate)
        points.append((px, py))
        marks.append(
            f'<circle class="day" cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="#1f6fb2" '
            f'data-day="{day.isoformat()}" data-messages="{stats.messages}" '
            f'data-dmarc-pass="{stats.dmarc_pass}" data-rate="{day_rate:.2f}">'
            f"<title>{day.isoformat()}: {day_rate:.2f}% of {stats.messages} messages pass"
            "</title></circle>"
        )
    # A line joins consecutive days only: a day without reports leaves a gap.
    run: list[tuple[float, float]] = []
    previous = -2
    segments: list[list[tuple[float, float]]] = []
    for index, day in enumerate(days):
        stats = per_day.get(day.isoformat())
        if stats is None or not stats.messages:
            continue
        point = (x(index), y(stats.pass_rate or 0.0))
        if index != previous + 1 and run:
            segments.append(run)
            run = []
        run.append(point)
        previous = index
    if run:
        segments.append(run)
    for segment in segments:
        if len(segment) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in segment)
            out.append(f'<polyline points="{path}" fill="none" stroke="#1f6fb2" stroke-width="2"/>')
    out += marks
    if not points:
        out.append(
            f'<text x="{WIDTH / 2:.0f}" y="{TOP + plot_h / 2:.0f}" text-anchor="middle" '
            'fill="#a00000">no report data in this period: no evidence either way</text>'
        )
    out.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#888888"/>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
