"""`drip bench webhooks` counts what the receiver verified: a small round in each mode."""

from __future__ import annotations

import pytest

from bench import BENCHES
from bench.webhooks import _round


def test_registered():
    assert BENCHES["webhooks"] == "bench.webhooks"


@pytest.mark.parametrize("mode", ["thread"])  # "process" adds a `drip` start-up (~4 s here)
def test_a_small_round_delivers_every_event_once_verified(mode):
    r = _round(20, 30, mode)
    assert r["events"] == 30 + 20 + 20  # backlog, email.sent, enrollment.completed (one-step enrollments)
    assert r["verified"] == r["unique"] == r["delivered"] == r["events"] and r["bad"] == 0
    assert r["send_rate"] > 0 and r["webhook_rate"] > 0
