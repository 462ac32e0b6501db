"""Two actions that left no audit row (#14 item 3): exporting the audit log as CSV, and a staff
member's test email to themselves. Each row says who and what; never an address or a secret."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from drip.audit import Actor, record
from drip.models import AuditEntry
from tests.web.staff.conftest import STAFF_EMAIL, both_databases, login, post_form
from tests.web.staff.data import seed_staff


def rows(runtime, action: str) -> list[tuple]:
    with runtime.sessions() as s:
        return [(e.actor_kind, e.actor, e.target, e.after) for e in
                s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))]


@both_databases
def test_exporting_the_audit_log_is_audited_with_its_filter(runtime, staff):
    with runtime.sessions.begin() as s:
        record(s, Actor.cli(), "token.create", "api token 1", after={"name": "booking"})
        record(s, Actor.cli(), "token.revoke", "api token 1")
    r = staff.get("/staff/audit.csv?action=token.create&who=cli")
    assert r.status_code == 200
    assert [row["action"] for row in csv.DictReader(io.StringIO(r.text))] == ["token.create"]
    assert rows(runtime, "audit.export") == [
        ("staff", STAFF_EMAIL, "audit log", {"rows": 1, "who": "cli", "action": "token.create"})]
    staff.get("/staff/audit.csv")  # the whole log: the two above, the login and the first export
    assert rows(runtime, "audit.export")[1][3] == {"rows": 4}


def test_a_refused_export_writes_no_row(runtime, staff):
    assert staff.get("/staff/audit.csv?from=yesterday").status_code == 400
    assert rows(runtime, "audit.export") == []


@both_databases
def test_a_test_email_to_myself_is_audited(runtime, staff):
    seed_staff(runtime)
    post_form(staff, "/staff/campaigns/onboarding/steps/2", "/staff/campaigns/onboarding/steps/2/test")
    post_form(staff, "/staff/newsletters/december", "/staff/newsletters/december/test")
    assert rows(runtime, "email.test") == [
        ("staff", STAFF_EMAIL, "campaign onboarding step 2", {"sent": True}),
        ("staff", STAFF_EMAIL, "newsletter december", {"sent": True}),
    ]


def test_a_failed_test_email_is_audited_without_the_error(runtime, make_client, staff_user):
    seed_staff(runtime)
    client = make_client(backend="sendgrid", sendgrid_api_key="")
    login(client)
    post_form(client, "/staff/campaigns/onboarding/steps/2", "/staff/campaigns/onboarding/steps/2/test")
    assert rows(runtime, "email.test") == [("staff", STAFF_EMAIL, "campaign onboarding step 2", {"sent": False})]
