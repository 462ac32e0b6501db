"""Server-rendered SVG charts for the staff pages: no script, no CDN, nothing the CSP must allow.

The page's CSP stays `'self'`: an inline <svg> is markup, and it is coloured with presentation
attributes (fill=...), not style attributes. Every label is escaped by Markup's formatting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Sequence

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    values: Sequence[int]


def _nice_max(n: int) -> int:
    """A round axis top at or above `n` (1, 2, 5 x 10^k)."""
    if n <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= n:
                return m * step
        step *= 10


def bar_chart(days: Sequence[date], series: Sequence[Series], *, title: str, width: int = 720,
              height: int = 180) -> Markup:
    """Grouped bars per day (one group per day, one bar per series), with an axis and a legend."""
    left, right, top, bottom = 36, 8, 10, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_max(max((v for s in series for v in s.values), default=0))
    n = max(1, len(days))
    group = plot_w / n
    bar = max(1.0, (group * 0.8) / max(1, len(series)))
    parts = [Markup('<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="100%" '
                    'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">').format(w=width, h=height),
             Markup("<title>{}</title>").format(title)]
    for frac in ((0, 0.5, 1) if peak >= 2 else (0, 1)):  # no "0, 0, 1" axis for a peak of 1
        y = top + plot_h * (1 - frac)
        parts.append(Markup('<line x1="{x1}" x2="{x2}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb" stroke-width="1"/>'
                            '<text x="{tx}" y="{ty:.1f}" font-size="10" text-anchor="end" fill="#6b7280">{v}</text>')
                     .format(x1=left, x2=width - right, y=y, tx=left - 4, ty=y + 3, v=int(peak * frac)))
    for i, day in enumerate(days):
        x0 = left + i * group + group * 0.1
        for j, s in enumerate(series):
            v = s.values[i] if i < len(s.values) else 0
            h = plot_h * v / peak
            parts.append(Markup('<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="{c}">'
                                '<title>{d}: {v} {label}</title></rect>')
                         .format(x=x0 + j * bar, y=top + plot_h - h, bw=bar, h=h, c=s.color, d=day.isoformat(),
                                 v=v, label=s.label))
        if n <= 14 or i % max(1, n // 7) == 0:
            parts.append(Markup('<text x="{x:.1f}" y="{y}" font-size="10" text-anchor="middle" fill="#6b7280">{t}</text>')
                         .format(x=left + (i + 0.5) * group, y=height - bottom + 14, t=day.strftime("%d %b")))
    lx = left
    for s in series:
        parts.append(Markup('<rect x="{x}" y="{y}" width="10" height="10" fill="{c}"/>'
                            '<text x="{tx}" y="{ty}" font-size="11" fill="#374151">{label}</text>')
                     .format(x=lx, y=height - 12, c=s.color, tx=lx + 14, ty=height - 3, label=s.label))
        lx += 14 + 7 * len(str(s.label)) + 18
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def progress_bar(done: int, total: int, *, label: str) -> Markup:
    """A thin progress bar with its numbers, for a send in progress."""
    pct = 0 if total <= 0 else min(100, round(100 * done / total))
    return Markup('<div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="{t}" aria-valuenow="{d}" '
                  'aria-label="{label}"><svg viewBox="0 0 100 4" preserveAspectRatio="none" width="100%" height="8">'
                  '<rect width="100" height="4" fill="#e5e7eb"/><rect width="{p}" height="4" fill="#2f6f6a"/></svg>'
                  '<span class="hint">{label}: {d} of {t} ({p}%)</span></div>').format(
        t=total, d=done, p=pct, label=escape(label))
