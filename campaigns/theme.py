"""A calm email palette derived from one clinic brand colour.

Clinics give us a single hex colour; the layout needs a page tint, a soft callout, a readable
accent for small text and a button text colour. Deriving them (and checking WCAG contrast) keeps a
too-light or too-loud brand colour from producing unreadable emails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_BRAND = "#2f6f6a"
# System fonts only: a remote web font would need the network at render time and is blocked by
# most mail clients anyway.
FONT_STACK = "-apple-system, BlinkMacSystemFont, Segoe UI, Helvetica Neue, Helvetica, Arial, sans-serif"
SERIF_STACK = "Georgia, Cambria, Times New Roman, Times, serif"

_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


@dataclass(frozen=True)
class Theme:
    brand: str  # buttons, progress bar, top rule
    accent: str  # small text in brand colour (eyebrow, links): >= 4.5:1 on white
    on_brand: str  # text on a brand-coloured button
    page: str  # background around the card
    tint: str  # callout background
    rule: str  # hairlines and the empty part of the progress bar
    ink: str = "#1f2a30"  # body text
    muted: str = "#5b6870"  # footer and meta text (>= 4.5:1 on the page tint)
    font: str = FONT_STACK
    heading_font: str = SERIF_STACK


def _rgb(color: str) -> tuple[int, int, int]:
    h = color.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def _mix(color: str, other: str, amount: float) -> str:
    """`amount` of `other` mixed into `color` (0 = color, 1 = other)."""
    a, b = _rgb(color), _rgb(other)
    return _hex(tuple(x + (y - x) * amount for x, y in zip(a, b)))


def _luminance(color: str) -> float:
    def chan(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (chan(c) for c in _rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio between two colours (1..21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def normalise_color(color: str) -> str:
    """`#rrggbb` for a valid hex colour, else the default brand colour (a typo must not break sends)."""
    m = _HEX.match((color or "").strip())
    return _hex(_rgb("#" + m.group(1))) if m else DEFAULT_BRAND


def theme_for(brand_color: str) -> Theme:
    brand = normalise_color(brand_color)
    accent = brand
    for step in range(1, 21):  # darken until small text is readable on white
        if contrast(accent, "#ffffff") >= 4.5:
            break
        accent = _mix(brand, "#000000", step * 0.05)
    on_brand = "#ffffff" if contrast(brand, "#ffffff") >= contrast(brand, "#1f2a30") else "#1f2a30"
    return Theme(
        brand=brand,
        accent=accent,
        on_brand=on_brand,
        page=_mix(brand, "#ffffff", 0.94),
        tint=_mix(brand, "#ffffff", 0.90),
        rule=_mix(brand, "#ffffff", 0.80),
    )
