"""`drip bench scale [--size N]`: do the claim, the record and the staff pages cost the same at a
million patients as at 10,000?

Two ledgers are built in the same run, on SQLite (a file) and on PostgreSQL (`DRIP_BENCH_PG_URL`,
default the test server; skipped with a note when it is not reachable): 10,000 patients (the
baseline) and `--size` patients (default 100,000; `--quick` 50,000; the target of issue 15 is
1,000,000 = 13,000,000 ledger rows, which takes several minutes per database to build here). Each
patient is enrolled in one published 13-step campaign and has 13 ledger rows: the first
`id % 13` sent (in the past), the rest scheduled (in the future), and 2,000 of them due now; the
rows are written with `INSERT ... SELECT` (not the enrollment path: that has its own bench).

Measured on each ledger, the median of a few repetitions of each operation:
  claim        LedgerStore.claim of 100 due rows (released again, untimed)
  tick         one dispatcher batch of 100 through the outbox backend: claim, load, render, write
               the .eml files, record (the record's share: the tick minus claim and render)
  campaigns    the campaign list's counts (web.staff.stats.campaign_summaries)
  campaign     one campaign page's per-step counts and its 30-day chart (web.staff.stats.step_stats)
  dashboard    the home page's counts (sent today / this week, due now, the 30-day chart)
The counts come through delivery.counts as the pages get them: counted live below
DRIP_STATS_LIVE_ROWS ledger rows (default 200,000: the 10k baseline), read from the worker's
cache above it; the worker's recount of them all is printed beside (it reads the whole ledger).
  list         the subscriber list's first page and its total (web.staff.subscribers: the total
               from the cache above DRIP_STATS_LIVE_ROWS)
  list-deep    the page in the middle of the list (by id: ?after=)
  tag-         the list filtered by a tag on one patient in a hundred, and by one on everyone
  search       searches with their totals counted up to 10,000: one address (exact), a part of
               one, a part of a name (1.1% of patients), and "example" (everyone)
  timeline     one patient's timeline (enrollments and every delivery)
The figure of each is (cost at --size) / (cost at 10k): 1.0 is flat; issue 15 asks <= 1.2.
The headline rate is the worst of them (lower is better) against 1.2; the load average is printed.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import text

from bench import BenchResult, analyze

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)
BASE = 10_000
DUE_NOW = 2_000
STEPS = 13
LIMIT = 1.2


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _series(dialect: str) -> tuple[str, str]:
    """(WITH prefix, FROM source) giving x = 1..:n on this database."""
    if dialect == "postgresql":
        return "", "generate_series(1, :n) AS g(x)"
    return "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n) ", "g"


def build(rt, n: int) -> int:
    """n patients, one 13-step campaign, 13 n ledger rows (see the module docstring); the campaign id."""
    from bench.enroll import campaign_13

    with rt.sessions.begin() as s:
        c = campaign_13(s, "scale")
        cid, step_ids = c.id, [st.id for st in sorted(c.steps, key=lambda st: st.position)]
    dialect = rt.engine.dialect.name
    with_, source = _series(dialect)
    naive = (lambda d: d.replace(tzinfo=None)) if dialect == "sqlite" else (lambda d: d)
    with rt.engine.begin() as conn:
        conn.execute(text(
            f"{with_}INSERT INTO subscribers (email, email_key, name, status, consent_source, created_at, updated_at) "
            f"SELECT 'p' || x || '@example.org', 'p' || x || '@example.org', 'Patient ' || x, 'active', 'bench', "
            f":at, :at FROM {source}"), {"n": n, "at": naive(NOW - timedelta(days=60))})
        conn.execute(text("INSERT INTO tags (name, description) VALUES ('rare', ''), ('everyone', '')"))
        conn.execute(text(  # 'rare' on one patient in a hundred (a full page at 10k), 'everyone' on all
            f"{with_}INSERT INTO subscriber_tags (subscriber_id, tag_id) SELECT x, t.id FROM {source} "
            f"JOIN tags t ON t.name = 'everyone' OR (t.name = 'rare' AND x % 100 = 7)"), {"n": n})
        conn.execute(text(
            f"{with_}INSERT INTO enrollments (subscriber_id, campaign_id, enrolled_at, state, source) "
            f"SELECT x, :cid, :at, 'active', 'bench' FROM {source}"), {"n": n, "cid": cid, "at": naive(NOW - timedelta(days=30))})
        for k, sid in enumerate(step_ids, start=1):
            past, future = naive(NOW - timedelta(days=STEPS + 1 - k)), naive(NOW + timedelta(days=k))
            conn.execute(text(
                f"{with_}INSERT INTO deliveries (subscriber_id, enrollment_id, step_id, due_at, status, attempts, "
                f"last_error, sent_at, provider_message_id) "
                f"SELECT x, x, :sid, CASE WHEN x % 13 >= :k THEN :past WHEN :k = 13 AND x <= :due THEN :now ELSE :future END, "
                f"CASE WHEN x % 13 >= :k THEN 'sent' ELSE 'scheduled' END, CASE WHEN x % 13 >= :k THEN 1 ELSE 0 END, '', "
                f"CASE WHEN x % 13 >= :k THEN :past END, CASE WHEN x % 13 >= :k THEN 'm' || x || '.' || :k END "
                f"FROM {source}"),
                {"n": n, "sid": sid, "k": k, "past": past, "future": future, "due": DUE_NOW,
                 "now": naive(NOW - timedelta(minutes=1))})
        analyze(conn, ("subscribers", "enrollments", "deliveries", "steps", "campaigns", "tags", "subscriber_tags"))
    return cid


def _median_ms(fn: Callable[[], object], reps: int, before: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(reps):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def measure(rt, cid: int, n: int, reps: int) -> dict[str, float]:
    from sqlalchemy import select

    from delivery.backends.outbox import OutboxBackend
    from delivery.dispatcher import Dispatcher
    from delivery.counts import counted, ledger_rows, refresh
    from delivery.ledger import LedgerStore
    from drip.models import Campaign, Subscriber
    from subscribers.service import count_subscribers, list_subscribers
    from web.staff.stats import campaign_summaries, step_stats
    from web.staff.subscribers import _timeline

    store = LedgerStore(rt.sessions, "bench-scale")
    out: dict[str, float] = {}
    claimed: list[int] = []

    def claim() -> None:
        claimed[:] = store.claim(NOW, 100, timedelta(minutes=5))
        assert len(claimed) == 100, len(claimed)

    def release() -> None:
        if claimed:
            with rt.engine.begin() as conn:
                conn.execute(text("UPDATE deliveries SET status = 'scheduled', claimed_by = NULL, lease_until = NULL, "
                                  "attempts = 0 WHERE status = 'sending'"))
            claimed.clear()

    out["claim"] = _median_ms(claim, reps, before=release)
    release()
    with OutboxBackend(rt.settings) as backend:
        d = Dispatcher(rt, backend, clock=lambda: NOW)
        d.run_batch()  # warm: templates compiled, caches filled
        out["tick"] = _median_ms(d.run_batch, reps)

    def pages(name: str, fn: Callable[[object], object]) -> None:
        def once() -> None:
            with rt.read_sessions() as db:
                fn(db)
        once()  # warm
        out[name] = _median_ms(once, reps)

    pages("campaigns", lambda db: campaign_summaries(db, counted(rt, db, "campaigns", None, NOW).value))
    pages("campaign", lambda db: (step_stats(db, db.get(Campaign, cid), counted(rt, db, "steps", cid, NOW).value),
                                  counted(rt, db, "activity", cid, NOW)))
    pages("dashboard", lambda db: counted(rt, db, "home", None, NOW))
    from web.staff.subscribers import COUNT_CAP, PAGE_SIZE

    def page(db, search: str | None = None, after: int | None = None, tag: str | None = None) -> None:
        # What the staff list does: one row beyond the page, the total capped (or the cached one).
        list_subscribers(db, search=search, tag=tag, limit=PAGE_SIZE + 1, after=after)
        if search or tag:
            count_subscribers(db, search=search, tag=tag, cap=COUNT_CAP)
        else:
            counted(rt, db, "subscribers", None, NOW)

    pages("list", lambda db: page(db))
    pages("list-deep", lambda db: page(db, after=n // 2))  # the middle of the list, by id
    pages("tag-rare", lambda db: page(db, tag="rare"))  # one patient in a hundred
    pages("tag-everyone", lambda db: page(db, tag="everyone", after=n // 2))
    who = f"p{BASE // 2 + 7}@example.org"
    pages("search-exact", lambda db: page(db, who))
    pages("search-part", lambda db: page(db, f"p{BASE // 2 + 7}@"))
    pages("search-name", lambda db: page(db, "ient 50"))  # 1.1% of the patients at any size
    pages("search-common", lambda db: page(db, "example"))  # everyone: the count stops at its cap

    def timeline(db) -> None:
        sub = db.scalar(select(Subscriber).where(Subscriber.email_key == who))
        _timeline(db, sub, "America/New_York")

    pages("timeline", timeline)
    with rt.read_sessions() as db:
        out["cached"] = float(ledger_rows(db) >= rt.settings.stats_live_rows)
    forced = type(rt)(settings=rt.settings.with_(stats_live_rows=0), engine=rt.engine, sessions=rt.sessions)
    out["recount"] = _median_ms(lambda: refresh(forced, NOW), 1)
    return out


def _runtime(url: str, folder: Path):
    from drip.config import Settings
    from drip.db import make_engine, migrate, session_factory
    from drip.runtime import Runtime

    settings = Settings(database_url=url, data_dir=folder / "data", outbox_dir=folder / "outbox", secret_key="bench",
                        batch_size=100, frequency_cap=10)
    engine = make_engine(url)
    migrate(engine)
    return Runtime(settings, engine, session_factory(engine))


def _one(url_for: Callable[[str], str], size: int, reps: int, folder: Path) -> dict:
    result: dict = {}
    for label, n in (("base", BASE), ("big", size)):
        rt = _runtime(url_for(label), folder / label)
        t = time.perf_counter()
        cid = build(rt, n)
        built = time.perf_counter() - t
        result[label] = measure(rt, cid, n, reps)
        result[f"build_{label}_s"] = round(built, 1)
        rt.engine.dispose()
        if rt.read_sessions.kw.get("bind") is not None:
            rt.read_sessions.kw["bind"].dispose()
    return result


def _pg(size: int, reps: int, folder: Path) -> tuple[dict | None, str]:
    from bench.enroll import pg_schema

    urls: dict[str, tuple[str, str]] = {}
    admin = None
    try:
        def url_for(label: str) -> str:
            nonlocal admin
            url, schema, admin = pg_schema()
            if url is None:
                raise RuntimeError(schema)
            urls[label] = (url, schema)
            return url
        return _one(url_for, size, reps, folder), ""
    except RuntimeError as exc:
        return None, str(exc)
    finally:
        if admin is not None:
            with admin.begin() as conn:
                for _url, schema in urls.values():
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()


def run(quick: bool = False, size: int | None = None) -> BenchResult:
    size = size or (50_000 if quick else 100_000)
    reps = 3 if quick else 5
    details: dict = {"patients": f"{BASE:,} vs {size:,} ({STEPS * BASE:,} vs {STEPS * size:,} ledger rows)",
                     "load average before": _load()}
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="drip-bench-scale-") as tmp:
        folder = Path(tmp)
        runs = {"sqlite": _one(lambda label: f"sqlite:///{folder / label / 'drip.sqlite3'}", size, reps, folder / "sqlite")}
        pg, note = _pg(size, reps, folder / "pg")
        if pg is not None:
            runs["postgresql"] = pg
        else:
            details["postgresql"] = note
    ratios: dict = {}
    for db, r in runs.items():
        for size_label, cached in (("10k", r["base"].pop("cached")), ("big", r["big"].pop("cached"))):
            details[f"{db} counts at {size_label}"] = "from the worker's cache" if cached else "counted live"
        base_recount, big_recount = r["base"].pop("recount"), r["big"].pop("recount")
        details[f"{db} worker recount (background, not a page)"] = f"{base_recount:.0f} ms -> {big_recount:.0f} ms"
        for op, base_ms in r["base"].items():
            big_ms = r["big"][op]
            ratio = big_ms / base_ms if base_ms else float("inf")
            ratios[f"{db} {op}"] = ratio
            details[f"{db} {op}"] = f"{base_ms:.2f} ms -> {big_ms:.2f} ms ({ratio:.2f}x)"
        details[f"{db} build s"] = f"{r['build_base_s']} / {r['build_big_s']}"
    worst_op = max(ratios, key=ratios.get)
    worst = ratios[worst_op]
    details["worst"] = f"{worst_op} {worst:.2f}x (goal <= {LIMIT}x)"
    details["within goal"] = worst <= LIMIT
    details["ratios"] = {k: round(v, 2) for k, v in ratios.items()}
    details["load average"] = _load()
    return BenchResult("scale", "x", worst, LIMIT, details,
                       label=f"worst cost ratio {size:,} / {BASE:,} patients (lower is better)",
                       baseline_label="goal")
