"""The circuit breaker on its own, with a hand-moved clock."""

from __future__ import annotations

import random

import pytest

from delivery.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_with_growing_jittered_holds_capped_then_probes_and_closes():
    clock = Clock()
    b = CircuitBreaker(base=1.0, cap=8.0, clock=clock, rng=random.Random(3))
    assert b.closed and b.allows() and not b.half_open
    waits = []
    for _ in range(6):
        waits.append(b.failure("connection refused"))
        assert not b.allows() and b.remaining() == pytest.approx(waits[-1])
        clock.now += waits[-1]
        assert b.allows() and b.half_open  # the hold is over: one probe may go
    assert all(lo / 2 <= w <= lo for w, lo in zip(waits, [1, 2, 4, 8, 8, 8]))
    assert waits[3] > waits[0]
    assert b.reason == "connection refused" and b.failures == 6
    lasted = b.success()
    assert lasted == pytest.approx(clock.now - 100.0) and b.closed and b.allows() and not b.half_open
    assert b.success() is None  # already closed


def test_a_provider_retry_after_is_honoured():
    clock = Clock()
    b = CircuitBreaker(base=1.0, cap=8.0, clock=clock)
    assert b.failure("429", retry_after=30.0) == 30.0
