"""`drip bench enroll`: patients/s enrolled into a 13-step campaign, set-based vs one by one.

drip: `campaigns.enrollment.enroll_many` over every subscriber of a fresh database (100,000;
quick: 10,000), in one transaction, in a fresh process: per 5,000 patients one check query, one
`INSERT ... RETURNING` for the enrollments and one `INSERT ... SELECT` for the 13 deliveries
each, due times computed once per zone in Python.
Baseline, same run and database: `enroll()` one patient at a time (about eight ORM statements
each) over a sample (1,000; quick: 200) into a twin campaign; the ratio is per patient.

Both on SQLite (a file) and on PostgreSQL (`DRIP_BENCH_PG_URL`, default the test server
127.0.0.1:5432/test, in a schema of its own that is dropped afterwards; skipped with a message
when no server answers). The patients look like a clinic's: five zones (US, Europe, none so the
clinic's), 1 in 50 unsubscribed, 1 in 100 suppressed, 1 in 200 opted out of the campaign.

Rates are wall-clock, and per CPU second of the enrolling process (on SQLite all the work is
there; on PostgreSQL most of it is in the server). Memory: the peak RSS of a fresh process that
runs `enroll_many` over the first 10,000 patients (quick: 5,000) and of one over all of them,
per database: flat means about equal (`rss_before_enroll_mb` is the process with its imports,
before enrolling; `rss_growth_mb_N` what the resident set grew by while enrolling N). Plus the load average before and after each database.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
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

ROOT = Path(__file__).resolve().parents[1]
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


def populate(sessions: sessionmaker[Session], n: int, extra: tuple[str, ...] = ()) -> tuple[int, ...]:
    """n patients (see the module docstring) and twin campaigns ("bulk", "one-by-one", then `extra`).

    Returns the campaigns' ids in that order."""
    with sessions.begin() as s:
        ids = tuple(campaign_13(s, slug).id for slug in ("bulk", "one-by-one", *extra))
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


def _set_based(sessions: sessionmaker[Session], campaign_id: int, limit: int | None = None) -> dict:
    """enroll_many over the first `limit` patients (all: None) into this campaign, one transaction."""
    from campaigns.enrollment import enroll_many

    query = select(Subscriber.id)
    with sessions() as s:
        if limit is not None:
            last = s.scalar(select(Subscriber.id).order_by(Subscriber.id).offset(limit - 1).limit(1))
            query = query.where(Subscriber.id <= last)
        patients = s.scalar(select(func.count()).select_from(query.subquery()))
    rss_before, now_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, _rss_now()
    wall, cpu = time.perf_counter(), time.process_time()
    with sessions.begin() as s:
        outcome = enroll_many(s, query, s.get(Campaign, campaign_id), NOW, clinic_tz=CLINIC_TZ, source="bench")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss, now_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, _rss_now()
    with sessions() as s:
        deliveries = s.scalar(select(func.count()).select_from(Delivery).join(Step, Step.id == Delivery.step_id)
                              .where(Step.campaign_id == campaign_id))
    return {"patients": patients, "enrolled": outcome.enrolled, "deliveries": deliveries or 0, "wall": wall,
            "cpu": cpu, "rss_before_mb": round(rss_before / 1024, 1), "peak_rss_mb": round(rss / 1024, 1),
            "rss_growth_mb": round((now_after - now_before) / 1024, 1)}


def _rss_now() -> int:
    """The process's resident set now, in KiB (Linux; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def child(url: str, campaign_id: int, limit: int | None) -> None:
    """`python -c` entry point: one set-based run in a fresh process, so its peak RSS is its own."""
    engine = make_engine(url)
    try:
        print(json.dumps(_set_based(session_factory(engine), campaign_id, limit)))
    finally:
        engine.dispose()


def _in_child(url: str, campaign_id: int, limit: int | None) -> dict:
    code = f"import bench.enroll as b; b.child({url!r}, {campaign_id}, {limit!r})"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"enroll bench child failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


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


def _measure(url: str, n: int, n_base: int, n_small: int | None = None) -> dict:
    """One database: n patients; one by one over the first n_base; set-based over everyone (and over
    the first n_small, for memory) each in a fresh process. Rates per wall and per CPU second of
    the enrolling process (on PostgreSQL the server's work is in its own process)."""
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    try:
        bulk_id, one_id, small_id = populate(sessions, n, ("small",))
        base_made, base_wall, base_cpu = _one_by_one(sessions, one_id, n_base)
    finally:
        engine.dispose()
    small = _in_child(url, small_id, n_small) if n_small else None
    large = _in_child(url, bulk_id, None)
    wall, cpu = large["wall"], large["cpu"]
    out = {
        "patients": n,
        "enrolled": large["enrolled"],
        "deliveries": large["deliveries"],
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
        f"peak_rss_mb_{n}": large["peak_rss_mb"],
        "rss_before_enroll_mb": large["rss_before_mb"],
        f"rss_growth_mb_{n}": large["rss_growth_mb"],
    }
    if small:
        out[f"peak_rss_mb_{n_small}"] = small["peak_rss_mb"]
        out[f"rss_growth_mb_{n_small}"] = small["rss_growth_mb"]
        out[f"patients_per_s_{n_small}"] = round(small["patients"] / small["wall"])
        out["peak_rss_growth"] = round(large["peak_rss_mb"] / small["peak_rss_mb"], 2)
    return out


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


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(quick: bool) -> BenchResult:
    n, n_small = (10_000, 5_000) if quick else (100_000, 10_000)  # the small run is at least one chunk
    n_base = 200 if quick else 1_000
    details: dict = {"load_average_before": _load()}
    with tempfile.TemporaryDirectory(prefix="drip-bench-enroll-") as tmp:
        sqlite = _measure(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", n, n_base, n_small)
    details.update({f"sqlite_{k}": v for k, v in sqlite.items()})
    details["load_average_after_sqlite"] = _load()
    url, schema, admin = pg_schema()
    if url is None:
        details["postgresql"] = schema
    else:
        try:
            pg = _measure(url, n, n_base, n_small)
            details.update({f"pg_{k}": v for k, v in pg.items()})
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
        details["load_average_after_pg"] = _load()
    details["load_average"] = _load()
    return BenchResult(
        bench="enroll",
        unit="patients/s",
        rate=sqlite["patients_per_s"],
        baseline=sqlite["baseline_patients_per_s"],
        label=f"enroll_many, SQLite, {n:,} patients x {STEPS} steps",
        baseline_label=f"enroll() one by one ({n_base:,} patients)",
        details=details,
    )
