"""Invitations (one-time, expiring, emailed through the outbox) and the audit log (written with the
action, filterable, paged, CSV, append-only on both databases)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from drip.audit import Actor, record
from drip.models import AuditEntry, StaffUser
from tests.web.staff.conftest import STAFF_PASSWORD, both_databases, csrf_of, login, post_form
from tests.web.staff.data import seed_staff
from web.staff import auth

LINK = re.compile(r"https://clinic\.test/staff/invite/[A-Za-z0-9_-]+")


def audit_rows(runtime, action: str | None = None) -> list[AuditEntry]:
    with runtime.sessions() as s:
        query = select(AuditEntry).order_by(AuditEntry.id)
        if action:
            query = query.where(AuditEntry.action == action)
        return list(s.scalars(query))


def invite(staff, email="nurse@clinic.example.org", role="editor"):
    r = post_form(staff, "/staff/team", "/staff/team/invite", {"email": email, "role": role})
    assert r.status_code == 200, r.text
    return LINK.search(r.text).group(0).removeprefix("https://clinic.test")


def test_an_invitation_sets_a_password_once(runtime, staff, anon, settings, clock):
    path = invite(staff)
    outbox = list((settings.outbox_dir).glob("*.eml"))
    assert len(outbox) == 1 and path in outbox[0].read_text().replace("=\n", "")  # emailed too
    form = anon.get(path)
    assert form.status_code == 200 and "nurse@clinic.example.org" in form.text
    r = anon.post(path, data={"csrf": csrf_of(form.text), "password": "a new password!", "password2": "a new password!"},
                  follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/staff/login"
    assert login(anon, "nurse@clinic.example.org", "a new password!").status_code == 303
    assert anon.get("/staff/subscribers").status_code == 200 and anon.get("/staff/team").status_code == 403
    with runtime.sessions() as s:
        assert s.scalar(select(StaffUser.role).where(StaffUser.email == "nurse@clinic.example.org")) == "editor"
    assert anon.get(path).status_code == 404  # used up
    assert [e.action for e in audit_rows(runtime) if e.action.startswith("staff.invite")] == [
        "staff.invite", "staff.invite_accepted"]


def test_an_invitation_expires_and_a_new_one_replaces_it(runtime, staff, anon, clock):
    first = invite(staff)
    second = invite(staff)
    assert anon.get(first).status_code == 404  # replaced
    assert anon.get(second).status_code == 200
    clock.now += timedelta(hours=72, seconds=1)
    r = anon.get(second)
    assert r.status_code == 404 and "not valid" in r.text


def test_bad_invitations_are_400_not_500(runtime, staff):
    r = post_form(staff, "/staff/team", "/staff/team/invite", {"email": "not an address", "role": "editor"})
    assert r.status_code == 400
    r = post_form(staff, "/staff/team", "/staff/team/invite", {"email": "x@clinic.example.org", "role": "boss"})
    assert r.status_code == 400 and "unknown role" in r.text
    r = post_form(staff, "/staff/team", "/staff/team/invite", {"email": "frontdesk@clinic.example.org", "role": "viewer"})
    assert r.status_code == 400 and "already has a staff account" in r.text


def test_mismatched_passwords_keep_the_link(runtime, staff, anon):
    path = invite(staff)
    form = anon.get(path)
    r = anon.post(path, data={"csrf": csrf_of(form.text), "password": "a new password!", "password2": "other one!!"})
    assert r.status_code == 400 and "not the same" in r.text
    assert anon.get(path).status_code == 200


def test_logins_are_audited_success_and_failure(runtime, make_client, staff_user):
    c = make_client()
    login(c, password="wrong password")
    login(c)
    actions = [(e.action, e.actor, e.actor_id) for e in audit_rows(runtime)]
    assert actions == [("staff.login_failed", "frontdesk@clinic.example.org", None),
                       ("staff.login", "frontdesk@clinic.example.org", staff_user)]


@both_databases
def test_publish_pause_step_edit_and_unsubscribe_are_audited_with_the_change(runtime, staff):
    ids = seed_staff(runtime)
    post_form(staff, "/staff/campaigns/onboarding", "/staff/campaigns/onboarding/status", {"action": "pause"})
    page = "/staff/campaigns/onboarding/steps/2"
    post_form(staff, page, page, {"subject": "A new subject", "preheader": "", "title": "T", "body": "<p>B</p>",
                                  "delay": "1d"})
    post_form(staff, f"/staff/subscribers/{ids.ann_id}", f"/staff/subscribers/{ids.ann_id}/unsubscribe")
    [pause] = audit_rows(runtime, "campaign.pause")
    assert (pause.before, pause.after, pause.target) == ({"status": "published"}, {"status": "paused"},
                                                          "campaign onboarding")
    [edit] = audit_rows(runtime, "step.edit")
    assert edit.after["subject"] == "A new subject" and edit.before["subject"] != "A new subject"
    assert edit.target == "campaign onboarding step 2"
    [unsub] = audit_rows(runtime, "subscriber.unsubscribe")
    assert unsub.target == f"subscriber {ids.ann_id}" and unsub.actor == "frontdesk@clinic.example.org"


def test_a_failed_action_writes_no_audit_row(runtime, staff):
    seed_staff(runtime)
    before = len(audit_rows(runtime))
    page = "/staff/campaigns/onboarding/steps/1"
    r = post_form(staff, page, page, {"subject": "", "preheader": "", "title": "", "body": "", "delay": "-3d"})
    assert r.status_code in (200, 400)
    assert len(audit_rows(runtime)) == before


@both_databases
def test_the_audit_log_is_append_only(runtime):
    with runtime.sessions.begin() as s:
        record(s, Actor.cli(), "token.create", "api token 1")
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            with runtime.sessions.begin() as s:
                s.execute(text(statement))
    assert [e.action for e in audit_rows(runtime)] == ["token.create"]


def test_the_audit_page_filters_pages_and_exports(runtime, staff, clock):
    with runtime.sessions.begin() as s:
        for i in range(60):
            record(s, Actor("token", 7, "booking-system", "10.0.0.9"), "api.event", f"subscriber {i}",
                   after={"event": "booked"}, at=clock.now - timedelta(days=2))
        record(s, Actor.cli(), "token.create", "api token 7", after={"name": "=HYPERLINK(\"x\")"},
               at=clock.now - timedelta(days=10))
    page = staff.get("/staff/audit?who=booking")
    assert page.status_code == 200 and "60 entries" in page.text and "page 1 of 2" in page.text
    assert page.text.count("<code>api.event</code>") == 50
    assert staff.get("/staff/audit?who=booking&page=2").text.count("<code>api.event</code>") == 10
    day = (clock.now - timedelta(days=10)).strftime("%Y-%m-%d")
    only = staff.get(f"/staff/audit?from={day}&to={day}")
    assert "1 entry" in only.text and "token.create" in only.text
    assert staff.get("/staff/audit?from=yesterday").status_code == 400
    r = staff.get("/staff/audit.csv?action=token.create")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["action"] for row in rows] == ["token.create"] and rows[0]["actor"] == "cli"
    assert "HYPERLINK" in rows[0]["after"]


def test_viewer_and_editor_cannot_read_the_audit_log(runtime, make_client):
    with runtime.sessions.begin() as s:
        auth.add_staff(s, "v@clinic.example.org", STAFF_PASSWORD, role="viewer")
    c = make_client()
    login(c, "v@clinic.example.org")
    assert c.get("/staff/audit").status_code == 403 and c.get("/staff/audit.csv").status_code == 403
