"""`drip bench import`: CSV rows/s into a fresh SQLite file, and the memory it takes.

drip: `subscribers.importer.import_csv` (streamed, 5,000-row chunks, one ON CONFLICT upsert and
one key lookup per chunk, tags linked in bulk), 1,000,000 rows (quick: 50,000).
Baseline, same run: the obvious ORM loop, one row at a time (look the address up, `session.add`,
`flush`, the same for each tag link) over the first 20,000 rows (quick: 5,000) of the same kind
of file, in one transaction. Both validate every address, zone, name and tag the same way.

The file looks like a clinic's export: common mail domains, ~1% repeats of an address in another
case, ~0.1% bad addresses, 3 rows in 8 without a zone, every row tagged, a third with
two tags. Rates are rows per CPU second of this process (`time.process_time`): both sides are CPU-bound
(SQLite in-process, one transaction each), and the machine is shared, so wall time swings with
other people's load between the two phases; wall seconds are in the details too.

Tag-linked import, same run: the tag every row carries ("patients") is linked to a published
13-step campaign, so each imported patient is also enrolled (13 deliveries each): 100,000 rows
(quick: 10,000) on SQLite and, when it answers, on PostgreSQL (a schema of its own, dropped after).
Reported as rows/s and enrollments/s, wall clock.

Memory: tracemalloc peak of the same importer on a file 3x (quick) or 5x larger than another
(the two peaks should be about equal: memory does not grow with the file), plus the process's
max RSS after everything.
"""

from __future__ import annotations

import csv
import os
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bench import BenchResult
from drip.db import make_engine, migrate, session_factory
from drip.models import Subscriber, SubscriberStatus, SubscriberTag, Tag, utcnow
from subscribers.importer import import_csv
from subscribers.service import clean_name, clean_tag, find_subscriber, normalize_email, validate_zone

_FIRST = ["maria", "jose", "aiko", "chris", "priya", "li", "anna", "john", "noor", "tomas", "grace", "omar"]
_LAST = ["lopez", "alvarez", "tanaka", "oneil", "raman", "wei", "muller", "smith", "haddad", "obriain", "kim"]
_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com", "proton.me",
            "comcast.net", "mainehealth.org", "portland-mail.example"]
_ZONES = ["America/New_York", "America/Chicago", "", "America/Los_Angeles", "Europe/London", "America/Denver", "", ""]


def write_csv(path: Path, n: int) -> Path:
    """n data rows as a clinic export would have them (see the module docstring)."""
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["Email", "Name", "Timezone", "Tags", "Phone"])
        for i in range(n):
            j = i - 1 if i % 100 == 99 else i  # every 100th row repeats the previous address in upper case
            first, last = _FIRST[j % len(_FIRST)], _LAST[(j // 7) % len(_LAST)]
            local = f"{first}.{last}{j}"
            email = f"{local.upper() if j != i else local}@{_DOMAINS[j % len(_DOMAINS)]}"
            if i % 1000 == 500:
                email = email.replace("@", " at ")
            tags = "patients;newsletter" if i % 3 == 0 else "patients"
            out.writerow([email, f"{first.title()} {last.title()}", _ZONES[i % len(_ZONES)], tags, "207-555-0142"])
    return path


def fresh_db(path: Path) -> tuple[sessionmaker[Session], object]:
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    return session_factory(engine), engine


def row_by_row(sessions: sessionmaker[Session], path: Path) -> int:
    """The baseline: one ORM object and one flush per row and per tag link. Returns rows stored."""
    now = utcnow()
    stored = 0
    tags: dict[str, Tag] = {}
    with sessions() as session, session.begin(), path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            try:
                email, key = normalize_email(row["Email"])
                zone = validate_zone(row["Timezone"])
            except Exception:
                continue
            name = clean_name(row["Name"])
            sub = find_subscriber(session, key)
            if sub is None:
                sub = Subscriber(email=email, email_key=key, name=name, tz=zone, status=SubscriberStatus.ACTIVE.value,
                                 consent_source="import", consent_at=now, created_at=now, updated_at=now)
                session.add(sub)
            else:
                sub.name = name or sub.name
                sub.tz = zone or sub.tz
            session.flush()
            for raw in row["Tags"].split(";"):
                tag_name = clean_tag(raw)
                tag = tags.get(tag_name)
                if tag is None:
                    tag = session.scalar(select(Tag).where(Tag.name == tag_name)) or Tag(name=tag_name)
                    session.add(tag)
                    session.flush()
                    tags[tag_name] = tag
                if session.get(SubscriberTag, (sub.id, tag.id)) is None:
                    session.add(SubscriberTag(subscriber_id=sub.id, tag_id=tag.id))
                    session.flush()
            stored += 1
    return stored


def _peak(sessions: sessionmaker[Session], path: Path) -> int:
    tracemalloc.start()
    try:
        import_csv(sessions, path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _linked(url: str, path: Path) -> dict:
    """Import `path` with its "patients" tag linked to a 13-step campaign: rows and enrollments per second."""
    from bench.enroll import campaign_13

    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    try:
        with sessions.begin() as s:
            s.add(Tag(name="patients", campaign_id=campaign_13(s, "onboarding").id))
        wall = time.perf_counter()
        report = import_csv(sessions, path, clinic_tz="America/New_York")
        wall = time.perf_counter() - wall
    finally:
        engine.dispose()
    return {"rows": report.rows, "enrolled": report.enrolled, "seconds": round(wall, 2),
            "rows_per_s": round(report.rows / wall), "enrolled_per_s": round(report.enrolled / wall)}


def _linked_both(folder: Path, n: int) -> dict:
    from sqlalchemy import text

    from bench.enroll import pg_schema

    path = write_csv(folder / "linked.csv", n)
    out = {f"linked_sqlite_{k}": v for k, v in _linked(f"sqlite:///{folder / 'linked.sqlite3'}", path).items()}
    url, schema, admin = pg_schema()
    if url is None:
        out["linked_postgresql"] = schema
        return out
    try:
        out.update({f"linked_pg_{k}": v for k, v in _linked(url, path).items()})
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return out


def run(quick: bool) -> BenchResult:
    n = 50_000 if quick else 1_000_000
    n_base = 5_000 if quick else 20_000
    mem_small, mem_large = (15_000, 45_000) if quick else (50_000, 250_000)  # both several 5,000-row chunks
    with tempfile.TemporaryDirectory(prefix="drip-bench-import-") as tmp:
        folder = Path(tmp)
        big = write_csv(folder / "patients.csv", n)

        sessions, engine = fresh_db(folder / "bulk.sqlite3")
        wall, cpu = time.perf_counter(), time.process_time()
        report = import_csv(sessions, big)
        bulk_wall, bulk_cpu = time.perf_counter() - wall, time.process_time() - cpu
        engine.dispose()

        sample = write_csv(folder / "sample.csv", n_base)
        sessions, engine = fresh_db(folder / "orm.sqlite3")
        wall, cpu = time.perf_counter(), time.process_time()
        stored = row_by_row(sessions, sample)
        base_wall, base_cpu = time.perf_counter() - wall, time.process_time() - cpu
        engine.dispose()

        sessions, engine = fresh_db(folder / "mem.sqlite3")
        import_csv(sessions, write_csv(folder / "warm.csv", 6_000))  # statement caches, imports: not per row
        small = _peak(sessions, write_csv(folder / "small.csv", mem_small))
        large = _peak(sessions, write_csv(folder / "large.csv", mem_large))
        engine.dispose()
        file_mb = big.stat().st_size / 1e6
        linked = _linked_both(folder, 10_000 if quick else 100_000)

    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return BenchResult(
        bench="import",
        unit="rows/cpu-s",
        rate=report.rows / bulk_cpu,
        baseline=n_base / base_cpu,
        label=f"import_csv (bulk upsert, {n:,} rows)",
        baseline_label=f"ORM add+flush per row ({n_base:,} rows)",
        details={
            "rows": report.rows,
            "created": report.created,
            "duplicates": report.duplicates,
            "skipped": report.skipped,
            "tag_links": report.tagged,
            "file_mb": round(file_mb, 1),
            "cpu_seconds": round(bulk_cpu, 2),
            "wall_seconds": round(bulk_wall, 2),
            "wall_rows_per_s": round(report.rows / bulk_wall),
            "baseline_rows_stored": stored,
            "baseline_cpu_seconds": round(base_cpu, 2),
            "baseline_wall_seconds": round(base_wall, 2),
            "baseline_wall_rows_per_s": round(n_base / base_wall),
            f"peak_mb_{mem_small}_rows": round(small / 1e6, 2),
            f"peak_mb_{mem_large}_rows": round(large / 1e6, 2),
            "peak_growth": round(large / small, 2),
            "max_rss_mb": round(maxrss_mb, 1),
            **linked,
            "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        },
    )
