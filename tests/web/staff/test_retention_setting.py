"""Delivery history retention from Settings (#14 item 6: "a retention setting for old delivery
rows"): owners only, forever or 90 to 3650 days, stored over DRIP_RETENTION_DAYS and used by the
worker's hourly job; lowering it shows what it would delete now and saves only once confirmed."""

from __future__ import annotations

from sqlalchemy import func, select

from drip.models import AuditEntry, ClinicSetting, Delivery, Event
from tests.delivery.test_retention import _rows
from tests.web.seed import snapshot
from tests.web.staff.conftest import both_databases, post_form
from tests.web.staff.test_signoff import member, post

SETTINGS = "/staff/settings"
ACTION = SETTINGS + "/retention"


def set_retention(client, days: int | None, *, confirm: int | None = None):
    data = {"keep": "forever"} if days is None else {"keep": "days", "days": str(days)}
    if confirm is not None:
        data |= {"confirm": "on", "confirm_days": str(confirm)}
    return post(client, SETTINGS, ACTION, data)


def stored(runtime):
    with runtime.sessions() as s:
        row = s.get(ClinicSetting, "retention_days")
        return None if row is None else row.value


def audit(runtime):
    with runtime.sessions() as s:
        return [(r.actor, r.before["retention_days"], r.after["retention_days"]) for r in s.scalars(
            select(AuditEntry).where(AuditEntry.action == "settings.retention").order_by(AuditEntry.id))]


def retention_card(html: str) -> str:
    return html.split('id="retention"', 1)[1].split("</form>", 1)[0]


def statuses(runtime):
    with runtime.sessions() as s:
        return sorted(s.scalars(select(Delivery.status))), s.scalar(select(func.count()).select_from(Event))


@both_databases
def test_the_owner_sets_a_retention_and_the_worker_job_uses_it(runtime, make_client, clock):
    from drip.models import utcnow

    clock.now = utcnow()  # the page counts at its clock, the worker's job deletes at the real time
    _rows(runtime, clock.now)  # 3 finished rows and 1 provider event 400 days old; a scheduled, a sending and a recent row
    owner = member(runtime, make_client, "owner")
    assert "Now: kept forever (the server's configuration)." in retention_card(owner.get(SETTINGS).text)

    r = set_retention(owner, 365)  # from forever to 365 days: deletes, so it asks first
    assert r.status_code == 200
    card = retention_card(r.text)
    assert 'id="retention-confirm"' in card and "3 delivery rows, 1 provider event and 0 webhook events" in card
    assert 'name="confirm_days" value="365"' in card and "Confirm and save" in card
    assert stored(runtime) is None and audit(runtime) == [] and len(statuses(runtime)[0]) == 6  # nothing yet

    r = set_retention(owner, 365, confirm=365)
    assert r.status_code == 303 and stored(runtime) == "365"
    assert audit(runtime) == [("owner@clinic.example.org", 0, 365)]
    page = owner.get(SETTINGS).text
    assert "older than 365 days is deleted by the worker within the hour" in page
    assert "Now: deleted after 365 days." in retention_card(page)

    # The worker of another process, started with DRIP_RETENTION_DAYS unset (0), runs the job.
    from delivery.backends.outbox import OutboxBackend
    from delivery.dispatcher import Dispatcher
    from drip.worker import build_worker

    other = type(runtime)(settings=runtime.settings.with_(retention_days=0), engine=runtime.engine,
                          sessions=runtime.sessions)
    with OutboxBackend(other.settings) as backend:
        worker = build_worker(other, Dispatcher(other, backend), 60, mode="run")
    [(job, seconds)] = [(job, seconds) for name, job, seconds in worker.chores if name == "retention"]
    assert seconds == 3600.0
    job()
    assert statuses(runtime) == (["scheduled", "sending", "sent"], 1)  # the promises and the recent row stay


def test_too_short_too_long_or_unreadable_is_refused_inline(runtime, make_client):
    owner = member(runtime, make_client, "owner")
    before = snapshot(runtime)
    for data, message in (
        ({"keep": "days", "days": "30"}, "Delivery history: at least 90 days (or keep forever)"),
        ({"keep": "days", "days": "89"}, "Delivery history: at least 90 days"),
        ({"keep": "days", "days": "4000"}, "Delivery history: at most 3650 days"),
        ({"keep": "days", "days": "a year"}, "Delivery history: &#39;a year&#39; is not a whole number of days"),
        ({"keep": "days", "days": ""}, "Delivery history: &#39;&#39; is not a whole number of days"),
        ({"keep": "sometimes"}, "Delivery history: choose keep forever or a number of days"),
        ({}, "Delivery history: choose keep forever or a number of days"),
    ):
        r = post_form(owner, SETTINGS, ACTION, data)
        assert r.status_code == 400, data
        card = retention_card(r.text)
        assert 'id="retention-error"' in card and message in card, (data, card)
    assert snapshot(runtime) == before  # nothing stored, nothing audited
    assert set_retention(owner, 90, confirm=90).status_code == 303 and stored(runtime) == "90"  # the minimum is fine


@both_databases
def test_lowering_needs_the_box_ticked_for_that_number_raising_does_not(runtime, make_client):
    owner = member(runtime, make_client, "owner")
    assert set_retention(owner, 365, confirm=365).status_code == 303
    assert set_retention(owner, 730).status_code == 303 and stored(runtime) == "730"  # keeps more: no question

    assert set_retention(owner, 180).status_code == 200 and stored(runtime) == "730"
    assert post(owner, SETTINGS, ACTION, {"keep": "days", "days": "180", "confirm_days": "180"}).status_code == 200
    r = set_retention(owner, 100, confirm=180)  # confirmed 180, then typed 100: asked again for 100
    assert r.status_code == 200 and 'name="confirm_days" value="100"' in r.text and stored(runtime) == "730"
    assert set_retention(owner, 180, confirm=180).status_code == 303 and stored(runtime) == "180"

    assert set_retention(owner, None).status_code == 303 and stored(runtime) == "0"  # forever deletes nothing
    assert "Delivery history is kept forever." in owner.get(SETTINGS).text
    assert set_retention(owner, None).status_code == 303 and "Nothing changed." in owner.get(SETTINGS).text
    assert [(b, a) for _, b, a in audit(runtime)] == [(0, 365), (365, 730), (730, 180), (180, 0)]


def test_the_count_is_capped_on_a_big_ledger(runtime, make_client, monkeypatch):
    import delivery.retention

    _rows(runtime)
    monkeypatch.setattr(delivery.retention, "COUNT_CAP", 2)
    owner = member(runtime, make_client, "owner")
    card = retention_card(set_retention(owner, 365).text)
    assert "more than 2 delivery rows, 1 provider event and 0 webhook events" in card


def test_the_servers_setting_shows_until_one_is_saved_and_only_owners_change_it(runtime, make_client):
    owner = member(runtime, make_client, "owner", retention_days=30)  # DRIP_RETENTION_DAYS=30
    assert "Now: deleted after 30 days (the server's configuration)." in owner.get(SETTINGS).text
    for role in ("editor", "approver", "viewer"):
        client = member(runtime, make_client, role)
        r = post(client, "/staff/campaigns", ACTION, {"keep": "forever"})  # a valid CSRF token
        assert r.status_code == 403 and "settings" in r.text
    assert stored(runtime) is None and audit(runtime) == []
    assert set_retention(owner, 120).status_code == 303  # 30 -> 120 keeps more: saved at once
    assert audit(runtime) == [("owner@clinic.example.org", 30, 120)] and stored(runtime) == "120"
