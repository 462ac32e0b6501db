"""End to end with real parts: a booking-system script (examples/booking_system.py) calls the API
and the drip stops before the next email.

A real `drip serve --worker` subprocess (SMTP backend) sends to a real aiosmtpd server on
loopback; the campaign (the seed article, imported with the CLI) exits on the event
`appointment_booked`. Two patients get email 1; the script reports Maria's booking; then every
patient's email 2 is made due at once: Ana (the control) receives it, Maria does not, and the
ledger shows Maria's remaining emails cancelled with the reason. SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import ROOT
from tests.delivery.conftest import run_smtp_server
from tests.web.serve_process import ServeProcess, drip_env

SCRIPT = ROOT / "examples" / "booking_system.py"
SEED = ROOT / "drip" / "samples" / "acupuncture-pain-relief.txt"


@pytest.fixture
def sink():
    yield from run_smtp_server()


def _run(env, folder: Path, *argv: str) -> str:
    done = subprocess.run(list(argv), env=env, cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr
    return done.stdout


def _wait(what: str, check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _to(sink) -> list[str]:
    with sink.lock:
        return [m["To"].addresses[0].addr_spec for m in sink.messages]


@pytest.mark.timeout(240)
def test_booking_system_script_stops_the_drip_before_the_next_email(runtime, sink, tmp_path):
    env = drip_env(tmp_path, DRIP_DATABASE_URL=runtime.settings.database_url, DRIP_BACKEND="smtp",
                   DRIP_SMTP_HOST="127.0.0.1", DRIP_SMTP_PORT=str(sink.port), DRIP_TICK_SECONDS="0.2",
                   DRIP_FREQUENCY_CAP="5", DRIP_SECRET_KEY="booking-test-key-not-for-production",
                   DRIP_DATA_DIR=str(tmp_path / "data"))
    _run(env, tmp_path, "drip", "import", str(SEED), "--campaign", "onboarding", "--every", "2d", "--start", "0d",
         "--window", "daily 00:00-23:59", "--publish", "--yes")
    _run(env, tmp_path, "drip", "exits", "add", "onboarding", "event", "appointment_booked")
    env["DRIP_API_TOKEN"] = _run(env, tmp_path, "drip", "api-token", "create", "booking-system").strip()

    with ServeProcess(tmp_path, env, "--worker") as server:
        env["DRIP_API_URL"] = server.url
        for email, name in (("maria@example.org", "Maria"), ("ana@example.org", "Ana")):
            out = _run(env, tmp_path, sys.executable, str(SCRIPT), "new-patient", email, "--name", name,
                       "--tz", "UTC", "--campaign", "onboarding")
            assert "onboarding started, 13 emails scheduled" in out, out
        _wait("email 1 for both patients", lambda: sorted(_to(sink)) == ["ana@example.org", "maria@example.org"])

        out = _run(env, tmp_path, sys.executable, str(SCRIPT), "booked", "maria@example.org")
        assert "event appointment_booked recorded" in out and "stopped: onboarding" in out, out

        # Time travel for email 2: both patients' second step due now, in one statement.
        with runtime.engine.begin() as conn:
            moved = conn.execute(text(
                "UPDATE deliveries SET due_at = :now WHERE status = 'scheduled' AND step_id = "
                "(SELECT s.id FROM steps s JOIN campaigns c ON c.id = s.campaign_id "
                " WHERE c.slug = 'onboarding' AND s.position = (SELECT min(position) + 1 FROM steps t "
                "  WHERE t.campaign_id = c.id))"),
                {"now": datetime.now(timezone.utc) - timedelta(seconds=1)}).rowcount
        assert moved == 1, "only Ana's email 2 was still scheduled"
        _wait("Ana's email 2", lambda: _to(sink).count("ana@example.org") == 2)
        time.sleep(1.0)  # a few more worker ticks: nothing else is due, nothing else arrives
        assert sorted(_to(sink)) == ["ana@example.org", "ana@example.org", "maria@example.org"]
    assert "Traceback" not in server.output(), server.output()[-3000:]

    with runtime.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT d.status, d.last_error FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
            "WHERE s.email = 'maria@example.org'")).all()
        state, reason = conn.execute(text(
            "SELECT e.state, e.exit_reason FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id "
            "WHERE s.email = 'maria@example.org'")).one()
    assert sorted(r[0] for r in rows) == ["cancelled"] * 12 + ["sent"]
    assert all("appointment_booked" in r[1] for r in rows if r[0] == "cancelled")
    assert state == "exited" and "appointment_booked" in reason


def test_the_script_says_what_went_wrong_in_one_line(tmp_path):
    env = drip_env(tmp_path, DRIP_API_URL="http://127.0.0.1:9", DRIP_API_TOKEN="drip_nothing")
    done = subprocess.run([sys.executable, str(SCRIPT), "booked", "maria@example.org"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "cannot reach" in done.stderr
    env.pop("DRIP_API_TOKEN")
    done = subprocess.run([sys.executable, str(SCRIPT), "booked", "maria@example.org"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "DRIP_API_TOKEN" in done.stderr
