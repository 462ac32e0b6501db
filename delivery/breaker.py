"""A circuit breaker for one backend, held by each worker.

When the backend itself is unwell (connection refused, timeouts, 421, a 4xx for every recipient,
disk full, a provider's 5xx/401) sending more only burns attempts. The breaker *opens*: no claim
is taken for a while, growing with each failure in a row (exponential, jittered, capped). When the
wait is over it is *half-open*: the dispatcher sends one message as a probe. Success closes it and
sending resumes at full speed; failure opens it again for longer. No human is needed either way.

The state is in memory on purpose: it describes this worker's view of the backend, and a
restarted worker simply probes at once. Rows are never touched by it; the dispatcher releases
them as they were.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class CircuitBreaker:
    base: float = 5.0  # seconds held after the first failure
    cap: float = 300.0  # the longest hold
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0  # server-level failures in a row
    open_until: float = 0.0
    reason: str = ""
    since: float | None = None  # when the current outage began (clock time)

    @property
    def closed(self) -> bool:
        return self.failures == 0

    def allows(self) -> bool:
        """May a claim be taken now? True when closed, or half-open (the hold is over)."""
        return self.failures == 0 or self.clock() >= self.open_until

    @property
    def half_open(self) -> bool:
        """The hold is over but the backend has not answered well yet: send one probe."""
        return self.failures > 0 and self.clock() >= self.open_until

    def remaining(self) -> float:
        return max(0.0, self.open_until - self.clock()) if self.failures else 0.0

    def failure(self, reason: str, retry_after: float | None = None) -> float:
        """The backend failed: open (again) and return how long it is held."""
        now = self.clock()
        if self.failures == 0:
            self.since = now
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** (self.failures - 1))
        wait = self.rng.uniform(ceiling / 2, ceiling)  # "equal jitter": spread, never zero
        if retry_after:
            wait = min(max(wait, retry_after), max(self.cap, retry_after))
        self.open_until = now + wait
        self.reason = reason
        return wait

    def success(self) -> float | None:
        """The backend took a message: close. Returns how long the outage lasted, if there was one."""
        if self.failures == 0:
            return None
        lasted = self.clock() - self.since if self.since is not None else 0.0
        self.failures, self.open_until, self.reason, self.since = 0, 0.0, "", None
        return lasted
