"""Clinician sign-off on or off from Settings (#14 item 2: "a one-person clinic can turn this off in
settings"): owners only, audited, stored over DRIP_REQUIRE_SIGNOFF, and followed at once by this
process and on the next request by another one (the settings version)."""

from __future__ import annotations

from sqlalchemy import select

from drip.models import AuditEntry, ClinicSetting
from tests.factories import make_campaign
from tests.web.seed import snapshot
from tests.web.staff.conftest import both_databases, post_form
from tests.web.staff.test_signoff import edit_step, live_body, member, post

SETTINGS = "/staff/settings"


def set_signoff(client, value: str):
    return post(client, SETTINGS, SETTINGS + "/signoff", {"require_signoff": value})


def signoff_rows(runtime):
    with runtime.sessions() as s:
        return [(r.actor, r.before, r.after) for r in s.scalars(
            select(AuditEntry).where(AuditEntry.action == "settings.signoff").order_by(AuditEntry.id))]


@both_databases
def test_the_owner_turns_sign_off_off_and_on_and_editors_follow(runtime, make_client):
    with runtime.sessions.begin() as s:
        make_campaign(s, "onboarding", n_items=1)
    owner, editor = member(runtime, make_client, "owner"), member(runtime, make_client, "editor")
    page = owner.get(SETTINGS).text
    assert 'id="signoff"' in page and 'name="require_signoff" value="1" checked' in page

    r = set_signoff(owner, "0")
    assert r.status_code == 303
    assert "Clinician sign-off is off" in owner.get(SETTINGS).text
    assert 'name="require_signoff" value="0" checked' in owner.get(SETTINGS).text
    assert signoff_rows(runtime) == [("owner@clinic.example.org", {"require_signoff": True},
                                      {"require_signoff": False})]
    assert "saving keeps your change waiting" not in editor.get("/staff/campaigns/onboarding/steps/1").text
    assert edit_step(editor, body="Live at once.").status_code == 303
    assert live_body(runtime) == ("Live at once.", "Live at once.")  # no approver needed

    # another process (its own runtime on the same database) follows on its next request
    other = type(runtime)(settings=runtime.settings, engine=runtime.engine, sessions=runtime.sessions)
    from tests.web.staff.conftest import login
    from web.app import create_app
    from starlette.testclient import TestClient

    with TestClient(create_app(other), base_url="https://clinic.test") as second:
        assert login(second, "editor@clinic.example.org").status_code == 303
        assert edit_step(second, body="From the other process.").status_code == 303
        assert live_body(runtime)[0] == "From the other process."
        assert set_signoff(owner, "1").status_code == 303
        assert edit_step(second, body="Waits again.").status_code == 303
        assert live_body(runtime) == ("From the other process.", "Waits again.")  # pending: sign-off is back on
    assert [after for _, _, after in signoff_rows(runtime)] == [{"require_signoff": False},
                                                                 {"require_signoff": True}]


def test_a_saved_choice_overrides_the_environment_and_saving_the_same_is_no_change(runtime, make_client):
    with runtime.sessions.begin() as s:
        make_campaign(s, "onboarding", n_items=1)
    owner = member(runtime, make_client, "owner", require_signoff=False)  # DRIP_REQUIRE_SIGNOFF=false
    assert 'name="require_signoff" value="0" checked' in owner.get(SETTINGS).text
    r = set_signoff(owner, "0")
    assert r.status_code == 303 and "Nothing changed." in owner.get(SETTINGS).text and signoff_rows(runtime) == []
    assert set_signoff(owner, "1").status_code == 303
    editor = member(runtime, make_client, "editor", require_signoff=False)  # a process started with the env's
    assert edit_step(editor, body="Must wait.").status_code == 303
    live, newest = live_body(runtime)
    assert newest == "Must wait." and live != newest


def test_a_bad_choice_is_refused_and_only_owners_may_change_it(runtime, make_client):
    owner = member(runtime, make_client, "owner")
    before = snapshot(runtime)
    for data in ({}, {"require_signoff": "maybe"}):
        r = post_form(owner, SETTINGS, SETTINGS + "/signoff", data)
        assert r.status_code == 400 and "Clinician sign-off: choose required or not required" in r.text
    for role in ("editor", "approver", "viewer"):
        client = member(runtime, make_client, role)
        r = post(client, "/staff/campaigns", SETTINGS + "/signoff", {"require_signoff": "0"})  # a valid CSRF token
        assert r.status_code == 403 and "settings" in r.text
    with runtime.sessions() as s:
        assert s.get(ClinicSetting, "require_signoff") is None
    assert {k: v for k, v in snapshot(runtime).items() if k not in ("staff_users", "audit_log")} == \
        {k: v for k, v in before.items() if k not in ("staff_users", "audit_log")}
