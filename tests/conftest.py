"""Shared fixtures: settings in a temp folder, a migrated database on SQLite and on PostgreSQL.

PostgreSQL tests use `DRIP_TEST_PG_URL` (default: 127.0.0.1:5432, database `test`) in a schema of
their own per test session. Locally they skip with the reason shown when no server answers;
under CI (`CI=true`) a missing server is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from drip.config import Clinic, Settings
from drip.db import make_engine, migrate, session_factory
from drip.models import Base
from drip.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "drip" / "samples" / "acupuncture-pain-relief.txt"  # shipped with the project
FIXTURES = ROOT / "tests" / "fixtures"
PG_URL = os.environ.get("DRIP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def need(condition: bool, reason: str) -> None:
    """Skip locally, fail under CI: a missing service in CI is a failure."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required under CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _restore_gc():
    """`drip run` and `drip bench` tune the collector for a worker (drip.runtime.tune_worker_gc);
    run in this process by a test, that must not carry over to every later test."""
    import gc

    threshold = gc.get_threshold()
    yield
    if gc.get_freeze_count():
        gc.unfreeze()
    gc.set_threshold(*threshold)


CHROMIUM = "/usr/bin/chromium"


def _install_chromium() -> str:
    """apt-get the browser (Debian's package: no browser download of Playwright's own)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    update = subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True, timeout=900)
    install = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], env=env,
                             capture_output=True, text=True, timeout=1800)
    if install.returncode != 0:
        lines = (update.stderr + install.stderr).strip().splitlines()
        return lines[-1] if lines else "apt-get install chromium failed"
    return ""


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium for browser tests; the test setup installs it (as root) when it is missing."""
    if not os.path.exists(CHROMIUM):
        problem = "not running as root, so it cannot be installed here"
        if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
            problem = _install_chromium() or "apt-get install chromium did not provide it"
        need(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing ({problem})")
    return CHROMIUM


@pytest.fixture(scope="session")
def seed_path() -> Path:
    need(SEED.exists(), f"seed article not found at {SEED}")
    return SEED


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        clinic=Clinic(),
        data_dir=tmp_path / "data",
        outbox_dir=tmp_path / "outbox",
        secret_key="test-secret-key-not-for-production",
        base_url="https://clinic.test",
    )


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dbtemplate") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


def _pg_available() -> bool:
    try:
        engine = make_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_schema_url():
    """A migrated schema of this test session's own in the PostgreSQL `test` database."""
    need(_pg_available(), f"PostgreSQL not reachable at {PG_URL}")
    schema = f"drip_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _truncate_pg(engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def runtime(request, settings: Settings, _sqlite_template: Path, tmp_path: Path):
    """A migrated, empty database on SQLite and (second param) PostgreSQL."""
    if request.param == "sqlite":
        db = tmp_path / "drip.sqlite3"
        shutil.copy(_sqlite_template, db)
        url = f"sqlite:///{db}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    s = settings.with_(database_url=url)
    engine = make_engine(url)
    if request.param == "postgres":
        _truncate_pg(engine)
    rt = Runtime(settings=s, engine=engine, sessions=session_factory(engine))
    yield rt
    rt.close()


@pytest.fixture
def sqlite_runtime(settings: Settings, _sqlite_template: Path, tmp_path: Path):
    """SQLite only, for tests that are about the embedded default."""
    db = tmp_path / "drip.sqlite3"
    shutil.copy(_sqlite_template, db)
    s = settings.with_(database_url=f"sqlite:///{db}")
    engine = make_engine(s.db_url)
    rt = Runtime(settings=s, engine=engine, sessions=session_factory(engine))
    yield rt
    rt.close()
