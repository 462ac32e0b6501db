"""The engine's commands end to end on a SQLite file: import, publish, enroll, run --once, status,
campaign edits, newsletters; and their bad-input errors (one line, exit 2, nothing written)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from drip.db import make_engine, session_factory
from drip.models import Campaign, Delivery

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path, monkeypatch):
    values = {
        "DRIP_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_OUTBOX_DIR": str(tmp_path / "outbox"),
        "DRIP_SECRET_KEY": "cli-test-secret",
        "DRIP_CONFIG": str(tmp_path / "none.toml"),
        "COLUMNS": "200",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def drip(capsys):
    """Run `drip ARGS` in this process (the console script's own `main`, exit codes included)."""

    def run(*args: str, env: dict | None = None) -> Result:
        from drip.cli import main

        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def test_console_script_runs_as_a_process(env):
    """One real subprocess through the installed entry point: exit code and one-line error."""
    exe = Path(sys.executable).with_name("drip")
    r = subprocess.run([str(exe), "campaigns", "show", "nope"], cwd=ROOT, env={**os.environ, **env},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "drip: error: SLUG: no campaign 'nope'"  # the positional argument, not --campaign


def test_publishing_with_review_warnings_needs_yes(env, seed_path, drip):
    r = drip("import", str(seed_path), "--campaign", "seed", env=env)
    assert r.returncode == 0, r.stderr
    r = drip("campaigns", "publish", "seed", env=env)  # not a terminal: no question, a refusal
    assert r.returncode == 2 and "work may work" in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "drip: error: seed: 2 review warning(s) open (listed above); fix them or re-run with --yes")
    assert count(env, Campaign, Campaign.status == "published") == 0
    r = drip("import", str(seed_path), "--campaign", "seed-2", "--publish", env=env)
    assert r.returncode == 2 and count(env, Campaign) == 1  # nothing half-written: the import rolled back
    r = drip("campaigns", "publish", "seed", "--yes", env=env)
    assert r.returncode == 0 and count(env, Campaign, Campaign.status == "published") == 1


def count(env, model, *where) -> int:
    engine = make_engine(env["DRIP_DATABASE_URL"])
    with session_factory(engine)() as s:
        n = s.scalar(select(func.count()).select_from(model).where(*where))
    engine.dispose()
    return n


def test_import_enroll_run_status(env, seed_path, drip):
    r = drip("import", str(seed_path), "--campaign", "onboarding", "--every", "0d", "--window", "daily 00:00-23:59",
             "--publish", "--yes", env=env)  # the seed has two review warnings (test_review.py)
    assert r.returncode == 0, r.stderr
    assert "13 steps" in r.stdout and "published" in r.stdout
    assert drip("subscribers", "add", "maria@example.org", "--name", "Maria", "--tz", "Europe/Berlin", env=env).returncode == 0
    r = drip("enroll", "maria@example.org", "--campaign", "onboarding", env=env)
    assert r.returncode == 0, r.stderr
    assert count(env, Delivery) == 13
    import gc

    assert gc.get_freeze_count() == 0
    r = drip("run", "--once", env=env)
    assert r.returncode == 0, r.stderr
    assert "sent 1" in r.stdout  # the first step is due now; the cap (1/day) holds the rest
    assert gc.get_freeze_count() > 10_000  # the worker froze its start-up heap (drip.runtime)
    assert gc.get_threshold()[0] == 10_000
    assert len(list(Path(env["DRIP_OUTBOX_DIR"]).glob("*.eml"))) == 1
    r = drip("status", env=env)
    assert r.returncode == 0 and "Maria" in r.stdout and "sent" in r.stdout and "scheduled" in r.stdout
    r = drip("campaigns", "show", "onboarding", env=env)
    assert "Release of Endorphins" in r.stdout
    r = drip("campaigns", "edit", "onboarding", "2", "--subject", "A better subject", env=env)
    assert r.returncode == 0 and "version 2" in r.stdout
    r = drip("campaigns", "pause", "onboarding", env=env)
    assert r.returncode == 0
    assert count(env, Campaign, Campaign.status == "paused") == 1


@pytest.mark.parametrize("args,message", [
    (["enroll", "nobody@example.org", "--campaign", "onboarding"], "no subscriber"),
    (["campaigns", "show", "nope"], "no campaign 'nope'"),
    (["import", "/nonexistent/article.txt", "--campaign", "x"], "article.txt"),
    (["import", "SEED", "--campaign", "Bad Slug"], "slug"),
    (["import", "SEED", "--campaign", "ok", "--every", "2 fortnights"], "--every"),
    (["subscribers", "add", "not-an-address"], "email"),
    (["subscribers", "add", "a@example.org", "--tz", "Mars/Olympus"], "Mars/Olympus"),
    (["broadcast", "schedule", "nope", "--at", "2030-01-01 09:00"], "no newsletter"),
    (["broadcast", "schedule", "NEWS", "--at", "9999-12-31"], "YYYY-MM-DD HH:MM"),
    (["broadcast", "schedule", "NEWS", "--at", "9999-12-31 23:59"], "5 years ahead"),
    (["broadcast", "schedule", "NEWS", "--at", "9999-12-31 23:59", "--local"], "5 years ahead"),
    (["broadcast", "reschedule", "NEWS", "--at", "9999-12-31 23:59"], "only a scheduled or paused"),
    (["broadcast", "resume", "NEWS"], "only a paused"),
])
def test_bad_input_one_line_exit_2_nothing_written(env, seed_path, args, message, drip):
    if "NEWS" in args:  # a draft newsletter to a list with one patient
        assert drip("subscribers", "add", "a@example.org", "--tag", "monthly", env=env).returncode == 0
        assert drip("broadcast", "create", "news", "--template", "holiday-hours", "--list", "monthly",
                    env=env).returncode == 0
    args = [str(seed_path) if a == "SEED" else "news" if a == "NEWS" else a for a in args]
    r = drip(*args, env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("drip: error:") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    db = Path(env["DRIP_DATABASE_URL"].split("///")[1])
    if db.exists():
        assert count(env, Campaign) == 0 and count(env, Delivery) == 0


def test_newsletter_commands(env, seed_path, drip):
    assert drip("subscribers", "add", "a@example.org", "--tag", "monthly", "--tz", "Asia/Tokyo", env=env).returncode == 0
    r = drip("broadcast", "create", "holiday", "--template", "holiday-hours", "--list", "monthly", env=env)
    assert r.returncode == 0, r.stderr
    r = drip("broadcast", "schedule", "holiday", "--at", "2030-12-01 09:00", "--local", env=env)
    assert r.returncode == 0 and "1 recipients" in r.stdout, r.stderr
    r = drip("broadcast", "show", "holiday", env=env)
    assert "scheduled: 1" in r.stdout and "09:00 local" in r.stdout
    r = drip("broadcast", "cancel", "holiday", env=env)
    assert r.returncode == 0 and count(env, Delivery, Delivery.status == "cancelled") == 1
    r = drip("broadcast", "create", "art", "--article", str(seed_path), "--list", "monthly", env=env)
    assert r.returncode == 0, r.stderr


def test_newsletter_schedule_again_moves_it_pause_resume_cancel(env, drip):
    from datetime import datetime, timedelta, timezone

    first, later = (datetime.now(timezone.utc) + timedelta(days=d) for d in (30, 90))  # days: no time-of-day edge
    at = lambda d: f"{d:%Y-%m-%d} 09:00"  # noqa: E731
    assert drip("subscribers", "add", "a@example.org", "--tag", "monthly", env=env).returncode == 0
    assert drip("broadcast", "create", "news", "--template", "holiday-hours", "--list", "monthly", env=env).returncode == 0
    assert drip("broadcast", "schedule", "news", "--at", at(first), env=env).returncode == 0
    r = drip("broadcast", "schedule", "news", "--at", at(later), env=env)
    assert r.returncode == 0 and "1 recipients" in r.stdout, r.stderr
    dues = _dues(env)
    assert len(dues) == 1 and dues[0].date() == later.date(), dues  # the email moved, not only the label
    r = drip("broadcast", "pause", "news", env=env)
    assert r.returncode == 0 and "1 pending emails held" in r.stdout
    assert "paused; send at -" in drip("broadcast", "show", "news", env=env).stdout
    r = drip("broadcast", "resume", "news", env=env)
    assert r.returncode == 0 and f"next {later:%Y-%m-%d}" in r.stdout, r.stdout
    r = drip("broadcast", "create", "weekly", "--template", "holiday-hours", "--list", "monthly", env=env)
    assert drip("broadcast", "schedule", "weekly", "--cron", "0 9 * * mon", env=env).returncode == 0
    r = drip("broadcast", "reschedule", "weekly", "--cron", "30 8 * * fri", env=env)
    assert r.returncode == 0 and "next occurrence" in r.stdout and "cron 30 8 * * fri" in r.stdout, r.stderr
    assert drip("broadcast", "pause", "weekly", env=env).returncode == 0
    assert drip("broadcast", "cancel", "weekly", env=env).returncode == 0
    r = drip("broadcast", "show", "weekly", env=env)
    assert "cancelled; next -" in r.stdout, r.stdout
    listing = [line for line in drip("broadcast", "list", env=env).stdout.splitlines() if "weekly" in line]
    assert listing and not re.search(r"\d{4}-\d\d-\d\d", listing[0]), listing  # no next date


def _dues(env) -> list:
    engine = make_engine(env["DRIP_DATABASE_URL"])
    try:
        with session_factory(engine)() as s:
            return list(s.scalars(select(Delivery.due_at)))
    finally:
        engine.dispose()


def test_retention_counts_then_applies(env, drip, monkeypatch):
    r = drip("retention", env=env)
    assert r.returncode == 2 and r.stderr.strip() == (
        "drip: error: --days: no retention is set: set it on Settings or DRIP_RETENTION_DAYS, or pass --days N")
    monkeypatch.setenv("DRIP_RETENTION_DAYS", "30")
    r = drip("retention", env=env)
    assert r.returncode == 0 and r.stdout.startswith("would delete (--apply deletes): 0 delivery rows and 0 provider")
    r = drip("retention", "--days", "30", "--apply", env=env)
    assert r.returncode == 0 and r.stdout.startswith("deleted: 0 delivery rows")


def test_cadence_command_sets_and_shows_the_plan(env, seed_path, drip):
    assert drip("import", str(seed_path), "--campaign", "seed", "--business-days", "--send-time", "10:15",
                env=env).returncode == 0
    r = drip("campaigns", "cadence", "seed", env=env)
    assert r.returncode == 0 and "seed: business days, sent at 10:15" in r.stdout
    lines = [line for line in r.stdout.splitlines() if re.match(r"\s+\d+\. ", line)]
    assert len(lines) == 13 and all(line.endswith("10:15") for line in lines)
    assert lines[0].startswith("   1. at once: ") and all(": " in line and "business day" in line for line in lines[1:])
    r = drip("campaigns", "cadence", "seed", "--calendar-days", "--send-time", "", env=env)
    assert r.returncode == 0 and "calendar days, sent at the time of enrollment" in r.stdout
    r = drip("campaigns", "cadence", "seed", "--send-time", "7pm", env=env)
    assert r.returncode == 2 and "HH:MM" in r.stderr


def test_retention_uses_the_value_saved_on_settings(env, drip):
    assert drip("retention", env=env).returncode == 2  # nothing set (and the database is migrated now)
    from drip.clinic_settings import save_retention

    engine = make_engine(env["DRIP_DATABASE_URL"])
    try:
        with session_factory(engine).begin() as s:
            save_retention(s, 365)
    finally:
        engine.dispose()
    r = drip("retention", env=env)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("(365 days)"), r.stdout
