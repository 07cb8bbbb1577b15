"""Charts drawn on the server as SVG: no script, nothing for the Content-Security-Policy to
allow, readable without JavaScript. Colours are presentation attributes (``fill=``), not
inline styles. Each chart carries a text alternative (``<title>``, ``aria-label``); the page
shows the same figures in a table next to it."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT, PAD = 640, 220, 36
LINE = "#2563eb"


def line_chart(
    labels: Sequence[str], values: Sequence[float | None], *, title: str, fmt: object = str
) -> Markup:
    """A line over ``labels`` (months), missing values skipped; y from 0 to the maximum."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    top = max((v for _, v in points), default=0) or 1
    step = (WIDTH - 2 * PAD) / max(len(labels) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return PAD + i * step, HEIGHT - PAD - (v / top) * (HEIGHT - 2 * PAD)

    path = " ".join(
        f"{'M' if n == 0 else 'L'}{x:.1f},{y:.1f}"
        for n, (x, y) in enumerate(xy(i, v) for i, v in points)
    )
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{LINE}"><title>{escape(labels[i])}: '
        f"{escape(fmt(v))}</title></circle>"  # type: ignore[operator]
        for i, v in points
        for x, y in [xy(i, v)]
    )
    ticks = "".join(
        f'<text x="{PAD + i * step:.1f}" y="{HEIGHT - 10}" font-size="11" '
        f'text-anchor="middle" fill="#374151">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % 2 == 0 or len(labels) <= 6
    )
    axis = (
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        f'stroke="#9ca3af"/><text x="{PAD}" y="14" font-size="11" fill="#374151">'
        f"{escape(fmt(top))}</text>"  # type: ignore[operator]
    )
    return Markup(
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'class="chart"><title>{escape(title)}</title>{axis}'
        f'<path d="{path}" fill="none" stroke="{LINE}" stroke-width="2"/>{dots}{ticks}</svg>'
    )


def heat_colour(ratio: float | None) -> str:
    """A blue ramp for 0..1 (None: no data), dark enough at the top for white text."""
    if ratio is None:
        return "#f3f4f6"
    r = max(0.0, min(1.0, ratio))
    light, dark = (239, 246, 255), (30, 64, 175)
    rgb = [round(a + (b - a) * r**0.5) for a, b in zip(light, dark, strict=True)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def text_colour(ratio: float | None) -> str:
    return "#ffffff" if ratio is not None and ratio**0.5 > 0.55 else "#111827"


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str) -> Markup:
    """Vertical bars (a distribution)."""
    top = max(values, default=0) or 1
    n = max(len(values), 1)
    slot = (WIDTH - 2 * PAD) / n
    span = HEIGHT - 2 * PAD
    bars = "".join(
        f'<rect x="{PAD + i * slot + 2:.1f}" y="{HEIGHT - PAD - (v / top) * span:.1f}"'
        f' width="{max(slot - 4, 1):.1f}" height="{(v / top) * span:.1f}" '
        f'fill="{LINE}"><title>{escape(labels[i])}: {v:g}</title></rect>'
        for i, v in enumerate(values)
    )
    ticks = "".join(
        f'<text x="{PAD + (i + 0.5) * slot:.1f}" y="{HEIGHT - 10}" font-size="10" '
        f'text-anchor="middle" fill="#374151">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if n <= 12 or i % 2 == 0
    )
    return Markup(
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'class="chart"><title>{escape(title)}</title>{bars}{ticks}</svg>'
    )
