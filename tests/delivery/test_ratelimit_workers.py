"""Three workers, each with its own engine, Dispatcher and SMTP connection to a real server
(aiosmtpd on loopback), under one rate limit kept in the database (PostgreSQL and SQLite): per
window, the deliveries' sent_at never exceed the limit; nothing is lost or sent twice (counted at
the server); what is left goes in the next windows by itself, in order."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from campaigns.enrollment import enroll
from delivery.dispatcher import Dispatcher
from delivery.ratespec import window_start
from drip.db import make_engine, session_factory
from drip.models import Delivery, RateWindow, Subscriber
from drip.runtime import Runtime
from delivery.backends.smtp import SMTPBackend
from tests.factories import make_campaign

N = 70
LIMIT = 20  # a minute
T0 = datetime(2026, 12, 3, 10, 0, 30, tzinfo=timezone.utc)  # pinned, mid-minute


class SharedClock:
    """One fake clock for all workers, moved only between rounds."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.lock = threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            return self.now


def _fill(rt: Runtime) -> None:
    with rt.sessions.begin() as s:
        c = make_campaign(s, n_items=0)
        subs = [Subscriber(email=f"r{i}@example.org", email_key=f"r{i}@example.org", status="active")
                for i in range(N)]
        s.add_all(subs)
        s.flush()
        for sub in subs:
            enroll(s, sub, c, T0 - timedelta(hours=1), clinic_tz="UTC")


def _three_workers(url: str, settings, smtp_server) -> None:
    s0 = settings.with_(database_url=url, batch_size=7, record_every=3, frequency_cap=5, backend="smtp",
                        smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_timeout=5.0,
                        rate_limits=f"{LIMIT}/minute,1000/day")
    engines = [make_engine(url) for _ in range(4)]
    rt = Runtime(s0, engines[0], session_factory(engines[0]))
    _fill(rt)
    clock = SharedClock(T0)
    backends = [SMTPBackend(s0).__enter__() for _ in range(3)]
    workers = [Dispatcher(Runtime(s0, e, session_factory(e)), b, clock=clock, worker_id=f"w{i}")
               for i, (e, b) in enumerate(zip(engines[1:], backends))]
    start = threading.Barrier(3)

    def work(d: Dispatcher) -> list:
        start.wait()  # all three reserve at the same moment
        reports = []
        while True:
            r = d.tick()
            reports.append(r)
            if not r.claimed:
                return reports

    rounds = -(-N // LIMIT) + 1
    try:
        with ThreadPoolExecutor(3) as pool:
            for minute in range(rounds):
                reports = [f.result(timeout=60) for f in [pool.submit(work, d) for d in workers]]
                sent_now = sum(r.sent for rs in reports for r in rs)
                left = N - minute * LIMIT
                assert sent_now == max(0, min(LIMIT, left)), f"minute {minute}"
                if left > LIMIT:  # every worker ended this round told when the next sends go
                    next_minute = window_start(clock(), "minute") + timedelta(minutes=1)
                    assert all(rs[-1].limited_until == next_minute for rs in reports)
                with clock.lock:
                    clock.now += timedelta(minutes=1)  # nobody moved it: the rest goes by itself
        with rt.sessions() as s:
            rows = s.execute(select(Delivery.id, Delivery.status, Delivery.sent_at, Delivery.claimed_by)).all()
            used = {r.period: r.used for r in s.scalars(select(RateWindow))}
    finally:
        for b in backends:
            b.__exit__(None, None, None)
        for e in engines:
            e.dispose()
    assert len(rows) == N and all(r.status == "sent" for r in rows), "none lost, none failed"
    got = [rcpt for env in smtp_server.envelopes for rcpt in env.rcpt_tos]
    assert len(got) == N and len(set(got)) == N, "the server got each email once"
    per_minute = Counter(window_start(r.sent_at, "minute") for r in rows)
    assert max(per_minute.values()) <= LIMIT
    assert sorted(per_minute.values(), reverse=True) == [LIMIT] * (N // LIMIT) + [N % LIMIT]
    # in order: every email of one minute was due (by id) before every email of the next
    by_minute = sorted(per_minute)
    ids_in = {m: sorted(r.id for r in rows if window_start(r.sent_at, "minute") == m) for m in by_minute}
    assert all(ids_in[a][-1] < ids_in[b][0] for a, b in zip(by_minute, by_minute[1:]))
    assert len({r.claimed_by for r in rows}) >= 2, "the workers shared the work"
    assert used["day"] == N, "the day counts exactly what went (unused reservations were given back)"


@pytest.mark.postgres
def test_three_workers_on_postgres_never_exceed_the_limit(pg_schema_url, settings, smtp_server):
    from tests.conftest import _truncate_pg

    engine = make_engine(pg_schema_url)
    _truncate_pg(engine)
    engine.dispose()
    _three_workers(pg_schema_url, settings, smtp_server)


def test_three_workers_on_sqlite_never_exceed_the_limit(sqlite_runtime, settings, smtp_server):
    _three_workers(sqlite_runtime.settings.db_url, settings, smtp_server)
