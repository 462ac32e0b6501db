"""PostgreSQL restarted mid-run: a cluster of the test's own (initdb on a free port), a worker
sending to a real SMTP server on loopback, and `pg_ctl restart -m fast` while it sends. Nothing is
lost, nothing is sent twice, and sending carries on by itself once the server is back."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from delivery.backends.smtp import SMTPBackend
from delivery.dispatcher import Dispatcher
from drip.db import is_unavailable, make_engine, migrate, session_factory
from drip.models import Delivery
from drip.runtime import Runtime
from tests.conftest import need
from tests.delivery.test_resilience import FastClock, due_ids, populate, received, smtp_settings

N = 300


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: its tools run as the `postgres` user here."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def own_cluster():
    bin_dir = _pg_bin()
    need(bin_dir is not None, "PostgreSQL server binaries not found under /usr/lib/postgresql")
    if os.geteuid() == 0:
        need(shutil.which("runuser") is not None, "runuser not found (to run PostgreSQL as postgres)")
    # Not under pytest's own temp folder: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="drip-pg-"))
    os.chmod(base, 0o700)
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    port = _free_port()
    init = _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    need(init.returncode == 0, f"initdb failed: {init.stderr.strip()[-300:]}")
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-o", opts, "-w"]
    started = _as_postgres(*ctl, "start")
    need(started.returncode == 0, f"pg_ctl start failed: {started.stderr.strip()[-300:]}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", ctl
    finally:
        _as_postgres(*ctl, "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_postgresql_restart_mid_run_loses_and_doubles_nothing(own_cluster, settings, smtp_server):
    url, ctl = own_cluster
    engine = make_engine(url)
    migrate(engine)
    rt = Runtime(settings=settings.with_(database_url=url), engine=engine, sessions=session_factory(engine))
    try:
        populate(rt, N)
        rt.settings = smtp_settings(rt, smtp_server.port)
        ids = due_ids(rt)
        sent_before_restart = threading.Event()
        stop = threading.Event()
        errors: list[str] = []

        def worker() -> None:
            with SMTPBackend(rt.settings) as backend:
                d = Dispatcher(rt, backend, clock=FastClock())
                while not stop.is_set():
                    try:
                        report = d.tick(max_batches=1)
                        if report.sent:
                            sent_before_restart.set()
                    except Exception as exc:  # as scheduler.Worker does: the next tick retries
                        if not is_unavailable(exc):
                            errors.append(repr(exc))
                            return
                    time.sleep(0.01)

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        assert sent_before_restart.wait(30), "the worker never started sending"
        restarted = _as_postgres(*ctl, "-m", "fast", "restart")
        assert restarted.returncode == 0, restarted.stderr
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with rt.sessions() as s:
                    if s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sent")) == N:
                        break
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
            time.sleep(0.1)
        stop.set()
        thread.join(timeout=30)
        assert errors == [], errors
        got = received(smtp_server)
        assert set(got) == ids, f"lost: {len(ids - set(got))}"
        assert max(got.values()) == 1, f"duplicated: {sum(1 for n in got.values() if n > 1)}"
    finally:
        rt.close()
