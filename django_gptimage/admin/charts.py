"""A bar chart of spend per day as inline SVG, rendered on the server (no JS, no build step)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import ROUND_CEILING, Decimal
from html import escape

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 36


def _nice_max(value: Decimal) -> Decimal:
    """A round axis maximum at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (1, 2, 5, 10):
        top = Decimal(step).scaleb(exponent)
        if top >= value:
            return top
    return Decimal(10).scaleb(exponent)  # pragma: no cover - 10 always fits


def _label(amount: Decimal, currency: str) -> str:
    places = (
        Decimal("0.01") if amount >= 1 else Decimal("0.0001") if amount < Decimal("0.1") else Decimal("0.001")
    )
    return f"{amount.quantize(places, rounding=ROUND_CEILING)} {currency}"


def spend_chart_svg(points: Sequence[tuple[date, Decimal]], *, currency: str = "USD", title: str = "") -> str:
    """``points`` (day, amount), one bar per day, with a labelled y axis and first/last dates."""
    title = title or "Spend per day"
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _nice_max(max((amount for _, amount in points), default=Decimal(0)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-labelledby="gptimage-chart-title" class="gptimage-chart">',
        f'<title id="gptimage-chart-title">{escape(title)}</title>',
    ]
    for i in range(5):  # grid lines and y labels: 0, 1/4, ..., top
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="gptimage-chart-grid" '
            f'stroke="currentColor" stroke-opacity="0.15"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="currentColor">'
            f"{escape(_label(value, currency) if i else '0')}</text>"
        )
    if points:
        slot = plot_w / len(points)
        bar = max(1.0, slot * 0.7)
        for index, (day, amount) in enumerate(points):
            h = float(plot_h * (amount / top)) if amount > 0 else 0.0
            x = LEFT + slot * index + (slot - bar) / 2
            y = TOP + plot_h - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" class="gptimage-chart-bar" '
                f'fill="#417690" data-day="{day.isoformat()}" data-amount="{amount}">'
                f"<title>{day.isoformat()}: {escape(_label(amount, currency) if amount else '0')}</title></rect>"
            )
        for index in sorted({0, len(points) - 1}):
            x = LEFT + slot * index + slot / 2
            anchor = "start" if index == 0 and len(points) > 1 else "end" if index else "middle"
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="{anchor}" font-size="11" '
                f'fill="currentColor">{points[index][0].isoformat()}</text>'
            )
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="currentColor"/>'
    )
    parts.append("</svg>")
    return "".join(parts)
