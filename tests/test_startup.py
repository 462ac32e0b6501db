"""Start-up: which modules `drip` loads before it does anything, and the no-op `drip run --once`.

Module lists, not timings (`drip bench startup` measures those): a heavy import that creeps back
into a command module's top shows here as its name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from delivery.due_check import anything_due
from drip.db import make_engine, migrate, stored_revisions
from drip.models import Broadcast, Delivery
from drip.schema import script_heads
from tests.factories import make_subscriber

ROOT = Path(__file__).resolve().parents[1]

#: Nothing a help text needs. (typer itself brings click's copy and rich's console.)
HEAVY = {
    "sqlalchemy", "alembic", "starlette", "fastapi", "uvicorn", "mjml", "css_inline", "jinja2", "sendgrid",
    "selectolax", "docx", "markdown_it", "psycopg", "apscheduler", "argon2", "itsdangerous", "email_validator",
    "orjson", "pydantic", "campaigns", "delivery", "subscribers", "web", "scheduler",
    "rich.markdown", "drip.models", "drip.db", "drip.runtime",
}
HELP = [["--help"], ["split", "--help"], ["preview", "--help"], ["import", "--help"], ["enroll", "--help"],
        ["run", "--help"], ["status", "--help"], ["serve", "--help"], ["bench", "--help"], ["campaigns", "--help"],
        ["campaigns", "show", "--help"], ["subscribers", "--help"], ["subscribers", "import", "--help"],
        ["broadcast", "--help"], ["staff", "--help"], ["api-token", "--help"]]

PROBE = """
import json, sys
from drip.cli import app, main


def every_help(group, path=()):
    yield [*path, "--help"]
    for name, command in sorted(getattr(group, "commands", {}).items()):
        yield from every_help(command, (*path, name))


commands = json.loads(sys.argv[1])
if commands == "every":  # every command and group there is, including ones added later
    import typer.main
    commands = list(every_help(typer.main.get_command(app)))
codes = []
for argv in commands:
    try:
        main(argv)
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code or 0)
print(json.dumps({"codes": codes, "modules": sorted(sys.modules), "commands": commands}), file=sys.stderr)
"""


def probe(commands: list[list[str]] | str, env: dict | None = None) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(commands)], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "80", **(env or {})}, timeout=120)
    return {**json.loads(r.stderr.strip().splitlines()[-1]), "stdout": r.stdout}


def heavy(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_help_of_every_command_loads_nothing_heavy():
    result = probe("every")
    assert len(result["commands"]) >= len(HELP) and all(c in result["commands"] for c in HELP)
    assert result["codes"] == [0] * len(result["commands"])
    assert heavy(result["modules"]) == []
    assert "Usage: drip serve" in result["stdout"] and "Usage: drip subscribers tag" in result["stdout"]


def test_help_labels_values_in_the_classic_style():
    out = probe([["status", "--help"], ["campaigns", "show", "--help"], ["serve", "--help"]])["stdout"]
    assert "<str>" not in out and "<int>" not in out and "<bool>" not in out and "{slug}" not in out
    assert "--campaign TEXT" in out and "--limit INTEGER" in out
    assert "Usage: drip campaigns show [OPTIONS] SLUG" in out


def test_serve_help_names_the_staff_app_and_the_api():
    out = probe([["serve", "--help"]])["stdout"]
    assert "/staff/" in out and "drip staff add" in out
    assert "/api/v1/" in out and "/api/v1/docs" in out and "/api/v1/openapi.json" in out


def test_every_help_line_fits_80_columns():
    out = probe("every")["stdout"]
    assert max(len(line) for line in out.splitlines()) <= 80


@pytest.fixture
def empty_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'drip.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return {"DRIP_DATABASE_URL": url, "DRIP_DATA_DIR": str(tmp_path / "data"), "DRIP_OUTBOX_DIR": str(tmp_path / "outbox"),
            "DRIP_SECRET_KEY": "startup-test", "DRIP_CONFIG": str(tmp_path / "none.toml")}


def test_run_once_with_nothing_due_loads_neither_the_orm_nor_alembic_nor_the_renderer(empty_db):
    result = probe([["run", "--once"]], env=empty_db)
    assert result["codes"] == [0]
    loaded = set(result["modules"])
    for name in ("sqlalchemy", "alembic", "mjml", "jinja2", "campaigns.render", "delivery.dispatcher",
                 "delivery.backends", "sendgrid", "drip.models"):
        assert name not in loaded, name
    assert "sqlite3" in loaded  # it did ask the database


def test_script_heads_agree_with_alembic():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "drip" / "migrations"))
    assert script_heads() == frozenset(ScriptDirectory.from_config(cfg).get_heads())


def test_script_heads_of_branches_and_merges(tmp_path):
    def rev(name: str, down: str) -> None:
        (tmp_path / f"{name}.py").write_text(f'"""{name}"""\nrevision: str = "{name}"\ndown_revision = {down}\n')

    rev("0001", "None")
    rev("0002a", "'0001'")
    rev("0002b", '"0001"')
    assert script_heads(tmp_path) == {"0002a", "0002b"}  # side by side branches: both heads
    rev("0003", "('0002a', '0002b')")
    assert script_heads.__wrapped__(tmp_path) == {"0003"}  # a merge revision closes them
    (tmp_path / "odd.py").write_text("REVISION = 'x'\n")
    assert script_heads.__wrapped__(tmp_path) == frozenset()  # unknown shape: Alembic decides


def test_migrate_leaves_alembic_alone_at_heads_and_runs_it_otherwise(tmp_path, monkeypatch):
    import alembic.command

    engine = make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    migrate(engine)
    assert stored_revisions(engine) == set(script_heads())
    calls = []
    monkeypatch.setattr(alembic.command, "upgrade", lambda cfg, target: calls.append(target))
    migrate(engine)
    assert calls == []
    with engine.begin() as conn:
        # one head behind (the schema has several independent heads, one row each)
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'older' "
                             "WHERE version_num = (SELECT max(version_num) FROM alembic_version)")
    migrate(engine)
    assert calls == ["heads"]
    engine.dispose()


NOW = datetime(2026, 12, 1, 14, 0, tzinfo=timezone.utc)


def test_anything_due_asks_what_a_tick_would_act_on(runtime):
    url = runtime.settings.db_url
    assert anything_due(url, NOW) is False
    with runtime.sessions.begin() as s:
        sub = make_subscriber(s, "due@example.org")
        later = Delivery(subscriber_id=sub.id, due_at=NOW + timedelta(minutes=1), status="scheduled")
        s.add(later)
    assert anything_due(url, NOW) is False  # due a minute from now
    assert anything_due(url, NOW + timedelta(minutes=1)) is True
    with runtime.sessions.begin() as s:
        row = s.get(Delivery, later.id)
        row.status, row.lease_until = "sending", NOW + timedelta(minutes=5)
    assert anything_due(url, NOW + timedelta(minutes=1)) is False  # claimed, lease still running
    assert anything_due(url, NOW + timedelta(minutes=6)) is True  # its worker died: due again
    with runtime.sessions.begin() as s:
        s.get(Delivery, later.id).status = "sent"
        s.add(Broadcast(slug="news", title="News", subject="News", body="b", status="scheduled",
                        send_at=NOW + timedelta(hours=1)))
    assert anything_due(url, NOW) is False
    assert anything_due(url, NOW + timedelta(hours=1)) is True  # a newsletter to fire or close


def test_anything_due_cannot_tell_without_a_current_schema(tmp_path, sqlite_runtime):
    # SQLite only: this test's own copy of the database. (The PostgreSQL schema is shared by the
    # session, and its alembic_version is not truncated between tests.)
    assert anything_due(f"sqlite:///{tmp_path / 'missing.sqlite3'}", NOW) is None  # the full path creates it
    assert anything_due("sqlite://", NOW) is None
    assert anything_due("mysql://x@y/z", NOW) is None
    with sqlite_runtime.engine.begin() as conn:
        # one head behind (the schema has several independent heads, one row each)
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'older' "
                             "WHERE version_num = (SELECT max(version_num) FROM alembic_version)")
    assert anything_due(sqlite_runtime.settings.db_url, NOW) is None  # the full path migrates first


def test_run_once_with_nothing_due_still_refuses_a_sendgrid_backend_without_a_key(empty_db):
    result = probe([["run", "--once"]], env={**empty_db, "DRIP_BACKEND": "sendgrid", "SENDGRID_API_KEY": ""})
    assert result["codes"] == [3]  # a configuration error, as the full path gives once something is due


def test_bench_startup_reports_each_command_against_typer_with_the_load(monkeypatch):
    import bench.startup as startup

    monkeypatch.setattr(startup, "HELP_COMMANDS", [("--help",), ("run", "--help")])
    result = startup.run(quick=True)
    line = json.loads(result.json_line())
    assert line["bench"] == "startup" and line["unit"] == "ms" and line["baseline"] > 0
    assert {"drip --help", "drip run --help", "drip run --once, nothing due", "load average"} <= set(line)
    assert line["ratio"] == round(result.rate / result.baseline, 2)  # figures only: no timing is asserted
