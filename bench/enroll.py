"""`drip bench enroll`: patients/s enrolled into a 13-step campaign, set-based vs one by one.

drip: `campaigns.enrollment.enroll_many` over every subscriber of a fresh database (200,000;
quick: 20,000), in one transaction: per 5,000 patients one check query, one
`INSERT ... SELECT ... RETURNING` for the enrollments and one `INSERT ... SELECT` for the 13
deliveries each, due times computed once per zone.
Baseline, same run and database: `enroll()` one patient at a time (about eight ORM statements
each) over a sample (5,000; quick: 1,000) into a twin campaign; the ratio is per patient.

Both on SQLite (a file) and on PostgreSQL (`DRIP_BENCH_PG_URL`, default the test server
127.0.0.1:5432/test, in a schema of its own that is dropped afterwards; skipped with a message
when no server answers). The patients look like a clinic's: five zones (US, Europe, none so the
clinic's), 1 in 50 unsubscribed, 1 in 100 suppressed, 1 in 200 opted out of the campaign.

Rates are wall-clock (PostgreSQL works in its own process); per CPU second of this process too
(on SQLite all the work is in this process, so that rate does not move with other people's load). Memory: tracemalloc peak of `enroll_many` on SQLite at two sizes (the largest run
and a quarter of it): flat means about equal. Plus max RSS and the load average.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
import tracemalloc
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from bench import BenchResult
from campaigns import service
from campaigns.draft import Draft, DraftStep
from campaigns.enrollment import NotEnrollable, enroll
from drip.db import make_engine, migrate, session_factory
from drip.models import Campaign, CampaignOptOut, Delivery, Step, Subscriber, Suppression

PG_URL = os.environ.get("DRIP_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)
CLINIC_TZ = "America/New_York"
_ZONES = ["America/New_York", "America/Chicago", None, "America/Los_Angeles", "Europe/London"]
STEPS = 13


def _draft() -> Draft:
    steps = [DraftStep("intro", "", "Welcome", "Welcome to acupuncture basics", "An introduction.")]
    steps += [DraftStep("item", "How it works", f"Mechanism {i}", f"How it works, part {i}", f"Body {i}.")
              for i in range(1, STEPS)]
    return Draft(title="Acupuncture basics", steps=steps)


def campaign_13(s: Session, slug: str) -> Campaign:
    """A published 13-step campaign (steps every two days, weekday office hours)."""
    c = service.create_campaign(s, _draft(), slug, every=timedelta(days=2), window="mon-fri 09:00-17:00")
    service.set_status(s, c, "published")
    return c


def populate(sessions: sessionmaker[Session], n: int) -> tuple[int, int]:
    """n patients (see the module docstring) and two twin campaigns. Returns the campaigns' ids."""
    with sessions.begin() as s:
        bulk, one = campaign_13(s, "bulk"), campaign_13(s, "one-by-one")
        ids = (bulk.id, one.id)
        for start in range(0, n, 10_000):
            rows = [{"email": f"p{i}@example.org", "email_key": f"p{i}@example.org", "name": f"Patient {i}",
                     "tz": _ZONES[i % len(_ZONES)], "status": "unsubscribed" if i % 50 == 7 else "active",
                     "created_at": NOW, "updated_at": NOW} for i in range(start, min(n, start + 10_000))]
            s.execute(insert(Subscriber), rows)
        first = s.scalar(select(Subscriber.id).order_by(Subscriber.id).limit(1)) or 1
        s.execute(insert(Suppression), [{"email_key": f"p{i}@example.org", "reason": "bounce", "created_at": NOW}
                                        for i in range(3, n, 100)])
        s.execute(insert(CampaignOptOut), [{"subscriber_id": first + i, "campaign_id": c, "created_at": NOW}
                                           for i in range(11, n, 200) for c in ids])
    return ids


def _set_based(sessions: sessionmaker[Session], campaign_id: int) -> tuple[int, float, float, int]:
    from campaigns.enrollment import enroll_many

    wall, cpu = time.perf_counter(), time.process_time()
    with sessions.begin() as s:
        campaign = s.get(Campaign, campaign_id)
        outcome = enroll_many(s, select(Subscriber.id), campaign, NOW, clinic_tz=CLINIC_TZ, source="bench")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    with sessions() as s:
        deliveries = s.scalar(select(func.count()).select_from(Delivery).join(Step, Step.id == Delivery.step_id)
                              .where(Step.campaign_id == campaign_id))
    return outcome.enrolled, wall, cpu, deliveries or 0


def _one_by_one(sessions: sessionmaker[Session], campaign_id: int, n: int) -> tuple[int, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    made = 0
    with sessions.begin() as s:
        campaign = s.get(Campaign, campaign_id)
        for sub in s.scalars(select(Subscriber).order_by(Subscriber.id).limit(n)).all():
            try:
                enroll(s, sub, campaign, NOW, clinic_tz=CLINIC_TZ, source="bench")
                made += 1
            except NotEnrollable:
                pass
    return made, time.perf_counter() - wall, time.process_time() - cpu


def _measure(url: str, n: int, n_base: int) -> dict:
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    try:
        bulk_id, one_id = populate(sessions, n)
        base_made, base_wall, base_cpu = _one_by_one(sessions, one_id, n_base)
        made, wall, cpu, deliveries = _set_based(sessions, bulk_id)
    finally:
        engine.dispose()
    return {
        "patients": n,
        "enrolled": made,
        "deliveries": deliveries,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "patients_per_s": round(n / wall),
        "patients_per_cpu_s": round(n / cpu),
        "baseline_patients": n_base,
        "baseline_enrolled": base_made,
        "baseline_seconds": round(base_wall, 2),
        "baseline_cpu_seconds": round(base_cpu, 2),
        "baseline_patients_per_s": round(n_base / base_wall),
        "ratio": round((n / wall) / (n_base / base_wall), 1),
        "cpu_ratio": round((n / cpu) / (n_base / base_cpu), 1),
    }


def pg_schema() -> tuple[str | None, str, object]:
    """(url of a fresh schema or None, message, admin engine)."""
    admin = make_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means: skip PostgreSQL
        admin.dispose()
        return None, f"PostgreSQL skipped: not reachable at {PG_URL} ({type(exc).__name__})", None
    schema = f"drip_bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    return PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{schema}", schema, admin


def _peak(folder: Path, n: int) -> int:
    engine = make_engine(f"sqlite:///{folder / f'mem{n}.sqlite3'}")
    migrate(engine)
    sessions = session_factory(engine)
    bulk_id, _ = populate(sessions, n)
    from campaigns.enrollment import enroll_many

    tracemalloc.start()
    try:
        with sessions.begin() as s:
            enroll_many(s, select(Subscriber.id), s.get(Campaign, bulk_id), NOW, clinic_tz=CLINIC_TZ)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        engine.dispose()


def run(quick: bool) -> BenchResult:
    n = 20_000 if quick else 200_000
    n_base = 1_000 if quick else 5_000
    details: dict = {}
    with tempfile.TemporaryDirectory(prefix="drip-bench-enroll-") as tmp:
        folder = Path(tmp)
        sqlite = _measure(f"sqlite:///{folder / 'bench.sqlite3'}", n, n_base)
        details.update({f"sqlite_{k}": v for k, v in sqlite.items()})
        details["load_average_after_sqlite"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        url, schema, admin = pg_schema()
        if url is None:
            details["postgresql"] = schema
        else:
            try:
                pg = _measure(url, n, n_base)
                details.update({f"pg_{k}": v for k, v in pg.items()})
            finally:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
            details["load_average_after_pg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        small, large = _peak(folder, n // 4), _peak(folder, n)
    details[f"peak_mb_{n // 4}_patients"] = round(small / 1e6, 2)
    details[f"peak_mb_{n}_patients"] = round(large / 1e6, 2)
    details["peak_growth"] = round(large / small, 2)
    details["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    details["load_average"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return BenchResult(
        bench="enroll",
        unit="patients/s",
        rate=sqlite["patients_per_s"],
        baseline=sqlite["baseline_patients_per_s"],
        label=f"enroll_many, SQLite, {n:,} patients x {STEPS} steps",
        baseline_label=f"enroll() one by one ({n_base:,} patients)",
        details=details,
    )
