"""Login throttling: at most 5 failed logins per (address, IP) and 50 per IP in 15 minutes.

In memory, per process: with several web processes an attacker gets that many tries per
process, which still turns a password guess rate of thousands a second into a handful a minute.
It is a sliding window of failure times; a successful login clears that address+IP's failures.
The key count is bounded (oldest keys forgotten first), so a flood of made-up addresses cannot
grow memory without limit.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from datetime import datetime, timedelta

WINDOW = timedelta(minutes=15)
PER_ACCOUNT = 5
PER_IP = 50
MAX_KEYS = 50_000


class LoginLimiter:
    def __init__(self, *, window: timedelta = WINDOW, per_account: int = PER_ACCOUNT, per_ip: int = PER_IP,
                 max_keys: int = MAX_KEYS) -> None:
        self.window = window
        self.limits = {"account": per_account, "ip": per_ip}
        self._failures: OrderedDict[tuple[str, ...], deque[datetime]] = OrderedDict()
        self._max_keys = max_keys
        self._lock = threading.Lock()

    @staticmethod
    def _keys(email: str, ip: str) -> list[tuple[str, ...]]:
        return [("account", email.strip().lower(), ip), ("ip", ip)]

    def _recent(self, key: tuple[str, ...], now: datetime) -> deque[datetime]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, email: str, ip: str, now: datetime) -> int | None:
        """Seconds until another try is allowed, or None when this login may be tried now."""
        with self._lock:
            wait = 0.0
            for key in self._keys(email, ip):
                times = self._recent(key, now)
                if len(times) >= self.limits[key[0]]:
                    wait = max(wait, (times[0] + self.window - now).total_seconds())
            return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, email: str, ip: str, now: datetime) -> None:
        with self._lock:
            for key in self._keys(email, ip):
                times = self._failures.setdefault(key, deque(maxlen=max(self.limits.values())))
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self._max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, email: str, ip: str) -> None:
        with self._lock:
            self._failures.pop(self._keys(email, ip)[0], None)
