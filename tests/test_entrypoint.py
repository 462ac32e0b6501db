"""The container's entry point (docker/entrypoint.sh), run on the host as the image runs it:
the schema is migrated first, then `serve` answers /healthz, `run` sends, `healthcheck` checks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from campaigns.enrollment import enroll
from drip.db import make_engine, session_factory
from drip.models import Delivery
from tests.conftest import ROOT
from tests.factories import make_campaign, make_subscriber

ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
BIN = Path(sys.executable).parent  # the venv's `drip`, as /opt/drip/bin is on the image's PATH


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIP_", "SENDGRID_"))}
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        "DRIP_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'drip.sqlite3'}",
        "DRIP_SECRET_KEY": "entrypoint-test-key-not-for-production",
        "DRIP_DATA_DIR": str(tmp_path / "data"),
        "DRIP_OUTBOX_DIR": str(tmp_path / "outbox"),
        "DRIP_CONFIG": str(tmp_path / "none.toml"),
        "DRIP_LOG_FORMAT": "json",
        "DRIP_HOST": "127.0.0.1",
        "DRIP_PORT": "0",
    })
    env.update(extra)
    return env


def _tables(tmp_path: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(tmp_path / "data" / "drip.sqlite3") as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_serve_migrates_then_answers_healthz(tmp_path):
    env = _env(tmp_path)
    proc = subprocess.Popen(["sh", str(ENTRYPOINT), "serve"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        deadline = time.monotonic() + 60
        lines = []
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            message = json.loads(line)["message"]  # DRIP_LOG_FORMAT=json: every line is JSON
            if message.startswith("Uvicorn running on http://127.0.0.1:"):
                port = int(message.rsplit(":", 1)[1].split()[0])
        assert port, f"server did not start: {''.join(lines)[-2000:]}"
        assert {"alembic_version", "deliveries", "subscribers"} <= _tables(tmp_path)
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        # `serve` alone runs no worker: the answer is "degraded" (worker "never"), still a 200 (README, heartbeats)
        assert r.status_code == 200 and r.json()["database"] == "ok" and r.json()["worker"]["status"] == "never"
        check = subprocess.run(["sh", str(ENTRYPOINT), "healthcheck"], env={**env, "DRIP_PORT": str(port)},
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert "database schema up to date" in out


def test_run_migrates_then_sends(tmp_path, _sqlite_template):
    (tmp_path / "data").mkdir()
    db = tmp_path / "data" / "drip.sqlite3"
    shutil.copy(_sqlite_template, db)
    engine = make_engine(f"sqlite:///{db}")
    with session_factory(engine).begin() as s:
        c = make_campaign(s, n_items=0)
        enroll(s, make_subscriber(s, "ann@example.org"), c, datetime(2026, 1, 5, tzinfo=timezone.utc), clinic_tz="UTC")
    done = subprocess.run(["sh", str(ENTRYPOINT), "run", "--once"], env=_env(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "database schema up to date" in done.stdout and "sent 1" in done.stdout
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sent")) == 1
    assert list((tmp_path / "outbox").glob("*.eml"))
    engine.dispose()


@pytest.mark.parametrize("role", ["serve", "run"])
def test_web_and_worker_refuse_to_start_without_the_secret_key(tmp_path, role):
    env = _env(tmp_path)
    del env["DRIP_SECRET_KEY"]
    done = subprocess.run(["sh", str(ENTRYPOINT), role], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and "DRIP_SECRET_KEY is not set" in done.stderr
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "data").exists(), "nothing written"


def test_compose_file_wires_the_three_services():
    """What can be checked without a container engine: the services, their health checks, the
    volumes and that no secret has a default."""
    import yaml  # PyYAML: installed with schemathesis
    spec = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = spec["services"]
    assert set(services) == {"db", "web", "worker"}
    assert services["db"]["image"] == "postgres:15" and "pgdata" in spec["volumes"]
    for name in ("web", "worker"):
        s = services[name]
        assert s["healthcheck"]["test"] == ["CMD", "drip-entrypoint", "healthcheck"]
        assert s["depends_on"]["db"]["condition"] == "service_healthy"
        assert any(v.startswith("outbox:") for v in s["volumes"])
        assert ":?" in s["environment"]["DRIP_SECRET_KEY"], "no default for the secret key"
    assert services["worker"]["command"] == ["run"] and services["web"]["command"] == ["serve"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER drip" in dockerfile and 'ENTRYPOINT ["drip-entrypoint"]' in dockerfile
