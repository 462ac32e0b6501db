"""`drip bench webhooks` counts what the receiver verified: a small round in each mode."""

from __future__ import annotations

import pytest

from bench import BENCHES
from bench.webhooks import _round
from tests.conftest import need


def test_registered():
    assert BENCHES["webhooks"] == "bench.webhooks"


@pytest.mark.parametrize("mode", ["thread"])  # "process" adds a `drip` start-up (~4 s here)
def test_a_small_round_delivers_every_event_once_verified(mode):
    r = _round(20, 30, mode)
    assert r["events"] == 30 + 20 + 20  # backlog, email.sent, enrollment.completed (one-step enrollments)
    assert r["verified"] == r["unique"] == r["delivered"] == r["events"] and r["bad"] == 0
    assert r["send_rate"] > 0 and r["webhook_rate"] > 0 and r["send_cpu_us"] > 0


@pytest.mark.postgres
def test_a_small_round_on_postgres_in_a_schema_of_its_own():
    r = _round(20, 30, "thread", pg=True)
    need(bool(r), "PostgreSQL at 127.0.0.1:5432 (DRIP_BENCH_PG_URL)")
    assert r["verified"] == r["unique"] == r["delivered"] == r["events"] == 70 and r["bad"] == 0
