"""`drip run --once` under DRIP_RATE_LIMITS sends what the limit allows and says when the next
sends go; `drip status` says it too. A bad limit is a one-line configuration error (exit 3)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from campaigns.enrollment import enroll
from drip.db import make_engine, migrate, session_factory
from drip.models import Delivery, utcnow
from tests.factories import make_campaign, make_subscriber
from tests.test_cli_engine import drip, env  # noqa: F401 (fixtures)


def test_run_once_keeps_to_the_limit_and_status_says_so(env, drip, monkeypatch):  # noqa: F811
    engine = make_engine(env["DRIP_DATABASE_URL"])
    migrate(engine)
    with session_factory(engine).begin() as s:
        c = make_campaign(s, n_items=1)
        for i in range(5):
            enroll(s, make_subscriber(s, f"p{i}@example.org"), c, utcnow() - timedelta(hours=1), clinic_tz="UTC")
    monkeypatch.setenv("DRIP_RATE_LIMITS", "2/day,100/hour")
    r = drip("run", "--once", env=env)
    assert r.returncode == 0, r.stderr
    assert "sent 2," in r.stdout and "limited (2/day): next sends at " in r.stdout, r.stdout
    with session_factory(engine)() as s:
        sent_at = s.scalars(select(Delivery.sent_at).where(Delivery.status == "sent")).all()
        assert len(sent_at) == 2
    engine.dispose()
    monkeypatch.setattr("drip.models.utcnow", lambda: sent_at[0])  # the same day as the sends, at any hour
    r = drip("status", env=env)
    assert r.returncode == 0 and "limited: next sends at " in r.stdout and "(outbox: 2/day used up)" in r.stdout


def test_a_bad_limit_is_one_line_configuration_error(env, drip, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DRIP_RATE_LIMITS", "30/fortnight")
    r = drip("run", "--once", env=env)
    assert r.returncode == 3 and "DRIP_RATE_LIMITS: cannot read '30/fortnight'" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr + r.stdout
