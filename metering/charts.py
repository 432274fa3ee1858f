"""Server-rendered SVG charts for the admin (no JavaScript, no CDN)."""

from __future__ import annotations

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH = 640
HEIGHT = 140
PADDING_LEFT = 44
PADDING_BOTTOM = 22
PADDING_TOP = 10


def _nice_max(value: int) -> int:
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value  # pragma: no cover


def _num(value: float) -> str:
    return f"{value:.1f}"


def labelled_bars_svg(points: list[tuple[str, int]], *, title: str, unit: str = "", label_every: int = 1) -> SafeString:
    """A bar chart of (label, value) points (e.g. the 24 hours of the day):
    one bar per point with a hover title, every `label_every`-th label under
    its bar, the y axis from 0 to a round maximum."""
    if not points or not any(value for _, value in points):
        return mark_safe("")
    plot_width = WIDTH - PADDING_LEFT - 8
    plot_height = HEIGHT - PADDING_TOP - PADDING_BOTTOM
    top = _nice_max(max(value for _, value in points))
    slot = plot_width / len(points)
    bar_width = max(1.0, slot * 0.72)
    parts = [
        format_html(
            '<svg class="usage-chart" xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" '
            'role="img" aria-label="{}">',
            WIDTH, HEIGHT, WIDTH, HEIGHT, title,
        ),
        format_html("<title>{}</title>", title),
        format_html(
            '<line x1="{x}" y1="{y0}" x2="{x}" y2="{y1}" stroke="#999" stroke-width="1"/>'
            '<line x1="{x}" y1="{y1}" x2="{x2}" y2="{y1}" stroke="#999" stroke-width="1"/>'
            '<text x="{tx}" y="{ty}" font-size="10" text-anchor="end" fill="#666">{top}</text>'
            '<text x="{tx}" y="{y1}" font-size="10" text-anchor="end" fill="#666">0</text>',
            x=PADDING_LEFT, y0=PADDING_TOP, y1=PADDING_TOP + plot_height, x2=WIDTH - 8,
            tx=PADDING_LEFT - 4, ty=PADDING_TOP + 8, top=top,
        ),
    ]
    for position, (label, value) in enumerate(points):
        height = plot_height * value / top
        x = PADDING_LEFT + position * slot + (slot - bar_width) / 2
        y = PADDING_TOP + plot_height - height
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="#417690"><title>{}: {} {}</title></rect>',
                _num(x), _num(y), _num(bar_width), _num(height), label, value, unit,
            )
        )
        if position % label_every == 0:
            parts.append(
                format_html(
                    '<text x="{}" y="{}" font-size="10" text-anchor="middle" fill="#666">{}</text>',
                    _num(x + bar_width / 2), HEIGHT - 6, label,
                )
            )
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(str(part) for part in parts))
