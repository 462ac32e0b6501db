"""`drip bench due-query`: the due-row claim and one dispatcher tick with 1,000,000 enrollments on PostgreSQL.

The ledger holds one row per (enrollment, step); here 1,000,000 enrollments with 1 row each due
over the next year plus a small slice due now. Measured: the claim query (the `FOR UPDATE SKIP
LOCKED` subselect on the (status, due_at) index), queries/s; baseline in the same run: the same
query with index scans switched off (what it would cost without the index). Also one full tick
(claim 500, render, MIME, outbox, record) and the process's peak memory, to show it stays flat.
Needs PostgreSQL (`DRIP_BENCH_PG_URL`, default 127.0.0.1:5432/test); uses a schema of its own.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import text

from bench import BenchResult, analyze
from campaigns import service
from delivery.backends.outbox import OutboxBackend
from delivery.dispatcher import Dispatcher
from delivery.ledger import LedgerStore
from drip.config import Settings
from drip.db import make_engine, migrate, session_factory
from drip.runtime import Runtime

PG = os.environ.get("DRIP_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


def _populate(rt: Runtime, n: int, due_now: int) -> None:
    from bench.dispatch import _draft

    with rt.sessions.begin() as s:
        c = service.create_campaign(s, _draft(), "bench", window="daily 00:00-23:59")
        service.set_status(s, c, "published")
        step_id = c.steps[0].id
        cid = c.id
    with rt.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO subscribers (email, email_key, name, tz, status, created_at, updated_at) "
            "SELECT 'p'||g||'@example.org', 'p'||g||'@example.org', 'Patient '||g, 'Europe/Berlin', 'active', now(), now() "
            "FROM generate_series(1, :n) g"), {"n": n})
        conn.execute(text(
            "INSERT INTO enrollments (subscriber_id, campaign_id, enrolled_at, state, source) "
            "SELECT g, :cid, now(), 'active', 'bench' FROM generate_series(1, :n) g"), {"n": n, "cid": cid})
        # most rows due later this year, `due_now` of them due already
        conn.execute(text(
            "INSERT INTO deliveries (subscriber_id, enrollment_id, step_id, due_at, status, attempts, last_error) "
            "SELECT g, g, :sid, CASE WHEN g <= :due THEN :now - interval '1 minute' "
            "ELSE :now + (g % 525600) * interval '1 minute' END, 'scheduled', 0, '' FROM generate_series(1, :n) g"),
            {"n": n, "sid": step_id, "due": due_now, "now": NOW})
        analyze(conn)


def _time_claim(rt: Runtime, store: LedgerStore, reps: int, no_index: bool) -> float:
    timings = []
    for _ in range(reps):
        with rt.engine.connect() as conn:
            trans = conn.begin()
            if no_index:
                conn.execute(text("SET LOCAL enable_indexscan = off"))
                conn.execute(text("SET LOCAL enable_bitmapscan = off"))
                conn.execute(text("SET LOCAL enable_indexonlyscan = off"))
            start = time.perf_counter()
            conn.execute(text(
                "SELECT d.id FROM deliveries d LEFT JOIN steps s ON s.id = d.step_id "
                "LEFT JOIN campaigns c ON c.id = s.campaign_id LEFT JOIN broadcasts b ON b.id = d.broadcast_id "
                "WHERE d.status = 'scheduled' AND d.due_at <= :now "
                "AND (c.status = 'published' OR b.status IN ('scheduled','sending')) "
                "ORDER BY d.due_at, d.id LIMIT 500 FOR UPDATE OF d SKIP LOCKED"), {"now": NOW}).all()
            timings.append(time.perf_counter() - start)
            trans.rollback()
    timings.sort()
    return timings[len(timings) // 2]


def run(quick: bool = False) -> BenchResult:
    n = 100_000 if quick else 1_000_000
    schema = f"drip_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = PG + ("&" if "?" in PG else "?") + f"options=-csearch_path%3D{schema}"
    try:
        with tempfile.TemporaryDirectory(prefix="drip-bench-") as tmp:
            settings = Settings(database_url=url, data_dir=Path(tmp) / "data", outbox_dir=Path(tmp) / "outbox",
                                secret_key="bench", batch_size=500, frequency_cap=10)
            engine = make_engine(url)
            migrate(engine)
            rt = Runtime(settings, engine, session_factory(engine))
            t = time.perf_counter()
            _populate(rt, n, due_now=5_000)
            populate_s = time.perf_counter() - t
            store = LedgerStore(rt.sessions, "bench")
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            with_index = _time_claim(rt, store, 15, no_index=False)
            without = _time_claim(rt, store, 5, no_index=True)
            with OutboxBackend(settings) as backend:
                d = Dispatcher(rt, backend, clock=lambda: NOW)
                t = time.perf_counter()
                batch = d.run_batch()
                tick_ms = (time.perf_counter() - t) * 1000
            rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return BenchResult(
        bench="due-query", unit="claims/s", rate=1 / with_index, baseline=1 / without,
        label="indexed claim", baseline_label="no index scans",
        details={"enrollments": n, "claim_query_ms": round(with_index * 1000, 2), "target_ms": 50,
                 "no_index_ms": round(without * 1000, 1), "tick_500_ms": round(tick_ms, 1),
                 "tick_sent": batch.sent, "populate_s": round(populate_s, 1),
                 "peak_rss_mb_before_after_tick": [round(rss0 / 1024), round(rss1 / 1024)]},
    )
