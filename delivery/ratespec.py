"""Rate limits as written and the window arithmetic: pure, no database (delivery/ratelimit.py
keeps the counts). Light to import: `load_settings` checks DRIP_RATE_LIMITS with it at start-up."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable

from drip.errors import ConfigurationError

#: Window name -> its length in seconds.
WINDOWS: dict[str, int] = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_ALIASES = {"s": "second", "sec": "second", "second": "second", "m": "minute", "min": "minute",
            "minute": "minute", "h": "hour", "hr": "hour", "hour": "hour", "d": "day", "day": "day"}
#: Named limits of common providers (documented in the README).
PRESETS: dict[str, str] = {
    "workspace": "2000/day",  # Google Workspace (Gmail) SMTP
    "m365": "30/minute,10000/day",  # Microsoft 365 / Exchange Online
    "ses": "14/second",  # Amazon SES, a common production quota
}
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ITEM = re.compile(r"^\s*(\d+)\s*(?:/|per\s+)\s*([a-z]+)\s*$")


@dataclass(frozen=True, order=True)
class Limit:
    window: str  # second | minute | hour | day
    count: int  # emails allowed in one window

    @property
    def seconds(self) -> int:
        return WINDOWS[self.window]

    def __str__(self) -> str:
        return f"{self.count}/{self.window}"


def parse_limits(spec: str, *, where: str = "DRIP_RATE_LIMITS") -> tuple[Limit, ...]:
    """"30/minute,10000/day", a preset ("m365"), or both mixed; "" is no limit. Two limits on one
    window keep the smaller. A bad item is a one-line ConfigurationError naming it."""
    found: dict[str, int] = {}
    for raw in (spec or "").split(","):
        item = raw.strip().lower()
        if not item:
            continue
        if item in PRESETS:
            parts = parse_limits(PRESETS[item], where=where)
        else:
            m = _ITEM.match(item)
            window = _ALIASES.get(m.group(2)) if m else None
            if m is None or window is None:
                raise ConfigurationError(
                    f"{where}: cannot read {raw.strip()!r} (expected N/second, N/minute, N/hour or N/day, "
                    f"or a preset: {', '.join(PRESETS)})")
            if int(m.group(1)) < 1:
                raise ConfigurationError(f"{where}: {raw.strip()!r} allows nothing (use at least 1)")
            parts = (Limit(window, int(m.group(1))),)
        for lim in parts:
            found[lim.window] = min(lim.count, found.get(lim.window, lim.count))
    return tuple(sorted((Limit(w, n) for w, n in found.items()), key=lambda lim: lim.seconds))


def window_start(now: datetime, window: str) -> datetime:
    """The start of the window (of that kind) holding `now`: whole multiples of its length since
    the Unix epoch, so every worker, in any zone, agrees on the boundaries."""
    length = WINDOWS[window]
    elapsed = now.astimezone(timezone.utc) - EPOCH
    whole = (elapsed.days * 86400 + elapsed.seconds) // length * length
    return EPOCH + timedelta(seconds=whole)


def window_end(now: datetime, window: str) -> datetime:
    """When the window holding `now` ends (= the next one starts)."""
    return window_start(now, window) + timedelta(seconds=WINDOWS[window])


def free_room(used: dict[str, int], limits: Iterable[Limit]) -> int:
    """How many more emails every window still allows (pure; `used` by window name)."""
    return max(0, min((lim.count - used.get(lim.window, 0) for lim in limits), default=0))


