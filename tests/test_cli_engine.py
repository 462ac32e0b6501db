"""The engine's commands end to end on a SQLite file: import, publish, enroll, run --once, status,
campaign edits, newsletters; and their bad-input errors (one line, exit 2, nothing written)."""

from __future__ import annotations

import os
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


def count(env, model, *where) -> int:
    engine = make_engine(env["DRIP_DATABASE_URL"])
    with session_factory(engine)() as s:
        n = s.scalar(select(func.count()).select_from(model).where(*where))
    engine.dispose()
    return n


def test_import_enroll_run_status(env, seed_path, drip):
    r = drip("import", str(seed_path), "--campaign", "onboarding", "--every", "0d", "--window", "daily 00:00-23:59",
             "--publish", env=env)
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
])
def test_bad_input_one_line_exit_2_nothing_written(env, seed_path, args, message, drip):
    args = [str(seed_path) if a == "SEED" else a for a in args]
    r = drip(*args, env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("drip: error:") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    db = Path(env["DRIP_DATABASE_URL"].split("///")[1])
    if db.exists():
        assert count(env, Campaign) == 0


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
