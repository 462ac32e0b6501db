"""A sliding-window counter per key (an IP, an address), in memory, for public forms.

Per process: with several web processes a sender gets that many tries per process, which still
turns a flood into a trickle. The number of keys is bounded (the oldest are forgotten first), so
a flood of made-up keys cannot grow memory without limit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from datetime import datetime, timedelta

MAX_KEYS = 50_000


class SlidingWindowLimiter:
    def __init__(self, limit: int, window: timedelta, *, max_keys: int = MAX_KEYS) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window = window
        self._hits: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._max_keys = max_keys
        self._lock = threading.Lock()

    def hit(self, key: str, now: datetime) -> int | None:
        """Count one attempt for `key`. Returns None if allowed, else the seconds to wait (not counted)."""
        with self._lock:
            times = self._hits.get(key)
            if times is None:
                times = self._hits[key] = deque(maxlen=self.limit)
            while times and now - times[0] >= self.window:
                times.popleft()
            if len(times) >= self.limit:
                return max(1, int((times[0] + self.window - now).total_seconds()) + 1)
            times.append(now)
            self._hits.move_to_end(key)
            while len(self._hits) > self._max_keys:
                self._hits.popitem(last=False)
            return None
