"""Line charts as inline SVG, rendered on the server: no plotting library, no script, no style attribute
(the pages' CSP forbids inline styles), one line per segment, an optional dashed threshold line."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 24, 34
# Okabe-Ito colours, distinguishable with the common colour-vision deficiencies; dark enough on white.
COLOURS = ("#1b1f24", "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#8a6d00", "#56b4e9")


@dataclass(frozen=True)
class Line:
    name: str
    values: list[float | None]
    colour: str


def lines_for(series: dict[str, list[float | None]]) -> list[Line]:
    return [Line(name, values, COLOURS[i % len(COLOURS)]) for i, (name, values) in enumerate(series.items())]


def line_chart(
    title: str, x: list[int], lines: list[Line], y_label: str, threshold: float | None = None, percent: bool = False
) -> Markup:
    """An accessible SVG line chart; `x` are batch numbers, each line has one value (or None) per x."""
    top = _y_max([v for line in lines for v in line.values if v is not None] + ([threshold] if threshold else []))
    sx = _scale(0, max(len(x) - 1, 1), LEFT, WIDTH - RIGHT)
    sy = _scale(0, top, HEIGHT - BOTTOM, TOP)
    parts = [
        f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        *_axes(x, top, sx, sy, y_label, percent),
    ]
    if threshold is not None:
        y = sy(threshold)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#a1121d" stroke-dasharray="5 4" stroke-width="1.5"/>'
        )
        parts.append(
            f'<text x="{WIDTH - RIGHT}" y="{y - 4:.1f}" text-anchor="end" font-size="11" fill="#a1121d">alert threshold {_fmt(threshold, percent)}</text>'
        )
    for line in lines:
        parts += _line(line, x, sx, sy, percent)
    parts.append("</svg>")
    return Markup("".join(parts))


def _y_max(values: list[float]) -> float:
    top = max(values, default=0.0)
    return top * 1.1 if top > 0 else 1.0


def _scale(lo: float, hi: float, out_lo: float, out_hi: float):
    span = (hi - lo) or 1.0
    return lambda v: out_lo + (v - lo) / span * (out_hi - out_lo)


def _axes(x: list[int], top: float, sx, sy, y_label: str, percent: bool) -> list[str]:
    base = HEIGHT - BOTTOM
    out = [
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}" stroke="#545d68"/>',
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{base}" stroke="#545d68"/>',
    ]
    for fraction in (0, 0.5, 1):
        value = top * fraction
        y = sy(value)
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#1b1f24">{_fmt(value, percent)}</text>'
        )
        if fraction:
            out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e7eb"/>')
    step = max(1, len(x) // 10)
    for i, number in enumerate(x):
        if i % step == 0 or i == len(x) - 1:
            out.append(
                f'<text x="{sx(i):.1f}" y="{base + 16}" text-anchor="middle" font-size="11" fill="#1b1f24">{number}</text>'
            )
    out.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 3}" text-anchor="middle" font-size="11" fill="#545d68">batch</text>'
    )
    out.append(f'<text x="{LEFT}" y="13" font-size="11" fill="#545d68">{escape(y_label)}</text>')
    return out


def _line(line: Line, x: list[int], sx, sy, percent: bool) -> list[str]:
    points = [(sx(i), sy(v), x[i], v) for i, v in enumerate(line.values) if v is not None]
    if not points:
        return []
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points)
    out = [f'<polyline points="{path}" fill="none" stroke="{line.colour}" stroke-width="2"/>']
    for px, py, number, value in points:
        label = f"{line.name}, batch {number}: {_fmt(value, percent)}"
        out.append(
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{line.colour}"><title>{escape(label)}</title></circle>'
        )
    return out


def _fmt(value: float, percent: bool) -> str:
    return f"{value:.0%}" if percent else f"{value:.2f}"


def swatch(colour: str) -> Markup:
    """A legend key: a small filled square in the line's colour (an SVG, so no style attribute)."""
    return Markup(
        f'<svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" fill="{escape(colour)}"/></svg>'
    )
