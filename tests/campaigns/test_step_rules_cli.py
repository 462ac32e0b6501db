"""`drip campaigns anchor` / `drip campaigns condition`: set, shown, audited; bad input is one line, exit 2."""

from __future__ import annotations

from sqlalchemy import select

from drip.db import make_engine, session_factory
from drip.models import AuditEntry, Campaign, Step
from tests.test_cli_engine import drip, env  # noqa: F401  (fixtures)


def _steps(env):
    engine = make_engine(env["DRIP_DATABASE_URL"])
    try:
        with session_factory(engine)() as s:
            cid = s.scalar(select(Campaign.id).where(Campaign.slug == "seed"))
            steps = {st.position: (st.anchor_attribute, st.anchor_offset_minutes, st.condition)
                     for st in s.scalars(select(Step).where(Step.campaign_id == cid))}
            actions = [a.action for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
            return steps, actions
    finally:
        engine.dispose()


def test_anchor_and_condition_commands(env, seed_path, drip):  # noqa: F811
    assert drip("import", str(seed_path), "--campaign", "seed", env=env).returncode == 0
    assert drip("attributes", "define", "first_visit", "date", env=env).returncode == 0
    assert drip("attributes", "define", "note", "text", env=env).returncode == 0
    r = drip("campaigns", "anchor", "seed", "2", "--before", "3d", "--attribute", "first_visit", env=env)
    assert r.returncode == 0 and "seed step 2: 3 days before first_visit" in r.stdout, r.stderr
    r = drip("campaigns", "anchor", "seed", "3", "--after", "1d", "--attribute", "first_visit", env=env)
    assert r.returncode == 0 and "1 day after first_visit" in r.stdout
    r = drip("campaigns", "condition", "seed", "3", "tag:back-pain and not tag:pregnant", env=env)
    assert r.returncode == 0 and "only when tag:back-pain and not tag:pregnant" in r.stdout
    r = drip("campaigns", "show", "seed", env=env)
    assert "3 days before first_visit" in r.stdout and "tag:back-pain" in r.stdout
    r = drip("campaigns", "cadence", "seed", env=env)
    assert r.returncode == 0 and "   2. 3 days before first_visit" in r.stdout and "   3. 1 day after first_visit" in r.stdout
    steps, actions = _steps(env)
    assert steps[2] == ("first_visit", -4320, None)
    assert steps[3] == ("first_visit", 1440, "tag:back-pain and not tag:pregnant")
    assert actions.count("step.anchor") == 2 and actions.count("step.condition") == 1

    for args, needle in [
        (("anchor", "seed", "2", "--before", "3 days", "--attribute", "first_visit"), "--before: expected an offset"),
        (("anchor", "seed", "2", "--before", "3d", "--attribute", "note"), "only be anchored to a date"),
        (("anchor", "seed", "2", "--before", "3d", "--after", "1d", "--attribute", "first_visit"), "one of --before"),
        (("anchor", "seed", "99", "--after", "1d", "--attribute", "first_visit"), "has no step 99"),
        (("condition", "seed", "3", "attribute:note > b"), "only = and != compare it"),
        (("condition", "seed", "3", "eval(1)"), "CONDITION: "),
    ]:
        r = drip("campaigns", *args, env=env)
        assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    assert _steps(env)[0] == steps  # nothing half-written

    assert drip("campaigns", "anchor", "seed", "2", "--clear", env=env).returncode == 0
    assert drip("campaigns", "condition", "seed", "3", "", env=env).returncode == 0
    steps, _ = _steps(env)
    assert steps[2] == (None, None, None) and steps[3][2] is None
