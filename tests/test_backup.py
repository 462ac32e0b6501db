"""`drip backup` / `drip restore`: a round trip taken while a worker sends to the outbox.

The worker thread is the only writer; after each of its commits the test records the ledger's
counts. A consistent backup holds exactly one of those states (not a mix of two commits), and the
database restored from it finishes the sequence: every row was either sent or still due.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from campaigns.enrollment import enroll
from delivery.backends import get_backend
from delivery.dispatcher import Dispatcher
from drip import backup as bk
from drip.cli import main
from drip.db import make_engine, migrate, session_factory
from drip.models import Delivery, Subscriber
from drip.runtime import Runtime
from tests.conftest import PG_URL, _pg_available, need
from tests.factories import make_campaign

N = 300
PAST = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)  # pinned: due long before "now"


def _counts(sessions) -> dict[str, int]:
    with sessions() as s:
        return dict(s.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())


def _seed(rt: Runtime) -> None:
    with rt.sessions.begin() as s:
        c = make_campaign(s, n_items=0)  # one email per patient
        subs = [Subscriber(email=f"b{i}@example.org", email_key=f"b{i}@example.org", status="active") for i in range(N)]
        s.add_all(subs)
        s.flush()
        for sub in subs:
            enroll(s, sub, c, PAST, clinic_tz="UTC")


class RecordingDispatcher(Dispatcher):
    """Notes the ledger's counts after every commit the worker makes (it is the only writer)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.states: list[dict[str, int]] = [_counts(self.sessions)]
        for name in ("claim", "record", "reclaim_expired"):
            original = getattr(self.store, name)

            def wrapped(*a, _original=original, **kw):
                result = _original(*a, **kw)
                self.states.append(_counts(self.sessions))
                return result

            setattr(self.store, name, wrapped)


def _round_trip(url: str, restore_url: str, settings, tmp_path: Path) -> None:
    engine = make_engine(url)
    migrate(engine)
    s0 = settings.with_(database_url=url, batch_size=20, record_every=5, frequency_cap=5)
    rt = Runtime(s0, engine, session_factory(engine))
    _seed(rt)
    errors: list[BaseException] = []
    started = threading.Event()
    with get_backend(s0) as backend:  # the outbox backend: real .eml files
        dispatcher = RecordingDispatcher(rt, backend, worker_id="backup-test")

        def work() -> None:
            try:
                while True:
                    report = dispatcher.run_batch()
                    started.set()
                    if not report.claimed:
                        return
            except BaseException as exc:  # surfaced in the main thread
                errors.append(exc)
                started.set()

        worker = threading.Thread(target=work)
        worker.start()
        started.wait(30)
        files = []
        for i in range(3):  # three backups while the worker sends
            files.append(bk.backup(url, tmp_path / f"drip-{i}.backup"))
        worker.join(120)
    assert not errors, errors
    assert _counts(rt.sessions) == {"sent": N}
    rt.close()

    states = [tuple(sorted(s.items())) for s in dispatcher.states]
    assert any(0 < r.rows.get("sent", 0) < N for r in files), "at least one backup was taken mid-send"
    for report in files:
        assert report.bytes > 0 and report.path.exists()
        assert tuple(sorted(report.rows.items())) in states, f"{report.rows} is not a state the worker committed"

    # Restore the last mid-send backup into an empty database; it must finish the job alone.
    chosen = [r for r in files if 0 < r.rows.get("sent", 0) < N][-1]
    restored = bk.restore(restore_url, chosen.path)
    assert restored.rows == chosen.rows
    engine = make_engine(restore_url)
    rt2 = Runtime(s0.with_(database_url=restore_url, outbox_dir=tmp_path / "outbox2"), engine, session_factory(engine))
    assert _counts(rt2.sessions) == chosen.rows
    with rt2.sessions() as s:
        rows = s.execute(select(Delivery.status, Delivery.sent_at, Delivery.provider_message_id, Delivery.lease_until)).all()
    for status, sent_at, mid, lease in rows:
        assert status in {"sent", "scheduled", "sending"}
        if status == "sent":
            assert sent_at is not None and mid
        if status == "sending":
            assert lease is not None  # due again when the lease runs out
    later = datetime.now(timezone.utc) + timedelta(seconds=s0.lease_seconds + 60)  # past every lease
    with get_backend(rt2.settings) as backend:
        Dispatcher(rt2, backend, worker_id="after-restore", clock=lambda: later).tick()
    assert _counts(rt2.sessions) == {"sent": N}, "every row was either sent or still due"
    rt2.close()


def test_sqlite_backup_while_sending_restores_a_committed_state(settings, tmp_path):
    _round_trip(f"sqlite:///{tmp_path / 'live.sqlite3'}", f"sqlite:///{tmp_path / 'restored.sqlite3'}",
                settings, tmp_path)


@pytest.fixture
def pg_databases():
    """Two fresh databases of this test's own (source, restore target), dropped afterwards."""
    need(_pg_available(), f"PostgreSQL not reachable at {PG_URL}")
    need(bool(_find_pg_dump()), "pg_dump not installed")
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    names = [f"drip_bk_{uuid.uuid4().hex[:8]}_{k}" for k in ("src", "dst")]
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_URL.rsplit("/", 1)[0]
    yield [f"{base}/{name}" for name in names]
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _find_pg_dump() -> str:
    try:
        return bk.pg_tool("pg_dump")
    except bk.BackupError:
        return ""


@pytest.mark.postgres
def test_postgres_backup_while_sending_restores_a_committed_state(settings, tmp_path, pg_databases):
    src, dst = pg_databases
    migrate_engine = make_engine(dst)
    migrate(migrate_engine)  # a migrated, empty schema counts as empty (the container migrates first)
    migrate_engine.dispose()
    _round_trip(src, dst, settings, tmp_path)


# -- the command line ------------------------------------------------------------------------

def _cli(argv, capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli_env(monkeypatch, tmp_path, sqlite_runtime):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIP_SECRET_KEY", "test-secret-key-not-for-production")
    monkeypatch.setenv("DRIP_DATABASE_URL", sqlite_runtime.settings.db_url)
    _seed(sqlite_runtime)
    return sqlite_runtime


def test_cli_backup_then_restore_refuses_a_database_that_is_not_empty(cli_env, capsys, tmp_path, monkeypatch):
    code, out, err = _cli(["backup", str(tmp_path / "a.backup")], capsys)
    assert code == 0, err
    assert f"{N} deliveries ({N} scheduled)" in out
    # into the same, non-empty database: one line, exit 2, nothing changed
    code, out, err = _cli(["restore", str(tmp_path / "a.backup")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "not empty" in err and "Traceback" not in err
    assert _counts(cli_env.sessions) == {"scheduled": N}
    # into a new database: the same rows
    monkeypatch.setenv("DRIP_DATABASE_URL", f"sqlite:///{tmp_path / 'new' / 'drip.sqlite3'}")
    code, out, err = _cli(["restore", str(tmp_path / "a.backup")], capsys)
    assert code == 0, err
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'drip.sqlite3'}")
    assert _counts(session_factory(engine)) == {"scheduled": N}
    engine.dispose()


@pytest.mark.parametrize("content, problem", [
    (None, "no such file"),
    (b"hello, not a database", "not a drip backup"),
    (b"PGDMP\x01\x0e\x00", "a postgresql backup cannot be restored into a sqlite database"),
])
def test_cli_restore_bad_file_is_one_line_exit_2(cli_env, capsys, tmp_path, monkeypatch, content, problem):
    monkeypatch.setenv("DRIP_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    path = tmp_path / "x.backup"
    if content is not None:
        path.write_bytes(content)
    code, out, err = _cli(["restore", str(path)], capsys)
    assert code == 2 and problem in err and err.count("\n") == 1
    assert not (tmp_path / "empty.sqlite3").exists(), "nothing written"


def test_cli_backup_into_a_missing_folder_is_one_line_exit_2(cli_env, capsys, tmp_path):
    code, out, err = _cli(["backup", str(tmp_path / "nope" / "a.backup")], capsys)
    assert code == 2 and "no such folder" in err
    assert not list(tmp_path.glob("**/.a.backup*"))


def test_unreachable_postgres_is_one_error_and_no_file(tmp_path):
    with pytest.raises(bk.BackupError, match="cannot read the database to back up"):
        bk.backup("postgresql+psycopg://u:secret@127.0.0.1:1/nope", tmp_path / "p.backup")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_failed_pg_dump_leaves_no_file(tmp_path, monkeypatch):
    need(_pg_available(), f"PostgreSQL not reachable at {PG_URL}")
    fake = tmp_path / "bin"
    fake.mkdir()
    tool = fake / "pg_dump"
    tool.write_text("#!/bin/sh\ntouch \"${3#--file=}\"\necho 'pg_dump: error: disk full' >&2\nexit 1\n")
    tool.chmod(0o755)
    monkeypatch.setenv("DRIP_PG_BIN", str(fake))
    with pytest.raises(bk.BackupError, match="pg_dump failed: pg_dump: error: disk full"):
        bk.backup(PG_URL, tmp_path / "p.backup")
    assert list(tmp_path.iterdir()) == [fake], "the partial file is removed"
