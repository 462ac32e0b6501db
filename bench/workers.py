"""`drip bench workers`: 1 vs 2 vs 4 worker processes on one PostgreSQL sending N emails to
Postfix's smtp-sink (parallel sessions; each message dumped to its own file), counting doubles
at the sink by X-Drip-Delivery-Id.

Each run: a fresh set of N due deliveries in a schema of the bench's own (dropped after), k
processes started together (`drip run`'s loop: `Dispatcher.tick()` until nothing is claimed), the
wall time from the start signal to the last process done. Baseline, same run: one process. While
the widest run goes, the parent samples `pg_stat_activity` of the schema's sessions every 20 ms and
counts what they wait on (Lock/transactionid = rows another worker holds; IO, Client = not
serialised), which is the evidence for what serialises the workers.

PostgreSQL: `DRIP_BENCH_PG_URL` (default the test database at 127.0.0.1:5432).
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import re
import shutil
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from bench import BenchResult

PG_URL = os.environ.get("DRIP_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _worker(url: str, port: int, name: str, go, done_q) -> None:
    from bench.dispatch import T0
    from delivery.backends.smtp import SMTPBackend
    from delivery.dispatcher import Dispatcher
    from drip.config import Settings
    from drip.db import make_engine, session_factory
    from drip.runtime import Runtime

    settings = Settings(database_url=url, secret_key="bench-secret", frequency_cap=10, batch_size=500,
                        base_url="https://clinic.example", backend="smtp", smtp_host="127.0.0.1",
                        smtp_port=port, smtp_timeout=20.0)
    engine = make_engine(url)
    rt = Runtime(settings, engine, session_factory(engine))
    sent = 0
    with SMTPBackend(settings) as backend:
        d = Dispatcher(rt, backend, clock=lambda: T0, worker_id=name)
        go.wait()
        while True:
            report = d.tick()
            sent += report.sent
            if not report.claimed:
                break
    done_q.put((name, sent, time.perf_counter()))
    engine.dispose()


def _populate(url: str, n: int) -> None:
    from sqlalchemy import delete, insert, select

    from bench.dispatch import T0, _draft
    from campaigns import service
    from drip.db import make_engine, session_factory
    from drip.models import Campaign, Delivery, Enrollment, Step, Subscriber

    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        if s.scalar(select(Campaign.id)) is None:
            c = service.create_campaign(s, _draft(), "bench", window="daily 00:00-23:59")
            service.set_status(s, c, "published")
            s.execute(insert(Subscriber), [
                {"email": f"patient{i}@example.org", "email_key": f"patient{i}@example.org", "name": f"Patient {i}",
                 "tz": "America/New_York", "status": "active"} for i in range(n)])
            s.execute(insert(Enrollment), [
                {"subscriber_id": i + 1, "campaign_id": c.id, "enrolled_at": T0 - timedelta(days=1), "state": "active"}
                for i in range(n)])
        step_ids = list(s.scalars(select(Step.id).order_by(Step.id)))
        s.execute(delete(Delivery))
        s.execute(insert(Delivery), [
            {"subscriber_id": i + 1, "enrollment_id": i + 1, "step_id": step_ids[i % len(step_ids)],
             "due_at": T0 - timedelta(minutes=5), "status": "scheduled"} for i in range(n)])
    engine.dispose()


def _sample_waits(url: str, schema: str, stop, out: collections.Counter) -> None:
    from sqlalchemy import text

    from drip.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        while not stop.is_set():
            rows = conn.execute(text(
                "SELECT coalesce(wait_event_type, 'CPU'), coalesce(wait_event, 'running'), left(query, 60) "
                "FROM pg_stat_activity WHERE application_name = :app AND pid <> pg_backend_pid() "
                "AND state IN ('active', 'idle in transaction')"), {"app": schema}).all()
            for kind, event, query in rows:
                out[f"{kind}:{event} | {' '.join(query.split())[:50]}"] += 1
            conn.rollback()
            time.sleep(0.02)
    engine.dispose()


def _count_dump(folder: Path) -> collections.Counter:
    got: collections.Counter = collections.Counter()
    pattern = re.compile(rb"X-Drip-Delivery-Id: (\d+)", re.I)
    for f in folder.rglob("*"):
        if f.is_file():
            for m in pattern.findall(f.read_bytes()):
                got[int(m)] += 1
    return got


def _run(url: str, schema: str, n: int, k: int, sample: bool) -> dict:
    import threading

    from bench.smtp_sink import SmtpSink

    _populate(url, n)
    ctx = multiprocessing.get_context("spawn")
    dump = Path(tempfile.mkdtemp(prefix="drip-bench-sink-"))
    waits: collections.Counter = collections.Counter()
    try:
        with SmtpSink(dump=dump) as sink:
            go, done_q = ctx.Event(), ctx.Queue()
            procs = [ctx.Process(target=_worker, args=(url, sink.port, f"bench-{k}-{i}", go, done_q)) for i in range(k)]
            for p in procs:
                p.start()
            time.sleep(2.0 + k)  # imports and set-up, before the clock starts
            stop = threading.Event()
            sampler = threading.Thread(target=_sample_waits, args=(url, schema, stop, waits)) if sample else None
            start = time.perf_counter()
            go.set()
            if sampler:
                sampler.start()
            results = [done_q.get(timeout=600) for _ in procs]
            end = max(r[2] for r in results)
            stop.set()
            if sampler:
                sampler.join()
            for p in procs:
                p.join(30)
            sink.stop()
        got = _count_dump(dump)
    finally:
        shutil.rmtree(dump, ignore_errors=True)
    sent = sum(r[1] for r in results)
    return {"workers": k, "emails_s": n / (end - start), "sent": sent, "at_sink": sum(got.values()),
            "distinct_at_sink": len(got), "doubles": sum(v - 1 for v in got.values() if v > 1),
            "per_worker": sorted(r[1] for r in results), "waits": waits.most_common(8)}


def run(quick: bool) -> BenchResult:
    from sqlalchemy import text

    from drip.db import make_engine, migrate

    n = 2000 if quick else 8000
    schema = f"drip_bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # application_name: the wait sampler tells this bench's sessions from anyone else's
    url = PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{schema}&application_name={schema}"
    try:
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        runs = {k: _run(url, schema, n, k, sample=(k == 4)) for k in (1, 2, 4)}
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    one = runs[1]["emails_s"]
    details = {"emails": n, "cpus": os.cpu_count()}
    for k, r in runs.items():
        details[f"w{k}_emails_s"] = round(r["emails_s"])
        details[f"w{k}_ratio"] = round(r["emails_s"] / one, 2)
        details[f"w{k}_doubles_at_sink"] = r["doubles"]
        details[f"w{k}_at_sink"] = r["at_sink"]
        details[f"w{k}_distinct_at_sink"] = r["distinct_at_sink"]
        details[f"w{k}_per_worker"] = r["per_worker"]
    details["w4_pg_waits_sampled"] = runs[4]["waits"]
    details["target"] = "2 workers >= 1.8x one, 4 >= 3x; zero doubles"
    details["load_average"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return BenchResult(bench="workers", unit="emails/s", rate=runs[2]["emails_s"], baseline=one,
                       label="2 worker processes", baseline_label="1 worker process", details=details)
